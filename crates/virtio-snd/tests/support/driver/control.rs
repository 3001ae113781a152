//! The control queue: one request, one response, answered in order.

use super::{Driver, TIMEOUT};
use crate::support::spec::{self, SetParams, code, queue, size};
use crate::support::virtqueue::Segment;

impl Driver {
    /// Sends `request` with a `response_len`-byte response buffer and returns the bytes
    /// the device says it wrote (the used length).
    pub fn control(&mut self, request: &[u8], response_len: usize) -> Vec<u8> {
        let request_at = self.ram.alloc(request.len() as u64, 8);
        self.ram.write(request_at, request);
        let response_at = self.ram.alloc(response_len as u64, 8);
        let head = self.post_raw(
            queue::CONTROL,
            &[
                Segment::readable(request_at, request.len()),
                Segment::writable(response_at, response_len),
            ],
        );
        let used = self.wait_raw(queue::CONTROL, TIMEOUT).unwrap_or_else(|| {
            panic!(
                "control request {:02x?}… got no answer within {TIMEOUT:?}",
                &request[..request.len().min(8)]
            )
        });
        assert_eq!(
            used.head, head,
            "the control queue answered a chain that was not asked"
        );
        let response = self
            .ram
            .read(response_at, (used.len as usize).min(response_len));
        self.ram.free(request_at, request.len() as u64);
        self.ram.free(response_at, response_len as u64);
        response
    }

    /// A request answered by a status only.
    pub fn command(&mut self, request: &[u8]) -> u32 {
        spec::response_status(&self.control(request, 4))
    }

    /// A JACK/PCM/CHMAP/CTL_INFO query: the status and the items (when OK).
    pub fn query(
        &mut self,
        code: u32,
        start_id: u32,
        count: u32,
        item_size: u32,
    ) -> (u32, Vec<Vec<u8>>) {
        let response = self.control(
            &spec::query_info(code, start_id, count, item_size),
            4 + (count * item_size) as usize,
        );
        let status = spec::response_status(&response);
        if status != spec::status::OK {
            return (status, Vec::new());
        }
        assert_eq!(
            response.len(),
            4 + (count * item_size) as usize,
            "used length of an info reply"
        );
        (
            status,
            response[4..]
                .chunks(item_size as usize)
                .map(<[u8]>::to_vec)
                .collect(),
        )
    }

    /// Every item of an info table, asserting OK.
    pub fn info_table(&mut self, code: u32, count: u32, item_size: u32) -> Vec<Vec<u8>> {
        let (status, items) = self.query(code, 0, count, item_size);
        assert_eq!(
            status,
            spec::status::OK,
            "info query {code:#x}: {}",
            spec::status::name(status)
        );
        items
    }

    /// PCM_SET_PARAMS.
    pub fn set_params(&mut self, params: &SetParams) -> u32 {
        self.command(&params.encode())
    }

    /// PCM_PREPARE.
    pub fn prepare(&mut self, stream_id: u32) -> u32 {
        self.command(&spec::pcm_hdr(code::PCM_PREPARE, stream_id))
    }

    /// PCM_START.
    pub fn start(&mut self, stream_id: u32) -> u32 {
        self.command(&spec::pcm_hdr(code::PCM_START, stream_id))
    }

    /// PCM_STOP.
    pub fn stop(&mut self, stream_id: u32) -> u32 {
        self.command(&spec::pcm_hdr(code::PCM_STOP, stream_id))
    }

    /// PCM_RELEASE.
    pub fn release(&mut self, stream_id: u32) -> u32 {
        self.command(&spec::pcm_hdr(code::PCM_RELEASE, stream_id))
    }

    /// SET_PARAMS then PREPARE, both asserted OK.
    pub fn configure(&mut self, params: &SetParams) {
        let status = self.set_params(params);
        assert_eq!(
            status,
            spec::status::OK,
            "SET_PARAMS {params:?}: {}",
            spec::status::name(status)
        );
        let status = self.prepare(params.stream_id);
        assert_eq!(
            status,
            spec::status::OK,
            "PREPARE {}: {}",
            params.stream_id,
            spec::status::name(status)
        );
    }

    /// CTL_READ: the status and the value's first integer.
    pub fn ctl_read(&mut self, control_id: u32) -> (u32, Option<u32>) {
        let response = self.control(
            &spec::ctl_hdr(code::CTL_READ, control_id),
            4 + size::CTL_VALUE,
        );
        let status = spec::response_status(&response);
        let value = (status == spec::status::OK && response.len() >= 8)
            .then(|| u32::from_le_bytes(response[4..8].try_into().expect("4 bytes")));
        (status, value)
    }

    /// CTL_WRITE of a single-member value.
    pub fn ctl_write(&mut self, control_id: u32, value: u32) -> u32 {
        self.command(&spec::ctl_write(control_id, value))
    }

    /// CTL_TLV_READ into a `capacity`-byte buffer: the status and the TLV bytes written.
    pub fn ctl_tlv_read(&mut self, control_id: u32, capacity: usize) -> (u32, Vec<u8>) {
        let response = self.control(&spec::ctl_hdr(code::CTL_TLV_READ, control_id), 4 + capacity);
        (spec::response_status(&response), response[4..].to_vec())
    }
}
