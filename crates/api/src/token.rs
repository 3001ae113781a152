//! The API's bearer token: 32 random bytes, hex-encoded, created at first start in the
//! state directory as `token` (mode 0600) and read from there afterwards.
//!
//! The file is the only copy: `paravox ctl` and the dashboard read it (or are given it),
//! and deleting it makes the next start create a new one, revoking the old.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::error::Error;

/// The token file's name inside the state directory.
pub const TOKEN_FILE: &str = "token";
/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;

/// A bearer token. Its `Debug` does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from its text, checked to be `2 * TOKEN_BYTES` hex digits.
    pub fn parse(text: &str) -> Option<Token> {
        let text = text.trim();
        (text.len() == 2 * TOKEN_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Token(text.to_ascii_lowercase()))
    }

    /// A fresh random token.
    pub fn generate() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The secret, for clients that send it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is this token, in time independent of where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), offered.as_bytes())
    }
}

/// Compares two byte strings without an early exit, so the time taken does not tell an
/// attacker how many leading bytes were right. (The length is not secret: every token has
/// the same one.)
pub fn constant_time_eq(expected: &[u8], offered: &[u8]) -> bool {
    let mut difference = u8::from(expected.len() != offered.len());
    for (index, byte) in expected.iter().enumerate() {
        let other = offered.get(index).copied().unwrap_or(!*byte);
        difference |= byte ^ other;
    }
    std::hint::black_box(difference) == 0
}

/// The token file path of `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(TOKEN_FILE)
}

/// Reads the token from `state_dir/token`, creating the directory and a new random token
/// (mode 0600) when there is none.
pub fn load_or_create(state_dir: &Path) -> Result<Token, Error> {
    let path = path(state_dir);
    let error = |what: String| Error::Token {
        path: path.clone(),
        what,
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            let token = Token::parse(&text).ok_or_else(|| {
                error(format!(
                    "not {} hex digits; delete the file to have a new token created",
                    2 * TOKEN_BYTES
                ))
            })?;
            tighten_permissions(&path);
            Ok(token)
        }
        Err(read) if read.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(state_dir)
                .map_err(|e| error(format!("creating the state directory: {e}")))?;
            let token = Token::generate()
                .map_err(|e| error(format!("no randomness from the system: {e}")))?;
            // Written whole to a temporary file, flushed, then linked into place: the
            // token file never exists half-written, and a token another process made
            // meanwhile is never replaced.
            let temporary = state_dir.join(format!(".{TOKEN_FILE}.tmp"));
            let _ = fs::remove_file(&temporary);
            let written = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)
                .and_then(|mut file| {
                    file.write_all(format!("{}\n", token.as_str()).as_bytes())?;
                    file.sync_all()
                })
                .and_then(|()| fs::hard_link(&temporary, &path));
            let _ = fs::remove_file(&temporary);
            match written {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    // Made meanwhile by another process (or something that is not a
                    // readable file, such as a dangling link): read it once, no retry.
                    let text = fs::read_to_string(&path)
                        .map_err(|e| error(format!("exists but cannot be read: {e}")))?;
                    return Token::parse(&text)
                        .ok_or_else(|| error("exists but is not a token; delete it".to_owned()));
                }
                Err(e) => return Err(error(format!("creating: {e}"))),
            }
            if let Ok(dir) = fs::File::open(state_dir) {
                let _ = dir.sync_all();
            }
            info!(path = %path.display(), "created a new API token");
            Ok(token)
        }
        Err(read) => Err(error(format!("reading: {read}"))),
    }
}

/// A token readable by others is as good as public: narrow it to the owner.
fn tighten_permissions(path: &Path) {
    let Ok(metadata) = fs::metadata(path) else {
        return;
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        warn!(path = %path.display(), "the API token was readable by others; setting mode 0600");
        if let Err(error) = fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
            warn!(path = %path.display(), %error, "cannot restrict the token file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_created_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let first = load_or_create(&state).expect("create");
        assert_eq!(first.as_str().len(), 64);
        let mode = fs::metadata(path(&state))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(&state).expect("read");
        assert_eq!(first, again);
        assert_ne!(first, Token::generate().expect("random"));
    }

    #[test]
    fn a_malformed_token_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(path(dir.path()), "short").expect("write");
        let message = load_or_create(dir.path()).expect_err("refused").to_string();
        assert!(message.contains("delete the file"), "{message}");
    }

    #[test]
    fn comparison_needs_every_byte_and_the_length() {
        let token = Token::parse(&"ab".repeat(32)).expect("token");
        assert!(token.matches(&"ab".repeat(32)));
        assert!(!token.matches(&"ab".repeat(31)));
        assert!(!token.matches(&format!("{}ac", "ab".repeat(31))));
        assert!(!token.matches(""));
        assert!(!token.matches(&"ab".repeat(33)));
    }

    #[test]
    fn a_dangling_link_in_place_of_the_token_is_an_error_not_a_loop_or_a_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let elsewhere = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, path(dir.path())).expect("symlink");
        let message = load_or_create(dir.path())
            .expect_err("dangling link")
            .to_string();
        assert!(message.contains("cannot be read"), "{message}");
        assert!(
            !elsewhere.exists(),
            "the token was written through the link"
        );
        assert!(
            !dir.path().join(".token.tmp").exists(),
            "the temporary file stayed"
        );
    }
}
