//! Persistence: what the API created or changed, saved as `state.json` in the state
//! directory and recreated at start.
//!
//! The file holds the API's endpoints and virtio cards as they were asked for, and the
//! volume, mute, route and effect chain of every stream the API changed (installed
//! plugins are files in `plugins/` beside it), keyed by card name and stream
//! index (stream ids are not stable across restarts; names and indexes are).
//!
//! **Atomic saves.** The new state is written to `state.json.tmp` in the same directory,
//! flushed to disk, renamed over `state.json`, and the directory is flushed, so at every
//! moment `state.json` is either the old or the new state, whole, even if the process is
//! killed or the machine loses power mid-save. A leftover temp file is ignored.
//!
//! **At start** ([`restore`]), after the configuration file's objects exist: saved
//! endpoints are opened and saved cards created, except where the configuration already
//! has one of the same name (the configuration wins; the saved one is logged and dropped),
//! then the saved stream settings are applied to whichever card has the name. An object
//! whose device cannot be opened now is logged and kept in the file for the next start.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use paravox_engine::Engine;
use paravox_virtio_snd::VirtioCard;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::chain::Chains;
use crate::error::Error;
use crate::model::{
    CardRequest, ChainStage, DirectionName, EndpointRequest, StreamPatch, VolumeSetting,
};
use crate::plugins::PluginLibrary;
use crate::{host_endpoint, settings, virtio};

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// The temp file a save writes first.
pub const TEMP_FILE: &str = "state.json.tmp";
/// The format version this crate writes.
pub const STATE_VERSION: u32 = 1;

/// Where a stream is routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteSetting {
    /// The default endpoint of its direction.
    Default,
    /// A named endpoint.
    Endpoint(String),
}

/// The saved settings of one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedStream {
    /// Its card's name.
    pub card: String,
    /// Its index on the card.
    pub index: u32,
    /// Its direction, checked before the settings are applied.
    pub direction: DirectionName,
    /// Volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_db: Option<VolumeSetting>,
    /// Mute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    /// Route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteSetting>,
    /// Effect chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Vec<ChainStage>>,
}

impl SavedStream {
    /// The patch that reapplies these settings.
    pub fn patch(&self) -> StreamPatch {
        StreamPatch {
            volume_db: self.volume_db.clone(),
            muted: self.muted,
            route: self.route.clone().map(|route| match route {
                RouteSetting::Default => None,
                RouteSetting::Endpoint(name) => Some(name),
            }),
            chain: self.chain.clone(),
        }
    }

    /// Folds a newer patch into these settings.
    pub fn merge(&mut self, patch: &StreamPatch) {
        if let Some(volume) = &patch.volume_db {
            self.volume_db = Some(volume.clone());
        }
        if let Some(muted) = patch.muted {
            self.muted = Some(muted);
        }
        if let Some(route) = &patch.route {
            self.route = Some(match route {
                Some(name) => RouteSetting::Endpoint(name.clone()),
                None => RouteSetting::Default,
            });
        }
        if let Some(chain) = &patch.chain {
            self.chain = Some(chain.clone());
        }
    }
}

/// The contents of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// Format version.
    pub version: u32,
    /// Endpoints created over the API.
    #[serde(default)]
    pub endpoints: Vec<EndpointRequest>,
    /// virtio cards created over the API.
    #[serde(default)]
    pub cards: Vec<CardRequest>,
    /// Stream settings changed over the API.
    #[serde(default)]
    pub streams: Vec<SavedStream>,
}

impl Default for SavedState {
    fn default() -> Self {
        SavedState {
            version: STATE_VERSION,
            endpoints: Vec::new(),
            cards: Vec::new(),
            streams: Vec::new(),
        }
    }
}

impl SavedState {
    /// Reads `state_dir/state.json`; `None` when there is none.
    pub fn load(state_dir: &Path) -> Result<Option<SavedState>, Error> {
        let path = state_dir.join(STATE_FILE);
        let error = |what: String| Error::State {
            path: path.clone(),
            what,
        };
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(error(format!("reading: {e}"))),
        };
        let state: SavedState = serde_json::from_str(&text).map_err(|e| {
            error(format!(
                "not a paravox state file ({e}); fix it, or move it away to start without the API's saved objects"
            ))
        })?;
        if state.version != STATE_VERSION {
            return Err(error(format!(
                "format version {} is not the {STATE_VERSION} this paravox reads",
                state.version
            )));
        }
        Ok(Some(state))
    }

    /// Writes `state_dir/state.json` atomically (see the module docs).
    pub fn save(&self, state_dir: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::State {
            path: state_dir.join(STATE_FILE),
            what: format!("encoding: {e}"),
        })?;
        write_atomically(state_dir, STATE_FILE, &bytes).map_err(|e| Error::State {
            path: state_dir.join(STATE_FILE),
            what: format!("writing: {e}"),
        })
    }
}

/// Temp file in the same directory, fsync, rename, fsync the directory. A write that
/// fails (a full disk) removes the partial temp file, so it does not keep the space.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!("{name}.tmp"));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
    if let Err(error) = written {
        let _ = fs::remove_file(&temp);
        return Err(error);
    }
    fs::rename(&temp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// A virtio card the API created, with what it was asked for.
#[derive(Debug)]
pub(crate) struct OwnedCard {
    pub request: CardRequest,
    /// Serving the card; dropping it removes the socket.
    pub card: VirtioCard,
}

/// Everything the API owns, live, and how to save it.
#[derive(Debug)]
pub(crate) struct Owned {
    pub state_dir: PathBuf,
    pub endpoints: BTreeMap<String, EndpointRequest>,
    pub cards: BTreeMap<String, OwnedCard>,
    pub streams: BTreeMap<(String, u32), SavedStream>,
    /// Saved objects that could not be recreated at start, kept for the next one.
    pub dormant_endpoints: Vec<EndpointRequest>,
    pub dormant_cards: Vec<CardRequest>,
}

impl Owned {
    fn new(state_dir: &Path) -> Owned {
        Owned {
            state_dir: state_dir.to_owned(),
            endpoints: BTreeMap::new(),
            cards: BTreeMap::new(),
            streams: BTreeMap::new(),
            dormant_endpoints: Vec::new(),
            dormant_cards: Vec::new(),
        }
    }

    /// What `state.json` should hold now.
    pub fn snapshot(&self) -> SavedState {
        SavedState {
            version: STATE_VERSION,
            endpoints: self
                .endpoints
                .values()
                .chain(&self.dormant_endpoints)
                .cloned()
                .collect(),
            cards: self
                .cards
                .values()
                .map(|owned| &owned.request)
                .chain(&self.dormant_cards)
                .cloned()
                .collect(),
            streams: self.streams.values().cloned().collect(),
        }
    }

    /// Saves the current state, off the async runtime.
    pub async fn save(&self) -> Result<(), Error> {
        let snapshot = self.snapshot();
        let dir = self.state_dir.clone();
        tokio::task::spawn_blocking(move || snapshot.save(&dir))
            .await
            .map_err(|e| Error::State {
                path: self.state_dir.join(STATE_FILE),
                what: format!("the save task failed: {e}"),
            })?
    }

    /// Forgets a dormant object that a new one of the same name replaces.
    pub fn forget_dormant(&mut self, name: &str) {
        self.dormant_endpoints.retain(|e| e.name != name);
        self.dormant_cards.retain(|c| c.name != name);
    }
}

/// What [`restore`] brought back, handed to [`crate::serve`] so the API owns it.
#[derive(Debug)]
pub struct Restored {
    pub(crate) owned: Owned,
    pub(crate) plugins: Arc<PluginLibrary>,
    pub(crate) chains: Arc<Chains>,
}

impl Restored {
    /// Nothing restored (a first start, or tests).
    pub fn empty(state_dir: &Path) -> Restored {
        Restored {
            owned: Owned::new(state_dir),
            plugins: Arc::new(PluginLibrary::new(state_dir)),
            chains: Arc::new(Chains::default()),
        }
    }

    /// Names of the endpoints recreated.
    pub fn endpoints(&self) -> Vec<String> {
        self.owned.endpoints.keys().cloned().collect()
    }

    /// Names of the cards recreated.
    pub fn cards(&self) -> Vec<String> {
        self.owned.cards.keys().cloned().collect()
    }
}

/// Recreates what `state_dir/state.json` saved: call it after the configuration's
/// endpoints and cards exist (see the module docs for how the two combine). Fails only
/// when the file exists and cannot be read; objects that cannot be recreated are logged.
pub fn restore(engine: &Arc<Engine>, state_dir: &Path) -> Result<Restored, Error> {
    let mut restored = Restored::empty(state_dir);
    let Some(saved) = SavedState::load(state_dir)? else {
        return Ok(restored);
    };
    let owned = &mut restored.owned;
    for request in saved.endpoints {
        if engine.endpoint(&request.name).is_some() {
            warn!(
                endpoint = request.name,
                spec = request.spec,
                "the configuration has an endpoint of this name; it wins over the one saved by the API, which is dropped"
            );
            continue;
        }
        match host_endpoint::open(engine, &request, None) {
            Ok((_, saved)) => {
                owned.endpoints.insert(saved.name.clone(), saved);
            }
            Err(error) => {
                warn!(
                    endpoint = request.name,
                    spec = request.spec,
                    error = error.detail(),
                    "cannot reopen a saved endpoint; keeping it for the next start"
                );
                owned.dormant_endpoints.push(request);
            }
        }
    }
    for request in saved.cards {
        if engine
            .cards()
            .iter()
            .any(|card| card.name() == request.name)
        {
            warn!(
                card = request.name,
                "the configuration has a card of this name; it wins over the one saved by the API, which is dropped"
            );
            continue;
        }
        match virtio::spawn(engine, &request, None) {
            Ok((card, saved)) => {
                owned.cards.insert(
                    saved.name.clone(),
                    OwnedCard {
                        request: saved,
                        card,
                    },
                );
            }
            Err(error) => {
                warn!(
                    card = request.name,
                    error = error.detail(),
                    "cannot recreate a saved card; keeping it for the next start"
                );
                owned.dormant_cards.push(request);
            }
        }
    }
    for saved in saved.streams {
        apply_saved(engine, &saved, &restored.plugins, &restored.chains);
        owned
            .streams
            .insert((saved.card.clone(), saved.index), saved);
    }
    info!(
        endpoints = owned.endpoints.len(),
        cards = owned.cards.len(),
        streams = owned.streams.len(),
        "restored the API's saved state"
    );
    Ok(restored)
}

/// Applies one stream's saved settings, if its card and stream are there.
fn apply_saved(engine: &Engine, saved: &SavedStream, plugins: &PluginLibrary, chains: &Chains) {
    let stream = engine
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
    let patch = saved.patch();
    let result = settings::check(engine, &stream, &patch)
        .and_then(|()| settings::apply(&stream, &patch))
        .and_then(|()| match &patch.chain {
            Some(chain) => {
                let effects = crate::chain::resolve(plugins, &stream, chain)?;
                crate::chain::apply(engine, &stream, effects)?;
                chains.set(stream.id(), chain.clone());
                Ok(())
            }
            None => Ok(()),
        });
    match result {
        Ok(()) => info!(
            card = saved.card,
            stream = stream.id(),
            index = saved.index,
            "saved stream settings applied"
        ),
        Err(error) => warn!(
            card = saved.card,
            stream = stream.id(),
            error = error.detail(),
            "cannot apply saved stream settings"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_state() -> SavedState {
        SavedState {
            endpoints: vec![EndpointRequest {
                name: "sink".into(),
                direction: DirectionName::Playback,
                spec: "null".into(),
            }],
            streams: vec![SavedStream {
                card: "vm1".into(),
                index: 0,
                direction: DirectionName::Playback,
                volume_db: Some(VolumeSetting::All(-6.0)),
                muted: Some(true),
                route: Some(RouteSetting::Endpoint("sink".into())),
                chain: None,
            }],
            ..SavedState::default()
        }
    }

    #[test]
    fn a_saved_state_loads_back_identical() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(SavedState::load(dir.path()).expect("none"), None);
        let state = sample_state();
        state.save(dir.path()).expect("save");
        assert_eq!(SavedState::load(dir.path()).expect("load"), Some(state));
    }

    #[test]
    fn a_card_with_only_its_required_fields_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = SavedState {
            cards: vec![CardRequest {
                name: "vm".into(),
                socket: "/run/vm.sock".into(),
                streams: vec![crate::model::StreamTopologyRequest {
                    name: None,
                    direction: DirectionName::Capture,
                    route: None,
                    formats: None,
                    rates: None,
                    channels: None,
                    xrun_events: None,
                }],
                controls: None,
            }],
            ..SavedState::default()
        };
        state.save(dir.path()).expect("save");
        assert_eq!(SavedState::load(dir.path()).expect("load"), Some(state));
    }

    #[test]
    fn a_half_written_temp_file_does_not_affect_the_saved_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = sample_state();
        state.save(dir.path()).expect("save");
        // What a save killed between write and rename leaves behind.
        fs::write(dir.path().join(TEMP_FILE), b"{\"version\": 1, \"endpo").expect("temp");
        assert_eq!(
            SavedState::load(dir.path()).expect("load"),
            Some(state.clone())
        );
        // The next save overwrites it.
        let mut newer = state;
        newer.streams.clear();
        newer.save(dir.path()).expect("save again");
        assert_eq!(SavedState::load(dir.path()).expect("load"), Some(newer));
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(STATE_FILE), b"{").expect("write");
        let message = SavedState::load(dir.path())
            .expect_err("corrupt")
            .to_string();
        assert!(message.contains("move it away"), "{message}");
    }

    #[test]
    fn patches_merge_into_saved_settings() {
        let mut saved = sample_state().streams.remove(0);
        saved.merge(&StreamPatch {
            route: Some(None),
            muted: Some(false),
            ..StreamPatch::default()
        });
        assert_eq!(saved.route, Some(RouteSetting::Default));
        assert_eq!(saved.muted, Some(false));
        assert_eq!(saved.volume_db, Some(VolumeSetting::All(-6.0)));
        assert_eq!(saved.patch().route, Some(None));
    }
}
