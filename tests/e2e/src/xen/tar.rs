//! A reader for the tar archive dom0 writes onto its results disk (`tar -cf /dev/vda`):
//! ustar headers of 512 bytes, octal sizes, data padded to 512 bytes, ended by a zero
//! block. Only regular files are returned; anything else is skipped.

use anyhow::{Context, Result, bail, ensure};

const BLOCK: usize = 512;

/// One regular file of the archive, its name without a leading `./`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub contents: Vec<u8>,
}

/// The regular files in `bytes` (an archive possibly followed by anything, such as the
/// rest of a disk image).
pub fn read(bytes: &[u8]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut offset = 0;
    let mut long_name = None;
    loop {
        let Some(header) = bytes.get(offset..offset + BLOCK) else {
            bail!("the archive ends without its end-of-archive block");
        };
        if header.iter().all(|&byte| byte == 0) {
            return Ok(entries);
        }
        ensure!(
            checksum_matches(header),
            "bad tar header checksum at byte {offset}"
        );
        let size = octal(&header[124..136])
            .with_context(|| format!("bad size field in the tar header at byte {offset}"))?;
        let size = usize::try_from(size)?;
        let data_start = offset + BLOCK;
        let contents = bytes
            .get(data_start..data_start + size)
            .with_context(|| format!("tar entry at byte {offset} runs past the end"))?;
        match header[156] {
            // GNU long name: the next header's name is this entry's contents.
            b'L' => long_name = Some(text(contents)),
            b'0' | 0 => {
                let name = long_name.take().unwrap_or_else(|| {
                    let prefix = text(&header[345..500]);
                    let name = text(&header[0..100]);
                    if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    }
                });
                entries.push(Entry {
                    name: name.trim_start_matches("./").to_owned(),
                    contents: contents.to_vec(),
                });
            }
            _ => long_name = None,
        }
        offset = data_start + size.next_multiple_of(BLOCK);
    }
}

/// A NUL-terminated (or full-width) text field.
fn text(field: &[u8]) -> String {
    let end = field
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// An octal number field, space or NUL padded.
fn octal(field: &[u8]) -> Option<u64> {
    let digits = text(field);
    let digits = digits.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The header's checksum field equals the sum of its bytes with that field as spaces.
fn checksum_matches(header: &[u8]) -> bool {
    let Some(stored) = octal(&header[148..156]) else {
        return false;
    };
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(index, &byte)| {
            if (148..156).contains(&index) {
                u64::from(b' ')
            } else {
                u64::from(byte)
            }
        })
        .sum();
    sum == stored
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header as busybox writes one.
    fn header(name: &str, size: usize, kind: u8) -> Vec<u8> {
        let mut block = vec![0u8; BLOCK];
        block[..name.len()].copy_from_slice(name.as_bytes());
        block[100..108].copy_from_slice(b"0000644\0");
        block[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        block[156] = kind;
        block[257..263].copy_from_slice(b"ustar\0");
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        block
    }

    fn entry(name: &str, contents: &[u8], kind: u8) -> Vec<u8> {
        let mut bytes = header(name, contents.len(), kind);
        bytes.extend_from_slice(contents);
        bytes.resize(bytes.len().next_multiple_of(BLOCK), 0);
        bytes
    }

    #[test]
    fn files_are_read_and_directories_skipped() {
        let mut archive = entry("./", b"", b'5');
        archive.extend(entry("./sink.wav", b"RIFF....", b'0'));
        archive.extend(entry("./empty.txt", b"", b'0'));
        archive.extend(vec![0; 2 * BLOCK]);
        // The rest of the disk.
        archive.extend(vec![0xaa; 4096]);
        let entries = read(&archive).unwrap();
        assert_eq!(
            entries,
            [
                Entry {
                    name: "sink.wav".to_owned(),
                    contents: b"RIFF....".to_vec()
                },
                Entry {
                    name: "empty.txt".to_owned(),
                    contents: Vec::new()
                }
            ]
        );
    }

    #[test]
    fn a_long_name_applies_to_the_next_file() {
        let long = format!("./{}", "x".repeat(120));
        let mut archive = entry("././@LongLink", long.as_bytes(), b'L');
        archive.extend(entry("./xxxx", b"data", b'0'));
        archive.extend(vec![0; BLOCK]);
        let entries = read(&archive).unwrap();
        assert_eq!(entries[0].name, "x".repeat(120));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut archive = entry("./a", b"abc", b'0');
        archive[10] ^= 1;
        assert!(read(&archive).is_err());
        let truncated = &entry("./a", &[7; 1000], b'0')[..BLOCK + 10];
        assert!(read(truncated).is_err());
        assert!(read(&[]).is_err());
        // An empty disk is an empty archive.
        assert!(read(&[0; BLOCK]).unwrap().is_empty());
    }
}
