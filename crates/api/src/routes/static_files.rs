//! The browser dashboard: `web/` compiled into the binary and served at `/`, without the
//! token (the page asks for it and sends it with every API call).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::AppState;

const INDEX_HTML: &str = include_str!("../../../../web/index.html");
const APP_JS: &str = include_str!("../../../../web/app.js");
const PLUGINS_JS: &str = include_str!("../../../../web/plugins.js");
const ROUTING_JS: &str = include_str!("../../../../web/routing.js");
const LISTEN_JS: &str = include_str!("../../../../web/listen.js");
const LISTEN_WORKLET_JS: &str = include_str!("../../../../web/listen-worklet.js");
const MIC_WORKLET_JS: &str = include_str!("../../../../web/mic-worklet.js");
const STYLE_CSS: &str = include_str!("../../../../web/style.css");

/// Same-origin scripts, styles and connections only; the page has no inline code. The
/// audio worklets load as scripts (`script-src`), and the microphone and the page's audio
/// output need no directive.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `/`, the scripts (`/app.js`, the modules it imports and the audio worklets that
/// `listen.js` loads) and `/style.css`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/plugins.js", get(plugins_js))
        .route("/routing.js", get(routing_js))
        .route("/listen.js", get(listen_js))
        .route("/listen-worklet.js", get(listen_worklet_js))
        .route("/mic-worklet.js", get(mic_worklet_js))
        .route("/style.css", get(style_css))
}

/// One embedded file with its type. `no-cache` makes the browser revalidate, so a new
/// binary's dashboard shows at once.
fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

async fn index() -> impl IntoResponse {
    file("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", APP_JS)
}

async fn plugins_js() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", PLUGINS_JS)
}

async fn routing_js() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", ROUTING_JS)
}

async fn listen_js() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", LISTEN_JS)
}

async fn listen_worklet_js() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", LISTEN_WORKLET_JS)
}

async fn mic_worklet_js() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", MIC_WORKLET_JS)
}

async fn style_css() -> impl IntoResponse {
    file("text/css; charset=utf-8", STYLE_CSS)
}
