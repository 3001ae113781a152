//! Graceful shutdown on SIGINT/SIGTERM without async machinery: the signals are blocked in
//! every thread (the mask is inherited, so this runs before any thread starts) and one
//! thread takes them with `sigwait`.

use std::sync::mpsc;

/// The signals that end the process gracefully.
const SHUTDOWN: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

fn shutdown_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in SHUTDOWN {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Blocks the shutdown signals in this thread and every thread it starts later, and
/// returns a channel that receives the signal number once one arrives.
pub fn block_and_watch() -> mpsc::Receiver<i32> {
    let set = shutdown_set();
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let (sender, receiver) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("paravox-signals".into())
        .spawn(move || {
            let mut signal: libc::c_int = 0;
            // SAFETY: `set` is initialised and `signal` is a valid out-pointer.
            if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                let _ = sender.send(signal);
            }
        });
    if spawned.is_err() {
        tracing::warn!(
            "could not start the signal thread; SIGINT/SIGTERM will not stop gracefully"
        );
    }
    receiver
}

/// The signal's name for logs.
pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
