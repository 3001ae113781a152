//! A daemon started as a user would start it, for the tests that drive it from outside:
//! its log, its API with the token, and a clean stop.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to start on a loaded machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub port: u16,
    pub state: PathBuf,
}

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl Daemon {
    /// `paravox serve` with the state in `dir/state`, the API on a free port and `args`
    /// besides, started through `launcher` (e.g. `systemd-socket-activate …`) when given.
    pub fn spawn(dir: &Path, launcher: &[&str], args: &[&str]) -> Daemon {
        let log = dir.join("daemon.log");
        let port = free_port();
        let state = dir.join("state");
        let mut command = match launcher.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(env!("CARGO_BIN_EXE_paravox"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_paravox")),
        };
        let child = command
            .arg("serve")
            .arg("--state-dir")
            .arg(&state)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--api-sockets")
            .arg(dir.join("sockets"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("paravox serve starts");
        Daemon {
            child,
            log,
            port,
            state,
        }
    }

    /// `paravox serve ARGS` exactly as given (nothing added but the API port), with
    /// `env` set, its state expected in `state`.
    pub fn spawn_as_is(dir: &Path, env: &[(&str, &Path)], state: &Path, args: &[&str]) -> Daemon {
        let log = dir.join("daemon.log");
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_paravox"));
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("paravox serve starts");
        Daemon {
            child,
            log,
            port,
            state: state.to_path_buf(),
        }
    }

    /// Waits until the API answers with the token in place.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.state.join("token").exists() || self.http("GET", "/healthz", None).0 != 200 {
            assert!(Instant::now() < deadline, "not serving:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One HTTP request with the token; (status, body), status 0 when nothing answered.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let token = fs::read_to_string(self.state.join("token")).unwrap_or_default();
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new());
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            token.trim(),
            body.len()
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, body)| body.to_owned());
        (status, body)
    }

    /// The body of a GET that must answer 200, as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.http("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}\n{}", self.log());
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path}: {error}: {body}"))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log says `needle`: the API answers before the daemon's last start-up
    /// steps (the seccomp filter) are logged.
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the log never said {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits; the exit must be clean.
    pub fn stop(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        let log = self.log();
        assert!(status.success(), "{status:?}\n{log}");
        log
    }

    /// Context switches of every thread of the daemon, by thread id.
    pub fn context_switches(&self) -> Vec<(String, u64)> {
        let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", self.child.id())) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .map(|task| {
                let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
                let switches = status
                    .lines()
                    .filter_map(|line| {
                        line.strip_prefix("voluntary_ctxt_switches:")
                            .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                    })
                    .filter_map(|count| count.trim().parse::<u64>().ok())
                    .sum();
                (
                    format!("{} {}", task.file_name().to_string_lossy(), comm.trim()),
                    switches,
                )
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
