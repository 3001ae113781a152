//! The test signals and the WAV files that carry them: tones generated here with exact
//! samples (the guest has no sox), written into the guest's initramfs, and the reader for
//! what comes back (the device's sink file, the guest's recording).

use std::f64::consts::PI;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// A PCM sample format the tests use; all little-endian, as ALSA's `*_LE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    S16,
    S32,
    Float,
}

impl SampleFormat {
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Self::S16 => 2,
            Self::S32 | Self::Float => 4,
        }
    }

    pub fn alsa_name(self) -> &'static str {
        match self {
            Self::S16 => "S16_LE",
            Self::S32 => "S32_LE",
            Self::Float => "FLOAT_LE",
        }
    }

    /// The WAVE `fmt ` chunk's format tag: 1 = integer PCM, 3 = IEEE float.
    fn wave_tag(self) -> u16 {
        match self {
            Self::S16 | Self::S32 => 1,
            Self::Float => 3,
        }
    }
}

/// One test tone file: a sine per channel, the second channel at half the first's
/// amplitude so a channel swap shows up in a bit-exact comparison.
///
/// S16 tones carry ±1 LSB of deterministic TPDF dither. Without it a 440 Hz tone at
/// 48 kHz repeats exactly every 1,200 frames, and a sink that dropped or repeated whole
/// periods would still look bit-exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// File name inside the guest's `/audio/`.
    pub file_name: &'static str,
    pub rate: u32,
    pub channels: u16,
    pub format: SampleFormat,
    pub frequency: f64,
    pub seconds: u32,
    /// Peak amplitude of channel 0 (1.0 = full scale).
    pub amplitude: f64,
}

/// The reference tone of scenario (a): 440 Hz, 48 kHz stereo S16, 10 s, channel 0 at
/// −6 dBFS peak (room for the mixer scenario's gain changes without clipping).
pub const REFERENCE_TONE: ToneSpec = ToneSpec {
    file_name: "tone440_s16_48000_2ch_10s.wav",
    rate: 48_000,
    channels: 2,
    format: SampleFormat::S16,
    frequency: 440.0,
    seconds: 10,
    amplitude: 0.5,
};

/// The other formats of scenario (b). Each has its own frequency, so a sink that still
/// holds an earlier tone cannot pass for the right one.
pub const FORMAT_TONES: &[ToneSpec] = &[
    ToneSpec {
        file_name: "tone660_s16_44100_2ch_3s.wav",
        rate: 44_100,
        channels: 2,
        format: SampleFormat::S16,
        frequency: 660.0,
        seconds: 3,
        amplitude: 0.5,
    },
    ToneSpec {
        file_name: "tone550_s32_48000_2ch_3s.wav",
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S32,
        frequency: 550.0,
        seconds: 3,
        amplitude: 0.5,
    },
    ToneSpec {
        file_name: "tone770_float_48000_2ch_3s.wav",
        rate: 48_000,
        channels: 2,
        format: SampleFormat::Float,
        frequency: 770.0,
        seconds: 3,
        amplitude: 0.5,
    },
    ToneSpec {
        file_name: "tone330_s16_48000_1ch_3s.wav",
        rate: 48_000,
        channels: 1,
        format: SampleFormat::S16,
        frequency: 330.0,
        seconds: 3,
        amplitude: 0.5,
    },
];

/// Every tone the guest carries.
pub fn all_tones() -> impl Iterator<Item = &'static ToneSpec> {
    std::iter::once(&REFERENCE_TONE).chain(FORMAT_TONES)
}

impl ToneSpec {
    pub fn frames(&self) -> usize {
        self.rate as usize * self.seconds as usize
    }

    /// The ideal (unquantised) value of `channel` at `frame`.
    fn ideal(&self, frame: usize, channel: u16) -> f64 {
        let amplitude = self.amplitude / f64::from(1 + u32::from(channel));
        let phase = 2.0 * PI * self.frequency * frame as f64 / f64::from(self.rate);
        amplitude * phase.sin()
    }

    /// The interleaved sample bytes exactly as the file holds them.
    pub fn data_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(
            self.frames() * usize::from(self.channels) * self.format.bytes_per_sample(),
        );
        for frame in 0..self.frames() {
            for channel in 0..self.channels {
                let value = self.ideal(frame, channel);
                match self.format {
                    SampleFormat::S16 => {
                        bytes.extend_from_slice(&self.s16_sample(frame, channel).to_le_bytes());
                    }
                    SampleFormat::S32 => {
                        let scaled = (value * 2_147_483_648.0).round();
                        let sample = scaled.clamp(-2_147_483_648.0, 2_147_483_647.0) as i32;
                        bytes.extend_from_slice(&sample.to_le_bytes());
                    }
                    SampleFormat::Float => bytes.extend_from_slice(&(value as f32).to_le_bytes()),
                }
            }
        }
        bytes
    }

    /// The tone as a complete WAV file.
    pub fn wav_file(&self) -> Vec<u8> {
        wav_bytes(self.rate, self.channels, self.format, &self.data_bytes())
    }

    /// The S16 samples a sink at this tone's rate and channel count must hold for the
    /// tone to have passed bit-exactly (`None` unless the tone itself is S16).
    pub fn s16_reference(&self) -> Option<Vec<i16>> {
        (self.format == SampleFormat::S16).then(|| {
            (0..self.frames())
                .flat_map(|frame| (0..self.channels).map(move |channel| (frame, channel)))
                .map(|(frame, channel)| self.s16_sample(frame, channel))
                .collect()
        })
    }

    /// RMS level of channel 0 in dBFS.
    pub fn level_db(&self) -> f64 {
        20.0 * (self.amplitude / 2f64.sqrt()).log10()
    }
}

impl ToneSpec {
    /// The dithered S16 value of `channel` at `frame`: the same rounding as
    /// `paravox_testkit::s16_bytes`, plus triangular noise of ±1 LSB that depends only on
    /// (file, frame, channel).
    fn s16_sample(&self, frame: usize, channel: u16) -> i16 {
        let index = (frame as u64) << 8 | u64::from(channel);
        let random = splitmix64(super::guest::fnv1a(self.file_name.as_bytes()) ^ index);
        // Two uniform values in [0, 1) from the two halves; their difference is triangular.
        let uniform = |bits: u64| (bits & 0xffff_ffff) as f64 / 4_294_967_296.0;
        let dither = uniform(random) - uniform(random >> 32);
        let value = self.ideal(frame, channel) * 32768.0 + dither;
        value.round().clamp(-32768.0, 32767.0) as i16
    }
}

/// A well-mixed 64-bit hash of a counter (the SplitMix64 finaliser).
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A canonical 44-byte-header WAV file around `data`.
pub fn wav_bytes(rate: u32, channels: u16, format: SampleFormat, data: &[u8]) -> Vec<u8> {
    let bytes_per_sample = format.bytes_per_sample() as u16;
    let block_align = channels * bytes_per_sample;
    let data_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.wave_tag().to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&(bytes_per_sample * 8).to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// A decoded WAV file.
#[derive(Debug, Clone)]
pub struct Wav {
    pub rate: u32,
    pub channels: u16,
    pub format: SampleFormat,
    /// The raw interleaved sample bytes.
    pub data: Vec<u8>,
    /// The header's data size disagreed with the file (a writer killed before it
    /// finalised the header); `data` then runs to the end of the file.
    pub header_was_stale: bool,
}

impl Wav {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
        Self::parse(&bytes).with_context(|| format!("{} is not a usable WAV file", path.display()))
    }

    /// Parses a RIFF/WAVE file, tolerating a data chunk whose size field is 0, all ones
    /// or past the end of the file.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        ensure!(
            bytes.len() >= 12,
            "{} bytes is too short for a RIFF header",
            bytes.len()
        );
        ensure!(
            &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
            "no RIFF/WAVE header"
        );
        let mut offset = 12;
        let mut format = None;
        while offset + 8 <= bytes.len() {
            let id = &bytes[offset..offset + 4];
            let size = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into()?) as usize;
            let body = offset + 8;
            if id == b"fmt " {
                ensure!(
                    size >= 16 && body + 16 <= bytes.len(),
                    "truncated fmt chunk"
                );
                format = Some(parse_fmt(
                    &bytes[body..body + size.min(bytes.len() - body)],
                )?);
            } else if id == b"data" {
                let (rate, channels, sample_format) =
                    format.context("data chunk before fmt chunk")?;
                let available = bytes.len() - body;
                let header_was_stale = size == 0 || size > available;
                let length = if header_was_stale { available } else { size };
                let block_align = usize::from(channels) * sample_format.bytes_per_sample();
                let whole_frames = length - length % block_align;
                return Ok(Self {
                    rate,
                    channels,
                    format: sample_format,
                    data: bytes[body..body + whole_frames].to_vec(),
                    header_was_stale,
                });
            }
            // Chunks are padded to an even size.
            offset = body.saturating_add(size).saturating_add(size % 2);
        }
        bail!("no data chunk")
    }

    pub fn frames(&self) -> usize {
        self.data.len() / (usize::from(self.channels) * self.format.bytes_per_sample())
    }

    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.rate)
    }

    /// Interleaved samples scaled to ±1.0.
    pub fn samples(&self) -> Vec<f64> {
        match self.format {
            SampleFormat::S16 => paravox_testkit::from_s16_bytes(&self.data),
            SampleFormat::S32 => self
                .data
                .chunks_exact(4)
                .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 2_147_483_648.0)
                .collect(),
            SampleFormat::Float => self
                .data
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
        }
    }

    /// The interleaved S16 samples, for bit-exact comparison (`None` for other formats).
    pub fn s16_samples(&self) -> Option<Vec<i16>> {
        (self.format == SampleFormat::S16).then(|| {
            self.data
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "{} Hz, {} ch, {}, {} frames ({:.3} s){}",
            self.rate,
            self.channels,
            self.format.alsa_name(),
            self.frames(),
            self.seconds(),
            if self.header_was_stale {
                ", header not finalised"
            } else {
                ""
            }
        )
    }
}

fn parse_fmt(chunk: &[u8]) -> Result<(u32, u16, SampleFormat)> {
    let u16_at = |at: usize| u16::from_le_bytes([chunk[at], chunk[at + 1]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let rate = u32::from_le_bytes(chunk[4..8].try_into()?);
    let bits = u16_at(14);
    // WAVE_FORMAT_EXTENSIBLE keeps the real tag in the first two bytes of the sub-format GUID.
    if tag == 0xFFFE && chunk.len() >= 26 {
        tag = u16_at(24);
    }
    ensure!(
        channels > 0 && rate > 0,
        "fmt chunk with {channels} channels at {rate} Hz"
    );
    let format = match (tag, bits) {
        (1, 16) => SampleFormat::S16,
        (1, 32) => SampleFormat::S32,
        (3, 32) => SampleFormat::Float,
        _ => bail!("unsupported WAV format: tag {tag}, {bits} bits"),
    };
    Ok((rate, channels, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tone_round_trips_through_a_wav_file() {
        for tone in all_tones() {
            let wav = Wav::parse(&tone.wav_file()).unwrap();
            assert_eq!(wav.rate, tone.rate, "{}", tone.file_name);
            assert_eq!(wav.channels, tone.channels);
            assert_eq!(wav.format, tone.format);
            assert_eq!(wav.frames(), tone.frames());
            assert!(!wav.header_was_stale);
            assert_eq!(wav.data, tone.data_bytes());
        }
    }

    #[test]
    fn the_reference_tone_has_its_frequency_and_level() {
        let wav = Wav::parse(&REFERENCE_TONE.wav_file()).unwrap();
        let left = paravox_testkit::channel(&wav.samples(), 2, 0);
        let fit = paravox_testkit::fit_sine(&left[..48_000], 48_000.0).unwrap();
        assert!((fit.frequency - 440.0).abs() < 0.01, "{fit:?}");
        assert!((fit.amplitude - 0.5).abs() < 0.001, "{fit:?}");
        let level = paravox_testkit::rms_db(&left);
        assert!((level - REFERENCE_TONE.level_db()).abs() < 0.01, "{level}");
        let reference = REFERENCE_TONE.s16_reference().unwrap();
        assert_eq!(Some(reference), wav.s16_samples());
    }

    #[test]
    fn the_dither_breaks_the_tones_periodicity() {
        let samples = REFERENCE_TONE.s16_reference().unwrap();
        // 440 Hz at 48 kHz repeats every 1,200 frames; the dithered samples do not.
        let period = 1_200 * 2;
        let repeats = (0..1_000)
            .filter(|&i| samples[i] == samples[i + period])
            .count();
        assert!(
            repeats < 600,
            "{repeats} of 1000 samples repeat a period later"
        );
        let largest_error = (0..48_000)
            .map(|frame| {
                (f64::from(samples[frame * 2]) - REFERENCE_TONE.ideal(frame, 0) * 32768.0).abs()
            })
            .fold(0.0, f64::max);
        assert!(largest_error <= 1.5, "{largest_error}");
    }

    #[test]
    fn a_header_left_unfinalised_reads_to_the_end_of_the_file() {
        let mut bytes = wav_bytes(48_000, 2, SampleFormat::S16, &[1, 0, 2, 0, 3, 0, 4, 0]);
        bytes[40..44].copy_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&[5, 0, 6, 0, 7]);
        let wav = Wav::parse(&bytes).unwrap();
        assert!(wav.header_was_stale);
        // The trailing partial frame is dropped.
        assert_eq!(wav.frames(), 3);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Wav::parse(b"").is_err());
        assert!(Wav::parse(b"RIFF\0\0\0\0WAVEdata\x04\0\0\0abcd").is_err());
        assert!(Wav::parse(b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0").is_err());
    }
}
