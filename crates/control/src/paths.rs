//! File paths given over the API (WAV endpoints, vhost-user sockets): absolute, or, when
//! the daemon confines API paths to a directory, inside it.

use std::path::{Component, Path, PathBuf};

use crate::error::ControlError;

/// The path `given` resolves to, or why it is refused. `what` names it in the message.
pub fn resolve(given: &Path, root: Option<&Path>, what: &str) -> Result<PathBuf, ControlError> {
    if given.as_os_str().is_empty() {
        return Err(ControlError::invalid(format!("{what} is empty")));
    }
    match root {
        None if given.is_absolute() => Ok(given.to_owned()),
        None => Err(ControlError::invalid(format!(
            "{what} '{}' must be an absolute path",
            given.display()
        ))),
        Some(root) => {
            if given.components().any(|c| c == Component::ParentDir) {
                return Err(ControlError::invalid(format!(
                    "{what} '{}' must not contain '..'",
                    given.display()
                )));
            }
            let full = root.join(given);
            if full.starts_with(root) {
                Ok(full)
            } else {
                Err(ControlError::invalid(format!(
                    "{what} '{}' must lie inside {} (this daemon confines API paths there)",
                    given.display(),
                    root.display()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfined_paths_must_be_absolute() {
        assert_eq!(
            resolve(Path::new("/tmp/a.wav"), None, "file").expect("ok"),
            PathBuf::from("/tmp/a.wav")
        );
        assert!(resolve(Path::new("a.wav"), None, "file").is_err());
        assert!(resolve(Path::new(""), None, "file").is_err());
    }

    #[test]
    fn confined_paths_stay_inside_the_root() {
        let root = Path::new("/srv/paravox");
        assert_eq!(
            resolve(Path::new("a.wav"), Some(root), "file").expect("relative"),
            PathBuf::from("/srv/paravox/a.wav")
        );
        assert!(resolve(Path::new("/srv/paravox/x/b.wav"), Some(root), "file").is_ok());
        assert!(resolve(Path::new("/etc/passwd"), Some(root), "file").is_err());
        assert!(resolve(Path::new("x/../../etc"), Some(root), "file").is_err());
    }
}
