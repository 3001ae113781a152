//! paravox's Xen para-virtual sound backend: it serves Linux's `xen-snd-front` (the
//! `sndif` protocol, version 2) and plays and records through the paravox engine.
//!
//! # Starting it
//!
//! ```no_run
//! # fn main() -> Result<(), paravox_sndif::Error> {
//! use std::sync::Arc;
//! use paravox_sndif::{Backend, BackendOptions, SharedMemoryHost};
//!
//! let engine = Arc::new(paravox_engine::Engine::new());
//! // … add endpoints and default routes to the engine …
//!
//! // On Xen (in dom0): xenstored, /dev/xen/gntdev and /dev/xen/evtchn.
//! let backend = Backend::start_xen(engine.clone(), BackendOptions { domid: 0 })?;
//! # drop(backend);
//!
//! // Without a hypervisor: the shared-memory transport (see below).
//! let host = SharedMemoryHost::bind(std::path::Path::new("/run/paravox/sndif"))?;
//! let backend = host.start_backend(engine.clone(), BackendOptions::default())?;
//! // … `backend.devices()` lists the devices and their states …
//! drop(backend); // disconnects every device (their state goes Closed)
//! host.shutdown(); // after the backend: its XenStore lives in the host
//! # Ok(()) }
//! ```
//!
//! Every connected frontend device becomes one engine card
//! (`Transport::Sndif { frontend_domid, devid }`, named `dom<domid>-<short-name>`, kept in the guest's own namespace), and each of its
//! streams one engine stream, routed to the default endpoint of its direction — or, when
//! its `unique-id` follows `snd_be`'s `alsa<PCM>` / `pulse<sink>` convention and such an
//! endpoint exists, to that endpoint ([`route`]).
//!
//! # How it is built
//!
//! | module | role |
//! |---|---|
//! | [`wire`] | request, response, event and page layouts (`#[repr(C)]`, asserted), codes → enums |
//! | [`ring`] | the backend end of the request ring: hostile-index checks, notify hold-off, final check |
//! | [`event`] | the event-page producer (63 slots, `idx % 63`, queue when full, consecutive ids) |
//! | [`buffer`] | the OPEN buffer through its page directory, every range checked |
//! | `stream` | one stream's requests → engine operations, errno answers |
//! | `position` | `CUR_POS` from the engine's real position, every `period_sz` bytes |
//! | [`device`] | one connected frontend device: card, streams, request thread |
//! | [`backend`] | XenBus: watches, the state machine, connect/teardown/reconnect |
//! | [`config`] | the frontend's XenStore configuration, narrowed level by level |
//! | [`xenstore`] | the XenStore wire protocol, a client, an in-process server |
//! | [`grant`], [`evtchn`] | grant mapping and event channels: traits and the real Xen devices |
//! | [`shm`], [`platform`] | the shared-memory transport and the platform bundles |
//!
//! # Threads, and why
//!
//! One backend thread owns XenStore and every device's state machine (watch events are
//! handled one at a time, so no device state is shared). Each connected device has one
//! event loop thread, asleep in `epoll` on its event-channel descriptor and on each of
//! its streams' position wakers (the engine's eventfd: "the position passed N"). A kick
//! wakes it to serve that stream's ring; a position wake-up to post a due `CUR_POS` or to
//! finish a WRITE that waited for room or a READ that waited for data. Such a request is
//! parked, not slept on, so one stream's wait never holds up the device's other streams.
//! Every request is short (copies and engine calls that never block on audio), so one
//! thread per device is never the bottleneck, and a device's loop ending with its device
//! (a hostile frontend is cut off) cannot disturb another device. Threads and
//! descriptors grow with devices, not with streams.
//!
//! # Protocol behaviour
//!
//! - **XenBus**: a new device gets `versions` = `"2"` and **InitWait** at once; frontend
//!   Initialised → read the configuration, map the rings, bind the channels →
//!   **Connected**; frontend Closing/Closed → tear down, InitWait (ready to reconnect);
//!   frontend gone → Closed; toolstack `online` = 0 or backend `state` = 5 → Closed.
//!   A configuration the backend cannot serve writes the reason into the backend's
//!   `error` node (naming the node and value) and goes Closing.
//! - **Requests** are answered in order, each with 0 or a negative errno: `-EINVAL` (22)
//!   for anything malformed, out of range or illegal in the stream's state, `-EIO` (5)
//!   when the host side fails (no endpoint, a WRITE that does not fit the stream's
//!   buffer), `-EOPNOTSUPP` (95) for an undefined operation (Xen's errno table has no
//!   `ENOTSUPP`). CLOSE of a closed stream and STOP of a stopped one answer 0, as Linux's
//!   `hw_free` and ALSA's drop rely on. TRIGGER STOP drops queued audio; the position
//!   keeps counting from OPEN.
//! - **HW_PARAM_QUERY** intersects the request with the stream's configuration (formats
//!   limited to those the engine converts) and caps buffer and period frames by
//!   `buffer-size` bytes for the smallest frame left.
//! - **CUR_POS** carries bytes really played (captured) since OPEN, sent when a multiple
//!   of `period_sz` is crossed; `period_sz` = 0 sends none. Event ids are consecutive for
//!   the whole connection (Linux drops any other). A full event page queues events and
//!   retries every 10 ms until the frontend consumes; they are never dropped.
//! - **A corrupted ring index** (`req_prod` more than 32 ahead, `in_cons` outside the 63
//!   events before `in_prod`) cuts that device off: its card is removed, its `error` node
//!   names the problem and its state goes Closed. The frontend may reconnect from
//!   Initialising. Nothing else is affected.
//!
//! # The shared-memory transport
//!
//! Without a hypervisor, a frontend is any process on the same host that speaks the
//! exact sndif protocol over memory it shares with the backend. [`SharedMemoryHost`]
//! binds two unix sockets in one directory:
//!
//! - **`xenstore.sock`** — a `SOCK_STREAM` socket speaking xenstored's wire protocol
//!   (`struct xsd_sockmsg`: `type u32, req_id u32, tx_id u32, len u32`, little-endian,
//!   then `len` ≤ 4096 payload bytes; see [`xenstore::wire`]). Read, write, directory,
//!   mkdir, rm, get/set perms, watch (fires once on registration), unwatch, transactions
//!   (`EAGAIN` on conflict) and get-domain-path are implemented; permissions are stored
//!   but not enforced (every client is trusted like dom0). The frontend and "toolstack"
//!   write exactly the nodes `xl` and `xen-snd-front` write on Xen (below).
//! - **`sndif-hub.sock`** — a `SOCK_SEQPACKET` socket standing in for the grant table and
//!   the event-channel hypercalls. Each request is one 16-byte message
//!   `op u32, domid u32, port u32, reserved u32 (0)`, little-endian, with file
//!   descriptors attached as `SCM_RIGHTS`; each gets a 4-byte reply `status i32`: 0 or a
//!   negative errno. A connection speaks for one domain (fixed by its first request;
//!   another domid is `-EPERM`, a domain already held by another connection `-EBUSY`).
//!   Closing the connection withdraws everything it registered (mappings the backend
//!   already made stay valid until it disconnects the device).
//!
//!   | op | descriptors | meaning |
//!   |---|---|---|
//!   | 1 `GRANT_TABLE` | 1: a memfd | the domain's grant table: grant reference `g` is the 4096-byte page at offset `g × 4096`. The memfd must carry the `F_SEAL_SHRINK` seal (`-EINVAL` otherwise), so a mapped page can never disappear. Re-registering replaces the table. |
//!   | 2 `BIND_PORT` | 2: eventfds `kick`, `notify` | event channel `port` (the number the frontend publishes in XenStore): the frontend writes 1 to `kick` to notify the backend; the backend writes 1 to `notify` to notify the frontend. |
//!   | 3 `CLOSE_PORT` | none | withdraws `port` (`-ENOENT` if unknown). |
//!
//!   Other ops or descriptor counts are `-EINVAL`. An eventfd counter stands in for an
//!   event channel's pending bit: several notifications before a read coalesce, and
//!   there is no masking to undo.
//!
//! A frontend therefore:
//!
//! 1. connects to the hub and registers a sealed memfd (`GRANT_TABLE`), never granting
//!    page 0 (0 means "no next page" in a buffer directory);
//! 2. connects to `xenstore.sock`; as toolstack, writes in one transaction
//!    `/local/domain/0/backend/vsnd/<dom>/<dev>/{frontend, frontend-id, online = 1,
//!    state = 1}` and `/local/domain/<dom>/device/vsnd/<dev>/{backend, backend-id = 0,
//!    state = 1}` plus its card configuration ([`config`]: `<pcm>/<stream>/type` at
//!    least); the backend answers with `versions` and state 2 (InitWait);
//! 3. per stream, takes two pages: a request ring (initialised as `SHARED_RING_INIT`
//!    does: `req_prod = rsp_prod = 0`, `req_event = rsp_event = 1`) and a zeroed event
//!    page, and two ports, each registered with `BIND_PORT` (await the reply);
//! 4. writes `ring-ref`, `event-channel`, `evt-ring-ref`, `evt-event-channel` of every
//!    stream in a transaction, then its `state` = 3 (Initialised);
//! 5. waits for the backend's state 4 (Connected) and writes its own 4;
//! 6. from then on speaks sndif exactly as on Xen: requests into the ring, `kick` when
//!    `(new − req_event) < (new − old)`, responses when `notify` fires, `rsp_event` set
//!    to `rsp_cons + 1` after consuming; `CUR_POS` events on the event page when its
//!    `notify` fires, `in_cons` advanced after reading; OPEN's buffer described by
//!    directory pages of the same grant table.
//!
//! To disconnect it writes state 5 (the backend answers InitWait) or 6; to reconnect it
//! goes back to 1 and repeats from step 3. `crates/sndif/tests/support` is such a
//! frontend, written from this description.

pub mod backend;
pub mod buffer;
pub mod config;
pub mod device;
pub mod error;
pub mod event;
pub mod evtchn;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod grant;
mod guest_log;
pub mod platform;
mod position;
pub mod ring;
pub mod route;
pub mod shm;
mod stream;
pub mod sys;
pub mod wire;
pub mod xenstore;

pub use backend::{Backend, BackendOptions, DeviceStatus};
pub use error::{Error, Result};
pub use platform::{Platform, SharedMemoryHost, XenPlatform};
