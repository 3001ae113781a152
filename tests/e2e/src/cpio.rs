//! A writer for the kernel's initramfs format: an uncompressed `newc` cpio archive
//! (the host has no `cpio`, and this keeps the archive byte-for-byte reproducible).

use std::collections::BTreeMap;

/// What one path in the archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Directory,
    File {
        contents: Vec<u8>,
        executable: bool,
    },
    Symlink {
        target: String,
    },
    /// A character device node, so `/dev/console` exists before init mounts devtmpfs.
    CharDevice {
        major: u32,
        minor: u32,
    },
}

/// An archive being assembled. Paths are relative (`bin/sh`); parent directories are
/// added automatically.
#[derive(Debug, Default)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn directory(&mut self, path: &str) {
        let path = normalise(path);
        self.add_parents(&path);
        self.nodes.insert(path, Node::Directory);
    }

    pub fn file(&mut self, path: &str, contents: Vec<u8>, executable: bool) {
        self.insert(
            path,
            Node::File {
                contents,
                executable,
            },
        );
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        let target = target.to_owned();
        self.insert(path, Node::Symlink { target });
    }

    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        self.insert(path, Node::CharDevice { major, minor });
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(&normalise(path))
    }

    fn insert(&mut self, path: &str, node: Node) {
        let path = normalise(path);
        self.add_parents(&path);
        self.nodes.insert(path, node);
    }

    fn add_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            end += slash;
            self.nodes
                .entry(path[..end].to_owned())
                .or_insert(Node::Directory);
            end += 1;
        }
    }

    /// The archive's bytes. Sorted paths put every directory before its contents.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (inode, (path, node)) in self.nodes.iter().enumerate() {
            let (mode, data, rdev) = match node {
                Node::Directory => (0o040_755, &[][..], (0, 0)),
                Node::File {
                    contents,
                    executable,
                } => {
                    let mode = if *executable { 0o100_755 } else { 0o100_644 };
                    (mode, contents.as_slice(), (0, 0))
                }
                Node::Symlink { target } => (0o120_777, target.as_bytes(), (0, 0)),
                Node::CharDevice { major, minor } => (0o020_600, &[][..], (*major, *minor)),
            };
            let nlink = if matches!(node, Node::Directory) {
                2
            } else {
                1
            };
            write_entry(&mut out, inode as u32 + 1, mode, nlink, rdev, path, data);
        }
        write_entry(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
        out
    }
}

fn normalise(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

/// One `newc` header (13 eight-digit hex fields after the magic), the name and the data,
/// each padded to four bytes.
fn write_entry(
    out: &mut Vec<u8>,
    inode: u32,
    mode: u32,
    nlink: u32,
    (rdev_major, rdev_minor): (u32, u32),
    name: &str,
    data: &[u8],
) {
    let name_size = name.len() + 1;
    let fields = [
        inode,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: fixed, so the archive is reproducible
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev_major,
        rdev_minor,
        name_size as u32,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
    out.extend_from_slice(data);
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back (name, mode, data) of every entry: the format's invariants in one place.
    fn entries(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut offset = 0;
        let mut out = Vec::new();
        loop {
            assert_eq!(&bytes[offset..offset + 6], b"070701");
            let field = |index: usize| {
                let at = offset + 6 + index * 8;
                u32::from_str_radix(std::str::from_utf8(&bytes[at..at + 8]).unwrap(), 16).unwrap()
            };
            let (mode, size, name_size) = (field(1), field(6) as usize, field(11) as usize);
            let name_at = offset + 110;
            let name = String::from_utf8(bytes[name_at..name_at + name_size - 1].to_vec()).unwrap();
            let data_at = (name_at + name_size).next_multiple_of(4);
            let data = bytes[data_at..data_at + size].to_vec();
            offset = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(offset, bytes.len());
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn parents_come_first_and_data_survives() {
        let mut archive = Archive::new();
        archive.file("/usr/bin/aplay", b"elf".to_vec(), true);
        archive.symlink("bin/sh", "busybox");
        archive.char_device("dev/console", 5, 1);
        let read = entries(&archive.to_bytes());
        let names: Vec<_> = read.iter().map(|(name, _, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "usr",
                "usr/bin",
                "usr/bin/aplay"
            ]
        );
        assert_eq!(
            read[1],
            ("bin/sh".to_owned(), 0o120_777, b"busybox".to_vec())
        );
        assert_eq!(
            read[6],
            ("usr/bin/aplay".to_owned(), 0o100_755, b"elf".to_vec())
        );
        assert_eq!(read[0].1, 0o040_755);
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let build = || {
            let mut archive = Archive::new();
            archive.file("init", b"#!/bin/sh\n".to_vec(), true);
            archive.directory("proc");
            archive.to_bytes()
        };
        assert_eq!(build(), build());
    }
}
