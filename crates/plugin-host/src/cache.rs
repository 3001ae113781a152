//! The on-disk cache of compiled plugins.
//!
//! Compiling a plugin takes tens of milliseconds to seconds; loading its compiled form is
//! a file read and an `mmap`. Deserializing compiled code runs it without validation, so
//! the cache must only ever hand back what paravox itself wrote: each entry is
//! authenticated with HMAC-SHA-256 under a 256-bit key kept in the cache directory
//! (mode 0600, created from the kernel's random source). An entry whose tag does not
//! verify — written by anyone without the key, truncated, or from another build — is
//! ignored and recompiled. Entries are named by the SHA-256 of the module, the wasmtime
//! version and the engine settings, so a new version or setting never reuses old code.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{PluginError, Result};

const MAGIC: &[u8; 8] = b"PVXCWASM";
const TAG_BYTES: usize = 32;

/// A cache directory and its key.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    key: [u8; 32],
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PluginError + '_ {
    move |error| PluginError::Io {
        path: path.to_owned(),
        error,
    }
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; TAG_BYTES] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// Opens (creating) the cache in `dir`.
    pub fn open(dir: &Path) -> Result<Cache> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        let key_path = dir.join("key");
        let key = match fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => {
                let mut key = [0u8; 32];
                let mut random = fs::File::open("/dev/urandom").map_err(io(&key_path))?;
                std::io::Read::read_exact(&mut random, &mut key).map_err(io(&key_path))?;
                let temporary = dir.join(format!("key.{}", std::process::id()));
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&temporary)
                    .map_err(io(&temporary))?;
                file.write_all(&key).map_err(io(&temporary))?;
                fs::rename(&temporary, &key_path).map_err(io(&key_path))?;
                key
            }
        };
        Ok(Cache {
            dir: dir.to_owned(),
            key,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.cwasm"))
    }

    /// The authenticated compiled code stored under `name`, if any.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        let bytes = fs::read(self.path(name)).ok()?;
        let header = MAGIC.len() + TAG_BYTES;
        if bytes.len() < header || &bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        let (tag, body) = bytes[MAGIC.len()..].split_at(TAG_BYTES);
        let expected = hmac(&self.key, &[name.as_bytes(), body]);
        // Constant-time comparison: the tag is a secret-keyed value.
        let differs = tag
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (differs == 0).then(|| body.to_vec())
    }

    /// Stores compiled code under `name` (atomically: a reader sees all or nothing).
    pub fn put(&self, name: &str, body: &[u8]) -> Result<()> {
        let path = self.path(name);
        let temporary = self.dir.join(format!("{name}.{}.tmp", std::process::id()));
        let tag = hmac(&self.key, &[name.as_bytes(), body]);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io(&temporary))?;
        file.write_all(MAGIC).map_err(io(&temporary))?;
        file.write_all(&tag).map_err(io(&temporary))?;
        file.write_all(body).map_err(io(&temporary))?;
        drop(file);
        fs::rename(&temporary, &path).map_err(io(&path))
    }

    /// The entry name of a module under one engine configuration.
    pub fn entry_name(wasm: &[u8], engine_fingerprint: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(wasm);
        hasher.update([0]);
        hasher.update(engine_fingerprint.as_bytes());
        hex(&hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_forgeries_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(dir.path()).expect("cache");
        cache.put("abc", b"compiled").expect("put");
        assert_eq!(cache.get("abc").as_deref(), Some(&b"compiled"[..]));
        // Someone without the key rewrites the body: refused.
        let path = dir.path().join("abc.cwasm");
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).expect("write");
        assert_eq!(cache.get("abc"), None);
        // An entry renamed to another module's name does not verify either.
        cache.put("abc", b"compiled").expect("put");
        fs::rename(&path, dir.path().join("def.cwasm")).expect("rename");
        assert_eq!(cache.get("def"), None);
        // The key survives reopening.
        cache.put("xyz", b"code").expect("put");
        let again = Cache::open(dir.path()).expect("reopen");
        assert_eq!(again.get("xyz").as_deref(), Some(&b"code"[..]));
    }

    #[test]
    fn hmac_matches_rfc_4231_style_vector() {
        // HMAC-SHA-256 with a 32-byte key of 0x0b and "Hi There" (RFC 4231 uses a
        // 20-byte key; zero padding to the block makes a 32-byte key of 20 × 0x0b and
        // 12 zeros equivalent).
        let mut key = [0u8; 32];
        key[..20].fill(0x0b);
        assert_eq!(
            hex(&hmac(&key, &[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }
}
