//! WAV (RIFF WAVE) files, read and written as raw sample bytes in the file's own format.
//!
//! The raw-bytes API is what both users need: the file endpoints convert between those bytes
//! and the engine's `f32` with `paravox_pcm::convert`, and the `paravox play`/`record`
//! commands move guest-format bytes between a file and an engine stream untouched.
//!
//! Formats map one to one onto [`Format`]: 8-bit PCM is [`Format::U8`], 16-bit
//! [`Format::S16Le`], 24-bit [`Format::S24_3Le`], 32-bit integer [`Format::S32Le`], 32- and
//! 64-bit IEEE float [`Format::F32Le`] and [`Format::F64Le`]; the reader also takes A-law and
//! µ-law. See [`WavWriter`] for the header layout written and [`WavReader`] for what is
//! tolerated on reading.

mod header;
mod reader;
mod writer;

use paravox_pcm::Format;

pub use reader::WavReader;
pub use writer::{WAV_WRITABLE_FORMATS, WavWriter};

/// What a WAV header says about its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Sample format of the data chunk.
    pub format: Format,
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels per frame.
    pub channels: u32,
    /// Bytes of sample data, or `None` for a streamed file whose header says "unknown"
    /// (data size 0 or 0xFFFFFFFF): its data runs to the end of the file.
    pub data_bytes: Option<u64>,
}

impl WavInfo {
    /// Bytes in one frame (all channels of one sample instant).
    pub fn frame_bytes(&self) -> u32 {
        self.format.bytes_per_sample().unwrap_or(1) * self.channels
    }

    /// Whole frames of sample data, when the size is known.
    pub fn frames(&self) -> Option<u64> {
        let frame_bytes = u64::from(self.frame_bytes());
        self.data_bytes.map(|bytes| bytes / frame_bytes.max(1))
    }
}

/// True when [`WavWriter`] can write `format`.
pub fn wav_can_write(format: Format) -> bool {
    WAV_WRITABLE_FORMATS.contains(&format)
}

#[cfg(test)]
mod tests;
