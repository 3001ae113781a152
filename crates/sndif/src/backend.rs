//! The XenBus side: find `vsnd` devices, drive the backend state, connect and disconnect.
//!
//! One thread watches `/local/domain/<self>/backend/vsnd` and, per device, the frontend's
//! `state`. Each watch event re-reads the nodes of the device it names and moves it
//! ([`Backend`] reconciles; a repeated event changes nothing):
//!
//! | frontend state | backend does |
//! |---|---|
//! | (new device) | writes `versions` = "2", goes **InitWait** at once (`xl create` waits ~10 s for it) |
//! | Initialising | tears down if connected, goes InitWait (a reconnecting frontend) |
//! | Initialised | (when InitWait) reads the configuration, maps rings, binds channels → **Connected**; on failure writes `error` and goes Closing |
//! | Connected | nothing |
//! | Closing | tears down, goes **Closing** (a domU shutting down waits up to 5 s for that) |
//! | Closed | goes InitWait, ready for the frontend to come back (Linux's frontend also waits for InitWait when its module unloads) |
//! | gone / Unknown | tears down, goes Closed |
//!
//! The toolstack removes a device by writing `online` = 0 or the backend `state` = 5:
//! the backend tears down and goes Closed. A device whose frontend corrupts a ring is cut
//! off the same way (Closed, `error` written), and may reconnect from Initialising.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use paravox_engine::Engine;
use tracing::{debug, info, warn};

use crate::config::parse_card;
use crate::device::{Connection, DeviceKey, DeviceLoop};
use crate::error::{Error, Result};
use crate::guest_log::guest_warn;
use crate::platform::{Platform, XenPlatform};
use crate::position::FaultSink;
use crate::xenstore::{NO_TX, WatchEvent, XenbusState, XsClient};

/// The protocol versions this backend speaks.
pub const VERSIONS: &str = "2";
/// The watch token of the backend directory.
pub const ROOT_TOKEN: &str = "paravox-vsnd";
/// Prefix of the watch tokens of frontend state nodes.
pub const FRONTEND_TOKEN: &str = "paravox-vsnd-fe:";

/// How the backend is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendOptions {
    /// The backend's own domain id (0 for dom0); its devices live under
    /// `/local/domain/<domid>/backend/vsnd`.
    pub domid: u32,
}

/// A device as the API may show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Which device.
    pub key: DeviceKey,
    /// The backend state written last.
    pub state: XenbusState,
    /// The engine card while connected.
    pub card: Option<u32>,
    /// The last error written to the device's `error` node.
    pub error: Option<String>,
}

enum Message {
    Watch(WatchEvent),
    Fault { key: DeviceKey, reason: String },
    Stop,
}

/// The running backend. Dropping it (or [`Backend::shutdown`]) disconnects every device
/// (their state goes Closed) and stops the thread.
#[derive(Debug)]
pub struct Backend {
    sender: Sender<Message>,
    thread: Option<JoinHandle<()>>,
    devices: Arc<Mutex<Vec<DeviceStatus>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Watch(event) => write!(f, "Watch({event:?})"),
            Message::Fault { key, reason } => write!(f, "Fault({key}: {reason})"),
            Message::Stop => f.write_str("Stop"),
        }
    }
}

impl Backend {
    /// Serves real Xen frontends: connects to xenstored (its socket, else
    /// `/dev/xen/xenbus`) and uses `/dev/xen/gntdev` and `/dev/xen/evtchn`.
    pub fn start_xen(engine: Arc<Engine>, options: BackendOptions) -> Result<Backend> {
        let xenstore = XsClient::connect_default()?;
        let platform = Arc::new(XenPlatform::open()?);
        Backend::start(engine, xenstore, platform, options)
    }

    /// Serves frontends through `xenstore` and `platform`.
    pub fn start(
        engine: Arc<Engine>,
        xenstore: XsClient,
        platform: Arc<dyn Platform>,
        options: BackendOptions,
    ) -> Result<Backend> {
        let (sender, receiver) = mpsc::channel();
        let watches = xenstore.watch_events().ok_or_else(|| {
            Error::XenStoreConnection("this client's watch events are already taken".into())
        })?;
        let forward = sender.clone();
        std::thread::Builder::new()
            .name("sndif-watches".into())
            .spawn(move || {
                for event in watches {
                    if forward.send(Message::Watch(event)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io("spawning the watch forwarder", e))?;
        let root = format!("/local/domain/{}/backend/vsnd", options.domid);
        xenstore.watch(&root, ROOT_TOKEN)?;
        let devices = Arc::new(Mutex::new(Vec::new()));
        let mut state = BackendState {
            engine,
            xenstore,
            platform,
            root,
            devices: BTreeMap::new(),
            sender: sender.clone(),
            published: devices.clone(),
            device_loop: DeviceLoop::start()?,
        };
        let thread = std::thread::Builder::new()
            .name("sndif-backend".into())
            .spawn(move || state.run(&receiver))
            .map_err(|e| Error::io("spawning the backend thread", e))?;
        info!(
            domid = options.domid,
            "sndif backend watching for vsnd devices"
        );
        Ok(Backend {
            sender,
            thread: Some(thread),
            devices,
        })
    }

    /// Every known device.
    pub fn devices(&self) -> Vec<DeviceStatus> {
        self.devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Disconnects every device and stops. Idempotent.
    pub fn shutdown(&mut self) {
        let _ = self.sender.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Debug)]
struct Device {
    backend_path: String,
    frontend_path: Option<String>,
    state: XenbusState,
    connection: Option<Connection>,
    error: Option<String>,
}

struct BackendState {
    engine: Arc<Engine>,
    xenstore: XsClient,
    platform: Arc<dyn Platform>,
    root: String,
    devices: BTreeMap<DeviceKey, Device>,
    sender: Sender<Message>,
    published: Arc<Mutex<Vec<DeviceStatus>>>,
    /// The one loop that serves every connected device. Last: the devices (and so their
    /// connections) are dropped before it stops.
    device_loop: DeviceLoop,
}

impl BackendState {
    fn run(&mut self, receiver: &Receiver<Message>) {
        'running: while let Ok(first) = receiver.recv() {
            // Everything already waiting is taken together, and each device named by its
            // watch events is reconciled once: a toolstack writes a new device's nodes one
            // by one, each firing the watch, and reconciling reads the device's state
            // afresh anyway. With many guests starting at once, handling every event on
            // its own multiplied the XenStore round trips by the nodes each one writes.
            let mut due = BTreeSet::new();
            let mut scan = false;
            for message in std::iter::once(first).chain(receiver.try_iter()) {
                match message {
                    Message::Stop => break 'running,
                    Message::Watch(event) => match route_watch(&self.root, &event) {
                        WatchRoute::Device(key) => {
                            due.insert(key);
                        }
                        WatchRoute::Scan => scan = true,
                        WatchRoute::Ignore => {}
                    },
                    Message::Fault { key, reason } => {
                        crate::guest_log::for_domain(key.frontend_domid, || {
                            self.on_fault(key, &reason);
                        });
                    }
                }
            }
            if scan {
                // Reconciles every device, those in `due` included.
                self.scan();
            } else {
                for key in due {
                    self.reconcile(key);
                }
            }
            self.publish();
        }
        let keys: Vec<DeviceKey> = self.devices.keys().copied().collect();
        for key in keys {
            if let Some(device) = self.devices.get_mut(&key)
                && device.connection.take().is_some()
            {
                let path = device.backend_path.clone();
                self.set_state(key, &path, XenbusState::Closed);
            }
        }
        for (key, device) in &self.devices {
            if let Some(frontend) = &device.frontend_path {
                let _ = self
                    .xenstore
                    .unwatch(&format!("{frontend}/state"), &token(*key));
            }
        }
        let _ = self.xenstore.unwatch(&self.root, ROOT_TOKEN);
        self.devices.clear();
        self.publish();
        info!("sndif backend stopped");
    }

    fn publish(&self) {
        let statuses = self
            .devices
            .iter()
            .map(|(key, device)| DeviceStatus {
                key: *key,
                state: device.state,
                card: device.connection.as_ref().map(Connection::card_id),
                error: device.error.clone(),
            })
            .collect();
        *self
            .published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = statuses;
    }

    /// Reconciles every device below the root and every device we know.
    fn scan(&mut self) {
        let mut keys: Vec<DeviceKey> = self.devices.keys().copied().collect();
        if let Ok(frontends) = self.xenstore.directory(NO_TX, &self.root) {
            for frontend in frontends {
                let Ok(frontend_domid) = frontend.parse::<u32>() else {
                    continue;
                };
                let path = format!("{}/{frontend}", self.root);
                for devid in self.xenstore.directory(NO_TX, &path).unwrap_or_default() {
                    if let Ok(devid) = devid.parse::<u32>() {
                        keys.push(DeviceKey {
                            frontend_domid,
                            devid,
                        });
                    }
                }
            }
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            self.reconcile(key);
        }
    }

    fn reconcile(&mut self, key: DeviceKey) {
        crate::guest_log::for_domain(key.frontend_domid, || {
            if let Err(error) = self.try_reconcile(key) {
                guest_warn!(device = %key, %error, "XenStore trouble while handling the device");
            }
        });
    }

    fn try_reconcile(&mut self, key: DeviceKey) -> Result<()> {
        let backend_path = format!("{}/{}/{}", self.root, key.frontend_domid, key.devid);
        if self.xenstore.read_string(NO_TX, &backend_path)?.is_none() {
            self.forget(key);
            return Ok(());
        }
        if !self.devices.contains_key(&key) {
            let Some(frontend_path) = self
                .xenstore
                .read_string(NO_TX, &format!("{backend_path}/frontend"))?
            else {
                // The toolstack has not finished writing the device; its next write fires
                // the watch again.
                return Ok(());
            };
            if let Some(id) = self
                .xenstore
                .read_string(NO_TX, &format!("{backend_path}/frontend-id"))?
                && id.trim() != key.frontend_domid.to_string()
            {
                guest_warn!(device = %key, frontend_id = id, "frontend-id disagrees with the device path");
            }
            info!(device = %key, frontend = frontend_path, "new vsnd device");
            self.devices.insert(
                key,
                Device {
                    backend_path: backend_path.clone(),
                    frontend_path: Some(frontend_path.clone()),
                    state: XenbusState::Unknown,
                    connection: None,
                    error: None,
                },
            );
            self.xenstore.write(
                NO_TX,
                &format!("{backend_path}/versions"),
                VERSIONS.as_bytes(),
            )?;
            self.set_state(key, &backend_path, XenbusState::InitWait);
            self.xenstore
                .watch(&format!("{frontend_path}/state"), &token(key))?;
        }
        let Some(device) = self.devices.get(&key) else {
            return Ok(());
        };
        let frontend_path = device.frontend_path.clone().unwrap_or_default();
        let ours = device.state;
        let online = self
            .xenstore
            .read_string(NO_TX, &format!("{backend_path}/online"))?;
        let written = self
            .xenstore
            .read_string(NO_TX, &format!("{backend_path}/state"))?
            .map(|state| XenbusState::parse(&state));
        if online.as_deref().map(str::trim) == Some("0")
            || (written == Some(XenbusState::Closing) && ours != XenbusState::Closing)
        {
            // The toolstack is removing the device.
            if ours != XenbusState::Closed {
                info!(device = %key, "toolstack removes the device");
                self.teardown(key);
                self.set_state(key, &backend_path, XenbusState::Closed);
            } else if written != Some(XenbusState::Closed) {
                // Closed already, but the node says otherwise: a toolstack that writes
                // `online` and `state` (Closing) in two steps rather than one transaction
                // wrote the second after we had closed. Say Closed again, or it waits
                // for it forever.
                let closed = XenbusState::Closed.code().to_string();
                if let Err(error) =
                    self.xenstore
                        .write(NO_TX, &format!("{backend_path}/state"), closed.as_bytes())
                {
                    warn!(device = %key, %error, "cannot write the backend state");
                }
            }
            return Ok(());
        }
        let frontend = match self
            .xenstore
            .read_string(NO_TX, &format!("{frontend_path}/state"))?
        {
            Some(state) => XenbusState::parse(&state),
            // A frontend directory without a state yet is still being written; only a
            // missing directory means the frontend is gone.
            None if self.xenstore.read_string(NO_TX, &frontend_path)?.is_some() => {
                XenbusState::Initialising
            }
            None => XenbusState::Unknown,
        };
        debug!(device = %key, %frontend, backend = %ours, "reconcile");
        match transition(frontend, ours) {
            Action::Stay => {}
            Action::Connect => self.connect(key, &backend_path, &frontend_path),
            Action::Reset => {
                self.teardown(key);
                self.set_state(key, &backend_path, XenbusState::InitWait);
            }
            Action::Disconnect => {
                self.teardown(key);
                info!(device = %key, "frontend closing");
                self.set_state(key, &backend_path, XenbusState::Closing);
            }
            Action::Close => {
                self.teardown(key);
                info!(device = %key, "frontend gone");
                self.set_state(key, &backend_path, XenbusState::Closed);
            }
        }
        Ok(())
    }

    fn connect(&mut self, key: DeviceKey, backend_path: &str, frontend_path: &str) {
        let sender = self.sender.clone();
        let fault: FaultSink = Arc::new(move |reason: String| {
            let _ = sender.send(Message::Fault { key, reason });
        });
        let outcome = parse_card(&self.xenstore, frontend_path).and_then(|config| {
            Connection::connect(
                key,
                &config,
                &self.engine,
                self.platform.as_ref(),
                fault,
                self.device_loop.handle(),
            )
        });
        match outcome {
            Ok(connection) => {
                if let Some(device) = self.devices.get_mut(&key) {
                    device.connection = Some(connection);
                    device.error = None;
                }
                let _ = self.xenstore.rm(NO_TX, &format!("{backend_path}/error"));
                self.set_state(key, backend_path, XenbusState::Connected);
            }
            Err(problem) => {
                guest_warn!(device = %key, %problem, "cannot connect the device");
                self.record_error(key, backend_path, &problem.to_string());
                // Closing, like xenbus_dev_fatal: the frontend keeps its state and does
                // not retry in a loop; it can start over from Initialising.
                self.set_state(key, backend_path, XenbusState::Closing);
            }
        }
    }

    fn on_fault(&mut self, key: DeviceKey, reason: &str) {
        let Some(device) = self.devices.get(&key) else {
            return;
        };
        if device.connection.is_none() {
            return;
        }
        let backend_path = device.backend_path.clone();
        guest_warn!(device = %key, reason, "disconnecting a misbehaving frontend");
        self.teardown(key);
        self.record_error(key, &backend_path, reason);
        self.set_state(key, &backend_path, XenbusState::Closed);
    }

    fn record_error(&mut self, key: DeviceKey, backend_path: &str, message: &str) {
        let _ = self
            .xenstore
            .write(NO_TX, &format!("{backend_path}/error"), message.as_bytes());
        if let Some(device) = self.devices.get_mut(&key) {
            device.error = Some(message.to_owned());
        }
    }

    fn teardown(&mut self, key: DeviceKey) {
        if let Some(device) = self.devices.get_mut(&key) {
            // Dropping the connection stops its threads and removes its card.
            drop(device.connection.take());
        }
    }

    fn forget(&mut self, key: DeviceKey) {
        if let Some(mut device) = self.devices.remove(&key) {
            drop(device.connection.take());
            if let Some(frontend) = &device.frontend_path {
                let _ = self
                    .xenstore
                    .unwatch(&format!("{frontend}/state"), &token(key));
            }
            info!(device = %key, "device removed");
        }
    }

    fn set_state(&mut self, key: DeviceKey, backend_path: &str, state: XenbusState) {
        let Some(device) = self.devices.get_mut(&key) else {
            return;
        };
        if device.state == state {
            return;
        }
        device.state = state;
        info!(device = %key, %state, "backend state");
        if let Err(error) = self.xenstore.write(
            NO_TX,
            &format!("{backend_path}/state"),
            state.code().to_string().as_bytes(),
        ) {
            warn!(device = %key, %error, "cannot write the backend state");
        }
    }
}

/// What the backend does about a device, given the frontend's state and its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Nothing.
    Stay,
    /// Read the configuration, map, bind → Connected (or Closing on failure).
    Connect,
    /// Tear down if connected, then InitWait: ready for a (new) connection.
    Reset,
    /// Tear down, then Closing: answers a frontend that closes (on shutdown Linux waits
    /// for the backend's Closing before it goes Closed).
    Disconnect,
    /// Tear down if connected, then Closed: the frontend is gone.
    Close,
}

/// The XenBus state machine of one device (see the module documentation's table).
fn transition(frontend: XenbusState, ours: XenbusState) -> Action {
    use XenbusState as S;
    match (frontend, ours) {
        (S::Initialising | S::Closing | S::Closed, S::InitWait) => Action::Stay,
        (S::Closing, S::Connected) => Action::Disconnect,
        (S::Closing, S::Closing) => Action::Stay,
        (S::Initialising | S::Closing | S::Closed, _) => Action::Reset,
        (S::Initialised, S::InitWait) => Action::Connect,
        // Still Initialised while we are Connected: the frontend has not yet seen our
        // Connected (watch events repeat); its rings are the ones we use. A frontend that
        // starts over passes through Initialising first. After a failed connect (Closing)
        // we wait for that too, rather than retry in a loop.
        (S::Initialised, S::Closed) => Action::Reset,
        (S::Initialised, _) => Action::Stay,
        (S::Unknown, S::Closed) => Action::Stay,
        (S::Unknown, _) => Action::Close,
        (S::Connected | S::InitWait | S::Reconfiguring | S::Reconfigured, _) => Action::Stay,
    }
}

/// What a watch event asks of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchRoute {
    /// Reconcile this device.
    Device(DeviceKey),
    /// Something below the root changed that names no device: look at them all.
    Scan,
    /// Not one of our watches.
    Ignore,
}

/// Routes a watch event (path and token as XenStore sent them, so untrusted) of a backend
/// whose devices live below `root`.
pub fn route_watch(root: &str, event: &WatchEvent) -> WatchRoute {
    if event.token == ROOT_TOKEN {
        match key_of(root, &event.path) {
            Some(key) => WatchRoute::Device(key),
            None => WatchRoute::Scan,
        }
    } else if let Some(key) = event
        .token
        .strip_prefix(FRONTEND_TOKEN)
        .and_then(parse_token)
    {
        WatchRoute::Device(key)
    } else {
        WatchRoute::Ignore
    }
}

/// The device a path below the backend root names.
fn key_of(root: &str, path: &str) -> Option<DeviceKey> {
    let rest = path.strip_prefix(root)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let frontend_domid = parts.next()?.parse().ok()?;
    let devid = parts.next()?.parse().ok()?;
    Some(DeviceKey {
        frontend_domid,
        devid,
    })
}

fn token(key: DeviceKey) -> String {
    format!("{FRONTEND_TOKEN}{}/{}", key.frontend_domid, key.devid)
}

fn parse_token(rest: &str) -> Option<DeviceKey> {
    let (domid, devid) = rest.split_once('/')?;
    Some(DeviceKey {
        frontend_domid: domid.parse().ok()?,
        devid: devid.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use XenbusState as S;

    const FRONTEND: [XenbusState; 9] = [
        S::Unknown,
        S::Initialising,
        S::InitWait,
        S::Initialised,
        S::Connected,
        S::Closing,
        S::Closed,
        S::Reconfiguring,
        S::Reconfigured,
    ];

    /// Every frontend state against every state the backend writes.
    #[test]
    fn every_state_pair() {
        use Action::{Close as X, Connect as C, Disconnect as D, Reset as R, Stay as Z};
        //                     Unknown Initialising InitWait Initialised Connected Closing Closed Reconfiguring Reconfigured
        let table: [(XenbusState, [Action; 9]); 4] = [
            (S::InitWait, [X, Z, Z, C, Z, Z, Z, Z, Z]),
            (S::Connected, [X, R, Z, Z, Z, D, R, Z, Z]),
            (S::Closing, [X, R, Z, Z, Z, Z, R, Z, Z]),
            (S::Closed, [Z, R, Z, R, Z, R, R, Z, Z]),
        ];
        for (ours, actions) in table {
            for (frontend, expected) in FRONTEND.into_iter().zip(actions) {
                assert_eq!(
                    transition(frontend, ours),
                    expected,
                    "frontend {frontend}, backend {ours}"
                );
            }
        }
    }

    #[test]
    fn tokens_round_trip() {
        let key = DeviceKey {
            frontend_domid: 12,
            devid: 3,
        };
        assert_eq!(
            token(key)
                .strip_prefix(FRONTEND_TOKEN)
                .and_then(parse_token),
            Some(key)
        );
        assert_eq!(parse_token("x/1"), None);
    }
}
