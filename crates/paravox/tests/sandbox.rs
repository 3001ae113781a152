//! The daemon's sandbox, from outside: a running `paravox serve` is under a seccomp
//! filter, and when something inside it tries to run a program (here libasound, told by
//! an asoundrc to pipe a PCM through a shell command) the call fails, the endpoint is
//! refused and the daemon keeps serving. The same steps with `--no-sandbox` run the
//! command, so the test would notice a sandbox that stopped nothing.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paravox_api::client::Client;
use paravox_api::model::{DirectionName, EndpointRequest};

struct Daemon {
    child: Child,
    log: PathBuf,
    client: Client,
}

impl Daemon {
    fn start(dir: &Path, sandbox: bool) -> Daemon {
        let state = dir.join("state");
        let asoundrc = dir.join("asoundrc");
        fs::write(
            &asoundrc,
            format!(
                "</usr/share/alsa/alsa.conf>\n\
                 pcm.piped {{ type file; slave.pcm \"null\"; file \"|echo ran > {}\"; format \"raw\" }}\n",
                state.join("ran").display()
            ),
        )
        .expect("asoundrc");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let log = dir.join("daemon.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_paravox"));
        command
            .arg("serve")
            .arg("--state-dir")
            .arg(&state)
            .args(["--output", "null", "--input", "null"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--api-sockets")
            .arg(dir.join("sockets"))
            // A directory the daemon must create, in a parent no Landlock rule covers.
            .arg("--sndif-shm")
            .arg(dir.join("xen").join("shm"))
            .env("ALSA_CONFIG_PATH", &asoundrc)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"));
        if !sandbox {
            command.arg("--no-sandbox");
        }
        let child = command.spawn().expect("paravox serve starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        let token = loop {
            if let Ok(token) = fs::read_to_string(state.join("token"))
                && !token.trim().is_empty()
            {
                break token.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "no token");
            std::thread::sleep(Duration::from_millis(50));
        };
        let client = Client::new(&format!("http://127.0.0.1:{port}"), &token);
        let daemon = Daemon { child, log, client };
        while daemon.client.health().is_err() {
            assert!(Instant::now() < deadline, "no API:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        let hub = dir
            .join("xen")
            .join("shm")
            .join(paravox_sndif::SharedMemoryHost::HUB_SOCKET);
        assert!(
            hub.exists(),
            "the sndif transport does not listen at {}:\n{}",
            hub.display(),
            daemon.log()
        );
        daemon
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn seccomp_mode(&self) -> String {
        fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("status")
            .lines()
            .find_map(|line| line.strip_prefix("Seccomp:"))
            .expect("Seccomp line")
            .trim()
            .to_owned()
    }

    /// Opens the piped PCM as an endpoint; whether the API took it.
    fn open_piped(&self) -> bool {
        self.client
            .create_endpoint(&EndpointRequest {
                name: "piped".into(),
                direction: DirectionName::Playback,
                spec: "alsa:piped".into(),
            })
            .is_ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_program_run_from_inside_the_daemon_fails_and_the_daemon_serves_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ran = dir.path().join("state").join("ran");
    let daemon = Daemon::start(dir.path(), true);
    assert_eq!(daemon.seccomp_mode(), "2", "a seccomp filter is in force");
    let opened = daemon.open_piped();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !ran.exists(),
        "a shell command ran inside the sandboxed daemon (endpoint opened: {opened})"
    );
    assert!(
        !opened,
        "an endpoint that could not start its pipe was accepted"
    );
    let health = daemon.client.health().expect("the daemon still answers");
    assert_eq!(health.status, "ok");
    assert!(
        daemon.log().contains("confined"),
        "the log says what is confined:\n{}",
        daemon.log()
    );
    drop(daemon);

    // Without the sandbox the same request runs the command: the check above can fail.
    let dir = tempfile::tempdir().expect("tempdir");
    let ran = dir.path().join("state").join("ran");
    let daemon = Daemon::start(dir.path(), false);
    assert_eq!(daemon.seccomp_mode(), "0");
    daemon.open_piped();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ran.exists() {
        assert!(
            Instant::now() < deadline,
            "--no-sandbox did not run the pipe's command:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
