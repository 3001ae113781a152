//! Opus, for monitors where the bandwidth matters (`?format=opus`): libopus loaded with
//! `dlopen` at run time, so paravox neither links against it nor needs it installed
//! (PCM, the default, needs nothing). Debian's `libopus0` provides it; browsers decode
//! it with WebCodecs.
//!
//! Only the handful of calls used here are bound, with their prototypes from
//! `opus/opus.h` (libopus 1.x).

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use libloading::Library;

/// The library's soname, as Debian's `libopus0` installs it.
const LIBRARY_NAME: &str = "libopus.so.0";
/// `OPUS_APPLICATION_AUDIO`.
const APPLICATION_AUDIO: c_int = 2049;
/// `OPUS_SET_BITRATE_REQUEST`.
const SET_BITRATE_REQUEST: c_int = 4002;
/// `OPUS_OK`.
const OK: c_int = 0;

/// The rates Opus codes at; other rates are resampled to 48 kHz first.
pub const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// Frames per packet at 48 kHz (20 ms); proportionally fewer at lower rates.
pub const FRAME_MS: u32 = 20;
/// The largest packet this encoder produces.
const MAX_PACKET: usize = 4000;

struct Api {
    encoder_create: unsafe extern "C" fn(i32, c_int, c_int, *mut c_int) -> *mut c_void,
    encode_float: unsafe extern "C" fn(*mut c_void, *const f32, c_int, *mut u8, i32) -> i32,
    encoder_ctl: unsafe extern "C" fn(*mut c_void, c_int, ...) -> c_int,
    encoder_destroy: unsafe extern "C" fn(*mut c_void),
    decoder_create: unsafe extern "C" fn(i32, c_int, *mut c_int) -> *mut c_void,
    decode_float:
        unsafe extern "C" fn(*mut c_void, *const u8, i32, *mut f32, c_int, c_int) -> c_int,
    decoder_destroy: unsafe extern "C" fn(*mut c_void),
}

/// The loaded library, kept for the life of the process (the pointers point into it).
static LIBRARY: OnceLock<Result<(Library, Api), String>> = OnceLock::new();

fn api() -> Result<&'static Api, String> {
    LIBRARY
        .get_or_init(load)
        .as_ref()
        .map(|(_, api)| api)
        .map_err(Clone::clone)
}

/// Whether libopus can be loaded; the reason when not.
pub fn available() -> Result<(), String> {
    api().map(drop)
}

fn load() -> Result<(Library, Api), String> {
    // SAFETY: libopus has no ELF constructors with effects on this process.
    let library = unsafe { Library::new(LIBRARY_NAME) }.map_err(|error| {
        format!("{LIBRARY_NAME} is not installed (apt install libopus0): {error}")
    })?;
    macro_rules! symbol {
        ($name:literal) => {{
            // SAFETY: the symbol's C prototype, from opus.h, is the type of the `Api`
            // field this pointer is stored in.
            let symbol = unsafe { library.get(concat!($name, "\0").as_bytes()) }
                .map_err(|error| format!("{LIBRARY_NAME} lacks {}: {error}", $name))?;
            *symbol
        }};
    }
    let api = Api {
        encoder_create: symbol!("opus_encoder_create"),
        encode_float: symbol!("opus_encode_float"),
        encoder_ctl: symbol!("opus_encoder_ctl"),
        encoder_destroy: symbol!("opus_encoder_destroy"),
        decoder_create: symbol!("opus_decoder_create"),
        decode_float: symbol!("opus_decode_float"),
        decoder_destroy: symbol!("opus_decoder_destroy"),
    };
    Ok((library, api))
}

/// An Opus encoder of one rate (an [`OPUS_RATES`] one) and one or two channels.
#[derive(Debug)]
pub struct Encoder {
    state: *mut c_void,
    rate: u32,
    channels: u32,
}

// SAFETY: an OpusEncoder is plain memory owned by this value, used by one thread at a
// time (`&mut self`).
unsafe impl Send for Encoder {}

impl Encoder {
    /// An encoder for full-band audio at about `bits_per_second`.
    pub fn new(rate: u32, channels: u32, bits_per_second: i32) -> Result<Encoder, String> {
        let api = api()?;
        if !OPUS_RATES.contains(&rate) || !(1..=2).contains(&channels) {
            return Err(format!(
                "Opus codes 1 or 2 channels at 8, 12, 16, 24 or 48 kHz, not {channels} at {rate} Hz"
            ));
        }
        let mut error = OK;
        // SAFETY: valid arguments, and `error` is a live int.
        let state = unsafe {
            (api.encoder_create)(
                rate as i32,
                channels as c_int,
                APPLICATION_AUDIO,
                &mut error,
            )
        };
        if state.is_null() || error != OK {
            return Err(format!("opus_encoder_create failed ({error})"));
        }
        // SAFETY: `state` is a live encoder; OPUS_SET_BITRATE takes one opus_int32.
        unsafe { (api.encoder_ctl)(state, SET_BITRATE_REQUEST, bits_per_second) };
        Ok(Encoder {
            state,
            rate,
            channels,
        })
    }

    /// Frames in one packet.
    pub fn frame_frames(&self) -> usize {
        (self.rate * FRAME_MS / 1000) as usize
    }

    /// Encodes exactly one packet's frames (interleaved) into a packet.
    pub fn encode(&mut self, samples: &[f32]) -> Result<Vec<u8>, String> {
        let api = api()?;
        let frames = self.frame_frames();
        if samples.len() != frames * self.channels as usize {
            return Err(format!(
                "an Opus packet takes {frames} frames, not {}",
                samples.len() / self.channels as usize
            ));
        }
        let mut packet = vec![0u8; MAX_PACKET];
        // SAFETY: `samples` holds `frames` frames and `packet` MAX_PACKET bytes.
        let length = unsafe {
            (api.encode_float)(
                self.state,
                samples.as_ptr(),
                frames as c_int,
                packet.as_mut_ptr(),
                MAX_PACKET as i32,
            )
        };
        if length < 0 {
            return Err(format!("opus_encode_float failed ({length})"));
        }
        packet.truncate(length as usize);
        Ok(packet)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if let Ok(api) = api() {
            // SAFETY: created by opus_encoder_create, destroyed once.
            unsafe { (api.encoder_destroy)(self.state) };
        }
    }
}

/// An Opus decoder (what a client of `?format=opus` runs; the tests use it).
#[derive(Debug)]
pub struct Decoder {
    state: *mut c_void,
    channels: u32,
}

// SAFETY: as for the encoder.
unsafe impl Send for Decoder {}

impl Decoder {
    /// A decoder producing `channels` at `rate`.
    pub fn new(rate: u32, channels: u32) -> Result<Decoder, String> {
        let api = api()?;
        if !OPUS_RATES.contains(&rate) || !(1..=2).contains(&channels) {
            return Err(format!(
                "no Opus decoder for {channels} channels at {rate} Hz"
            ));
        }
        let mut error = OK;
        // SAFETY: valid arguments, and `error` is a live int.
        let state = unsafe { (api.decoder_create)(rate as i32, channels as c_int, &mut error) };
        if state.is_null() || error != OK {
            return Err(format!("opus_decoder_create failed ({error})"));
        }
        Ok(Decoder { state, channels })
    }

    /// Decodes one packet into interleaved samples.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>, String> {
        let api = api()?;
        // 120 ms at 48 kHz: the longest packet Opus allows.
        let most = 5760;
        let mut out = vec![0f32; most * self.channels as usize];
        // SAFETY: `packet` is `len` bytes and `out` holds `most` frames.
        let frames = unsafe {
            (api.decode_float)(
                self.state,
                packet.as_ptr(),
                packet.len() as i32,
                out.as_mut_ptr(),
                most as c_int,
                0,
            )
        };
        if frames < 0 {
            return Err(format!("opus_decode_float failed ({frames})"));
        }
        out.truncate(frames as usize * self.channels as usize);
        Ok(out)
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        if let Ok(api) = api() {
            // SAFETY: created by opus_decoder_create, destroyed once.
            unsafe { (api.decoder_destroy)(self.state) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_survives_encoding_and_decoding() {
        if let Err(why) = available() {
            // `cargo xtask test` installs libopus0 and sets this; elsewhere the codec is
            // an option that says why it is missing.
            assert!(
                std::env::var_os("PARAVOX_REQUIRE_OPUS").is_none(),
                "PARAVOX_REQUIRE_OPUS is set but {why}"
            );
            println!("skipping: {why}");
            return;
        }
        let mut encoder = Encoder::new(48_000, 1, 64_000).expect("encoder");
        let mut decoder = Decoder::new(48_000, 1).expect("decoder");
        let mut decoded = Vec::new();
        for packet in 0..50 {
            let samples: Vec<f32> = (0..960)
                .map(|i| {
                    let n = (packet * 960 + i) as f32;
                    0.5 * (n * 1000.0 / 48_000.0 * std::f32::consts::TAU).sin()
                })
                .collect();
            let bytes = encoder.encode(&samples).expect("encode");
            assert!(bytes.len() < 960 * 2 / 4, "{} bytes", bytes.len());
            decoded.extend(decoder.decode(&bytes).expect("decode"));
        }
        // After the codec's start-up, a 1 kHz sine at about −6 dBFS.
        let tail = &decoded[24_000..];
        let crossings = tail
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        let hz = crossings as f64 / 2.0 / (tail.len() as f64 / 48_000.0);
        assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
        let peak = tail.iter().fold(0f32, |peak, s| peak.max(s.abs()));
        assert!((peak - 0.5).abs() < 0.05, "peak {peak}");
        assert!(Encoder::new(44_100, 2, 96_000).is_err());
        assert!(Encoder::new(48_000, 3, 96_000).is_err());
    }
}
