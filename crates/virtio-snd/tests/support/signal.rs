//! Test audio: tones as the guest would send them, and the measurements a user would make
//! on what comes out.

use paravox_testkit as testkit;

/// The rate every test stream runs at.
pub const RATE: f64 = 48_000.0;

/// `seconds` of a sine at `frequency` Hz and `amplitude` peak, as interleaved S16 stereo.
pub fn tone_s16_stereo(frequency: f64, amplitude: f64, seconds: f64) -> Vec<u8> {
    let frames = (RATE * seconds).round() as usize;
    testkit::s16_bytes(&testkit::sine(RATE, frequency, amplitude, frames), 2)
}

/// The left channel of interleaved S16 stereo bytes, as samples in [-1, 1).
pub fn left_channel(bytes: &[u8]) -> Vec<f64> {
    testkit::channel(&testkit::from_s16_bytes(bytes), 2, 0)
}

/// RMS level of S16 stereo bytes in dBFS.
pub fn rms_db(bytes: &[u8]) -> f64 {
    testkit::rms_db(&testkit::from_s16_bytes(bytes))
}

/// Bytes of `seconds` of S16 stereo at [`RATE`] (whole frames).
pub fn bytes_for(seconds: f64) -> usize {
    (RATE * seconds).round() as usize * 4
}

/// Where `needle` starts in `haystack`, if it does at a frame boundary.
pub fn find_frames(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    (0..=haystack.len() - needle.len())
        .step_by(4)
        .find(|&at| haystack[at..at + needle.len()] == *needle)
}
