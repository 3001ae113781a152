//! paravox's virtio-snd device, served over vhost-user.
//!
//! A VMM (QEMU's `vhost-user-snd-pci`, and others speaking vhost-user) connects to the
//! card's socket; the guest's `virtio_snd` driver then sees a sound card whose streams
//! are engine streams. [`device`] is the protocol (control requests, TX/RX message
//! queues, events), [`backend`] plugs it into the `vhost-user-backend` daemon, [`positions`] is
//! the one loop that moves every card's streams, and [`server`] keeps the socket
//! listening across VMM restarts.
//!
//! Timing follows the specification's normative rules: a TX message completes only when
//! the endpoint has consumed its last byte, an RX message only when it is full, RELEASE
//! returns every pending message first, and messages queued before START are held (in
//! the stream's ring) until the stream runs.

pub mod backend;
pub mod controls;
pub mod device;
pub mod error;
pub mod message;
pub mod positions;
pub mod server;
pub mod topology;
pub mod wire;

pub use error::{Error, Result};
pub use server::VirtioCard;
pub use topology::{CONTROLS_BY_DEFAULT, CardTopology, StreamTopology};
