//! A small blocking client of the API, so `paravox ctl` stays thin:
//!
//! ```no_run
//! # fn main() -> Result<(), paravox_api::Error> {
//! use paravox_api::client::Client;
//! let client = Client::from_state_dir("http://127.0.0.1:7860", "/var/lib/paravox".as_ref())?;
//! for stream in client.streams()? {
//!     println!("{} {} {:?}", stream.id, stream.name, stream.state);
//! }
//! client.set_volume(3, -6.0)?;
//! # Ok(())
//! # }
//! ```
//!
//! Plain HTTP only (the API listens on loopback); every failure is an [`Error`] whose
//! message is the API's problem detail.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::Agent;

use crate::error::{Error, Problem};
use crate::model::{CardRequest, EndpointRequest, StreamPatch, VolumeSetting};
use crate::token;
use crate::views::{AlsaPcmView, CardView, EndpointView, StreamView};

/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A client of one paravox API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    authorization: String,
    agent: Agent,
}

enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Client {
    /// A client of the API at `base_url` (`http://127.0.0.1:7860`) using `token`.
    pub fn new(base_url: &str, token: &str) -> Client {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        Client {
            base: base_url.trim_end_matches('/').to_owned(),
            authorization: format!("Bearer {}", token.trim()),
            agent,
        }
    }

    /// A client using the token in `state_dir/token`.
    pub fn from_state_dir(base_url: &str, state_dir: &Path) -> Result<Client, Error> {
        let path = token::path(state_dir);
        let text = std::fs::read_to_string(&path).map_err(|error| Error::Token {
            path: path.clone(),
            what: format!("reading: {error} (is the daemon's --state-dir this one?)"),
        })?;
        Ok(Client::new(base_url, &text))
    }

    /// The monitors listening now.
    pub fn monitors(&self) -> Result<Vec<crate::routes::listen::MonitorView>, Error> {
        self.call(Method::Get, "/api/monitors", None::<&()>)
    }

    /// The `ws://` URL of the API path `path` (a WebSocket route).
    pub fn websocket_url(&self, path: &str) -> String {
        let base = self
            .base
            .strip_prefix("http://")
            .map(|rest| format!("ws://{rest}"))
            .or_else(|| {
                self.base
                    .strip_prefix("https://")
                    .map(|rest| format!("wss://{rest}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{base}{path}")
    }

    /// The `Authorization` header's value.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// `/healthz`: whether the daemon answers, with its endpoint and card counts.
    pub fn health(&self) -> Result<crate::routes::health::Health, Error> {
        self.call(Method::Get, "/healthz", None::<&()>)
    }

    /// Every card.
    pub fn cards(&self) -> Result<Vec<CardView>, Error> {
        self.call(Method::Get, "/api/cards", None::<&()>)
    }

    /// Creates a virtio card.
    pub fn create_card(&self, request: &CardRequest) -> Result<CardView, Error> {
        self.call(Method::Post, "/api/cards", Some(request))
    }

    /// Deletes a card created over the API.
    pub fn delete_card(&self, id: u32) -> Result<(), Error> {
        self.call_empty(Method::Delete, &format!("/api/cards/{id}"))
    }

    /// Every stream.
    pub fn streams(&self) -> Result<Vec<StreamView>, Error> {
        self.call(Method::Get, "/api/streams", None::<&()>)
    }

    /// One stream.
    pub fn stream(&self, id: u32) -> Result<StreamView, Error> {
        self.call(Method::Get, &format!("/api/streams/{id}"), None::<&()>)
    }

    /// Sets every channel of a stream to `db`.
    pub fn set_volume(&self, id: u32, db: f32) -> Result<StreamView, Error> {
        self.patch(
            id,
            &StreamPatch {
                volume_db: Some(VolumeSetting::All(db)),
                ..StreamPatch::default()
            },
        )
    }

    /// Mutes or unmutes a stream.
    pub fn mute(&self, id: u32, muted: bool) -> Result<StreamView, Error> {
        self.patch(
            id,
            &StreamPatch {
                muted: Some(muted),
                ..StreamPatch::default()
            },
        )
    }

    /// Routes a stream to `endpoint` (`None`: the default of its direction).
    pub fn route(&self, id: u32, endpoint: Option<&str>) -> Result<StreamView, Error> {
        self.patch(
            id,
            &StreamPatch {
                route: Some(endpoint.map(str::to_owned)),
                ..StreamPatch::default()
            },
        )
    }

    /// Applies a patch to a stream.
    pub fn patch(&self, id: u32, patch: &StreamPatch) -> Result<StreamView, Error> {
        let mut body = serde_json::Map::new();
        if let Some(volume) = &patch.volume_db {
            body.insert("volume_db".into(), serde_json::json!(volume));
        }
        if let Some(muted) = patch.muted {
            body.insert("muted".into(), muted.into());
        }
        if let Some(route) = &patch.route {
            body.insert("route".into(), serde_json::json!(route));
        }
        if let Some(chain) = &patch.chain {
            body.insert("chain".into(), serde_json::json!(chain));
        }
        self.call(Method::Patch, &format!("/api/streams/{id}"), Some(&body))
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> Result<Vec<EndpointView>, Error> {
        self.call(Method::Get, "/api/endpoints", None::<&()>)
    }

    /// Opens an endpoint.
    pub fn create_endpoint(&self, request: &EndpointRequest) -> Result<EndpointView, Error> {
        self.call(Method::Post, "/api/endpoints", Some(request))
    }

    /// Closes an endpoint created over the API.
    pub fn delete_endpoint(&self, name: &str) -> Result<(), Error> {
        self.call_empty(Method::Delete, &format!("/api/endpoints/{name}"))
    }

    /// The host's ALSA PCMs.
    pub fn alsa_pcms(&self) -> Result<Vec<AlsaPcmView>, Error> {
        self.call(Method::Get, "/api/endpoints/alsa", None::<&()>)
    }

    fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<ureq::http::Response<ureq::Body>, Error> {
        let url = format!("{}{path}", self.base);
        let transport = |error: ureq::Error| Error::Transport {
            url: url.clone(),
            what: error.to_string(),
        };
        let auth = self.authorization.as_str();
        let with_body = |request: ureq::RequestBuilder<ureq::typestate::WithBody>| match body {
            Some(body) => request.header("Authorization", auth).send_json(body),
            None => request.header("Authorization", auth).send_empty(),
        };
        match method {
            Method::Get => self.agent.get(&url).header("Authorization", auth).call(),
            Method::Delete => self.agent.delete(&url).header("Authorization", auth).call(),
            Method::Post => with_body(self.agent.post(&url)),
            Method::Patch => with_body(self.agent.patch(&url)),
        }
        .map_err(transport)
    }

    fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let mut response = self.checked(self.send(method, path, body)?, path)?;
        response
            .body_mut()
            .read_json::<T>()
            .map_err(|error| Error::Transport {
                url: format!("{}{path}", self.base),
                what: format!("unreadable answer: {error}"),
            })
    }

    fn call_empty(&self, method: Method, path: &str) -> Result<(), Error> {
        self.checked(self.send(method, path, None::<&()>)?, path)
            .map(drop)
    }

    /// The response if it is a success, else its problem as an error.
    fn checked(
        &self,
        mut response: ureq::http::Response<ureq::Body>,
        path: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, Error> {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Err(match serde_json::from_str::<Problem>(&text) {
            Ok(problem) => Error::Api {
                status,
                title: problem.title,
                detail: problem.detail,
            },
            Err(_) => Error::Api {
                status,
                title: "unexpected answer".into(),
                detail: format!("{}{path}: {}", self.base, text.trim()),
            },
        })
    }
}
