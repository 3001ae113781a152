//! How each fuzz target splits its input, shared by the targets (which read it) and the
//! seed writer (which lays real guest traffic out the same way).

pub mod virtio_queue {
    //! `virtio_queue`: one virtqueue's descriptor table, eight available chains, the
    //! queue each chain is posted on, then guest memory.
    //!
    //! Guest memory is two regions with a hole between them, so hostile addresses can
    //! point before, between, across and after them.

    /// Descriptors in the table (the queue size).
    pub const QUEUE_SIZE: u16 = 16;
    /// Bytes of one descriptor (`addr u64, len u32, flags u16, next u16`).
    pub const DESCRIPTOR_BYTES: usize = 16;
    /// Chains made available per input.
    pub const CHAINS: usize = 8;
    /// Input offset of the descriptor table.
    pub const TABLE_AT: usize = 0;
    /// Input offset of the available heads (`CHAINS` × u16).
    pub const HEADS_AT: usize = TABLE_AT + QUEUE_SIZE as usize * DESCRIPTOR_BYTES;
    /// Input offset of each chain's queue (`CHAINS` bytes, taken modulo 4). The first
    /// byte's high bits also shape the card: [`NO_CONTROLS`], [`NO_XRUN_EVENTS`].
    pub const QUEUES_AT: usize = HEADS_AT + CHAINS * 2;
    /// In the first queue byte: a card without control elements.
    pub const NO_CONTROLS: u8 = 0x80;
    /// In the first queue byte: streams that do not offer xrun events.
    pub const NO_XRUN_EVENTS: u8 = 0x40;
    /// Input offset of the guest memory contents, copied to [`DATA_ADDR`].
    pub const DATA_AT: usize = QUEUES_AT + CHAINS;

    /// Guest address of the descriptor table.
    pub const DESC_TABLE_ADDR: u64 = 0x0;
    /// Guest address of the available ring.
    pub const AVAIL_ADDR: u64 = 0x200;
    /// Guest address of the used ring.
    pub const USED_ADDR: u64 = 0x400;
    /// Guest address where the input's data lands.
    pub const DATA_ADDR: u64 = 0x1000;
    /// The first region: `[0, LOW_END)`.
    pub const LOW_END: u64 = 0x1_0000;
    /// The second region: `[HIGH_START, HIGH_START + HIGH_LEN)`.
    pub const HIGH_START: u64 = 0x2_0000;
    /// Its length.
    pub const HIGH_LEN: u64 = 0x1000;

    /// Descriptor flags.
    pub const F_NEXT: u16 = 1;
    /// Device-writable.
    pub const F_WRITE: u16 = 2;

    /// Builds inputs descriptor by descriptor.
    #[derive(Debug, Default)]
    pub struct Builder {
        table: Vec<[u8; DESCRIPTOR_BYTES]>,
        heads: Vec<(u16, u8)>,
        data: Vec<u8>,
    }

    impl Builder {
        /// Places `bytes` in guest memory; returns their guest address.
        pub fn place(&mut self, bytes: &[u8]) -> u64 {
            while !self.data.len().is_multiple_of(8) {
                self.data.push(0);
            }
            let at = DATA_ADDR + self.data.len() as u64;
            self.data.extend_from_slice(bytes);
            at
        }

        /// Adds a chain of `(bytes or room, writable)` segments on `queue`: readable
        /// segments carry their bytes, writable ones are `len` zero bytes.
        pub fn chain(&mut self, queue: u16, segments: &[(&[u8], bool)]) -> &mut Builder {
            let head = self.table.len() as u16;
            for (index, (bytes, writable)) in segments.iter().enumerate() {
                let addr = self.place(bytes);
                let last = index + 1 == segments.len();
                let mut flags = if last { 0 } else { F_NEXT };
                if *writable {
                    flags |= F_WRITE;
                }
                let next = if last { 0 } else { self.table.len() as u16 + 1 };
                let mut descriptor = [0u8; DESCRIPTOR_BYTES];
                descriptor[0..8].copy_from_slice(&addr.to_le_bytes());
                descriptor[8..12].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
                descriptor[12..14].copy_from_slice(&flags.to_le_bytes());
                descriptor[14..16].copy_from_slice(&next.to_le_bytes());
                self.table.push(descriptor);
            }
            self.heads.push((head, queue as u8));
            self
        }

        /// The input; `None` when the chains need more descriptors or heads than fit.
        pub fn build(&self) -> Option<Vec<u8>> {
            if self.table.len() > QUEUE_SIZE as usize || self.heads.len() > CHAINS {
                return None;
            }
            let mut input = vec![0u8; DATA_AT];
            for (index, descriptor) in self.table.iter().enumerate() {
                let at = TABLE_AT + index * DESCRIPTOR_BYTES;
                input[at..at + DESCRIPTOR_BYTES].copy_from_slice(descriptor);
            }
            // Unused chains point at an unused descriptor on the control queue: a
            // zero-length message the device answers with BAD_MSG.
            let spare = self.table.len().min(QUEUE_SIZE as usize - 1) as u16;
            for index in 0..CHAINS {
                let (head, queue) = self.heads.get(index).copied().unwrap_or((spare, 0));
                input[HEADS_AT + index * 2..HEADS_AT + index * 2 + 2]
                    .copy_from_slice(&head.to_le_bytes());
                input[QUEUES_AT + index] = queue;
            }
            input.extend_from_slice(&self.data);
            Some(input)
        }
    }
}

pub mod sndif_ring {
    //! `sndif_ring`: a direction byte (even: playback, odd: capture), the request ring
    //! page, then the page every other grant maps (directory and buffer pages).

    /// Input offset of the ring page.
    pub const RING_AT: usize = 1;
    /// Bytes of a page.
    pub const PAGE: usize = 4096;
    /// Input offset of the granted page.
    pub const GRANT_AT: usize = RING_AT + PAGE;
}

pub mod api_body {
    //! `api_body`: a selector byte (modulo 3: card, endpoint, stream patch), then the body.
}

pub mod xenstore_config {
    //! `xenstore_config`: `path=value` lines, paths relative to [`FRONTEND`].

    /// The frontend directory the card is read from.
    pub const FRONTEND: &str = "/local/domain/1/device/vsnd/0";
}
