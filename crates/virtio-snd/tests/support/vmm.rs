//! The VMM's half of vhost-user: connect to the card's socket and hand the backend the
//! guest's memory and queues, in the order QEMU's `vhost-user-snd` uses.

use std::path::Path;
use std::time::{Duration, Instant};

use vhost::VhostBackend;
use vhost::vhost_user::message::VhostUserConfigFlags;
use vhost::vhost_user::{Frontend, VhostUserFrontend, VhostUserProtocolFeatures};

use super::memory::GuestRam;
use super::spec::{self, Config};
use super::virtqueue::SplitQueue;

/// How long to keep retrying while the backend is not (yet, or again) listening.
const CONNECT_PATIENCE: Duration = Duration::from_secs(5);

/// An established vhost-user session.
pub struct Vmm {
    frontend: Frontend,
    /// Virtio features offered by the backend.
    pub offered: u64,
    /// Virtio features acknowledged.
    pub features: u64,
    /// The device's config space, read once at setup.
    pub config: Config,
}

impl std::fmt::Debug for Vmm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vmm")
            .field("features", &format_args!("{:#x}", self.features))
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Connects to `socket`, retrying while nothing listens there.
pub fn connect(socket: &Path) -> Frontend {
    let deadline = Instant::now() + CONNECT_PATIENCE;
    loop {
        match Frontend::connect(socket, spec::queue::COUNT as u64) {
            Ok(frontend) => return frontend,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("no vhost-user backend on {}: {error}", socket.display()),
        }
    }
}

impl Vmm {
    /// Negotiates features (`wanted` ∩ offered; VERSION_1 and PROTOCOL_FEATURES are
    /// required), reads the config space, maps `ram` and starts `queues`.
    pub fn start(socket: &Path, ram: &GuestRam, queues: &[SplitQueue], wanted: u64) -> Vmm {
        let mut frontend = connect(socket);
        frontend.set_owner().expect("SET_OWNER");
        let offered = frontend.get_features().expect("GET_FEATURES");
        for (bit, name) in [
            (spec::F_VERSION_1, "VIRTIO_F_VERSION_1"),
            (spec::F_PROTOCOL_FEATURES, "VHOST_USER_F_PROTOCOL_FEATURES"),
        ] {
            assert!(
                offered & bit != 0,
                "the backend does not offer {name} (features {offered:#x})"
            );
        }
        let protocol = frontend
            .get_protocol_features()
            .expect("GET_PROTOCOL_FEATURES");
        let needed = VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ;
        assert!(
            protocol.contains(needed),
            "protocol features {protocol:?} lack CONFIG | MQ"
        );
        frontend
            .set_protocol_features(needed)
            .expect("SET_PROTOCOL_FEATURES");
        let queue_count = frontend.get_queue_num().expect("GET_QUEUE_NUM");
        assert_eq!(
            queue_count,
            spec::queue::COUNT as u64,
            "virtio-snd has four queues"
        );
        let features = offered & wanted;
        frontend.set_features(features).expect("SET_FEATURES");
        let (_, config) = frontend
            .get_config(
                0,
                Config::SIZE,
                VhostUserConfigFlags::empty(),
                &[0; Config::SIZE as usize],
            )
            .expect("GET_CONFIG");
        let config = Config::parse(&config);
        frontend
            .set_mem_table(&[ram.region_info()])
            .expect("SET_MEM_TABLE");
        for queue in queues {
            let index = usize::from(queue.index());
            frontend
                .set_vring_num(index, queue.size())
                .expect("SET_VRING_NUM");
            frontend
                .set_vring_addr(index, &queue.vring_config(ram))
                .expect("SET_VRING_ADDR");
            frontend.set_vring_base(index, 0).expect("SET_VRING_BASE");
            frontend
                .set_vring_call(index, queue.call_fd())
                .expect("SET_VRING_CALL");
            frontend
                .set_vring_kick(index, queue.kick_fd())
                .expect("SET_VRING_KICK");
            frontend
                .set_vring_enable(index, true)
                .expect("SET_VRING_ENABLE");
        }
        // Without REPLY_ACK the messages above are not answered; a request that is makes
        // sure the backend has handled them all before the guest kicks.
        frontend.get_features().expect("GET_FEATURES as a barrier");
        Vmm {
            frontend,
            offered,
            features,
            config,
        }
    }

    /// Closes the session (the VMM quits; its socket closes).
    pub fn disconnect(self) {
        drop(self.frontend);
    }
}
