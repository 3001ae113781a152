//! Opening an ALSA PCM and negotiating its hardware and software parameters.
//!
//! Rate and channel count are set exactly (the endpoint's format is fixed; a `plughw:` or
//! `plug:` PCM converts if the card cannot), the period and buffer sizes as near as the
//! device allows. Every refusal names the PCM and what it would accept.

use std::ffi::CString;

use ::alsa::pcm::{Access, Format as AlsaFormat, Frames, HwParams, PCM};
use ::alsa::{Direction, ValueOr};
use paravox_engine::device::DeviceFormat;
use paravox_pcm::Format;

use crate::error::HostAudioError;

/// Formats tried, in order, when the spec names none: float needs no conversion in the
/// engine, S16 is what nearly every card takes.
const PREFERRED_FORMATS: [Format; 2] = [Format::F32Le, Format::S16Le];

/// A PCM set up for RW interleaved transfers.
#[derive(Debug)]
pub(super) struct OpenedPcm {
    pub(super) pcm: PCM,
    pub(super) sample_format: Format,
    pub(super) sample_bytes: usize,
    pub(super) buffer_frames: Frames,
}

fn alsa_error(pcm: &str, what: impl Into<String>, source: ::alsa::Error) -> HostAudioError {
    HostAudioError::Alsa {
        pcm: pcm.to_string(),
        what: what.into(),
        source,
    }
}

/// ALSA's own format value for a paravox format, if ALSA has one.
fn alsa_format(format: Format) -> Option<AlsaFormat> {
    match format.alsa_name().parse::<AlsaFormat>() {
        Ok(AlsaFormat::Unknown) => None,
        Ok(alsa_format) => Some(alsa_format),
        Err(never) => match never {},
    }
}

/// The convertible formats the device accepts, for error messages.
fn accepted_formats(hw_params: &HwParams) -> String {
    let names: Vec<&str> = Format::ALL
        .into_iter()
        .filter(|format| format.is_convertible())
        .filter(|format| {
            alsa_format(*format).is_some_and(|alsa| hw_params.test_format(alsa).is_ok())
        })
        .map(Format::name)
        .collect();
    if names.is_empty() {
        "none that paravox converts".to_string()
    } else {
        names.join(", ")
    }
}

fn choose_format(
    name: &str,
    hw_params: &HwParams,
    requested: Option<Format>,
) -> Result<Format, HostAudioError> {
    let candidates: &[Format] = match &requested {
        Some(format) => std::slice::from_ref(format),
        None => &PREFERRED_FORMATS,
    };
    for format in candidates {
        if let Some(alsa) = alsa_format(*format)
            && hw_params.test_format(alsa).is_ok()
        {
            hw_params
                .set_format(alsa)
                .map_err(|error| alsa_error(name, format!("cannot set format {format}"), error))?;
            return Ok(*format);
        }
    }
    let asked: Vec<&str> = candidates.iter().map(|format| format.name()).collect();
    Err(HostAudioError::AlsaUnsupported {
        pcm: name.to_string(),
        reason: format!(
            "it does not take format {}; it takes: {} (choose one with format=, or use \
             plughw:/plug: to let ALSA convert)",
            asked.join(" or "),
            accepted_formats(hw_params)
        ),
    })
}

fn set_channels(name: &str, hw_params: &HwParams, channels: u32) -> Result<(), HostAudioError> {
    hw_params.set_channels(channels).map_err(|_| {
        let min = hw_params.get_channels_min().unwrap_or(0);
        let max = hw_params.get_channels_max().unwrap_or(0);
        HostAudioError::AlsaUnsupported {
            pcm: name.to_string(),
            reason: format!(
                "it does not take {channels} channel(s); it takes {min}..={max} (set \
                 channels=, or use plughw:/plug: to let ALSA convert)"
            ),
        }
    })
}

fn set_rate(name: &str, hw_params: &HwParams, rate: u32) -> Result<(), HostAudioError> {
    hw_params.set_rate(rate, ValueOr::Nearest).map_err(|_| {
        let min = hw_params.get_rate_min().unwrap_or(0);
        let max = hw_params.get_rate_max().unwrap_or(0);
        HostAudioError::AlsaUnsupported {
            pcm: name.to_string(),
            reason: format!(
                "it does not run at {rate} Hz; it takes {min}..={max} Hz (set rate=, or use \
                 plughw:/plug: to let ALSA resample)"
            ),
        }
    })
}

/// Opens `name` for `direction` and sets it up for `format` with a buffer of
/// `buffer_periods` periods.
pub(super) fn open_pcm(
    name: &str,
    direction: Direction,
    requested_format: Option<Format>,
    format: DeviceFormat,
    buffer_periods: u32,
) -> Result<OpenedPcm, HostAudioError> {
    let c_name = CString::new(name).map_err(|_| HostAudioError::InvalidSpec {
        spec: format!("alsa:{}", name.escape_debug()),
        reason: "a PCM name cannot contain a NUL byte".to_string(),
    })?;
    super::log::route_errors_to_log();
    let pcm = PCM::open(&c_name, direction, false).map_err(|error| {
        alsa_error(
            name,
            "cannot open (is the name right? see `aplay -L`)",
            error,
        )
    })?;
    let (sample_format, buffer_frames) = {
        let hw_params = HwParams::any(&pcm)
            .map_err(|error| alsa_error(name, "cannot read hardware parameters", error))?;
        hw_params
            .set_access(Access::RWInterleaved)
            .map_err(|error| alsa_error(name, "no read/write interleaved access", error))?;
        let sample_format = choose_format(name, &hw_params, requested_format)?;
        set_channels(name, &hw_params, format.channels)?;
        set_rate(name, &hw_params, format.rate)?;
        let period = Frames::from(format.period_frames);
        hw_params
            .set_period_size_near(period, ValueOr::Nearest)
            .map_err(|error| {
                alsa_error(name, format!("cannot set a period near {period}"), error)
            })?;
        let buffer = period * Frames::from(buffer_periods);
        hw_params.set_buffer_size_near(buffer).map_err(|error| {
            alsa_error(name, format!("cannot set a buffer near {buffer}"), error)
        })?;
        pcm.hw_params(&hw_params)
            .map_err(|error| alsa_error(name, "the device refused its parameters", error))?;
        let current = pcm
            .hw_params_current()
            .map_err(|error| alsa_error(name, "cannot read back the parameters", error))?;
        let device_period = current.get_period_size().unwrap_or(period);
        let buffer_frames = current.get_buffer_size().unwrap_or(buffer);
        tracing::info!(pcm = name, ?direction, format = %sample_format, rate = format.rate,
            channels = format.channels, period = format.period_frames, device_period,
            buffer_frames, "ALSA PCM opened");
        (sample_format, buffer_frames)
    };
    configure_software(name, &pcm, direction, format.period_frames, buffer_frames)?;
    Ok(OpenedPcm {
        pcm,
        sample_format,
        // Every format choose_format accepts is convertible, with a fixed size.
        sample_bytes: sample_format.bytes_per_sample().unwrap_or(1) as usize,
        buffer_frames,
    })
}

/// Playback starts as soon as one period is queued and wakes the writer per period.
fn configure_software(
    name: &str,
    pcm: &PCM,
    direction: Direction,
    period_frames: u32,
    buffer_frames: Frames,
) -> Result<(), HostAudioError> {
    let sw_params = pcm
        .sw_params_current()
        .map_err(|error| alsa_error(name, "cannot read software parameters", error))?;
    let period = Frames::from(period_frames).min(buffer_frames);
    sw_params
        .set_avail_min(period)
        .map_err(|error| alsa_error(name, "cannot set avail_min", error))?;
    if direction == Direction::Playback {
        sw_params
            .set_start_threshold(period)
            .map_err(|error| alsa_error(name, "cannot set the start threshold", error))?;
    }
    pcm.sw_params(&sw_params)
        .map_err(|error| alsa_error(name, "the device refused its software parameters", error))
}
