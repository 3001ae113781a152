//! `/api/plugins`: the plugin library (shipped and installed WebAssembly plugins), uploads
//! that install or replace a plugin and hot-swap it on the streams using it, and removal.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{AppState, blocking};
use crate::error::{ApiError, Problem};
use crate::extract::ApiPath;
use paravox_control::plugins::{PluginInfo, Source};

/// Media types an upload may carry.
const WASM_TYPES: [&str; 2] = ["application/wasm", "application/octet-stream"];

/// Where a plugin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginSource {
    /// Built into paravox; cannot be removed.
    Shipped,
    /// Installed in the state directory's `plugins/` (over the API, `paravox plugin add`,
    /// or by copying the file there).
    Installed,
}

/// A WebAssembly module's bytes: the upload body's schema.
#[derive(Debug)]
pub struct WasmModule;

impl utoipa::PartialSchema for WasmModule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("A WebAssembly module"))
            .into()
    }
}

impl ToSchema for WasmModule {}

/// A parameter a plugin offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PluginParamView {
    /// Its name.
    pub name: String,
    /// Lowest value.
    pub min: f32,
    /// Highest value.
    pub max: f32,
    /// Value until set.
    pub default: f32,
    /// Unit for display (`linear`, `dB`, `ms`, …; may be empty).
    pub unit: String,
}

/// A plugin: its manifest, where it comes from, and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PluginView {
    /// Unique name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// `converter`, `resampler`, `mixer` or `effect` (only effects go in a stream's chain).
    pub kind: String,
    /// One line about it.
    pub description: String,
    /// Sample formats it reads.
    pub input_formats: Vec<String>,
    /// Sample formats it writes.
    pub output_formats: Vec<String>,
    /// `[min, max]` frames per second.
    pub rates: [u32; 2],
    /// `[min, max]` input channels.
    pub input_channels: [u32; 2],
    /// `[min, max]` output channels.
    pub output_channels: [u32; 2],
    /// Mixers: most inputs mixed at once (others 1).
    pub max_inputs: u32,
    /// Its parameters.
    pub params: Vec<PluginParamView>,
    /// SHA-256 of the module, hex.
    pub sha256: String,
    /// Shipped or installed.
    pub source: PluginSource,
    /// An installed plugin standing in for the shipped one of its name.
    pub shadows_shipped: bool,
    /// Faults (and refusals) of this plugin since the daemon started.
    pub faults: u64,
    /// Ids of the streams whose chain uses it.
    pub streams: Vec<u32>,
}

fn plugin_view(state: &AppState, info: PluginInfo) -> PluginView {
    PluginView {
        faults: state.plugin_faults().of(&info.name),
        streams: state.control().streams_using(&info.name),
        name: info.name,
        version: info.version,
        kind: info.kind,
        description: info.description,
        input_formats: info.input_formats,
        output_formats: info.output_formats,
        rates: info.rates,
        input_channels: info.input_channels,
        output_channels: info.output_channels,
        max_inputs: info.max_inputs,
        params: info
            .params
            .into_iter()
            .map(|p| PluginParamView {
                name: p.name,
                min: p.min,
                max: p.max,
                default: p.default,
                unit: p.unit,
            })
            .collect(),
        sha256: info.sha256,
        source: match info.source {
            Source::Shipped => PluginSource::Shipped,
            Source::Installed => PluginSource::Installed,
        },
        shadows_shipped: info.shadows_shipped,
    }
}

#[utoipa::path(get, path = "/api/plugins", tag = "plugins", operation_id = "list_plugins",
    responses(
        (status = 200, description = "Every plugin, by name", body = Vec<PluginView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<PluginView>>, ApiError> {
    let control = state.control().clone();
    let plugins = blocking(move || control.plugins()).await?;
    Ok(Json(
        plugins
            .into_iter()
            .map(|info| plugin_view(&state, info))
            .collect(),
    ))
}

/// Installs a plugin: the body is the `.wasm` module, checked by the plugin host (ABI,
/// exports, imports, manifest) before anything is written. It is stored as
/// `STATE_DIR/plugins/NAME.wasm` under the name its manifest gives, where the daemon's
/// watcher and `paravox plugin list` see it. A plugin of the same name is replaced, and
/// every stream using it moves to the new version at a cycle boundary.
#[utoipa::path(post, path = "/api/plugins", tag = "plugins", operation_id = "upload_plugin",
    request_body(content = WasmModule, content_type = "application/octet-stream", description = "The WebAssembly module (at most 16 MiB), sent as `application/octet-stream` or `application/wasm`"),
    responses(
        (status = 200, description = "Installed, replacing a plugin of the same name", body = PluginView),
        (status = 201, description = "Installed", body = PluginView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 16 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not sent as application/wasm or application/octet-stream", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a paravox plugin: the detail says why the host refused it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PluginView>), ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    if !media_type.is_some_and(|t| WASM_TYPES.contains(&t.as_str())) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the .wasm module as the body with `Content-Type: application/wasm`",
        ));
    }
    let wasm = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the module is larger than a plugin may be ({} MiB)",
                    crate::PLUGIN_BODY_LIMIT_BYTES >> 20
                ),
            )
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    })?;
    if wasm.is_empty() {
        return Err(ApiError::unprocessable(
            "the body is empty: send the .wasm module",
        ));
    }
    let control = state.control().clone();
    let (info, replaced, _moved) = blocking(move || control.install_plugin(&wasm)).await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(plugin_view(&state, info))))
}

/// One plugin.
#[utoipa::path(get, path = "/api/plugins/{name}", tag = "plugins", operation_id = "get_plugin",
    params(("name" = String, Path, description = "Plugin name")),
    responses(
        (status = 200, description = "The plugin", body = PluginView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plugin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PluginView>, ApiError> {
    let control = state.control().clone();
    let info = blocking(move || control.plugin(&name)).await?;
    Ok(Json(plugin_view(&state, info)))
}

/// Removes an installed plugin. Refused while a stream's chain uses it, unless a shipped
/// plugin of the same name can take over (it then serves those streams again).
#[utoipa::path(delete, path = "/api/plugins/{name}", tag = "plugins", operation_id = "delete_plugin",
    params(("name" = String, Path, description = "Plugin name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plugin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Shipped, or in use", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let control = state.control().clone();
    blocking(move || control.remove_plugin(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}
