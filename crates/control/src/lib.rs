//! paravox's control plane: the one desired-state model and the reconciler that makes
//! the engine match it.
//!
//! # Inputs
//!
//! Three front doors, one model. The configuration file (at start and on every SIGHUP
//! reload) and the command line become a [`Declaration`]; the API's requests are
//! [`model`] types. Both go through the same checks ([`endpoint`], [`card`], [`stream`],
//! [`dsp`]), so a bad value gets the same words whoever sent it; each front door adds only
//! where it was (`paravox.toml line 7: `, `streams[1]: `).
//!
//! # Who owns what
//!
//! - The **configuration file and command line declare** endpoints, default routes, virtio
//!   cards and the `dsp`/`mixer`/`chain` settings. A reload applies every change live: new
//!   and changed endpoints open, removed ones close, defaults move, default plugin sets,
//!   mixers and per-stream chains are rebuilt and swapped in at a cycle boundary, and new
//!   and removed cards come and go. Only a **changed** card waits for a restart: its guest
//!   must probe the device again to see a new topology.
//! - The **API creates** endpoints and virtio cards and changes streams (volume, mute,
//!   route, effect chain); [`Control`] saves all of it to `state.json` atomically (the only
//!   writer of that file) and recreates it at start. Declared objects cannot be deleted
//!   over the API (409); their streams' settings can be changed, and those changes are
//!   saved and win over the file's chain.
//! - **One name, one owner.** The API cannot create a name the configuration declares
//!   (409). A reload that declares a name the API made leaves the API's object alone and
//!   reports the conflict. At start, a saved object whose name the configuration now
//!   declares is logged and dropped: the file wins.

pub mod budget;
pub mod card;
pub mod chain;
mod control;
pub mod declared;
pub mod dsp;
pub mod endpoint;
pub mod error;
pub mod model;
pub mod paths;
pub mod plugins;
pub mod state;
pub mod stream;

pub use control::{AlsaPcm, Control, Options, Owner, Summary};
pub use declared::{Declaration, DeclaredEndpoint};
pub use error::{ControlError, ErrorKind, Result};
