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
//! What happens at start, and when the configuration and the API name the same thing, is
//! the control layer's business (see the crate docs); this module only reads and writes
//! the file.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ControlError, Result};
use crate::model::{
    CardRequest, ChainStage, DirectionName, EndpointRequest, StreamPatch, VolumeSetting,
};

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
    pub fn load(state_dir: &Path) -> Result<Option<SavedState>> {
        let path = state_dir.join(STATE_FILE);
        let error = |what: String| ControlError::internal(format!("{}: {what}", path.display()));
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
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let path = state_dir.join(STATE_FILE);
        let error = |what: String| ControlError::internal(format!("{}: {what}", path.display()));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| error(format!("encoding: {e}")))?;
        write_atomically(state_dir, STATE_FILE, &bytes).map_err(|e| error(format!("writing: {e}")))
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
                budget: None,
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
