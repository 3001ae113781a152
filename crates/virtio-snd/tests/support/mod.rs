//! A test driver that is both the VMM and the guest's virtio-snd driver, talking to the
//! real backend over its vhost-user socket:
//!
//! - [`memory`]: guest RAM in a memfd, shared with the backend as QEMU shares it;
//! - [`virtqueue`]: split virtqueues in that RAM, with their kick and call eventfds;
//! - [`vmm`]: the vhost-user frontend handshake (features, config, memory, queues);
//! - [`spec`]: the virtio-snd wire format, written from the specification;
//! - [`driver`]: the guest driver on one connection, with its control queue, event
//!   queue and TX/RX messages in submodules;
//! - [`pcm`]: playing and recording period by period, like Linux;
//! - [`host`]: the engine, its endpoints and the card under test;
//! - [`signal`] and [`cpu`]: what the tests measure.
//!
//! Each test binary uses a different part of it.
#![allow(dead_code)]

pub mod cpu;
pub mod driver;
pub mod host;
pub mod memory;
pub mod pcm;
pub mod scale;
pub mod signal;
pub mod spec;
pub mod virtqueue;
pub mod vmm;

#[allow(unused_imports)]
pub use driver::{Driver, DriverOptions};
pub use host::Host;
#[allow(unused_imports)]
pub use pcm::{Capture, Playback, play_through, record_through};
#[allow(unused_imports)]
pub use spec::{SetParams, queue, status};
