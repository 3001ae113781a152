//! [`Control`]: the one place a wanted change becomes engine operations. The
//! configuration file (at start and on reload), the command line and the API all come
//! here; every change is validated by the same functions, applied by the same
//! reconciler, and what the API made is saved to `state.json` by this type alone.
//!
//! Changes are serialised: one lock is held across a change and its save, so saves never
//! interleave and a reload never races an API call. Everything here may block (device
//! opens, sockets, plugin compiles, file syncs): async callers run it on a blocking
//! thread.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use paravox_engine::microphone::MicrophoneFeeder;
use paravox_engine::monitor::{MAX_MONITORS, Monitor, MonitorInfo, MonitorTarget};
use paravox_engine::plugin::{ChainPlugins, KernelFactory};
use paravox_engine::{Budget, Card, CardId, Direction, Endpoint, Engine, Stream, StreamId};
use paravox_virtio_snd::VirtioCard;
use tracing::{info, warn};

use crate::budget;
use crate::card;
use crate::chain::{self, Chains};
use crate::declared::Declaration;
use crate::dsp::{self, Resolved};
use crate::endpoint;
use crate::error::{ControlError, Result};
use crate::model::{
    BudgetRequest, CardRequest, ChainStage, DirectionName, EndpointRequest, StreamPatch,
};
use crate::plugins::{self, PluginInfo, PluginLibrary, Source};
use crate::state::{STATE_VERSION, SavedState, SavedStream};
use crate::stream;

/// Where the daemon keeps its state, and how API paths are confined.
#[derive(Debug, Clone)]
pub struct Options {
    /// `state.json`, the installed plugins and the compile cache live here.
    pub state_dir: PathBuf,
    /// When set, file paths given over the API must lie inside this directory (a
    /// relative one is taken inside it).
    pub path_root: Option<PathBuf>,
    /// When set, the sockets of cards made over the API must lie inside this directory;
    /// unset, they follow `path_root`.
    pub socket_root: Option<PathBuf>,
    /// vhost-user sockets the service manager passed, listening: a card whose socket is
    /// one of them serves on it instead of binding (and never removes the file).
    pub inherited_sockets: Arc<card::Inherited>,
}

impl Options {
    /// Options for the daemon whose state lives in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Options {
        Options {
            state_dir: state_dir.into(),
            path_root: None,
            socket_root: None,
            inherited_sockets: Arc::default(),
        }
    }
}

/// Who made an object, and so who may change or remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The configuration file or the command line (or a guest, for sndif cards).
    Declared,
    /// The API; saved in `state.json`.
    Api,
}

/// What a reload changed, and what it could not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Objects made, as `endpoint 'NAME'` or `card 'NAME'`.
    pub added: Vec<String>,
    /// Objects closed and made again with new settings.
    pub replaced: Vec<String>,
    /// Objects closed.
    pub removed: Vec<String>,
    /// Settings changed in place (defaults, mixers, plugin sets).
    pub updated: Vec<String>,
    /// Changes not applied, each saying why and what to do.
    pub pending: Vec<String>,
}

/// A card the API created, with what it was asked for.
#[derive(Debug)]
struct OwnedCard {
    request: CardRequest,
    /// Serving the card; dropping it removes the socket.
    card: VirtioCard,
}

/// A card the configuration declared, with the request it runs with (a changed one waits
/// for a restart, so this may differ from the declaration).
#[derive(Debug)]
struct DeclaredCard {
    request: CardRequest,
    card: VirtioCard,
}

#[derive(Debug, Default)]
struct Inner {
    /// The configuration's and command line's declaration in effect.
    declared: Declaration,
    /// Its plugins, loaded.
    resolved: Resolved,
    declared_cards: BTreeMap<String, DeclaredCard>,
    api_endpoints: BTreeMap<String, EndpointRequest>,
    api_cards: BTreeMap<String, OwnedCard>,
    api_streams: BTreeMap<(String, u32), SavedStream>,
    /// Saved objects that could not be recreated at start, kept for the next one.
    dormant_endpoints: Vec<EndpointRequest>,
    dormant_cards: Vec<CardRequest>,
}

/// The names the API owns, readable without waiting for a change in progress.
#[derive(Debug, Default, Clone)]
struct ApiNames {
    cards: BTreeSet<String>,
    endpoints: BTreeSet<String>,
}

/// The control layer of one daemon.
#[derive(Debug)]
pub struct Control {
    engine: Arc<Engine>,
    options: Options,
    library: Arc<PluginLibrary>,
    chains: Chains,
    inner: Mutex<Inner>,
    names: Mutex<ApiNames>,
}

/// Start or reload: at start every declared object must come up; a reload keeps running
/// and reports what it could not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Start,
    Reload,
}

impl Control {
    /// Makes the engine match `declaration`, then recreates what the API saved in
    /// `state.json`. Fails when a declared object cannot come up, a plugin the declaration
    /// names is missing, or the state file exists and cannot be read.
    pub fn start(
        engine: Arc<Engine>,
        options: Options,
        declaration: Declaration,
    ) -> Result<Control> {
        // Where WAV files named over the API may live inside the state directory.
        let _ = std::fs::create_dir_all(options.state_dir.join(endpoint::OUTPUTS_DIR));
        if let Err(error) = plugins::private_dir(&options.state_dir.join("plugins")) {
            warn!(%error, "cannot make the plugins directory private");
        }
        let control = Control::empty(engine, options);
        {
            let mut inner = control.lock();
            control.reconcile(&mut inner, declaration, Mode::Start)?;
            control.restore(&mut inner)?;
            control.publish_names(&inner);
        }
        Ok(control)
    }

    /// A control layer with nothing declared and nothing restored (tests, tools).
    pub fn empty(engine: Arc<Engine>, options: Options) -> Control {
        let library = Arc::new(PluginLibrary::new(&options.state_dir));
        Control {
            engine,
            options,
            library,
            chains: Chains::default(),
            inner: Mutex::new(Inner::default()),
            names: Mutex::new(ApiNames::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The options it was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The plugin library.
    pub fn library(&self) -> &Arc<PluginLibrary> {
        &self.library
    }

    /// Applies a new declaration (a reloaded configuration file): everything the API can
    /// change live changes live. A declaration whose plugins cannot load changes nothing.
    pub fn reload(&self, declaration: Declaration) -> Result<Summary> {
        let mut inner = self.lock();
        let summary = self.reconcile(&mut inner, declaration, Mode::Reload)?;
        self.publish_names(&inner);
        Ok(summary)
    }

    /// Stops serving every virtio card (their sockets go), before the engine stops.
    pub fn close_cards(&self) {
        let mut inner = self.lock();
        inner.api_cards.clear();
        inner.declared_cards.clear();
    }

    // ----- the reconciler -------------------------------------------------------------

    fn reconcile(&self, inner: &mut Inner, new: Declaration, mode: Mode) -> Result<Summary> {
        // Everything that can fail for the whole declaration is checked before anything
        // changes: every plugin it names, and the shared ones it needs.
        dsp::check(&new.dsp, &self.library)?;
        let resolved = Resolved::new(&new.dsp, &self.library)?;
        let default_budget = budget::resolve(&new.budget, Budget::default())
            .map_err(|error| error.context("[budget]"))?;
        let mut summary = Summary::default();
        let fail = |summary: &mut Summary, error: ControlError| -> Result<()> {
            match mode {
                Mode::Start => Err(error),
                Mode::Reload => {
                    summary.pending.push(error.to_string());
                    Ok(())
                }
            }
        };
        for direction in [Direction::Playback, Direction::Capture] {
            for error in self.reconcile_endpoints(inner, &new, direction, &mut summary) {
                fail(&mut summary, error)?;
            }
        }
        for direction in [Direction::Playback, Direction::Capture] {
            let Some(name) = new.default_endpoint(direction) else {
                continue;
            };
            if self.engine.default_endpoint(direction).as_deref() == Some(name) {
                continue;
            }
            match self.engine.set_default_endpoint(direction, name) {
                Ok(()) => {
                    info!(%direction, endpoint = name, "default endpoint");
                    if mode == Mode::Reload {
                        summary
                            .updated
                            .push(format!("default {direction} endpoint '{name}'"));
                    }
                }
                Err(error) => fail(
                    &mut summary,
                    ControlError::from(error)
                        .context(format_args!("the default {direction} endpoint '{name}'")),
                )?,
            }
        }
        if self.engine.default_budget() != default_budget {
            self.engine.set_default_budget(default_budget)?;
            info!(budget = ?default_budget, "default card budget");
            if mode == Mode::Reload {
                summary.updated.push("the default card budget".to_owned());
            }
        }
        inner.resolved = resolved;
        inner.declared = new;
        self.reconcile_default_plugins(inner, mode, &mut summary);
        for error in self.reconcile_mixers(inner, &mut summary) {
            fail(&mut summary, error)?;
        }
        for error in self.reconcile_cards(inner, mode, &mut summary) {
            fail(&mut summary, error)?;
        }
        for error in self.reconcile_stream_plugins(inner, mode, &mut summary) {
            fail(&mut summary, error)?;
        }
        Ok(summary)
    }

    fn reconcile_endpoints(
        &self,
        inner: &mut Inner,
        new: &Declaration,
        direction: Direction,
        summary: &mut Summary,
    ) -> Vec<ControlError> {
        let mut errors = Vec::new();
        let old = inner.declared.clone();
        for wanted in new.endpoints.iter().filter(|e| e.direction == direction) {
            let name = &wanted.name;
            if inner.api_endpoints.contains_key(name) {
                errors.push(ControlError::conflict(format!(
                    "endpoint '{name}' is declared in the configuration, but the API made one of that name: delete it there first (DELETE /api/endpoints/{name})"
                )));
                continue;
            }
            let running = self.engine.endpoint(name);
            match (old.endpoint(name), running) {
                (Some(before), Some(_)) if before == wanted => continue,
                (_, Some(_)) => {
                    if let Err(error) = self.engine.remove_endpoint(name) {
                        errors.push(ControlError::from(error).context(format_args!(
                            "endpoint '{name}' changed, but it cannot close"
                        )));
                        continue;
                    }
                    summary.replaced.push(format!("endpoint '{name}'"));
                }
                (_, None) => summary.added.push(format!("endpoint '{name}'")),
            }
            let opened = endpoint::open_with_fallback(
                &self.engine,
                name,
                &wanted.spec,
                wanted.fallback.as_deref(),
                direction,
            );
            if let Err(error) = opened {
                let label = format!("endpoint '{name}'");
                summary.added.retain(|n| *n != label);
                summary.replaced.retain(|n| *n != label);
                errors.push(error);
            }
        }
        for before in old.endpoints.iter().filter(|e| e.direction == direction) {
            let name = &before.name;
            if new.endpoint(name).is_some()
                || inner.api_endpoints.contains_key(name)
                || self.engine.endpoint(name).is_none()
            {
                continue;
            }
            match self.engine.remove_endpoint(name) {
                Ok(()) => summary.removed.push(format!("endpoint '{name}'")),
                Err(error) => errors.push(ControlError::from(error).context(format_args!(
                    "endpoint '{name}' left the configuration, but it cannot close"
                ))),
            }
        }
        errors
    }

    fn reconcile_default_plugins(&self, inner: &Inner, mode: Mode, summary: &mut Summary) {
        let resolved = &inner.resolved;
        let mut changed = false;
        for direction in [Direction::Playback, Direction::Capture] {
            let wanted = resolved.set(resolved.default, direction, resolved.chain.clone());
            let current = self.engine.default_plugins(direction);
            if dsp::signature(&wanted) != dsp::signature(&current) {
                self.engine.set_default_plugins(direction, wanted);
                changed = true;
            }
        }
        if changed && mode == Mode::Reload {
            // Streams without a set of their own run the defaults: move the prepared ones.
            for stream in self.engine.streams() {
                if stream.plugins().is_none()
                    && let Err(error) = stream.rebuild_chain()
                {
                    warn!(stream = stream.id(), %error, "cannot rebuild the chain with the new default plugins");
                }
            }
            summary.updated.push("the default plugin sets".to_owned());
        }
    }

    /// Gives every playback endpoint the mixer the plan asks for.
    fn reconcile_mixers(&self, inner: &Inner, summary: &mut Summary) -> Vec<ControlError> {
        let mut errors = Vec::new();
        for endpoint in self.engine.endpoints() {
            if endpoint.direction() != Direction::Playback {
                continue;
            }
            if let Err(error) = self.set_mixer(inner, &endpoint, summary) {
                errors.push(error.context(format_args!("endpoint '{}'", endpoint.name())));
            }
        }
        errors
    }

    fn set_mixer(&self, inner: &Inner, endpoint: &Endpoint, summary: &mut Summary) -> Result<()> {
        let wanted = inner
            .resolved
            .mixer(&inner.declared.dsp, &self.library, endpoint.name())?;
        let current = endpoint
            .mixer_name()
            .map(|name| (name, endpoint.mixer_params()));
        let same = match (&wanted, &current) {
            (None, None) => true,
            (Some((factory, params)), Some((name, current))) => {
                factory.name() == name && params == current
            }
            _ => false,
        };
        if same {
            return Ok(());
        }
        match &wanted {
            Some((factory, params)) => {
                endpoint.set_mixer(Some(factory), params)?;
                info!(
                    endpoint = endpoint.name(),
                    mixer = factory.name(),
                    "mixing in a wasm plugin"
                );
            }
            None => {
                endpoint.set_mixer(None, &[])?;
                info!(endpoint = endpoint.name(), "mixing natively");
            }
        }
        if current.is_some() {
            summary
                .updated
                .push(format!("the mixer of endpoint '{}'", endpoint.name()));
        }
        Ok(())
    }

    fn reconcile_cards(
        &self,
        inner: &mut Inner,
        mode: Mode,
        summary: &mut Summary,
    ) -> Vec<ControlError> {
        let mut errors = Vec::new();
        let wanted = inner.declared.cards.clone();
        for request in &wanted {
            let name = &request.name;
            if inner.api_cards.contains_key(name) {
                errors.push(ControlError::conflict(format!(
                    "card '{name}' is declared in the configuration, but the API made one of that name: delete it there first"
                )));
                continue;
            }
            match inner.declared_cards.get_mut(name) {
                Some(running) if running.request == *request => {}
                Some(running) if same_but_budget(&running.request, request) => {
                    match self.apply_card_budget(running.card.card(), request.budget.as_ref()) {
                        Ok(()) => {
                            running.request.budget = request.budget.clone();
                            summary.updated.push(format!("the budget of card '{name}'"));
                        }
                        Err(error) => errors.push(error.context(format_args!("card '{name}'"))),
                    }
                }
                Some(_) => summary.pending.push(format!(
                    "card '{name}' changed: its guest must probe the device again, so the new topology and socket take effect when paravox restarts (or remove the card from the file, reload, add it back and reload, then restart the VM)"
                )),
                None => match ensure_socket_dir(Path::new(&request.socket))
                    .map_err(|error| {
                        ControlError::invalid(format!("cannot create the socket's directory: {error}"))
                    })
                    .and_then(|()| card::spawn(&self.engine, request, None, &self.options.inherited_sockets))
                {
                    Ok((card, request)) => {
                        if mode == Mode::Reload {
                            summary.added.push(format!("card '{name}'"));
                        }
                        inner
                            .declared_cards
                            .insert(name.clone(), DeclaredCard { request, card });
                        self.apply_saved_streams(inner, name);
                    }
                    Err(error) => errors.push(
                        error.context(format_args!("virtio-snd card '{name}' on {}", request.socket)),
                    ),
                },
            }
        }
        let gone: Vec<String> = inner
            .declared_cards
            .keys()
            .filter(|name| !wanted.iter().any(|request| request.name == **name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(declared) = inner.declared_cards.remove(&name) {
                let id = declared.card.card();
                // The socket goes first, so no VMM connects to a card being removed.
                drop(declared);
                if let Err(error) = self.engine.remove_card(id) {
                    errors.push(ControlError::from(error).context(format_args!("card '{name}'")));
                }
                summary.removed.push(format!("card '{name}'"));
            }
        }
        errors
    }

    /// Gives every stream the plugin set its settings ask for: its own `dsp` and `chain`
    /// (or its card's), with the effects the API set taking precedence over the file's.
    fn reconcile_stream_plugins(
        &self,
        inner: &Inner,
        mode: Mode,
        summary: &mut Summary,
    ) -> Vec<ControlError> {
        let mut errors = Vec::new();
        for card in self.engine.cards() {
            for stream in card.streams() {
                match self.wanted_plugins(inner, &card, &stream) {
                    Ok(wanted) => {
                        let current = stream.plugins();
                        if current.as_ref().map(dsp::signature)
                            == wanted.as_ref().map(dsp::signature)
                        {
                            continue;
                        }
                        if let Err(error) = stream.set_plugins(wanted) {
                            errors.push(ControlError::from(error));
                            continue;
                        }
                        if mode == Mode::Reload {
                            summary.updated.push(format!(
                                "the plugins of stream {} ({}/{})",
                                stream.id(),
                                card.name(),
                                stream.name()
                            ));
                        }
                    }
                    Err(error) => errors.push(error),
                }
            }
        }
        errors
    }

    fn wanted_plugins(
        &self,
        inner: &Inner,
        card: &Card,
        stream: &Stream,
    ) -> Result<Option<ChainPlugins>> {
        let plan = &inner.declared.dsp;
        let settings = plan.cards.get(card.name());
        let own = settings.and_then(|settings| settings.streams.get(stream.name()));
        let dsp = own
            .and_then(|own| own.dsp)
            .or(settings.and_then(|settings| settings.dsp));
        let own_chain = own.and_then(|own| own.chain.as_ref());
        let api_chain = self.chains.get(stream.id()).is_some();
        if dsp.is_none() && own_chain.is_none() && !api_chain {
            return Ok(None);
        }
        let resolved = &inner.resolved;
        let effects = if api_chain {
            // Already resolved when the API set it; the file's chain is below it.
            stream
                .plugins()
                .unwrap_or_else(|| self.engine.default_plugins(stream.direction()))
                .effects
        } else {
            match own_chain {
                Some(entries) => dsp::effects(&self.library, entries).map_err(|error| {
                    error.context(format_args!("stream {}/{}", card.name(), stream.name()))
                })?,
                None => resolved.chain.clone(),
            }
        };
        Ok(Some(resolved.set(
            dsp.unwrap_or(resolved.default),
            stream.direction(),
            effects,
        )))
    }

    // ----- state.json -----------------------------------------------------------------

    /// Recreates what `state.json` saved: endpoints and cards whose names the
    /// declaration does not use (the declaration wins: a saved one of the same name is
    /// logged and dropped), then the saved stream settings.
    fn restore(&self, inner: &mut Inner) -> Result<()> {
        let Some(saved) = SavedState::load(&self.options.state_dir)? else {
            return Ok(());
        };
        for request in saved.endpoints {
            if self.engine.endpoint(&request.name).is_some() {
                warn!(
                    endpoint = request.name,
                    spec = request.spec,
                    "the configuration has an endpoint of this name; it wins over the one saved by the API, which is dropped"
                );
                continue;
            }
            match self.open_api_endpoint(inner, &request) {
                Ok(_) => {}
                Err(error) => {
                    warn!(
                        endpoint = request.name,
                        spec = request.spec,
                        %error,
                        "cannot reopen a saved endpoint; keeping it for the next start"
                    );
                    inner.dormant_endpoints.push(request);
                }
            }
        }
        for request in saved.cards {
            if inner.declared.card(&request.name).is_some()
                || self.engine.cards().iter().any(|c| c.name() == request.name)
            {
                warn!(
                    card = request.name,
                    "the configuration has a card of this name; it wins over the one saved by the API, which is dropped"
                );
                continue;
            }
            match card::spawn(
                &self.engine,
                &request,
                None,
                &self.options.inherited_sockets,
            ) {
                Ok((card, request)) => {
                    inner
                        .api_cards
                        .insert(request.name.clone(), OwnedCard { request, card });
                }
                Err(error) => {
                    warn!(
                        card = request.name,
                        %error,
                        "cannot recreate a saved card; keeping it for the next start"
                    );
                    inner.dormant_cards.push(request);
                }
            }
        }
        for saved in saved.streams {
            inner
                .api_streams
                .insert((saved.card.clone(), saved.index), saved);
        }
        let names: Vec<String> = self
            .engine
            .cards()
            .iter()
            .map(|card| card.name().to_owned())
            .collect();
        for name in names {
            self.apply_saved_streams(inner, &name);
        }
        info!(
            endpoints = inner.api_endpoints.len(),
            cards = inner.api_cards.len(),
            streams = inner.api_streams.len(),
            "restored the API's saved state"
        );
        Ok(())
    }

    /// Applies the saved settings of card `name`'s streams (a card just made, or at start).
    fn apply_saved_streams(&self, inner: &Inner, name: &str) {
        let saved: Vec<&SavedStream> = inner
            .api_streams
            .values()
            .filter(|saved| saved.card == name)
            .collect();
        for saved in saved {
            self.apply_saved_stream(saved);
        }
    }

    fn apply_saved_stream(&self, saved: &SavedStream) {
        let stream = self
            .engine
            .cards()
            .into_iter()
            .filter(|card| card.name() == saved.card)
            .find_map(|card| card.streams().get(saved.index as usize).cloned());
        let Some(stream) = stream else {
            warn!(
                card = saved.card,
                index = saved.index,
                "saved settings name a stream that does not exist now; kept for later"
            );
            return;
        };
        if DirectionName::from(stream.direction()) != saved.direction {
            warn!(
                card = saved.card,
                index = saved.index,
                "saved settings are for a stream of the other direction; not applied"
            );
            return;
        }
        match self.change_stream(&stream, &saved.patch()) {
            Ok(()) => info!(
                card = saved.card,
                stream = stream.id(),
                index = saved.index,
                "saved stream settings applied"
            ),
            Err(error) => warn!(
                card = saved.card,
                stream = stream.id(),
                %error,
                "cannot apply saved stream settings"
            ),
        }
    }

    /// Writes what the API owns to `state.json`.
    fn save(&self, inner: &Inner) -> Result<()> {
        let state = SavedState {
            version: STATE_VERSION,
            endpoints: inner
                .api_endpoints
                .values()
                .chain(&inner.dormant_endpoints)
                .cloned()
                .collect(),
            cards: inner
                .api_cards
                .values()
                .map(|owned| &owned.request)
                .chain(&inner.dormant_cards)
                .cloned()
                .collect(),
            streams: inner.api_streams.values().cloned().collect(),
        };
        state.save(&self.options.state_dir).map_err(|error| {
            ControlError::internal(format!(
                "the change is live but could not be saved, so a restart would lose it: {error}"
            ))
        })
    }

    fn publish_names(&self, inner: &Inner) {
        let names = ApiNames {
            cards: inner.api_cards.keys().cloned().collect(),
            endpoints: inner.api_endpoints.keys().cloned().collect(),
        };
        *self.names.lock().unwrap_or_else(PoisonError::into_inner) = names;
    }

    fn forget_dormant(inner: &mut Inner, name: &str) {
        inner.dormant_endpoints.retain(|e| e.name != name);
        inner.dormant_cards.retain(|c| c.name != name);
    }

    // ----- what the API asks for ------------------------------------------------------

    /// Who made the endpoint called `name`.
    pub fn endpoint_owner(&self, name: &str) -> Owner {
        let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if names.endpoints.contains(name) {
            Owner::Api
        } else {
            Owner::Declared
        }
    }

    /// Who made the card called `name`.
    pub fn card_owner(&self, name: &str) -> Owner {
        let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if names.cards.contains(name) {
            Owner::Api
        } else {
            Owner::Declared
        }
    }

    fn open_api_endpoint(
        &self,
        inner: &mut Inner,
        request: &EndpointRequest,
    ) -> Result<Arc<Endpoint>> {
        let request = endpoint::check_request(
            &self.engine,
            request,
            self.options.path_root.as_deref(),
            Some(&self.options.state_dir),
        )?;
        if inner.declared.endpoint(&request.name).is_some() {
            return Err(ControlError::conflict(format!(
                "the configuration declares an endpoint named '{}'",
                request.name
            )));
        }
        let direction = Direction::from(request.direction);
        let endpoint = endpoint::open(&self.engine, &request.name, &request.spec, direction)?;
        if direction == Direction::Playback
            && let Err(error) = self.set_mixer(inner, &endpoint, &mut Summary::default())
        {
            let _ = self.engine.remove_endpoint(&request.name);
            return Err(error);
        }
        inner.api_endpoints.insert(request.name.clone(), request);
        Ok(endpoint)
    }

    /// Opens a host endpoint (`POST /api/endpoints`) and saves it.
    pub fn create_endpoint(&self, request: &EndpointRequest) -> Result<Arc<Endpoint>> {
        let mut inner = self.lock();
        let endpoint = self.open_api_endpoint(&mut inner, request)?;
        Self::forget_dormant(&mut inner, &request.name);
        self.publish_names(&inner);
        self.save(&inner)?;
        Ok(endpoint)
    }

    /// Closes an endpoint the API opened. Refused (409) for declared endpoints and while
    /// streams are routed to it by name.
    pub fn delete_endpoint(&self, name: &str) -> Result<()> {
        let mut inner = self.lock();
        if self.engine.endpoint(name).is_none() {
            return Err(ControlError::not_found(format!(
                "no endpoint named '{name}' (GET /api/endpoints lists them)"
            )));
        }
        if !inner.api_endpoints.contains_key(name) {
            return Err(ControlError::conflict(format!(
                "endpoint '{name}' was not created over the API; change it where it was made (the configuration file or command line)"
            )));
        }
        let routed: Vec<String> = self
            .engine
            .streams()
            .iter()
            .filter(|stream| stream.route().as_deref() == Some(name))
            .map(|stream| stream.id().to_string())
            .collect();
        if !routed.is_empty() {
            return Err(ControlError::conflict(format!(
                "streams {} are routed to endpoint '{name}'; route them elsewhere first",
                routed.join(", ")
            )));
        }
        self.engine.remove_endpoint(name)?;
        inner.api_endpoints.remove(name);
        self.publish_names(&inner);
        self.save(&inner)?;
        info!(endpoint = name, "endpoint closed over the API");
        Ok(())
    }

    /// Creates and serves a virtio card (`POST /api/cards`) and saves it.
    pub fn create_card(&self, request: &CardRequest) -> Result<Arc<Card>> {
        let mut inner = self.lock();
        if inner.declared.card(&request.name).is_some() {
            return Err(ControlError::conflict(format!(
                "the configuration declares a card named '{}'",
                request.name
            )));
        }
        let sockets = self
            .options
            .socket_root
            .as_deref()
            .or(self.options.path_root.as_deref());
        let (card, saved) = card::spawn(
            &self.engine,
            request,
            sockets,
            &self.options.inherited_sockets,
        )?;
        let id = card.card();
        Self::forget_dormant(&mut inner, &saved.name);
        let name = saved.name.clone();
        inner.api_cards.insert(
            name.clone(),
            OwnedCard {
                request: saved,
                card,
            },
        );
        self.publish_names(&inner);
        self.save(&inner)?;
        self.engine
            .card(id)
            .ok_or_else(|| ControlError::internal("the card vanished as it was created"))
    }

    /// Gives card `id` the budget `request` lays over the default, or (`None`) makes it
    /// follow the default again.
    fn apply_card_budget(&self, id: CardId, request: Option<&BudgetRequest>) -> Result<()> {
        match request {
            Some(request) => {
                let budget = budget::resolve(request, self.engine.default_budget())?;
                let card = self.engine.card(id).ok_or_else(|| no_card(id))?;
                card.set_budget(budget)?;
            }
            None => self.engine.clear_card_budget(id)?,
        }
        Ok(())
    }

    /// Sets a card's budget live (`PUT /api/cards/{id}/budget`; `None`: `DELETE`, back
    /// to the default). A card the API made keeps it in `state.json`; a guest's card
    /// (sndif) keeps it while it exists; a card the configuration declares is changed
    /// there (409).
    pub fn set_card_budget(&self, id: CardId, request: Option<&BudgetRequest>) -> Result<()> {
        let mut inner = self.lock();
        let card = self.engine.card(id).ok_or_else(|| no_card(id))?;
        let name = card.name().to_owned();
        if inner.declared_cards.contains_key(&name) {
            return Err(ControlError::conflict(format!(
                "card '{name}' is declared in the configuration; set its budget there"
            )));
        }
        self.apply_card_budget(id, request)?;
        if let Some(owned) = inner.api_cards.get_mut(&name)
            && owned.card.card() == id
        {
            owned.request.budget = request.cloned();
            self.save(&inner)?;
        }
        info!(card = id, name, budget = ?card.budget(), "card budget set over the API");
        Ok(())
    }

    /// Stops serving and removes a card the API created, with its saved stream settings.
    pub fn delete_card(&self, id: CardId) -> Result<()> {
        let mut inner = self.lock();
        let card = self.engine.card(id).ok_or_else(|| no_card(id))?;
        let name = card.name().to_owned();
        if inner
            .api_cards
            .get(&name)
            .is_none_or(|owned| owned.card.card() != id)
        {
            return Err(ControlError::conflict(format!(
                "card '{name}' was not created over the API; change it where it was made (the configuration file or command line)"
            )));
        }
        if let Some(owned) = inner.api_cards.remove(&name) {
            // The socket goes first, so no VMM connects to a card being removed.
            drop(owned);
        }
        self.engine.remove_card(id)?;
        inner.api_streams.retain(|(card, _), _| *card != name);
        self.publish_names(&inner);
        self.save(&inner)?;
        info!(card = id, name, "card deleted over the API");
        Ok(())
    }

    /// Checks and applies `patch` to `stream`: route, volume, mute and chain, all checked
    /// before anything changes.
    fn change_stream(&self, stream: &Arc<Stream>, patch: &StreamPatch) -> Result<()> {
        stream::check(&self.engine, stream, patch)?;
        let effects = match &patch.chain {
            Some(chain) => Some(chain::resolve(&self.library, stream, chain)?),
            None => None,
        };
        stream::apply(stream, patch)?;
        if let (Some(effects), Some(chain)) = (effects, &patch.chain) {
            chain::apply(&self.engine, stream, effects)?;
            self.chains.set(stream.id(), chain.clone());
            self.chains.retain(&self.engine);
        }
        Ok(())
    }

    /// Changes a stream live (`PATCH /api/streams/{id}`) and saves its settings under its
    /// card's name and its index.
    pub fn patch_stream(&self, id: StreamId, patch: &StreamPatch) -> Result<Arc<Stream>> {
        let stream = self.engine.stream(id).ok_or_else(|| {
            ControlError::not_found(format!("no stream {id} (GET /api/streams lists them)"))
        })?;
        // Checked before waiting for a change in progress: a bad value is refused at once.
        stream::check(&self.engine, &stream, patch)?;
        let mut inner = self.lock();
        self.change_stream(&stream, patch)?;
        if let Some(card) = self.engine.card(stream.card()) {
            let index = card
                .streams()
                .iter()
                .position(|s| s.id() == stream.id())
                .unwrap_or(0) as u32;
            inner
                .api_streams
                .entry((card.name().to_owned(), index))
                .or_insert_with(|| SavedStream {
                    card: card.name().to_owned(),
                    index,
                    direction: stream.direction().into(),
                    volume_db: None,
                    muted: None,
                    route: None,
                    chain: None,
                })
                .merge(patch);
            self.save(&inner)?;
        }
        Ok(stream)
    }

    /// The effect chain `stream` runs: the one set over the API, else its plugin set's.
    pub fn chain_of(&self, stream: &Stream) -> Vec<ChainStage> {
        chain::configured(&self.chains, &self.engine, stream)
    }

    /// Every plugin in the library, installed ones standing in for shipped ones.
    pub fn plugins(&self) -> Result<Vec<PluginInfo>> {
        Ok(self
            .library
            .entries()?
            .iter()
            .map(plugins::Entry::info)
            .collect())
    }

    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Result<PluginInfo> {
        self.library
            .find(name)?
            .map(|entry| entry.info())
            .ok_or_else(|| {
                ControlError::not_found(format!(
                    "no plugin named '{name}' (GET /api/plugins lists them)"
                ))
            })
    }

    /// The ids of the streams whose chain uses the plugin called `name`.
    pub fn streams_using(&self, name: &str) -> Vec<u32> {
        plugins::streams_using(&self.engine, name)
    }

    /// Validates and installs `wasm`, and hot-swaps it onto every stream and mixer using a
    /// plugin of its name. Returns it, whether one of its name was installed before, and
    /// how many streams and mixers moved to it.
    pub fn install_plugin(&self, wasm: &[u8]) -> Result<(PluginInfo, bool, usize)> {
        let _changing = self.lock();
        let (plugin, replaced) = self.library.install(wasm)?;
        let name = plugin.manifest().name.clone();
        let factory: Arc<dyn KernelFactory> = plugin;
        let moved = self.engine.replace_plugin(&factory)?;
        let info = self.plugin(&name)?;
        info!(
            plugin = info.name,
            version = info.version,
            replaced,
            moved,
            "plugin installed"
        );
        Ok((info, replaced, moved))
    }

    /// Removes an installed plugin; the shipped one of its name, if any, serves again.
    /// Refused for shipped plugins and for plugins streams use with nothing to stand in.
    pub fn remove_plugin(&self, name: &str) -> Result<()> {
        let _changing = self.lock();
        let info = self.plugin(name)?;
        if info.source == Source::Shipped {
            return Err(ControlError::conflict(format!(
                "'{name}' is shipped with paravox and cannot be removed"
            )));
        }
        let users = self.streams_using(name);
        if !users.is_empty() && !info.shadows_shipped {
            let ids: Vec<String> = users.iter().map(u32::to_string).collect();
            return Err(ControlError::conflict(format!(
                "streams {} use '{name}'; take it out of their chains first",
                ids.join(", ")
            )));
        }
        if let Some(shipped) = self.library.uninstall(name)? {
            let factory: Arc<dyn KernelFactory> = shipped;
            self.engine.replace_plugin(&factory)?;
        }
        info!(plugin = name, "plugin removed");
        Ok(())
    }

    /// Starts a monitor on `target`: a listener (the dashboard's Listen button) hears a
    /// stream's audio after its chain, or an endpoint's mix or what it captures. Nothing
    /// is saved: a monitor lives as long as its handle.
    pub fn listen(&self, target: &MonitorTarget) -> Result<Monitor> {
        self.check_listen(target)?;
        Ok(match target {
            MonitorTarget::Stream(id) => self.engine.listen_to_stream(*id)?,
            MonitorTarget::Endpoint(name) => self.engine.listen_to_endpoint(name)?,
        })
    }

    /// The monitors listening now.
    pub fn monitors(&self) -> Vec<MonitorInfo> {
        self.engine.monitors()
    }

    /// Whether a monitor on `target` would start now, without starting one (the API asks
    /// before a WebSocket handshake, so a plain request learns why one would fail).
    pub fn check_listen(&self, target: &MonitorTarget) -> Result<()> {
        match target {
            MonitorTarget::Stream(id) => {
                if self.engine.stream(*id).is_none() {
                    return Err(ControlError::not_found(format!(
                        "no stream {id} (GET /api/streams lists them)"
                    )));
                }
            }
            MonitorTarget::Endpoint(name) => {
                let endpoint = self.engine.endpoint(name).ok_or_else(|| {
                    ControlError::not_found(format!(
                        "no endpoint named '{name}' (GET /api/endpoints lists them)"
                    ))
                })?;
                if endpoint.is_per_stream() {
                    return Err(ControlError::conflict(format!(
                        "endpoint '{name}' gives each stream a device of its own and mixes nothing; listen to a stream instead"
                    )));
                }
            }
        }
        if self.engine.monitors().len() >= MAX_MONITORS {
            return Err(ControlError::unavailable(format!(
                "{MAX_MONITORS} monitors listen already; stop one first"
            )));
        }
        Ok(())
    }

    /// Whether a browser could start feeding the microphone endpoint `name` now.
    pub fn check_microphone(&self, name: &str) -> Result<()> {
        let endpoint = self.engine.endpoint(name).ok_or_else(|| {
            ControlError::not_found(format!(
                "no endpoint named '{name}' (GET /api/endpoints lists them)"
            ))
        })?;
        match endpoint.microphone() {
            None => Err(ControlError::conflict(format!(
                "endpoint '{name}' ({}) is not a browser microphone: open one with the spec 'browser'",
                endpoint.spec()
            ))),
            Some(feed) if feed.stats().fed => Err(ControlError::conflict(format!(
                "another browser feeds the microphone endpoint '{name}'; stop it first"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// A browser starts feeding the microphone endpoint `name` with interleaved samples
    /// at `rate` with `channels`.
    pub fn feed_microphone(
        &self,
        name: &str,
        rate: u32,
        channels: u32,
    ) -> Result<MicrophoneFeeder> {
        self.check_microphone(name)?;
        Ok(self.engine.feed_microphone(name, rate, channels)?)
    }

    /// The host's ALSA PCMs, to make endpoints from.
    pub fn alsa_pcms(&self) -> Result<Vec<AlsaPcm>> {
        let pcms = paravox_host_audio::alsa_pcms()
            .map_err(|error| ControlError::unavailable(error.to_string()))?;
        Ok(pcms
            .into_iter()
            .map(|pcm| AlsaPcm {
                name: pcm.name,
                description: pcm.description,
                playback: pcm.playback,
                capture: pcm.capture,
            })
            .collect())
    }
}

/// One PCM ALSA advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlsaPcm {
    /// The name to put after `alsa:`.
    pub name: String,
    /// ALSA's description.
    pub description: Option<String>,
    /// Usable for playback.
    pub playback: bool,
    /// Usable for capture.
    pub capture: bool,
}

fn no_card(id: CardId) -> ControlError {
    ControlError::not_found(format!("no card {id} (GET /api/cards lists them)"))
}

/// Creates the socket's directory for a declared card, as the daemon always has.
fn ensure_socket_dir(socket: &Path) -> std::io::Result<()> {
    match socket
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    }
}

/// Whether two declarations of a card differ in their budget alone (which applies live;
/// anything else needs the guest to probe again).
fn same_but_budget(running: &CardRequest, wanted: &CardRequest) -> bool {
    CardRequest {
        budget: wanted.budget.clone(),
        ..running.clone()
    } == *wanted
}
