//! The engine: the registry of endpoints, cards and streams, and its housekeeping.
//!
//! [`Engine`] is what the transports, the API and the binary hold. It owns the event bus
//! and a housekeeping thread that drops what endpoint threads hand back and turns xrun
//! counters and device trouble into events, so no real-time thread ever publishes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use paravox_pcm::HwConstraints;
use tokio::sync::broadcast;
use tracing::info;

use crate::budget::{Budget, CardBudget};
use crate::context::{StreamContext, read, write};

use crate::device::{CaptureOpener, PlaybackOpener};
use crate::endpoint::{Activity, Endpoint};
use crate::error::{EngineError, Result};
use crate::event::Event;
use crate::plugin::{ChainPlugins, KernelFactory};
use crate::stream::Stream;
use crate::{CardId, Direction, StreamId};

/// How often housekeeping runs while an endpoint cycles.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(250);
/// How often it looks while every endpoint sleeps (a stream's start wakes it at once;
/// this only bounds how long a missed wake-up could go unnoticed).
const HOUSEKEEPING_IDLE: Duration = Duration::from_secs(10);
/// Cards one engine holds at most: a farm host's 512 guests with a card each, and room
/// to spare. What each card may hold is bounded by its budget (see [`crate::budget`]).
pub const MAX_CARDS: usize = 1024;
/// Streams one card holds at most.
pub const MAX_STREAMS_PER_CARD: usize = 64;

/// How a card reaches its guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A virtio-snd device on a vhost-user socket.
    Virtio {
        /// The socket path.
        socket: String,
    },
    /// A Xen para-virtual sound card.
    Sndif {
        /// The frontend's domain id.
        frontend_domid: u32,
        /// The device index.
        devid: u32,
    },
    /// Streams opened by the host itself (`paravox play`, tests).
    Local,
}

/// One virtual sound card.
#[derive(Debug)]
pub struct Card {
    id: CardId,
    name: String,
    transport: Transport,
    streams: Mutex<Vec<Arc<Stream>>>,
    budget: Arc<CardBudget>,
}

impl Card {
    /// The card's id.
    pub fn id(&self) -> CardId {
        self.id
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it reaches its guest.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Its streams, in creation order.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        lock(&self.streams).clone()
    }

    /// What its guest may make the daemon hold.
    pub fn budget(&self) -> Budget {
        self.budget.budget()
    }

    /// Gives it a budget of its own ([`Engine::clear_card_budget`] makes it follow the
    /// default again). Streams prepared already keep what they hold until they are
    /// prepared again.
    pub fn set_budget(&self, budget: Budget) -> Result<()> {
        budget.check().map_err(EngineError::Limit)?;
        self.budget.set(budget, true);
        Ok(())
    }

    /// Whether its budget is its own rather than the engine's default.
    pub fn has_own_budget(&self) -> bool {
        self.budget.is_own()
    }

    /// Buffer bytes and samples per second its prepared streams hold now.
    pub fn budget_used(&self) -> (u64, u64) {
        self.budget.used()
    }
}

/// A stream to create on a card.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// A name for logs and the API.
    pub name: String,
    /// Playback or capture.
    pub direction: Direction,
    /// What the guest may ask for.
    pub constraints: HwConstraints,
    /// An explicit endpoint, or `None` for the default of its direction.
    pub route: Option<String>,
}

/// The shared state behind [`Engine`].
#[derive(Debug)]
pub struct Registry {
    /// What streams reach: endpoints, defaults, default plugins, the event bus.
    context: Arc<StreamContext>,
    cards: RwLock<BTreeMap<CardId, Arc<Card>>>,
    streams: RwLock<BTreeMap<StreamId, Arc<Stream>>>,
    next_id: AtomicU32,
    stopping: AtomicBool,
    /// The budget new cards get.
    default_budget: RwLock<Budget>,
    /// The monitor rings.
    monitors: Arc<crate::monitor::MonitorHub>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    fn housekeeping(&self) {
        let mut xruns: BTreeMap<StreamId, u64> = BTreeMap::new();
        let mut lost: BTreeMap<String, bool> = BTreeMap::new();
        let mut busy = true;
        while !self.stopping.load(Ordering::Relaxed) {
            if busy {
                std::thread::sleep(HOUSEKEEPING_PERIOD);
            } else {
                // Nothing cycles, so nothing new can be counted: sleep until a stream
                // starts (`StreamContext::wake_housekeeping`) or the engine stops.
                std::thread::park_timeout(HOUSEKEEPING_IDLE);
            }
            let endpoints: Vec<_> = read(&self.context.endpoints).values().cloned().collect();
            let streams: Vec<_> = read(&self.streams).values().cloned().collect();
            // Judged before this pass, so what the last cycles counted is still reported
            // by it before the thread sleeps; a running stream counts even before its
            // endpoint has woken for it.
            busy = endpoints
                .iter()
                .any(|endpoint| endpoint.stats().activity() == Activity::Running)
                || streams.iter().any(|stream| stream.shared().is_running());
            for endpoint in endpoints {
                endpoint.collect();
                for (plugin, fault) in endpoint.new_mixer_faults() {
                    tracing::warn!(endpoint = endpoint.name(), plugin, %fault, "mixer plugin disabled; native mixing");
                    self.context.publish(Event::PluginFault {
                        stream: None,
                        endpoint: Some(endpoint.name().to_owned()),
                        plugin,
                        stage: "mix".to_owned(),
                        reason: fault.to_string(),
                    });
                }
                let now_lost = endpoint.stats().device_lost();
                let was_lost = lost
                    .insert(endpoint.name().to_owned(), now_lost)
                    .unwrap_or(false);
                if now_lost && !was_lost {
                    self.context.publish(Event::DeviceLost {
                        endpoint: endpoint.name().to_owned(),
                        reason: "the device stopped responding".into(),
                    });
                } else if was_lost && !now_lost {
                    self.context.publish(Event::DeviceRecovered {
                        endpoint: endpoint.name().to_owned(),
                    });
                }
            }
            xruns.retain(|id, _| streams.iter().any(|s| s.id() == *id));
            for stream in streams {
                for (plugin, stage, fault) in stream.new_plugin_faults() {
                    tracing::warn!(card = stream.card(), stream = stream.id(), plugin, stage, %fault, "plugin disabled; the native stage serves");
                    self.context.publish(Event::PluginFault {
                        stream: Some(stream.id()),
                        endpoint: stream.status().route,
                        plugin,
                        stage,
                        reason: fault.to_string(),
                    });
                }
                let total = stream.xruns();
                let seen = xruns.insert(stream.id(), total).unwrap_or(0);
                if total > seen {
                    tracing::debug!(card = stream.card(), stream = stream.id(), total, "xrun");
                    self.context.publish(Event::Xrun {
                        stream: stream.id(),
                        total,
                    });
                }
            }
        }
    }
}

/// The engine: endpoints, cards, streams and the event bus.
#[derive(Debug)]
pub struct Engine {
    registry: Arc<Registry>,
    housekeeper: Option<JoinHandle<()>>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// An engine with no endpoints.
    pub fn new() -> Engine {
        let registry = Arc::new(Registry {
            context: Arc::new(StreamContext::new()),
            cards: RwLock::new(BTreeMap::new()),
            streams: RwLock::new(BTreeMap::new()),
            next_id: AtomicU32::new(1),
            stopping: AtomicBool::new(false),
            default_budget: RwLock::new(Budget::default()),
            monitors: Arc::default(),
        });
        let worker = registry.clone();
        let housekeeper = std::thread::Builder::new()
            .name("paravox-housekeeping".into())
            .spawn(move || worker.housekeeping())
            .ok();
        if let Some(thread) = &housekeeper {
            registry.context.set_housekeeper(thread.thread().clone());
        }
        Engine {
            registry,
            housekeeper,
        }
    }

    fn next_id(&self) -> u32 {
        self.registry.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn add_endpoint(&self, endpoint: Arc<Endpoint>) -> Result<Arc<Endpoint>> {
        let mut endpoints = write(&self.registry.context.endpoints);
        if endpoints.contains_key(endpoint.name()) {
            return Err(EngineError::EndpointExists(endpoint.name().to_owned()));
        }
        endpoints.insert(endpoint.name().to_owned(), endpoint.clone());
        Ok(endpoint)
    }

    fn check_new_name(&self, name: &str) -> Result<()> {
        if read(&self.registry.context.endpoints).contains_key(name) {
            return Err(EngineError::EndpointExists(name.to_owned()));
        }
        Ok(())
    }

    /// Adds an endpoint named `name` whose streams each get a device of their own from
    /// `devices` (see [`Endpoint::per_stream`]).
    pub fn add_per_stream_endpoint(
        &self,
        name: &str,
        spec: &str,
        direction: Direction,
        format: crate::device::DeviceFormat,
        devices: Arc<dyn crate::device::StreamDevices>,
    ) -> Result<Arc<Endpoint>> {
        self.check_new_name(name)?;
        self.add_endpoint(Endpoint::per_stream(
            name, spec, direction, format, devices,
        )?)
    }

    /// Opens a playback endpoint named `name` (`spec` is kept for display).
    pub fn add_playback_endpoint(
        &self,
        name: &str,
        spec: &str,
        opener: Box<dyn PlaybackOpener>,
    ) -> Result<Arc<Endpoint>> {
        self.check_new_name(name)?;
        self.add_endpoint(Endpoint::playback(name, spec, opener)?)
    }

    /// Opens a capture endpoint named `name`.
    pub fn add_capture_endpoint(
        &self,
        name: &str,
        spec: &str,
        opener: Box<dyn CaptureOpener>,
    ) -> Result<Arc<Endpoint>> {
        self.check_new_name(name)?;
        self.add_endpoint(Endpoint::capture(name, spec, opener)?)
    }

    /// Adds a capture endpoint named `name` that a browser feeds (see
    /// [`crate::microphone`]).
    pub fn add_microphone_endpoint(
        &self,
        name: &str,
        spec: &str,
        format: crate::device::DeviceFormat,
    ) -> Result<Arc<Endpoint>> {
        self.check_new_name(name)?;
        self.add_endpoint(Endpoint::browser_microphone(name, spec, format)?)
    }

    /// A browser starts feeding the microphone endpoint `name` with interleaved samples
    /// at `rate` with `channels`; refused for other endpoints and while another browser
    /// feeds it.
    pub fn feed_microphone(
        &self,
        name: &str,
        rate: u32,
        channels: u32,
    ) -> Result<crate::microphone::MicrophoneFeeder> {
        let endpoint = self
            .endpoint(name)
            .ok_or_else(|| EngineError::NoSuchEndpoint(name.to_owned()))?;
        let feed = endpoint.microphone().ok_or_else(|| {
            EngineError::Limit(format!(
                "endpoint '{name}' is not a browser microphone (its spec is '{}', not 'browser')",
                endpoint.spec()
            ))
        })?;
        feed.attach(rate, channels, &self.registry.context)
    }

    /// Starts a monitor on stream `stream`: its audio after its chain (playback), or
    /// what its endpoint captures for it (capture).
    pub fn listen_to_stream(&self, stream: StreamId) -> Result<crate::monitor::Monitor> {
        let stream = self
            .stream(stream)
            .ok_or(EngineError::NoSuchStream(stream))?;
        self.registry.monitors.listen(
            stream.shared().tap(),
            crate::monitor::MonitorTarget::Stream(stream.id()),
            &self.registry.context,
        )
    }

    /// Starts a monitor on endpoint `name`: its mix (playback) or what it captures.
    pub fn listen_to_endpoint(&self, name: &str) -> Result<crate::monitor::Monitor> {
        let endpoint = self
            .endpoint(name)
            .ok_or_else(|| EngineError::NoSuchEndpoint(name.to_owned()))?;
        if endpoint.is_per_stream() {
            return Err(EngineError::Limit(format!(
                "endpoint '{name}' gives each stream a device of its own and mixes nothing; listen to a stream instead"
            )));
        }
        self.registry.monitors.listen(
            endpoint.stats().tap(),
            crate::monitor::MonitorTarget::Endpoint(name.to_owned()),
            &self.registry.context,
        )
    }

    /// The monitors listening now.
    pub fn monitors(&self) -> Vec<crate::monitor::MonitorInfo> {
        self.registry.monitors.list()
    }

    /// Removes an endpoint; refused while streams are attached to it.
    pub fn remove_endpoint(&self, name: &str) -> Result<()> {
        let mut endpoints = write(&self.registry.context.endpoints);
        let endpoint = endpoints
            .get(name)
            .ok_or_else(|| EngineError::NoSuchEndpoint(name.to_owned()))?;
        if endpoint.attached() > 0 {
            return Err(EngineError::Limit(format!(
                "endpoint '{name}' still serves {} streams; route them elsewhere first",
                endpoint.attached()
            )));
        }
        if let Some(endpoint) = endpoints.remove(name) {
            endpoint.shutdown();
        }
        let mut defaults = write(&self.registry.context.defaults);
        for default in defaults.iter_mut() {
            if default.as_deref() == Some(name) {
                *default = None;
            }
        }
        Ok(())
    }

    /// Makes `name` the endpoint for streams of `direction` without an explicit route.
    pub fn set_default_endpoint(&self, direction: Direction, name: &str) -> Result<()> {
        self.registry.context.resolve_route(Some(name), direction)?;
        write(&self.registry.context.defaults)[direction.index()] = Some(name.to_owned());
        Ok(())
    }

    /// The default endpoint name of `direction`.
    pub fn default_endpoint(&self, direction: Direction) -> Option<String> {
        read(&self.registry.context.defaults)[direction.index()].clone()
    }

    /// An endpoint by name.
    pub fn endpoint(&self, name: &str) -> Option<Arc<Endpoint>> {
        read(&self.registry.context.endpoints).get(name).cloned()
    }

    /// Every endpoint, by name.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        read(&self.registry.context.endpoints)
            .values()
            .cloned()
            .collect()
    }

    /// Creates a card.
    pub fn create_card(&self, name: &str, transport: Transport) -> Result<Arc<Card>> {
        let mut cards = write(&self.registry.cards);
        if cards.len() >= MAX_CARDS {
            return Err(EngineError::Limit(format!("at most {MAX_CARDS} cards")));
        }
        let id = self.next_id();
        let card = Arc::new(Card {
            id,
            name: name.to_owned(),
            transport,
            streams: Mutex::new(Vec::new()),
            budget: CardBudget::new(id, *read(&self.registry.default_budget)),
        });
        cards.insert(card.id, card.clone());
        info!(card = card.id, name, transport = ?card.transport, "card created");
        self.registry.context.publish(Event::CardAdded {
            card: card.id,
            name: name.to_owned(),
        });
        Ok(card)
    }

    /// Adds a stream to a card.
    pub fn create_stream(&self, card: CardId, spec: StreamSpec) -> Result<Arc<Stream>> {
        let card = self.card(card).ok_or(EngineError::NoSuchCard(card))?;
        let mut streams = lock(&card.streams);
        if streams.len() >= MAX_STREAMS_PER_CARD {
            return Err(EngineError::Limit(format!(
                "card {} has {MAX_STREAMS_PER_CARD} streams already",
                card.id
            )));
        }
        if let Err(error) = card.budget.check_streams(streams.len()) {
            self.registry.context.publish_refusal(&error, None);
            return Err(error);
        }
        let direction = spec.direction;
        let stream = Arc::new(Stream::new(
            self.next_id(),
            (card.id, card.name.clone()),
            spec,
            self.registry.context.clone(),
            card.budget.clone(),
        )?);
        streams.push(stream.clone());
        write(&self.registry.streams).insert(stream.id(), stream.clone());
        self.registry.context.publish(Event::StreamAdded {
            card: card.id,
            stream: stream.id(),
            direction,
        });
        Ok(stream)
    }

    /// Sets the budget cards created from now on get (see [`crate::budget`]).
    /// Cards without a budget of their own take it at once.
    pub fn set_default_budget(&self, budget: Budget) -> Result<()> {
        budget.check().map_err(EngineError::Limit)?;
        *write(&self.registry.default_budget) = budget;
        for card in self.cards() {
            card.budget.follow_default(budget);
        }
        Ok(())
    }

    /// Makes `card` follow the default budget again.
    pub fn clear_card_budget(&self, card: CardId) -> Result<()> {
        let card = self.card(card).ok_or(EngineError::NoSuchCard(card))?;
        card.budget.set(self.default_budget(), false);
        Ok(())
    }

    /// The budget new cards get.
    pub fn default_budget(&self) -> Budget {
        *read(&self.registry.default_budget)
    }

    /// Removes a card, releasing its streams.
    pub fn remove_card(&self, card: CardId) -> Result<()> {
        let card = write(&self.registry.cards)
            .remove(&card)
            .ok_or(EngineError::NoSuchCard(card))?;
        for stream in lock(&card.streams).drain(..) {
            stream.teardown();
            write(&self.registry.streams).remove(&stream.id());
            self.registry.context.publish(Event::StreamRemoved {
                stream: stream.id(),
            });
        }
        info!(card = card.id, "card removed");
        self.registry
            .context
            .publish(Event::CardRemoved { card: card.id });
        Ok(())
    }

    /// A card by id.
    pub fn card(&self, card: CardId) -> Option<Arc<Card>> {
        read(&self.registry.cards).get(&card).cloned()
    }

    /// Every card.
    pub fn cards(&self) -> Vec<Arc<Card>> {
        read(&self.registry.cards).values().cloned().collect()
    }

    /// A stream by id.
    pub fn stream(&self, stream: StreamId) -> Option<Arc<Stream>> {
        read(&self.registry.streams).get(&stream).cloned()
    }

    /// Every stream.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        read(&self.registry.streams).values().cloned().collect()
    }

    /// Sets the plugin set streams of `direction` use unless they have their own. Streams
    /// prepared from now on use it; call [`Engine::rebuild_chains`] to move running ones.
    pub fn set_default_plugins(&self, direction: Direction, plugins: ChainPlugins) {
        write(&self.registry.context.plugins)[direction.index()] = plugins;
    }

    /// The plugin set streams of `direction` use unless they have their own.
    pub fn default_plugins(&self, direction: Direction) -> ChainPlugins {
        self.registry.context.default_plugins(direction)
    }

    /// Rebuilds the chain of every prepared stream (each swapped at a cycle boundary).
    pub fn rebuild_chains(&self) -> Result<()> {
        for stream in self.streams() {
            stream.rebuild_chain()?;
        }
        Ok(())
    }

    /// Hot reload: `factory` (a new version of a plugin) replaces the plugin of the same
    /// name in the default sets, every stream's own set and every endpoint's mixer. Each
    /// stream that uses it gets a new chain, built and warmed off the real-time thread and
    /// swapped in at a cycle boundary, so audio never stops. Returns the streams and
    /// endpoints that were moved to the new version.
    pub fn replace_plugin(&self, factory: &Arc<dyn KernelFactory>) -> Result<usize> {
        for plugins in write(&self.registry.context.plugins).iter_mut() {
            plugins.replace(factory);
        }
        let mut moved = 0;
        for stream in self.streams() {
            stream.replace_plugin(factory);
            if stream.uses_plugin(&self.registry.context, factory.name()) {
                stream.rebuild_chain()?;
                moved += 1;
            }
        }
        for endpoint in self.endpoints() {
            if endpoint.mixer_name().as_deref() == Some(factory.name()) {
                endpoint.set_mixer(Some(factory), &endpoint.mixer_params())?;
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// A new subscription to the event bus.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.registry.context.events.subscribe()
    }

    /// Releases every stream, stops every endpoint and finishes their devices (WAV files
    /// finalized). Idempotent.
    pub fn shutdown(&self) {
        let cards: Vec<_> = read(&self.registry.cards).keys().copied().collect();
        for card in cards {
            let _ = self.remove_card(card);
        }
        let endpoints: Vec<_> = std::mem::take(&mut *write(&self.registry.context.endpoints))
            .into_values()
            .collect();
        for endpoint in endpoints {
            endpoint.shutdown();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
        self.registry.stopping.store(true, Ordering::Relaxed);
        if let Some(thread) = self.housekeeper.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
