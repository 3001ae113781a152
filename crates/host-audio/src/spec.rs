//! The `ENDPOINT` spec: one string naming a host endpoint, used alike by the CLI, the config
//! file and the API.
//!
//! ```text
//! wav:PATH        playback: write a WAV file, in real time
//! null            playback: discard, in real time
//! alsa:PCM        playback or capture: an ALSA PCM (default, hw:0,0, plughw:1, dmix, …)
//! pipewire        playback or capture: a node in the desktop's PipeWire graph
//! pipewire:TARGET the same, linked to the node named TARGET (`target.object`)
//! tone:FREQ       capture: a sine at FREQ Hz
//! wavsrc:PATH     capture: a WAV file, in real time
//! browser         capture: a microphone in a browser, fed over the API (silence until one is)
//! ```
//!
//! each followed by optional `,key=value` options:
//!
//! | option | meaning | applies to | default |
//! |---|---|---|---|
//! | `rate=R` | frames per second, 1000..=768000 | all | 48000 (wavsrc: the file's) |
//! | `channels=C` | channels, 1..=32 | all | 2 (wavsrc: the file's) |
//! | `period=F` | frames per endpoint cycle, 16..=65536 | all | 480 (10 ms at 48 kHz) |
//! | `format=F` | sample format, as `paravox_pcm::Format::parse` reads it (`s16_le`, `float_le`, …) | wav (the file's format), alsa (asked of the device) | wav: s16_le; alsa: float_le, else s16_le |
//! | `buffer=N` | device buffer in periods, 2..=64 | alsa | 4 |
//! | `mode=mix\|stream` | `mix`: one node carries the mix of every stream routed here; `stream`: every guest stream gets a node of its own, named after its VM (card) and stream | pipewire | mix |
//! | `idle=S\|never` | seconds a PCM with its own clock keeps running with no stream before it is closed (reopened at the next start), 0..=86400 | alsa | 5 |
//! | `loop=0\|1` | start again at the end of the file | wavsrc | 0: silence after the end |
//! | `amplitude=DB` | tone level in dBFS, -120..=0 | tone | -3 |
//!
//! **Where the options start.** ALSA PCM names contain `:` and `,` themselves
//! (`plughw:0,0`, `hw:CARD=PCH,DEV=0`), and file names may contain commas. So the options are
//! the longest run of trailing comma-separated segments that look like `key=value` with a key
//! of lower-case ASCII letters only; everything before is `KIND:VALUE`. Such a segment must
//! be a known option, so a typo (`chanels=1`) is an error, never part of a file name. ALSA's
//! own arguments are upper case (`CARD=`, `DEV=`, `FILE=`) and therefore stay with the PCM
//! name: `alsa:hw:CARD=PCH,DEV=0,rate=44100` is the PCM `hw:CARD=PCH,DEV=0` at 44.1 kHz.
//! The one thing this cannot express is a path or PCM name whose last comma segment itself
//! looks like `lowercase=value`.
//!
//! **A WAV source at its end** plays silence and keeps its pace unless `loop=1`: a guest
//! that is recording never sees its capture stream stall because a file ran out.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use paravox_engine::device::{
    CaptureOpener, DeviceError, DeviceFormat, PlaybackOpener, StreamDevices,
};
use paravox_pcm::Format;

use crate::alsa::{AlsaCaptureOpener, AlsaPlaybackOpener, DEFAULT_IDLE_CLOSE};
use crate::error::HostAudioError;
use crate::file_sink::WavSinkOpener;
use crate::file_source::WavSourceOpener;
use crate::null::NullSinkOpener;
use crate::pipewire::{NodeNames, PipewireCaptureOpener, PipewirePlaybackOpener};
use crate::tone::ToneSourceOpener;
use crate::wav::wav_can_write;

/// Endpoint rate when the spec gives none.
pub const DEFAULT_RATE: u32 = 48_000;
/// Endpoint channel count when the spec gives none.
pub const DEFAULT_CHANNELS: u32 = 2;
/// Frames per endpoint cycle when the spec gives none: 10 ms at the default rate.
pub const DEFAULT_PERIOD_FRAMES: u32 = 480;
/// ALSA buffer size in periods when the spec gives none.
pub const DEFAULT_BUFFER_PERIODS: u32 = 4;
/// Tone level when the spec gives none: loud enough to hear, with headroom to mix.
pub const DEFAULT_TONE_AMPLITUDE_DBFS: f64 = -3.0;
/// Sample format of a WAV sink when the spec gives none: what every player reads.
pub const DEFAULT_WAV_FORMAT: Format = Format::S16Le;

const RATE_MIN: u32 = 1_000;
const RATE_MAX: u32 = 768_000;
const CHANNELS_MIN: u32 = 1;
const CHANNELS_MAX: u32 = 32;
const PERIOD_MIN: u32 = 16;
const PERIOD_MAX: u32 = 65_536;
const BUFFER_MIN: u32 = 2;
const BUFFER_MAX: u32 = 64;
const AMPLITUDE_MIN_DBFS: f64 = -120.0;
const IDLE_MAX_SECONDS: u32 = 86_400;

const KINDS_HINT: &str =
    "expected wav:PATH, null, alsa:PCM, pipewire[:TARGET], tone:FREQ, wavsrc:PATH or browser";
const OPTIONS_HINT: &str =
    "expected rate, channels, format, period, buffer, idle, mode, loop or amplitude";

/// `idle=`: how long an endpoint keeps a device with a clock of its own running while no
/// stream runs, before it closes it until the next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleClose {
    /// `idle=S`: after S seconds (0: as soon as the last stream stops).
    After(u32),
    /// `idle=never`: the device stays open and running.
    Never,
}

/// What kind of endpoint, with its kind-specific arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointKind {
    /// `wav:PATH`: a WAV file sink.
    Wav { path: PathBuf },
    /// `null`: a sink that discards.
    Null,
    /// `alsa:PCM`: an ALSA PCM, for playback or capture.
    Alsa { pcm: String },
    /// `pipewire[:TARGET]`: a PipeWire stream node, for playback or capture, linked to
    /// the node named TARGET or wherever the session manager links it; with
    /// `per_stream` (`mode=stream`) one node per guest stream instead of one mix.
    Pipewire {
        target: Option<String>,
        per_stream: bool,
    },
    /// `tone:FREQ`: a sine source.
    Tone {
        frequency_hz: f64,
        amplitude_dbfs: f64,
    },
    /// `wavsrc:PATH`: a WAV file source.
    WavSource { path: PathBuf, looping: bool },
    /// `browser`: a microphone in the dashboard, fed over the API's WebSocket; silence
    /// while no browser feeds it. The engine opens it
    /// ([`paravox_engine::Engine::add_microphone_endpoint`]), not an opener.
    Browser,
}

/// A parsed `ENDPOINT` string. Options the string did not give are `None`; the
/// `effective_*` methods apply the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSpec {
    /// The endpoint kind and its argument.
    pub kind: EndpointKind,
    /// `rate=`: frames per second.
    pub rate: Option<u32>,
    /// `channels=`: interleaved channels per frame.
    pub channels: Option<u32>,
    /// wav: the file's sample format; alsa: the format asked of the device.
    pub format: Option<Format>,
    /// `period=`: frames per endpoint cycle.
    pub period_frames: Option<u32>,
    /// alsa only: device buffer size in periods.
    pub buffer_periods: Option<u32>,
    /// alsa only: when an idle device is closed.
    pub idle: Option<IdleClose>,
}

impl EndpointSpec {
    /// True for endpoints that can take playback: `wav`, `null`, `alsa`, `pipewire`.
    pub fn is_playback(&self) -> bool {
        matches!(
            self.kind,
            EndpointKind::Wav { .. }
                | EndpointKind::Null
                | EndpointKind::Alsa { .. }
                | EndpointKind::Pipewire { .. }
        )
    }

    /// True for endpoints that can produce capture: `tone`, `wavsrc`, `alsa`, and `null`
    /// (silence).
    pub fn is_capture(&self) -> bool {
        matches!(
            self.kind,
            EndpointKind::Tone { .. }
                | EndpointKind::WavSource { .. }
                | EndpointKind::Alsa { .. }
                | EndpointKind::Pipewire { .. }
                | EndpointKind::Null
                | EndpointKind::Browser
        )
    }

    /// The rate given, or [`DEFAULT_RATE`]. A `wavsrc` without `rate=` runs at the file's
    /// rate instead: see [`EndpointSpec::device_format`].
    pub fn effective_rate(&self) -> u32 {
        self.rate.unwrap_or(DEFAULT_RATE)
    }

    /// The channel count given, or [`DEFAULT_CHANNELS`] (a `wavsrc`: the file's).
    pub fn effective_channels(&self) -> u32 {
        self.channels.unwrap_or(DEFAULT_CHANNELS)
    }

    /// The period given, or [`DEFAULT_PERIOD_FRAMES`].
    pub fn effective_period_frames(&self) -> u32 {
        self.period_frames.unwrap_or(DEFAULT_PERIOD_FRAMES)
    }

    /// The ALSA buffer size in periods given, or [`DEFAULT_BUFFER_PERIODS`].
    pub fn effective_buffer_periods(&self) -> u32 {
        self.buffer_periods.unwrap_or(DEFAULT_BUFFER_PERIODS)
    }

    /// How long an idle device with a clock of its own keeps running before it is closed
    /// (`None`: never); [`DEFAULT_IDLE_CLOSE`] unless `idle=` says otherwise.
    pub fn idle_close(&self) -> Option<Duration> {
        match self.idle {
            None => Some(DEFAULT_IDLE_CLOSE),
            Some(IdleClose::After(seconds)) => Some(Duration::from_secs(u64::from(seconds))),
            Some(IdleClose::Never) => None,
        }
    }

    /// The endpoint format the device will be opened with. For `wavsrc` this reads the
    /// file's header (rate and channels default to the file's own).
    pub fn device_format(&self) -> Result<DeviceFormat, HostAudioError> {
        match &self.kind {
            EndpointKind::WavSource { .. } => Ok(self.wav_source_opener()?.device_format()),
            _ => Ok(DeviceFormat {
                rate: self.effective_rate(),
                channels: self.effective_channels(),
                period_frames: self.effective_period_frames(),
            }),
        }
    }

    /// An opener for a playback endpoint; an error for a capture-only spec.
    pub fn playback_opener(&self) -> Result<Box<dyn PlaybackOpener>, HostAudioError> {
        self.playback_opener_for("paravox")
    }

    /// How the endpoint named `endpoint` shows in PipeWire's graph: node `paravox.NAME`,
    /// described as `paravox NAME` in mixers.
    fn node_names(endpoint: &str) -> NodeNames {
        NodeNames {
            node_name: format!("paravox.{endpoint}"),
            description: format!("paravox {endpoint}"),
            media_name: endpoint.to_owned(),
            application_name: "paravox".to_owned(),
        }
    }

    /// For `pipewire,mode=stream`: the node each guest stream gets of its own, named
    /// after its card (the VM) and stream; `None` for every other spec.
    pub fn stream_devices(&self) -> Option<Arc<dyn StreamDevices>> {
        match &self.kind {
            EndpointKind::Pipewire {
                target,
                per_stream: true,
            } => Some(Arc::new(PipewireStreamNodes {
                target: target.clone(),
                format: DeviceFormat {
                    rate: self.effective_rate(),
                    channels: self.effective_channels(),
                    period_frames: self.effective_period_frames(),
                },
            })),
            _ => None,
        }
    }

    /// [`EndpointSpec::playback_opener`] for the endpoint named `endpoint` (a PipeWire
    /// node is named after it).
    pub fn playback_opener_for(
        &self,
        endpoint: &str,
    ) -> Result<Box<dyn PlaybackOpener>, HostAudioError> {
        let device_format = DeviceFormat {
            rate: self.effective_rate(),
            channels: self.effective_channels(),
            period_frames: self.effective_period_frames(),
        };
        match &self.kind {
            EndpointKind::Wav { path } => Ok(Box::new(WavSinkOpener::new(
                path.clone(),
                self.format.unwrap_or(DEFAULT_WAV_FORMAT),
                device_format,
            )?)),
            EndpointKind::Null => Ok(Box::new(NullSinkOpener::new(device_format))),
            EndpointKind::Pipewire { target, .. } => Ok(Box::new(PipewirePlaybackOpener::new(
                Self::node_names(endpoint),
                target.clone(),
                device_format,
            ))),
            EndpointKind::Alsa { pcm } => Ok(Box::new(
                AlsaPlaybackOpener::new(
                    pcm.clone(),
                    self.format,
                    device_format,
                    self.effective_buffer_periods(),
                )
                .with_idle_close(self.idle_close()),
            )),
            EndpointKind::Tone { .. } | EndpointKind::WavSource { .. } | EndpointKind::Browser => {
                Err(HostAudioError::WrongDirection {
                    spec: self.to_string(),
                    direction: "playback",
                    hint: "it is a capture source; playback goes to wav:PATH, null, alsa:PCM or pipewire",
                })
            }
        }
    }

    /// An opener for a capture endpoint; an error for a playback-only spec. A `wavsrc`
    /// reads its file's header here, so a missing file or a rate/channel mismatch is
    /// reported now rather than when the endpoint starts.
    pub fn capture_opener(&self) -> Result<Box<dyn CaptureOpener>, HostAudioError> {
        self.capture_opener_for("paravox")
    }

    /// [`EndpointSpec::capture_opener`] for the endpoint named `endpoint`.
    pub fn capture_opener_for(
        &self,
        endpoint: &str,
    ) -> Result<Box<dyn CaptureOpener>, HostAudioError> {
        let device_format = DeviceFormat {
            rate: self.effective_rate(),
            channels: self.effective_channels(),
            period_frames: self.effective_period_frames(),
        };
        match &self.kind {
            EndpointKind::Tone {
                frequency_hz,
                amplitude_dbfs,
            } => Ok(Box::new(ToneSourceOpener::new(
                *frequency_hz,
                *amplitude_dbfs,
                device_format,
            ))),
            EndpointKind::WavSource { .. } => Ok(Box::new(self.wav_source_opener()?)),
            EndpointKind::Pipewire { target, .. } => Ok(Box::new(PipewireCaptureOpener::new(
                Self::node_names(endpoint),
                target.clone(),
                device_format,
            ))),
            EndpointKind::Alsa { pcm } => Ok(Box::new(
                AlsaCaptureOpener::new(
                    pcm.clone(),
                    self.format,
                    device_format,
                    self.effective_buffer_periods(),
                )
                .with_idle_close(self.idle_close()),
            )),
            EndpointKind::Null => Ok(Box::new(NullSinkOpener::new(device_format))),
            EndpointKind::Browser => Err(HostAudioError::InvalidSpec {
                spec: self.to_string(),
                reason: "a browser microphone is fed over the API: the engine opens it as one"
                    .to_string(),
            }),
            EndpointKind::Wav { .. } => Err(HostAudioError::WrongDirection {
                spec: self.to_string(),
                direction: "capture",
                hint: "it is a playback sink; capture comes from tone:FREQ, wavsrc:PATH, alsa:PCM, pipewire, browser or null",
            }),
        }
    }

    fn wav_source_opener(&self) -> Result<WavSourceOpener, HostAudioError> {
        match &self.kind {
            EndpointKind::WavSource { path, looping } => WavSourceOpener::new(
                path.clone(),
                self.rate,
                self.channels,
                self.effective_period_frames(),
                *looping,
            ),
            _ => Err(HostAudioError::WrongDirection {
                spec: self.to_string(),
                direction: "a WAV source",
                hint: "only wavsrc:PATH reads a file",
            }),
        }
    }
}

/// `pipewire,mode=stream`: a node per guest stream.
#[derive(Debug)]
struct PipewireStreamNodes {
    target: Option<String>,
    format: DeviceFormat,
}

impl PipewireStreamNodes {
    /// Node `paravox.CARD.STREAM`, shown as `CARD STREAM`, of application `CARD`: the VM
    /// by name in the mixer.
    fn names(card: &str, stream: &str) -> NodeNames {
        NodeNames {
            node_name: format!("paravox.{card}.{stream}"),
            description: format!("{card} {stream}"),
            media_name: format!("{card} {stream}"),
            application_name: card.to_owned(),
        }
    }
}

impl StreamDevices for PipewireStreamNodes {
    fn playback(&self, card: &str, stream: &str) -> Result<Box<dyn PlaybackOpener>, DeviceError> {
        Ok(Box::new(PipewirePlaybackOpener::new(
            Self::names(card, stream),
            self.target.clone(),
            self.format,
        )))
    }

    fn capture(&self, card: &str, stream: &str) -> Result<Box<dyn CaptureOpener>, DeviceError> {
        Ok(Box::new(PipewireCaptureOpener::new(
            Self::names(card, stream),
            self.target.clone(),
            self.format,
        )))
    }
}

/// The options a spec string gave, before they are checked against its kind.
#[derive(Debug, Default)]
struct Options {
    rate: Option<u32>,
    channels: Option<u32>,
    format: Option<Format>,
    period_frames: Option<u32>,
    buffer_periods: Option<u32>,
    idle: Option<IdleClose>,
    per_stream: Option<bool>,
    looping: Option<bool>,
    amplitude_dbfs: Option<f64>,
}

/// True for a segment of the form `key=value` whose key is lower-case ASCII letters.
fn looks_like_option(segment: &str) -> bool {
    segment.split_once('=').is_some_and(|(key, _)| {
        !key.is_empty() && key.bytes().all(|byte| byte.is_ascii_lowercase())
    })
}

fn parse_ranged(name: &str, value: &str, min: u32, max: u32) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(number) if (min..=max).contains(&number) => Ok(number),
        _ => Err(format!(
            "bad {name} '{value}': expected a whole number in {min}..={max}"
        )),
    }
}

fn parse_option(options: &mut Options, key: &str, value: &str) -> Result<(), String> {
    fn set<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), String> {
        if slot.is_some() {
            return Err(format!("option '{key}' given twice"));
        }
        *slot = Some(value);
        Ok(())
    }
    match key {
        "rate" => set(
            &mut options.rate,
            key,
            parse_ranged("rate", value, RATE_MIN, RATE_MAX)?,
        ),
        "channels" => set(
            &mut options.channels,
            key,
            parse_ranged("channels", value, CHANNELS_MIN, CHANNELS_MAX)?,
        ),
        "period" => set(
            &mut options.period_frames,
            key,
            parse_ranged("period", value, PERIOD_MIN, PERIOD_MAX)?,
        ),
        "buffer" => set(
            &mut options.buffer_periods,
            key,
            parse_ranged("buffer", value, BUFFER_MIN, BUFFER_MAX)?,
        ),
        "mode" => {
            let per_stream = match value {
                "stream" => true,
                "mix" => false,
                _ => {
                    return Err(format!(
                        "bad mode '{value}': expected mix (one node for every stream) or \
                         stream (a node per guest stream)"
                    ));
                }
            };
            set(&mut options.per_stream, key, per_stream)
        }
        "idle" => {
            let idle = if value == "never" {
                IdleClose::Never
            } else {
                IdleClose::After(
                    parse_ranged("idle", value, 0, IDLE_MAX_SECONDS)
                        .map_err(|why| format!("{why}, or never"))?,
                )
            };
            set(&mut options.idle, key, idle)
        }
        "format" => {
            let format = Format::parse(value).ok_or_else(|| {
                format!(
                    "bad format '{value}': expected a sample format such as s16_le, s24_3le, \
                     s32_le or float_le"
                )
            })?;
            set(&mut options.format, key, format)
        }
        "loop" => {
            let looping = match value {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(format!("bad loop value '{value}': expected 0 or 1")),
            };
            set(&mut options.looping, key, looping)
        }
        "amplitude" => {
            let amplitude = value
                .parse::<f64>()
                .ok()
                .filter(|db| (AMPLITUDE_MIN_DBFS..=0.0).contains(db))
                .ok_or_else(|| {
                    format!(
                        "bad amplitude '{value}': expected dBFS in {AMPLITUDE_MIN_DBFS}..=0, \
                         e.g. amplitude=-6"
                    )
                })?;
            set(&mut options.amplitude_dbfs, key, amplitude)
        }
        _ => Err(format!("unknown option '{key}': {OPTIONS_HINT}")),
    }
}

/// Refuses an option given to a kind it means nothing for.
fn refuse_if_set<T>(slot: &Option<T>, key: &str, why: &str) -> Result<(), String> {
    match slot {
        Some(_) => Err(format!("option '{key}' {why}")),
        None => Ok(()),
    }
}

fn require_value<'a>(kind: &str, value: Option<&'a str>, example: &str) -> Result<&'a str, String> {
    match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(format!("{kind}: needs an argument, e.g. {example}")),
    }
}

fn parse_kind(kind: &str, value: Option<&str>, options: &Options) -> Result<EndpointKind, String> {
    let endpoint_kind = match kind {
        "wav" => EndpointKind::Wav {
            path: PathBuf::from(require_value(kind, value, "wav:/tmp/out.wav")?),
        },
        "null" => {
            if value.is_some() {
                return Err("null takes no argument: write just 'null'".to_string());
            }
            EndpointKind::Null
        }
        "browser" => {
            if value.is_some() {
                return Err("browser takes no argument: write just 'browser'".to_string());
            }
            EndpointKind::Browser
        }
        "alsa" => EndpointKind::Alsa {
            pcm: require_value(kind, value, "alsa:default or alsa:plughw:0,0")?.to_string(),
        },
        "pipewire" => EndpointKind::Pipewire {
            per_stream: options.per_stream.unwrap_or(false),
            target: match value {
                None => None,
                Some("") => {
                    return Err(
                        "pipewire: needs a node name after the colon, or none at all: \
                         pipewire or pipewire:alsa_output.pci-0000_00_1f.3.analog-stereo"
                            .to_string(),
                    );
                }
                Some(target) => Some(target.to_string()),
            },
        },
        "tone" => {
            let text = require_value(kind, value, "tone:440")?;
            let frequency_hz = text
                .parse::<f64>()
                .ok()
                .filter(|hz| hz.is_finite() && *hz > 0.0)
                .ok_or_else(|| {
                    format!("bad tone frequency '{text}': expected Hz above 0, e.g. tone:440")
                })?;
            let rate = options.rate.unwrap_or(DEFAULT_RATE);
            if frequency_hz >= f64::from(rate) / 2.0 {
                return Err(format!(
                    "tone frequency {frequency_hz} Hz must be below half the rate ({} Hz at \
                     rate {rate})",
                    f64::from(rate) / 2.0
                ));
            }
            EndpointKind::Tone {
                frequency_hz,
                amplitude_dbfs: options
                    .amplitude_dbfs
                    .unwrap_or(DEFAULT_TONE_AMPLITUDE_DBFS),
            }
        }
        "wavsrc" => EndpointKind::WavSource {
            path: PathBuf::from(require_value(kind, value, "wavsrc:/tmp/in.wav")?),
            looping: options.looping.unwrap_or(false),
        },
        _ => return Err(format!("unknown endpoint kind '{kind}': {KINDS_HINT}")),
    };
    check_options_apply(&endpoint_kind, options)?;
    Ok(endpoint_kind)
}

fn check_options_apply(kind: &EndpointKind, options: &Options) -> Result<(), String> {
    let alsa_only = "applies only to alsa: endpoints";
    let wavsrc_only = "applies only to wavsrc: endpoints";
    let tone_only = "applies only to tone: endpoints";
    if !matches!(kind, EndpointKind::Alsa { .. }) {
        refuse_if_set(&options.buffer_periods, "buffer", alsa_only)?;
        refuse_if_set(
            &options.idle,
            "idle",
            "applies only to alsa: endpoints (the others keep no clock of their own and \
             pause as soon as no stream runs)",
        )?;
    }
    if !matches!(kind, EndpointKind::Pipewire { .. }) {
        refuse_if_set(
            &options.per_stream,
            "mode",
            "applies only to pipewire endpoints",
        )?;
    }
    if !matches!(kind, EndpointKind::WavSource { .. }) {
        refuse_if_set(&options.looping, "loop", wavsrc_only)?;
    }
    if !matches!(kind, EndpointKind::Tone { .. }) {
        refuse_if_set(&options.amplitude_dbfs, "amplitude", tone_only)?;
    }
    match (kind, options.format) {
        (_, None) => Ok(()),
        (EndpointKind::Wav { .. }, Some(format)) if !wav_can_write(format) => Err(format!(
            "format {format} cannot be written to a WAV file: use u8, s16_le, s24_3le, s32_le, \
             float_le or float64_le"
        )),
        (EndpointKind::Alsa { .. }, Some(format))
            if !format.is_convertible() || format.bytes_per_sample().is_none() =>
        {
            Err(format!(
                "format {format} cannot be converted to or from audio samples: use a linear \
                 PCM, float or G.711 format"
            ))
        }
        (EndpointKind::Wav { .. } | EndpointKind::Alsa { .. }, Some(_)) => Ok(()),
        (EndpointKind::WavSource { .. }, Some(_)) => Err(
            "option 'format' does not apply to wavsrc: the file's header gives its format"
                .to_string(),
        ),
        (
            EndpointKind::Null
            | EndpointKind::Tone { .. }
            | EndpointKind::Pipewire { .. }
            | EndpointKind::Browser,
            Some(_),
        ) => Err("option 'format' applies only to wav: and alsa: endpoints".to_string()),
    }
}

impl FromStr for EndpointSpec {
    type Err = HostAudioError;

    fn from_str(text: &str) -> Result<EndpointSpec, HostAudioError> {
        let invalid = |reason: String| HostAudioError::InvalidSpec {
            spec: text.to_string(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(invalid(format!("the endpoint is empty: {KINDS_HINT}")));
        }
        let segments: Vec<&str> = text.split(',').collect();
        // The first segment always holds the kind, so it is never an option.
        let mut options_start = segments.len();
        while options_start > 1 && looks_like_option(segments[options_start - 1]) {
            options_start -= 1;
        }
        let mut options = Options::default();
        for segment in &segments[options_start..] {
            // `looks_like_option` saw the '=' in every one of these segments.
            if let Some((key, value)) = segment.split_once('=') {
                parse_option(&mut options, key, value).map_err(invalid)?;
            }
        }
        let head = segments[..options_start].join(",");
        let (kind, value) = match head.split_once(':') {
            Some((kind, value)) => (kind, Some(value)),
            None => (head.as_str(), None),
        };
        let kind = parse_kind(kind, value, &options).map_err(invalid)?;
        Ok(EndpointSpec {
            kind,
            rate: options.rate,
            channels: options.channels,
            format: options.format,
            period_frames: options.period_frames,
            buffer_periods: options.buffer_periods,
            idle: options.idle,
        })
    }
}

impl fmt::Display for EndpointSpec {
    /// Writes the spec back in the form [`FromStr`] reads, giving only the options that were
    /// set (and a tone's amplitude or a source's `loop=1` only when not the default).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EndpointKind::Wav { path } => write!(f, "wav:{}", path.display())?,
            EndpointKind::Null => f.write_str("null")?,
            EndpointKind::Browser => f.write_str("browser")?,
            EndpointKind::Alsa { pcm } => write!(f, "alsa:{pcm}")?,
            EndpointKind::Pipewire { target: None, .. } => f.write_str("pipewire")?,
            EndpointKind::Pipewire {
                target: Some(target),
                ..
            } => write!(f, "pipewire:{target}")?,
            EndpointKind::Tone { frequency_hz, .. } => write!(f, "tone:{frequency_hz}")?,
            EndpointKind::WavSource { path, .. } => write!(f, "wavsrc:{}", path.display())?,
        }
        if let Some(rate) = self.rate {
            write!(f, ",rate={rate}")?;
        }
        if let Some(channels) = self.channels {
            write!(f, ",channels={channels}")?;
        }
        if let Some(format) = self.format {
            write!(f, ",format={}", format.name())?;
        }
        if let Some(period) = self.period_frames {
            write!(f, ",period={period}")?;
        }
        if let Some(buffer) = self.buffer_periods {
            write!(f, ",buffer={buffer}")?;
        }
        match self.idle {
            Some(IdleClose::After(seconds)) => write!(f, ",idle={seconds}")?,
            Some(IdleClose::Never) => f.write_str(",idle=never")?,
            None => {}
        }
        match &self.kind {
            EndpointKind::Pipewire {
                per_stream: true, ..
            } => f.write_str(",mode=stream"),
            EndpointKind::WavSource { looping: true, .. } => f.write_str(",loop=1"),
            EndpointKind::Tone { amplitude_dbfs, .. }
                if *amplitude_dbfs != DEFAULT_TONE_AMPLITUDE_DBFS =>
            {
                write!(f, ",amplitude={amplitude_dbfs}")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
