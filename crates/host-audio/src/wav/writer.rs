//! Writing WAV files whose header stays valid while they grow.
//!
//! After every [`WavWriter::write_bytes`] the RIFF and data sizes in the header are brought
//! up to date, so a daemon killed mid-recording leaves a file any player opens, with every
//! byte written so far. The writer maps the file's header (when it is small, as every
//! header it writes is) shared into memory and stores the sizes there: the same page cache
//! every reader of the file reads, written back by the kernel like any written page (also
//! after the daemon is killed), and no system call a period. Where the file cannot be
//! mapped it keeps a copy of the header and rewrites both sizes with one `pwrite` of
//! everything between them; a longer header (a file appended to may carry chunks of any
//! size) has them written one at a time. [`WavWriter::finalize`] only adds the RIFF pad
//! byte an odd-sized data chunk needs.
//!
//! Header layout: `RIFF` size `WAVE`, a `fmt ` chunk (16-byte `WAVE_FORMAT_PCM` for integer
//! PCM of at most 16 bits and 2 channels, 40-byte `WAVE_FORMAT_EXTENSIBLE` otherwise), then
//! `data`. Past 4 GiB the sizes saturate at 0xFFFFFFFF, the streamed-file convention readers
//! (this crate's included) take as "to the end of the file".

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use paravox_pcm::Format;

use super::WavInfo;
use super::header::{DATA_ID, FMT_ID, RIFF_ID, WAVE_ID, fmt_body};
use super::reader::WavReader;
use crate::error::HostAudioError;

/// The sample formats [`WavWriter`] writes.
pub const WAV_WRITABLE_FORMATS: [Format; 6] = [
    Format::U8,
    Format::S16Le,
    Format::S24_3Le,
    Format::S32Le,
    Format::F32Le,
    Format::F64Le,
];

/// A WAV file being written.
#[derive(Debug)]
pub struct WavWriter {
    file: File,
    path: PathBuf,
    format: Format,
    rate: u32,
    channels: u32,
    /// Byte offset of the first sample; the data chunk's size field sits just before it.
    data_offset: u64,
    data_bytes: u64,
    /// Whether the pad byte of an odd-sized data chunk is on disk.
    padded: bool,
    /// The file's bytes before the first sample, when there are at most
    /// [`KEPT_HEADER_BYTES`]: the sizes are patched here and written out together.
    header: Option<Vec<u8>>,
    /// The same bytes mapped from the file, where the sizes are stored.
    mapped: Option<MappedHeader>,
}

/// The longest header kept in memory (a file appended to may carry chunks of any size
/// before its data; its sizes are then written one at a time).
const KEPT_HEADER_BYTES: u64 = 4096;

impl WavWriter {
    /// Creates (or truncates) `path`, mode 0600, and writes a header for an empty data
    /// chunk. A symbolic link at `path` is not followed, and anything there but a regular
    /// file (a FIFO, a device) is refused rather than written to.
    pub fn create(
        path: impl AsRef<Path>,
        format: Format,
        rate: u32,
        channels: u32,
    ) -> Result<WavWriter, HostAudioError> {
        let path = path.as_ref();
        let body = checked_fmt_body(format, rate, channels)?;
        let file = open_regular(path, true).map_err(|source| HostAudioError::Io {
            path: path.to_path_buf(),
            what: "cannot create the WAV file",
            source,
        })?;
        let mut header = Vec::with_capacity(12 + 8 + body.len() + 8);
        header.extend_from_slice(&RIFF_ID);
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&WAVE_ID);
        header.extend_from_slice(&FMT_ID);
        // The body is at most 40 bytes: the cast cannot truncate.
        header.extend_from_slice(&(body.len() as u32).to_le_bytes());
        header.extend_from_slice(&body);
        header.extend_from_slice(&DATA_ID);
        header.extend_from_slice(&0u32.to_le_bytes());
        let mut writer = WavWriter {
            file,
            path: path.to_path_buf(),
            format,
            rate,
            channels,
            data_offset: header.len() as u64,
            data_bytes: 0,
            padded: false,
            header: None,
            mapped: None,
        };
        writer.write_at(&header, 0)?;
        writer.mapped = MappedHeader::map(&writer.file, header.len(), &writer.path);
        writer.header = Some(header);
        writer.update_sizes()?;
        Ok(writer)
    }

    /// Reopens a WAV file to append to it, or creates it when it does not exist yet.
    ///
    /// An endpoint that lost its file (disk full, NFS hiccup) and reopens it must not wipe
    /// the recording: this keeps the existing samples when the file's header says exactly
    /// `format`, `rate` and `channels`, and refuses otherwise. Anything after the data chunk
    /// (a pad byte, trailing chunks) is cut off.
    pub fn append(
        path: impl AsRef<Path>,
        format: Format,
        rate: u32,
        channels: u32,
    ) -> Result<WavWriter, HostAudioError> {
        let path = path.as_ref();
        if !path.exists() {
            return WavWriter::create(path, format, rate, channels);
        }
        checked_fmt_body(format, rate, channels)?;
        let (info, data_offset) = WavReader::open(path)?.layout();
        if (info.format, info.rate, info.channels) != (format, rate, channels) {
            return Err(HostAudioError::BadWav {
                path: path.to_path_buf(),
                reason: format!(
                    "cannot append {format} {rate} Hz {channels} ch to a file that is {} {} Hz \
                     {} ch; move the old file away",
                    info.format, info.rate, info.channels
                ),
            });
        }
        let file = open_regular(path, false).map_err(|source| HostAudioError::Io {
            path: path.to_path_buf(),
            what: "cannot open the WAV file for appending",
            source,
        })?;
        let data_bytes = match info.data_bytes {
            Some(bytes) => bytes,
            None => file_len(&file, path)?.saturating_sub(data_offset),
        };
        let mut writer = WavWriter {
            file,
            path: path.to_path_buf(),
            format,
            rate,
            channels,
            data_offset,
            data_bytes,
            padded: false,
            header: None,
            mapped: None,
        };
        writer
            .file
            .set_len(data_offset + data_bytes)
            .map_err(|source| writer.io_error("cannot truncate the WAV file", source))?;
        if data_offset <= KEPT_HEADER_BYTES {
            let mut header = vec![0; data_offset as usize];
            writer
                .file
                .read_exact_at(&mut header, 0)
                .map_err(|source| writer.io_error("cannot read the WAV header", source))?;
            writer.mapped = MappedHeader::map(&writer.file, header.len(), &writer.path);
            writer.header = Some(header);
        }
        writer.update_sizes()?;
        Ok(writer)
    }

    /// Appends raw sample bytes in the file's format and rewrites the header sizes, so the
    /// file is complete on disk when this returns. Callers should write whole frames.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), HostAudioError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.write_at(bytes, self.data_offset + self.data_bytes)?;
        self.data_bytes += bytes.len() as u64;
        self.padded = false;
        self.update_sizes()
    }

    /// Completes the file: adds the pad byte RIFF wants after an odd-sized data chunk.
    /// Writing more afterwards is allowed (the pad byte is overwritten); call again then.
    pub fn finalize(&mut self) -> Result<(), HostAudioError> {
        if self.data_bytes % 2 == 1 && !self.padded {
            self.write_at(&[0], self.data_offset + self.data_bytes)?;
            self.padded = true;
            self.update_sizes()?;
        }
        Ok(())
    }

    /// The header this writer keeps on disk.
    pub fn info(&self) -> WavInfo {
        WavInfo {
            format: self.format,
            rate: self.rate,
            channels: self.channels,
            data_bytes: Some(self.data_bytes),
        }
    }

    /// Bytes of sample data written so far.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the RIFF and data chunk sizes for the current data length.
    fn update_sizes(&mut self) -> Result<(), HostAudioError> {
        let pad = u64::from(self.padded);
        // RIFF size counts everything after its own field: "WAVE", the fmt chunk, the data
        // chunk header, the data and its pad byte.
        let riff_size = (self.data_offset - 8) + self.data_bytes + pad;
        let (riff_field, data_field) = match u32::try_from(riff_size) {
            // data_bytes < riff_size, so it fits too.
            Ok(riff) => (riff, self.data_bytes as u32),
            Err(_) => (u32::MAX, u32::MAX),
        };
        let data_field_at = self.data_offset as usize - 4;
        if let Some(mapped) = &mut self.mapped {
            mapped.store(4, riff_field);
            mapped.store(data_field_at, data_field);
            return Ok(());
        }
        match self.header.take() {
            Some(mut header) => {
                header[4..8].copy_from_slice(&riff_field.to_le_bytes());
                header[data_field_at..data_field_at + 4].copy_from_slice(&data_field.to_le_bytes());
                let written = self.write_at(&header[4..], 4);
                self.header = Some(header);
                written
            }
            None => {
                self.write_at(&riff_field.to_le_bytes(), 4)?;
                self.write_at(&data_field.to_le_bytes(), self.data_offset - 4)
            }
        }
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), HostAudioError> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|source| self.io_error("cannot write the WAV file", source))
    }

    fn io_error(&self, what: &'static str, source: io::Error) -> HostAudioError {
        HostAudioError::Io {
            path: self.path.clone(),
            what,
            source,
        }
    }
}

impl Drop for WavWriter {
    fn drop(&mut self) {
        // The header is already valid; this only adds a missing pad byte.
        if let Err(error) = self.finalize() {
            tracing::warn!(%error, "could not finalize WAV file on drop");
        }
    }
}

/// A file's first `len` bytes mapped shared, read-write.
///
/// A process that cut the file to nothing under the writer would make the next store fault
/// (`SIGBUS`); the file is the daemon's own (mode 0600), so only its user or root could, and
/// either can stop the daemon anyway.
#[derive(Debug)]
struct MappedHeader {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping belongs to one writer and is only touched through it; the memory is
// the file's, not any thread's.
unsafe impl Send for MappedHeader {}

impl MappedHeader {
    /// Maps the first `len` bytes of `file` (opened read-write, at least `len` long), or
    /// says why not (the writer then writes the sizes with `pwrite`).
    fn map(file: &File, len: usize, path: &Path) -> Option<MappedHeader> {
        // SAFETY: a new mapping at an address the kernel chooses, so it overlaps nothing
        // Rust refers to; the descriptor is valid for the call.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED || len == 0 {
            let error = io::Error::last_os_error();
            tracing::debug!(path = %path.display(), %error, "WAV header not mapped: sizes by pwrite");
            return None;
        }
        Some(MappedHeader {
            base: NonNull::new(base.cast())?,
            len,
        })
    }

    /// Stores `value` little-endian at `offset` (within the mapping; one outside is
    /// ignored).
    fn store(&mut self, offset: usize, value: u32) {
        if offset.checked_add(4).is_none_or(|end| end > self.len) {
            return;
        }
        for (index, byte) in value.to_le_bytes().into_iter().enumerate() {
            // SAFETY: `offset + index < len`: inside the mapping. Volatile, as the bytes
            // are the file's, read by other processes.
            unsafe { self.base.as_ptr().add(offset + index).write_volatile(byte) };
        }
    }
}

impl Drop for MappedHeader {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; nothing refers to it after.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

fn checked_fmt_body(format: Format, rate: u32, channels: u32) -> Result<Vec<u8>, HostAudioError> {
    if !WAV_WRITABLE_FORMATS.contains(&format) {
        return Err(HostAudioError::UnsupportedWavFormat { format });
    }
    let too_big = |reason: String| HostAudioError::WavLayout { reason };
    if rate == 0 || channels == 0 {
        return Err(too_big(
            "a WAV file needs a rate and channels above 0".to_string(),
        ));
    }
    let channels16 = u16::try_from(channels).map_err(|_| {
        too_big(format!(
            "a WAV file holds at most 65535 channels, not {channels}"
        ))
    })?;
    fmt_body(format, rate, channels16)
        .ok_or_else(|| too_big("frame size or byte rate too large for a WAV header".to_string()))
}

fn file_len(file: &File, path: &Path) -> Result<u64, HostAudioError> {
    file.metadata()
        .map(|metadata| metadata.len())
        .map_err(|source| HostAudioError::Io {
            path: path.to_path_buf(),
            what: "cannot read the file's size",
            source,
        })
}

/// Opens `path` for reading and writing (an append reads the header back, and a shared
/// mapping of the header needs both; a file to create that may only be written is opened
/// for writing) without following a symbolic link in its last component, creating it
/// (mode 0600) when `create` is set; refuses anything but a regular file, and only then
/// truncates it (when `create` is set).
fn open_regular(path: &Path, create: bool) -> std::io::Result<File> {
    let open = |read: bool| {
        OpenOptions::new()
            .read(read)
            .write(true)
            .create(create)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    let file = match open(true) {
        // A file there that may be written but not read: written all the same, its header
        // sizes by `pwrite`.
        Err(error) if create && error.kind() == std::io::ErrorKind::PermissionDenied => {
            open(false)?
        }
        opened => opened?,
    };
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file: paravox writes WAV output only into regular files",
        ));
    }
    if create {
        file.set_len(0)?;
    }
    Ok(file)
}
