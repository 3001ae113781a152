//! libasound's own error messages ("ALSA lib pcm.c:…: Unknown PCM …"), which it prints
//! to stderr by default, go to paravox's log instead: one `info` line with the library's
//! source location, at target `alsa`. Info, not a warning: every failure libasound
//! describes also comes back to paravox as an error, which paravox reports in its own
//! words (and a missing `default` device, tried before a fallback, is a chain of nine).
//! The handler is installed the first time a PCM is opened.

use std::ffi::{CStr, c_char, c_int};
use std::sync::Once;

unsafe extern "C" {
    /// Installs the C handler of `csrc/alsa_log.c`, which calls [`paravox_alsa_log`].
    fn paravox_alsa_route_errors() -> c_int;
}

/// Routes libasound's messages into the log (once per process).
pub(crate) fn route_errors_to_log() {
    static ROUTED: Once = Once::new();
    ROUTED.call_once(|| {
        // SAFETY: sets a process-wide function pointer in libasound; no arguments.
        let rc = unsafe { paravox_alsa_route_errors() };
        if rc < 0 {
            tracing::debug!(rc, "libasound's messages stay on stderr");
        }
    });
}

/// Called by the C handler with a formatted message. Errors are rare (a missing PCM, a
/// bad configuration), so a log line here is worth its cost even on an endpoint thread.
#[unsafe(no_mangle)]
extern "C" fn paravox_alsa_log(
    file: *const c_char,
    line: c_int,
    function: *const c_char,
    err: c_int,
    message: *const c_char,
) {
    let text = |pointer: *const c_char| {
        if pointer.is_null() {
            String::new()
        } else {
            // SAFETY: libasound passes NUL-terminated strings (or null, handled above)
            // that live for the call; the message is our own NUL-terminated buffer.
            unsafe { CStr::from_ptr(pointer) }
                .to_string_lossy()
                .into_owned()
        }
    };
    let (file, function, message) = (text(file), text(function), text(message));
    let message = message.trim_end();
    if err != 0 {
        let reason = std::io::Error::from_raw_os_error(err.abs());
        tracing::info!(target: "alsa", location = %format!("{file}:{line}"), function, %reason, "{message}");
    } else {
        tracing::info!(target: "alsa", location = %format!("{file}:{line}"), function, "{message}");
    }
}
