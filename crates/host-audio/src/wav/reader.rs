//! Reading WAV files as raw sample bytes.
//!
//! The reader walks the RIFF chunks until `data`, skipping any it does not know (`LIST`,
//! `fact`, `bext`, …, with their pad bytes). What it tolerates, because real files do it:
//! a RIFF size that disagrees with the file, a data size of 0 or 0xFFFFFFFF (written by
//! streaming encoders that could not seek back; the data then runs to the end of the file),
//! and a data chunk cut short (a killed recorder; read what is there, with a warning).
//! What it refuses, with the reason: anything not starting `RIFF....WAVE`, RF64/RIFX, a
//! missing or broken `fmt ` chunk, a `data` chunk before `fmt `, encodings other than integer
//! PCM, IEEE float and G.711.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::WavInfo;
use super::header::{DATA_ID, FMT_ID, FmtChunk, FmtProblem, WAVE_ID, parse_fmt};
use crate::error::HostAudioError;

/// `fmt ` chunks larger than this are not WAV headers but garbage.
const MAX_FMT_LEN: u32 = 4096;

/// A WAV file open for reading its sample data.
#[derive(Debug)]
pub struct WavReader {
    file: File,
    path: PathBuf,
    info: WavInfo,
    data_offset: u64,
    /// Byte offset just past the last sample, or `None` to read to the end of the file.
    data_end: Option<u64>,
    /// Byte offset of the next sample to read.
    position: u64,
}

impl WavReader {
    /// Opens `path` and parses its header.
    pub fn open(path: impl AsRef<Path>) -> Result<WavReader, HostAudioError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| HostAudioError::Io {
            path: path.to_path_buf(),
            what: "cannot open the WAV file",
            source,
        })?;
        let file_len = file
            .metadata()
            .map_err(|source| HostAudioError::Io {
                path: path.to_path_buf(),
                what: "cannot read the file's size",
                source,
            })?
            .len();
        let mut walker = ChunkWalker {
            file: &file,
            path,
            file_len,
        };
        let (fmt, data_offset, declared) = walker.find_fmt_and_data()?;
        let data_bytes = walker.data_bytes(data_offset, declared);
        let info = WavInfo {
            format: fmt.format,
            rate: fmt.rate,
            channels: u32::from(fmt.channels),
            data_bytes,
        };
        Ok(WavReader {
            file,
            path: path.to_path_buf(),
            info,
            data_offset,
            data_end: data_bytes.map(|bytes| data_offset + bytes),
            position: data_offset,
        })
    }

    /// What the header says.
    pub fn info(&self) -> WavInfo {
        self.info
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads raw sample bytes in the file's format into `buf`, returning how many were read:
    /// fewer than `buf.len()` only at the end of the data, 0 once there.
    /// Allocates nothing (runs on an endpoint thread for WAV sources).
    pub fn read_bytes(&mut self, buf: &mut [u8]) -> Result<usize, HostAudioError> {
        let wanted = match self.data_end {
            Some(end) => {
                let left = end.saturating_sub(self.position);
                buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
            }
            None => buf.len(),
        };
        let mut filled = 0;
        while filled < wanted {
            match self.file.read_at(&mut buf[filled..wanted], self.position) {
                Ok(0) => break,
                Ok(count) => {
                    filled += count;
                    self.position += count as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(HostAudioError::Io {
                        path: self.path.clone(),
                        what: "cannot read the WAV file",
                        source,
                    });
                }
            }
        }
        Ok(filled)
    }

    /// Goes back to the first sample (for looping sources).
    pub fn rewind(&mut self) {
        self.position = self.data_offset;
    }

    /// The header and where the samples start, for [`super::WavWriter::append`].
    pub(crate) fn layout(&self) -> (WavInfo, u64) {
        (self.info, self.data_offset)
    }
}

/// Walks the chunks of one file during [`WavReader::open`].
struct ChunkWalker<'a> {
    file: &'a File,
    path: &'a Path,
    file_len: u64,
}

impl ChunkWalker<'_> {
    fn bad(&self, reason: impl Into<String>) -> HostAudioError {
        HostAudioError::BadWav {
            path: self.path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Reads exactly `buf.len()` bytes at `offset`; `what` names the part for the error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<(), HostAudioError> {
        match self.file.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Err(self.bad(format!(
                "the file ends inside the {what} ({} bytes in all)",
                self.file_len
            ))),
            Err(source) => Err(HostAudioError::Io {
                path: self.path.to_path_buf(),
                what: "cannot read the WAV header",
                source,
            }),
        }
    }

    /// Returns the parsed `fmt ` chunk, the offset of the first sample and the data size
    /// the header declares.
    fn find_fmt_and_data(&mut self) -> Result<(FmtChunk, u64, u32), HostAudioError> {
        if self.file_len == 0 {
            return Err(self.bad("the file is empty"));
        }
        let mut riff = [0u8; 12];
        self.read_exact_at(&mut riff, 0, "RIFF header")?;
        match &riff[0..4] {
            b"RIFF" => {}
            b"RF64" => return Err(self.bad("RF64 (over 4 GiB) WAV files are not supported")),
            b"RIFX" => return Err(self.bad("big-endian RIFX files are not supported")),
            other => {
                return Err(self.bad(format!(
                    "it does not start with 'RIFF' (starts with {})",
                    printable(other)
                )));
            }
        }
        if riff[8..12] != WAVE_ID {
            return Err(self.bad(format!(
                "a RIFF file of type {}, not 'WAVE'",
                printable(&riff[8..12])
            )));
        }
        let mut offset = 12u64;
        let mut fmt = None;
        loop {
            if offset + 8 > self.file_len {
                return Err(self.bad(match fmt {
                    None => "no 'fmt ' chunk",
                    Some(_) => "no 'data' chunk",
                }));
            }
            let mut chunk_header = [0u8; 8];
            self.read_exact_at(&mut chunk_header, offset, "chunk header")?;
            let id = [
                chunk_header[0],
                chunk_header[1],
                chunk_header[2],
                chunk_header[3],
            ];
            let size = u32::from_le_bytes([
                chunk_header[4],
                chunk_header[5],
                chunk_header[6],
                chunk_header[7],
            ]);
            let body_offset = offset + 8;
            if id == FMT_ID {
                fmt = Some(self.read_fmt(body_offset, size)?);
            } else if id == DATA_ID {
                let Some(fmt) = fmt else {
                    return Err(self.bad("the 'data' chunk comes before the 'fmt ' chunk"));
                };
                return Ok((fmt, body_offset, size));
            }
            // RIFF chunks are padded to an even size.
            offset = body_offset + u64::from(size) + u64::from(size % 2);
        }
    }

    fn read_fmt(&self, offset: u64, size: u32) -> Result<FmtChunk, HostAudioError> {
        if size > MAX_FMT_LEN {
            return Err(self.bad(format!("the 'fmt ' chunk claims {size} bytes")));
        }
        let mut body = vec![0u8; size as usize];
        self.read_exact_at(&mut body, offset, "'fmt ' chunk")?;
        parse_fmt(&body).map_err(|problem| match problem {
            FmtProblem::Malformed(reason) => self.bad(reason),
            FmtProblem::Unsupported(what) => HostAudioError::UnsupportedWav {
                path: self.path.to_path_buf(),
                what,
            },
        })
    }

    /// The usable data size: `None` for streamed files, else the declared size clamped to
    /// what the file holds.
    fn data_bytes(&self, data_offset: u64, declared: u32) -> Option<u64> {
        if declared == 0 || declared == u32::MAX {
            return None;
        }
        let available = self.file_len.saturating_sub(data_offset);
        let declared = u64::from(declared);
        if declared > available {
            tracing::warn!(
                path = %self.path.display(),
                declared,
                available,
                "WAV data chunk is shorter than its header says; reading what is there"
            );
            return Some(available);
        }
        Some(declared)
    }
}

/// Four header bytes as a quoted string when printable, hex otherwise.
fn printable(bytes: &[u8]) -> String {
    if bytes
        .iter()
        .all(|byte| byte.is_ascii_graphic() || *byte == b' ')
    {
        format!("'{}'", String::from_utf8_lossy(bytes))
    } else {
        let hex: Vec<String> = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}
