//! A test frontend that behaves like Linux's `xen-snd-front`, speaking to the backend over
//! the shared-memory transport and the in-process XenStore.
//!
//! It is written from the protocol documents, not from the backend's modules: ring and
//! event-page indexes are handled here with their own arithmetic, the hub protocol is
//! spoken with raw `sendmsg`, and only the request/response byte codec is shared. Like
//! Linux it sends one request at a time and waits for it with a 3 s timeout, kicks the
//! backend only when `req_event` asks for it, re-arms `rsp_event`, checks that event ids
//! are consecutive, refines with `HW_PARAM_QUERY` before `OPEN`, copies into the shared
//! buffer and then sends `WRITE`, and learns the position only from `CUR_POS`.

#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering, fence};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use paravox_engine::clock::Pacer;
use paravox_engine::device::{DeviceError, DeviceFormat, PlaybackDevice, PlaybackOpener};
use paravox_engine::{Direction, Engine};
use paravox_sndif::platform::SharedMemoryHost;
use paravox_sndif::sys::EventFd;
use paravox_sndif::wire::{
    HwParamBlock, OpenRequest, Request, Response, RwRequest, TriggerKind, WireRange, encode_request,
};
use paravox_sndif::xenstore::{NO_TX, WatchEvent, XenbusState, XsClient};
use paravox_sndif::{Backend, BackendOptions};

pub const PAGE: usize = 4096;
/// Linux's `VSND_WAIT_BACK_MS`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
pub const BACKEND_ROOT: &str = "/local/domain/0/backend/vsnd";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

mod alsa;
mod device;
mod host;
mod memory;
mod stream;

pub use alsa::*;
pub use device::*;
pub use host::*;
pub use memory::*;
pub use stream::*;
