//! One listening vhost-user socket per card, served by its own thread: a VMM connects,
//! uses the card, and when it goes away the card's streams are released and the socket
//! listens again for the next VMM.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use paravox_engine::Engine;
use tracing::{error, info, warn};
use vhost::vhost_user::Listener;
use vhost_user_backend::VhostUserDaemon;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use crate::backend::Backend;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::positions;
use crate::topology::CardTopology;

/// A virtio-snd card being served on a socket.
#[derive(Debug)]
pub struct VirtioCard {
    socket: PathBuf,
    /// The socket file is ours to remove (false for one the service manager handed over).
    owns_socket: bool,
    card: u32,
    stopping: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
}

impl VirtioCard {
    /// Creates the card in the engine and serves it on `socket` (replacing a stale socket
    /// file).
    pub fn spawn(
        engine: Arc<Engine>,
        name: &str,
        socket: &Path,
        topology: CardTopology,
    ) -> Result<VirtioCard> {
        Self::spawn_on(engine, name, socket, topology, None)
    }

    /// Like [`VirtioCard::spawn`], on `inherited` when given: a socket already listening
    /// at `socket` (handed over by the service manager), which the card serves without
    /// binding or ever removing the file.
    pub fn spawn_on(
        engine: Arc<Engine>,
        name: &str,
        socket: &Path,
        topology: CardTopology,
        inherited: Option<UnixListener>,
    ) -> Result<VirtioCard> {
        positions::start_once()?;
        let device = Device::new(&engine, name, &socket.display().to_string(), topology)?;
        let card = device.card().id();
        let device = Arc::new(Mutex::new(device));
        let stopping = Arc::new(AtomicBool::new(false));
        let owns_socket = inherited.is_none();
        // Bound here, once: the socket exists when this returns, and there is never a
        // moment without it for a restarting VMM.
        let listener = match inherited {
            Some(listener) => Listener::from(listener),
            None => Listener::new(socket, true).map_err(|error| {
                Error::VhostUser(format!("listening on {}: {error}", socket.display()))
            })?,
        };
        let server = {
            let socket = socket.to_owned();
            let name = name.to_owned();
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name(format!("paravox-vu-{card}"))
                .spawn(move || serve(&name, &socket, listener, &device, &stopping))?
        };
        info!(card, socket = %socket.display(), inherited = !owns_socket, "virtio-snd card listening");
        Ok(VirtioCard {
            socket: socket.to_owned(),
            owns_socket,
            card,
            stopping,
            server: Some(server),
        })
    }

    /// The engine card id.
    pub fn card(&self) -> u32 {
        self.card
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for VirtioCard {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        // Without a VMM the server thread is blocked in accept(): a connection that closes
        // at once lets it see `stopping` and end (a connected VMM ends it when it leaves).
        // Then remove the socket so no VMM connects to a card being removed.
        drop(std::os::unix::net::UnixStream::connect(&self.socket));
        if self.owns_socket {
            let _ = std::fs::remove_file(&self.socket);
        }
        drop(self.server.take());
    }
}

/// Accept, serve, reset, repeat.
fn serve(
    name: &str,
    socket: &Path,
    mut listener: Listener,
    device: &Arc<Mutex<Device>>,
    stopping: &AtomicBool,
) {
    let socket_text = socket.display().to_string();
    while !stopping.load(Ordering::Relaxed) {
        let backend = Backend::new(device.clone());
        let exit_consumers = backend.exit_consumers();
        // Out of the position loop (dropped) before the card is reset below.
        let watched = match watch_streams(&backend, device) {
            Ok(watched) => watched,
            Err(error) => {
                error!(socket = socket_text, %error, "cannot watch the card's streams");
                return;
            }
        };
        let mut daemon = match VhostUserDaemon::new(
            name.to_owned(),
            backend,
            GuestMemoryAtomic::new(GuestMemoryMmap::new()),
        ) {
            Ok(daemon) => daemon,
            Err(error) => {
                error!(socket = socket_text, %error, "cannot create the vhost-user daemon");
                return;
            }
        };
        if let Err(error) = daemon.start(&mut listener) {
            error!(socket = socket_text, %error, "cannot accept a VMM");
            return;
        }
        info!(socket = socket_text, "VMM connected");
        match daemon.wait() {
            Ok(()) => info!(socket = socket_text, "VMM disconnected"),
            Err(error) => warn!(socket = socket_text, %error, "VMM connection ended with an error"),
        }
        // Dropping the daemon stops its epoll thread.
        drop(daemon);
        drop(watched);
        exit_consumers.close_all();
        device.lock().unwrap_or_else(|p| p.into_inner()).reset();
        info!(
            socket = socket_text,
            "card reset; listening for the next VMM"
        );
    }
}

/// Has the shared position loop serve the card's stream wakers for this connection.
fn watch_streams(backend: &Backend, device: &Mutex<Device>) -> Result<positions::Watched> {
    let wakers = device
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .streams()
        .map(|stream| stream.shared().waker().event().as_raw_fd())
        .collect();
    positions::watch(backend.clone(), wakers)
}
