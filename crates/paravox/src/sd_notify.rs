//! systemd's service notification protocol (`sd_notify(3)`), spoken directly: each state
//! change is one datagram of newline-separated `KEY=VALUE` assignments sent to the
//! Unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
//! Outside systemd the variable is unset and every call is a no-op.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

/// The service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, or `None` when the variable is unset (not run
    /// by systemd with `Type=notify`) or names a socket that cannot be used (logged).
    pub fn from_env() -> Option<Arc<Notifier>> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let value = value.to_string_lossy();
        match Notifier::connect(&value) {
            Ok(notifier) => Some(Arc::new(notifier)),
            Err(error) => {
                warn!(socket = %value, %error, "NOTIFY_SOCKET unusable; systemd will not hear of readiness");
                None
            }
        }
    }

    /// A notifier for `socket`: `/path` or `@abstract-name`.
    pub fn connect(socket: &str) -> io::Result<Notifier> {
        let address = if let Some(name) = socket.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if socket.starts_with('/') {
            SocketAddr::from_pathname(socket)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET must be an absolute path or @abstract-name",
            ));
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            address,
        })
    }

    /// Sends one notification, e.g. `"READY=1\nSTATUS=serving"`.
    pub fn notify(&self, assignments: &str) -> io::Result<()> {
        let sent = self
            .socket
            .send_to_addr(assignments.as_bytes(), &self.address)?;
        if sent != assignments.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "notification datagram truncated",
            ));
        }
        Ok(())
    }

    /// Sends a notification, logging rather than failing: the daemon serves VMs whether or
    /// not systemd hears about it.
    pub fn send(&self, assignments: &str) {
        match self.notify(assignments) {
            Ok(()) => debug!(assignments, "notified systemd"),
            Err(error) => warn!(assignments, %error, "could not notify systemd"),
        }
    }

    /// `RELOADING=1` with the monotonic timestamp systemd (253 and later) uses to match
    /// it with the `READY=1` that ends the reload.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the configuration",
            monotonic_usec()
        ));
    }

    /// Starts a thread that sends `WATCHDOG=1` at half the interval systemd asked for
    /// (`$WATCHDOG_USEC`, for this process when `$WATCHDOG_PID` is set), as long as
    /// `alive` answers true; a daemon that stops answering is restarted by systemd.
    pub fn start_watchdog(
        self: &Arc<Self>,
        alive: impl Fn() -> bool + Send + 'static,
    ) -> io::Result<()> {
        let Some(interval) = watchdog_interval() else {
            return Ok(());
        };
        let notifier = self.clone();
        std::thread::Builder::new()
            .name("paravox-watchdog".into())
            .spawn(move || {
                loop {
                    if alive() {
                        notifier.send("WATCHDOG=1");
                    } else {
                        warn!("engine not answering; withholding the watchdog ping");
                    }
                    std::thread::sleep(interval / 2);
                }
            })?;
        debug!(
            interval_ms = interval.as_millis(),
            "systemd watchdog enabled"
        );
        Ok(())
    }
}

/// The watchdog interval systemd set for this process, if any.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    watchdog_interval_from(&usec, std::env::var("WATCHDOG_PID").ok().as_deref())
}

fn watchdog_interval_from(usec: &str, pid: Option<&str>) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    match usec.trim().parse::<u64>() {
        Ok(usec) if usec > 0 => Some(Duration::from_micros(usec)),
        _ => None,
    }
}

fn monotonic_usec() -> u64 {
    // SAFETY: clock_gettime fills the timespec we own; CLOCK_MONOTONIC always exists.
    let time = unsafe {
        let mut time: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut time);
        time
    };
    let seconds = u64::try_from(time.tv_sec).unwrap_or(0);
    let micros = u64::try_from(time.tv_nsec).unwrap_or(0) / 1_000;
    seconds * 1_000_000 + micros
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(socket: &UnixDatagram) -> String {
        let mut buffer = [0u8; 512];
        let length = socket.recv(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..length]).into_owned()
    }

    #[test]
    fn notifications_reach_a_path_socket_as_one_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::connect(path.to_str().unwrap()).unwrap();
        notifier.notify("READY=1\nSTATUS=serving").unwrap();
        assert_eq!(received(&listener), "READY=1\nSTATUS=serving");
        notifier.reloading();
        let reload = received(&listener);
        assert!(
            reload.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reload}"
        );
    }

    #[test]
    fn notifications_reach_an_abstract_socket() {
        let name = format!("paravox-test-notify-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&address).unwrap();
        let notifier = Notifier::connect(&format!("@{name}")).unwrap();
        notifier.notify("STOPPING=1").unwrap();
        assert_eq!(received(&listener), "STOPPING=1");
    }

    #[test]
    fn relative_socket_names_are_refused() {
        assert!(Notifier::connect("notify.sock").is_err());
        assert!(Notifier::connect("vsock:2:1234").is_err());
    }

    #[test]
    fn the_watchdog_is_ours_only_when_the_pid_matches() {
        let own = std::process::id().to_string();
        assert_eq!(
            watchdog_interval_from("3000000", Some(&own)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            watchdog_interval_from("3000000", None),
            Some(Duration::from_secs(3))
        );
        assert_eq!(watchdog_interval_from("3000000", Some("1")), None);
        assert_eq!(watchdog_interval_from("0", None), None);
        assert_eq!(watchdog_interval_from("soon", None), None);
    }
}
