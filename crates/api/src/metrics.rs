//! `/metrics`: Prometheus text exposition of every stream's and endpoint's counters.
//!
//! Streams are labelled `stream` (id), `card` (card name), `index`, `name` and `direction`;
//! endpoints `endpoint` and `direction`; plugin faults `plugin`. Positions reset when a stream is prepared, so
//! they are gauges; xruns, cycles and busy time only grow, so they are counters.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use paravox_engine::Engine;

use crate::app::AppState;
use crate::error::Problem;
use crate::views::stream_index;

/// The exposition format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "metrics", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid token (unless the daemon makes metrics public)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn scrape(State(state): State<AppState>) -> Response {
    let mut text = render(state.engine());
    render_plugin_faults(&state.plugin_faults().all(), &mut text);
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (key, text)) in labels.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(text));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn family<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text of everything the engine counts.
pub fn render(engine: &Engine) -> String {
    let mut out = String::new();
    render_streams(engine, &mut out);
    render_endpoints(engine, &mut out);
    render_listening(engine, &mut out);
    out
}

/// Monitors, and the browser microphones.
fn render_listening(engine: &Engine, out: &mut String) {
    let mut metric = family(
        out,
        "paravox_monitors",
        "gauge",
        "Monitors listening (dashboard tabs, ctl listen).",
    );
    metric.sample("paravox_monitors", &[], engine.monitors().len());
    let microphones: Vec<_> = engine
        .endpoints()
        .into_iter()
        .filter_map(|endpoint| {
            let stats = endpoint.microphone()?.stats();
            Some((endpoint.name().to_owned(), stats))
        })
        .collect();
    type Column = fn(&paravox_engine::microphone::MicrophoneStats) -> u64;
    let columns: [(&str, &str, &str, Column); 4] = [
        (
            "paravox_microphone_fed",
            "gauge",
            "1 while a browser feeds the microphone endpoint.",
            |s| u64::from(s.fed),
        ),
        (
            "paravox_microphone_received_frames_total",
            "counter",
            "Frames browsers sent the endpoint (in its rate).",
            |s| s.received_frames,
        ),
        (
            "paravox_microphone_dropped_frames_total",
            "counter",
            "Frames dropped because a browser sent faster than real time.",
            |s| s.dropped_frames,
        ),
        (
            "paravox_microphone_underruns_total",
            "counter",
            "Periods delivered short because the browser fell behind.",
            |s| s.underruns,
        ),
    ];
    for (name, kind, help, value) in columns {
        let mut metric = family(out, name, kind, help);
        for (endpoint, stats) in &microphones {
            metric.sample(name, &[("endpoint", endpoint)], value(stats));
        }
    }
}

fn render_streams(engine: &Engine, out: &mut String) {
    struct Row {
        labels: [String; 5],
        position_bytes: u64,
        position_frames: u64,
        queued_bytes: u64,
        xruns: u64,
        plugin_faults: u64,
        running: bool,
    }
    let rows: Vec<Row> = engine
        .streams()
        .iter()
        .map(|stream| {
            let status = stream.status();
            let card = engine
                .card(status.card)
                .map(|c| c.name().to_owned())
                .unwrap_or_default();
            let frame_bytes = status
                .params
                .and_then(|p| p.frame_bytes().ok())
                .unwrap_or(0);
            Row {
                labels: [
                    status.id.to_string(),
                    card,
                    stream_index(engine, stream).to_string(),
                    status.name,
                    status.direction.to_string(),
                ],
                position_bytes: status.position_bytes,
                position_frames: status
                    .position_bytes
                    .checked_div(u64::from(frame_bytes))
                    .unwrap_or(0),
                queued_bytes: status.queued_bytes,
                xruns: status.xruns,
                plugin_faults: stream.plugin_faults(),
                running: status.state == paravox_engine::StreamState::Running,
            }
        })
        .collect();
    fn labels(row: &Row) -> Vec<(&'static str, &str)> {
        const KEYS: [&str; 5] = ["stream", "card", "index", "name", "direction"];
        KEYS.iter()
            .zip(&row.labels)
            .map(|(key, value)| (*key, value.as_str()))
            .collect()
    }
    type Column = fn(&Row) -> u64;
    let columns: [(&str, &str, &str, Column); 6] = [
        (
            "paravox_stream_position_bytes",
            "gauge",
            "Bytes the endpoint consumed (playback) or produced (capture) since the stream was prepared.",
            |r| r.position_bytes,
        ),
        (
            "paravox_stream_position_frames",
            "gauge",
            "The position in frames.",
            |r| r.position_frames,
        ),
        (
            "paravox_stream_queued_bytes",
            "gauge",
            "Bytes between the guest and the endpoint.",
            |r| r.queued_bytes,
        ),
        (
            "paravox_stream_xruns_total",
            "counter",
            "Gaps in the middle of the stream: its ring ran dry (playback) or full (capture) and then moved again, or stayed so for 2 s while running; a stream that runs out and is stopped counts none.",
            |r| r.xruns,
        ),
        (
            "paravox_stream_plugin_faults_total",
            "counter",
            "Plugin stages of the stream disabled by a fault (the native stage served on).",
            |r| r.plugin_faults,
        ),
        (
            "paravox_stream_running",
            "gauge",
            "1 while the stream is running.",
            |r| u64::from(r.running),
        ),
    ];
    for (name, kind, help, value) in columns {
        let mut metric = family(out, name, kind, help);
        for row in &rows {
            metric.sample(name, &labels(row), value(row));
        }
    }
}

/// Faults (and set-up refusals) of each plugin, from the engine's events.
pub fn render_plugin_faults(counts: &std::collections::BTreeMap<String, u64>, out: &mut String) {
    let name = "paravox_plugin_faults_total";
    let mut metric = family(
        out,
        name,
        "counter",
        "Times a plugin was disabled by a fault or refused for a stream or mixer.",
    );
    for (plugin, count) in counts {
        metric.sample(name, &[("plugin", plugin)], count);
    }
}

fn render_endpoints(engine: &Engine, out: &mut String) {
    let endpoints = engine.endpoints();
    type Column = fn(&paravox_engine::endpoint::EndpointStats) -> String;
    let columns: [(&str, &str, &str, Column); 6] = [
        (
            "paravox_endpoint_cycles_total",
            "counter",
            "Cycles the endpoint's real-time thread ran.",
            |s| s.cycles().to_string(),
        ),
        (
            "paravox_endpoint_busy_seconds_total",
            "counter",
            "Time the endpoint's thread spent processing (not waiting on the device).",
            |s| format!("{:.9}", s.busy_total_ns() as f64 / 1e9),
        ),
        (
            "paravox_endpoint_busy_last_cycle_seconds",
            "gauge",
            "Processing time of the last cycle.",
            |s| format!("{:.9}", s.busy_ns() as f64 / 1e9),
        ),
        (
            "paravox_endpoint_device_xruns_total",
            "counter",
            "Xruns the host device reported.",
            |s| s.device_xruns().to_string(),
        ),
        (
            "paravox_endpoint_device_delay_frames",
            "gauge",
            "Frames the host device holds (its own latency).",
            |s| s.device_delay_frames().to_string(),
        ),
        (
            "paravox_endpoint_device_lost",
            "gauge",
            "1 while the endpoint's device is lost.",
            |s| u64::from(s.device_lost()).to_string(),
        ),
    ];
    for (name, kind, help, value) in columns {
        let mut metric = family(out, name, kind, help);
        for endpoint in &endpoints {
            let direction = endpoint.direction().to_string();
            metric.sample(
                name,
                &[("endpoint", endpoint.name()), ("direction", &direction)],
                value(endpoint.stats()),
            );
        }
    }
    let mut metric = family(
        out,
        "paravox_endpoint_streams",
        "gauge",
        "Streams attached to the endpoint.",
    );
    for endpoint in &endpoints {
        let direction = endpoint.direction().to_string();
        metric.sample(
            "paravox_endpoint_streams",
            &[("endpoint", endpoint.name()), ("direction", &direction)],
            endpoint.attached(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn browser_microphones_and_monitors_are_counted() {
        let engine = Engine::new();
        let format = paravox_engine::device::DeviceFormat {
            rate: 48_000,
            channels: 2,
            period_frames: 480,
        };
        engine
            .add_microphone_endpoint("mic", "browser", format)
            .expect("microphone");
        let _feeder = engine.feed_microphone("mic", 48_000, 1).expect("feed");
        let _monitor = engine.listen_to_endpoint("mic").expect("listen");
        let text = render(&engine);
        assert!(text.contains("paravox_monitors 1\n"), "{text}");
        assert!(
            text.contains("paravox_microphone_fed{endpoint=\"mic\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE paravox_microphone_underruns_total counter"));
    }

    #[test]
    fn an_empty_engine_still_declares_its_families() {
        let engine = Engine::new();
        let text = render(&engine);
        assert!(text.contains("# TYPE paravox_stream_xruns_total counter"));
        assert!(text.contains("# TYPE paravox_endpoint_cycles_total counter"));
    }
}
