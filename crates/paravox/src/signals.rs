//! Graceful shutdown on SIGINT/SIGTERM and configuration reload on SIGHUP without async
//! machinery: the signals are blocked in every thread (the mask is inherited, so this runs
//! before any thread starts) and one thread takes them with `sigwait`.

use std::sync::mpsc;

/// The signals that end the process gracefully.
const SHUTDOWN: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// The signal that asks for the configuration to be read again (`systemctl reload`).
pub const RELOAD: libc::c_int = libc::SIGHUP;

fn watched_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in SHUTDOWN.into_iter().chain([RELOAD]) {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Blocks the shutdown and reload signals in this thread and every thread it starts
/// later, and returns a channel that receives each signal number as it arrives; the
/// channel closes after the first shutdown signal.
pub fn block_and_watch() -> mpsc::Receiver<i32> {
    let set = watched_set();
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let (sender, receiver) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("paravox-signals".into())
        .spawn(move || {
            loop {
                let mut signal: libc::c_int = 0;
                // SAFETY: `set` is initialised and `signal` is a valid out-pointer.
                if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                    break;
                }
                if sender.send(signal).is_err() || SHUTDOWN.contains(&signal) {
                    break;
                }
            }
        });
    if spawned.is_err() {
        tracing::warn!(
            "could not start the signal thread; SIGINT/SIGTERM will not stop gracefully and SIGHUP will not reload"
        );
    }
    receiver
}

/// The signal's name for logs.
pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}
