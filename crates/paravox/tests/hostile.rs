//! Hostile guests against a real daemon, one per protocol. The Xen guest writes its
//! XenStore nodes at their limits (64 MiB buffers, 384 kHz × 8 channels, a card of 64
//! streams, an overlong name) and then asks for the most its card's budget allows on
//! every stream, and more; the virtio guest re-posts an event buffer hundreds of times
//! and asks for oversize, zero and past-budget buffers. Each request gets its protocol's
//! error, the daemon's memory stays within the stated bound, and a well-behaved guest on
//! the same endpoint plays bit-exact meanwhile.

#[path = "../../virtio-snd/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations, dead_code, unused_imports)]
mod support;
#[path = "../../sndif/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations, dead_code, unused_imports)]
mod xen;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paravox_engine::{Budget, Direction};
use paravox_host_audio::wav::WavReader;
use paravox_sndif::SharedMemoryHost;
use paravox_sndif::wire::TriggerKind;
use paravox_sndif::xenstore::XenbusState;

const EINVAL: i32 = -22;
const ENOMEM: i32 = -12;
const MIB: u64 = 1 << 20;
/// What the hostile guest may make the daemon hold beyond its baseline: its rings and
/// the guest buffers it maps (each at most `card_buffer_bytes`), plus room for the
/// allocator and the extra threads and mappings of one device.
const MEMORY_BOUND: u64 = 2 * (32 * MIB) + 24 * MIB;

struct Daemon {
    child: Child,
    log: std::path::PathBuf,
    port: u16,
    state: std::path::PathBuf,
}

impl Daemon {
    /// A daemon playing into `out.wav` in `dir`, with `cards` (TOML) besides.
    fn start(dir: &Path, cards: &str) -> Daemon {
        let sink = dir.join("out.wav");
        let config = dir.join("paravox.toml");
        fs::write(
            &config,
            format!(
                "[[output]]\nname = \"out\"\nspec = \"wav:{},rate=48000,channels=2,format=s16_le\"\n\
                 [[input]]\nname = \"in\"\nspec = \"null\"\n\
                 [defaults]\noutput = \"out\"\ninput = \"in\"\n{cards}",
                sink.display()
            ),
        )
        .expect("configuration");
        let log = dir.join("daemon.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let state = dir.join("state");
        let child = Command::new(env!("CARGO_BIN_EXE_paravox"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--api-sockets")
            .arg(dir.join("sockets"))
            .arg("--sndif-shm")
            .arg(dir.join("shm"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("paravox serve starts");
        let daemon = Daemon {
            child,
            log,
            port,
            state,
        };
        // The API answers once every card serves.
        let ready = [
            dir.join("shm").join(SharedMemoryHost::HUB_SOCKET),
            dir.join("shm").join(SharedMemoryHost::XENSTORE_SOCKET),
            daemon.state.join("token"),
        ];
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.iter().all(|path| path.exists())
            || daemon.http("GET", "/healthz", None).0 != 200
        {
            assert!(Instant::now() < deadline, "not serving:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// One HTTP request with the token; (status, body), status 0 when nothing answered.
    fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        use std::io::{Read, Write};
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
        (status, answer)
    }

    /// Descriptors the daemon holds.
    fn descriptors(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's resident memory in bytes.
    fn rss(&self) -> u64 {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    fn stop(mut self) -> String {
        // SAFETY: kill with a pid this test spawned and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("daemon exit");
        let log = self.log();
        assert!(status.success(), "paravox exited with {status}:\n{log}");
        log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tone whose every frame is non-zero, so the sink's own silence is told apart.
fn tone(frames: usize) -> Vec<u8> {
    (0..frames)
        .flat_map(|frame| {
            let phase = frame as f64 * 2.0 * std::f64::consts::PI * 440.0 / 48_000.0;
            let left = (phase.sin() * 12_000.0) as i16 | 1;
            let right = (frame as i16) | 0x4000;
            [left.to_le_bytes(), right.to_le_bytes()].concat()
        })
        .collect()
}

/// The sink's frames between its leading and trailing silence.
fn sink_audio(path: &Path) -> Vec<u8> {
    let mut reader = WavReader::open(path).expect("the sink");
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = reader.read_bytes(&mut chunk).expect("read the sink");
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    let silent = |frame: &[u8]| frame.iter().all(|&b| b == 0);
    let frames: Vec<&[u8]> = bytes.chunks_exact(4).collect();
    let first = frames
        .iter()
        .position(|f| !silent(f))
        .unwrap_or(frames.len());
    let last = frames
        .iter()
        .rposition(|f| !silent(f))
        .map_or(first, |l| l + 1);
    frames[first..last].concat()
}

fn params(rate: u32, channels: u32, buffer_bytes: u32) -> xen::Params {
    xen::Params {
        format: 2,
        rate,
        channels,
        buffer_bytes,
        period_bytes: buffer_bytes / 4,
    }
}

#[test]
fn a_hostile_guest_is_held_to_its_budget_while_another_plays_bit_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), "");
    let shm = dir.path().join("shm");
    let hub = shm.join(SharedMemoryHost::HUB_SOCKET);
    let xenstore = shm.join(SharedMemoryHost::XENSTORE_SOCKET);
    let budget = Budget::default();

    // The well-behaved guest: 6 s of a tone, as aplay plays it.
    let played = tone(6 * 48_000);
    let good_domain = xen::FrontDomain::connect(&hub, 1);
    let mut good = xen::FrontDevice::create_at(
        &xenstore,
        &good_domain,
        0,
        &[("sample-formats", "s16_le"), ("short-name", "good")],
        &[(0, 0, Direction::Playback)],
    );
    good.connect();

    std::thread::scope(|scope| {
        let player = scope.spawn(|| {
            xen::play(
                good.stream(0, 0),
                &xen::Params::s16_stereo(10),
                &played,
                |_| {},
            );
        });
        // Hostile audio only joins once the good guest's is in the sink.
        good.stream(0, 0)
            .events
            .wait_until(xen::REQUEST_TIMEOUT, |pos| pos > 0)
            .expect("the good guest plays");
        let baseline = daemon.rss();

        // A card of 64 streams: past the budget's 32, refused as a whole, with the reason
        // in XenStore.
        let hostile_domain = xen::FrontDomain::connect_with_pages(&hub, 2, 16_384);
        let long_name = "n".repeat(4000);
        let limits: [(&str, &str); 5] = [
            ("sample-formats", "s16_le,s32_le"),
            ("sample-rates", "48000,96000,192000,384000"),
            ("channels-max", "8"),
            ("buffer-size", "67108864"),
            ("short-name", &long_name),
        ];
        let wide: Vec<(u32, u32, Direction)> = (0..8)
            .flat_map(|pcm| (0..8).map(move |index| (pcm, index, Direction::Playback)))
            .collect();
        let mut too_wide =
            xen::FrontDevice::create_at(&xenstore, &hostile_domain, 1, &limits, &wide);
        too_wide.publish();
        assert!(
            too_wide.wait_backend_state(XenbusState::Closing, Duration::from_secs(10)),
            "a card of 64 streams was not refused (backend {})",
            too_wide.backend_state()
        );
        let why = too_wide.backend_error().unwrap_or_default();
        assert!(
            why.contains("streams"),
            "the refusal names the limit: {why}"
        );

        // A card of 32 streams at the same limits: served, with its buffers narrowed.
        let layout: Vec<(u32, u32, Direction)> = (0..4)
            .flat_map(|pcm| (0..8).map(move |index| (pcm, index, Direction::Playback)))
            .collect();
        let mut hostile =
            xen::FrontDevice::create_at(&xenstore, &hostile_domain, 0, &limits, &layout);
        hostile.connect();
        let stream = |n: usize| hostile.stream(n as u32 / 8, n as u32 % 8);
        let offered = stream(0)
            .query(xen::any_params())
            .expect("the query is answered");
        assert!(
            u64::from(offered.buffer.max) * 2 <= u64::from(budget.stream_buffer_bytes),
            "HW_PARAM_QUERY offers {} frames, past stream_buffer_bytes",
            offered.buffer.max
        );

        // The largest buffer on every stream, each filled: the card's total stops it.
        let largest = budget.stream_buffer_bytes;
        let fits = (budget.card_buffer_bytes / u64::from(largest)) as usize;
        let silence = vec![0u8; largest as usize];
        for n in 0..fits {
            assert_eq!(stream(n).open(&params(48_000, 2, largest)), 0, "OPEN {n}");
            assert_eq!(stream(n).write(0, &silence), 0, "WRITE {n}");
        }
        assert_eq!(
            stream(fits).open_raw(&params(48_000, 2, largest), None),
            ENOMEM,
            "a buffer past card_buffer_bytes"
        );
        assert_eq!(
            stream(fits).open_raw(&params(48_000, 2, largest + 4096), None),
            EINVAL,
            "a buffer past stream_buffer_bytes"
        );
        assert_eq!(
            stream(fits).open_raw(&params(48_000, 2, 0), None),
            EINVAL,
            "a zero-sized buffer"
        );
        let peak = daemon.rss();

        // Rate × channels: one 384 kHz × 8 stream fits beside the others once a buffer
        // is given back, and it runs (silent) on the shared endpoint; a second does not.
        assert_eq!(stream(0).close(), 0);
        let fast = params(384_000, 8, 384 * 16 * 10);
        assert_eq!(stream(0).open_raw(&fast, None), 0, "OPEN 384 kHz × 8");
        assert_eq!(
            stream(0).write(0, &vec![0u8; fast.buffer_bytes as usize]),
            0
        );
        assert_eq!(stream(0).trigger(TriggerKind::Start), 0);
        assert_eq!(
            stream(fits).open_raw(&fast, None),
            ENOMEM,
            "a second 384 kHz × 8 stream past card_samples_per_second"
        );

        player.join().expect("the good guest finished");
        let grown = peak.saturating_sub(baseline);
        eprintln!(
            "daemon memory: {} MiB before the hostile guest, {} MiB at its peak (+{} MiB, bound {} MiB)",
            baseline / MIB,
            peak / MIB,
            grown / MIB,
            MEMORY_BOUND / MIB
        );
        assert!(
            grown <= MEMORY_BOUND,
            "the hostile guest grew the daemon by {} MiB",
            grown / MIB
        );
        hostile.set_state(XenbusState::Closing);
        too_wide.set_state(XenbusState::Closing);
    });
    good.set_state(XenbusState::Closing);
    check_sink(daemon, dir.path(), &played);
}

/// Stops the daemon and compares its sink with what the good guest played.
fn check_sink(daemon: Daemon, dir: &Path, played: &[u8]) {
    let log = daemon.stop();
    assert!(!log.contains("panicked"), "{log}");
    let sink = sink_audio(&dir.join("out.wav"));
    assert!(
        sink == played,
        "the good guest's audio is not bit-exact in the sink ({} bytes for {} played; first difference at byte {:?})",
        sink.len(),
        played.len(),
        sink.iter().zip(played).position(|(a, b)| a != b)
    );
}

#[test]
fn a_hostile_virtio_guest_gets_its_errors_while_another_plays_bit_exact() {
    use support::spec::PERIOD_10MS_BYTES;
    use support::virtqueue::Segment;
    use support::{Driver, SetParams, queue, status};

    let dir = tempfile::tempdir().expect("tempdir");
    // The hostile card's own budget: one full-size buffer in all.
    let largest = 4 << 20;
    let cards = format!(
        "[[virtio]]\nname = \"good\"\nsocket = \"{}\"\n\
         [[virtio]]\nname = \"bad\"\nsocket = \"{}\"\nbudget = {{ card_buffer_bytes = {largest} }}\n",
        dir.path().join("good.sock").display(),
        dir.path().join("bad.sock").display()
    );
    let daemon = Daemon::start(dir.path(), &cards);
    // Whole periods, so the driver's padding adds nothing.
    let played = tone(6 * 48_000);
    assert_eq!(played.len() % PERIOD_10MS_BYTES as usize, 0);

    std::thread::scope(|scope| {
        let good = dir.path().join("good.sock");
        let tone = &played;
        let player = scope.spawn(move || {
            let mut driver = Driver::connect(&good);
            support::play_through(&mut driver, &SetParams::s16_stereo_48k(0, 8), tone);
            driver.disconnect();
        });
        std::thread::sleep(Duration::from_millis(500));
        let baseline = daemon.rss();

        let mut driver = Driver::connect(&dir.path().join("bad.sock"));
        // One event buffer, made available 200 times (within the queue's 256), then 300
        // more: held once, and past the queue's size the event queue is ignored while
        // the card's other queues go on (a driver that did this once made the card's
        // thread spin on the queue forever).
        let buffer = driver.ram().alloc(8, 8);
        let head = driver.post_raw(queue::EVENT, &[Segment::writable(buffer, 8)]);
        driver.repost(queue::EVENT, head, 200);
        driver.repost(queue::EVENT, head, 300);

        // Oversize and zero buffers.
        let periods = |count: u32| SetParams {
            buffer_bytes: count * PERIOD_10MS_BYTES,
            ..SetParams::s16_stereo_48k(0, 8)
        };
        let full = largest / PERIOD_10MS_BYTES;
        assert_eq!(
            driver.set_params(&periods(full + 1)),
            status::NOT_SUPP,
            "past 4 MiB"
        );
        assert_eq!(
            driver.set_params(&periods(0)),
            status::BAD_MSG,
            "a zero buffer"
        );
        // The largest buffer on both streams: the card's budget holds one.
        assert_eq!(driver.set_params(&periods(full)), status::OK);
        assert_eq!(
            driver.set_params(&SetParams {
                stream_id: 1,
                ..periods(full)
            }),
            status::OK
        );
        assert_eq!(driver.prepare(0), status::OK);
        assert_eq!(
            driver.prepare(1),
            status::NOT_SUPP,
            "past card_buffer_bytes"
        );
        let peak = daemon.rss();

        // The re-posted buffer is held once and nothing is owed to the guest yet: none of
        // the 500 comes back.
        let used = driver.wait_raw(queue::EVENT, Duration::from_millis(300));
        assert!(used.is_none(), "an event buffer came back: {used:?}");
        player.join().expect("the good guest finished");
        let grown = peak.saturating_sub(baseline);
        let bound = u64::from(largest) + 24 * MIB;
        eprintln!(
            "daemon memory: {} MiB before the hostile guest, {} MiB at its peak (+{} MiB, bound {} MiB)",
            baseline / MIB,
            peak / MIB,
            grown / MIB,
            bound / MIB
        );
        assert!(
            grown <= bound,
            "the hostile guest grew the daemon by {} MiB",
            grown / MIB
        );
        assert_eq!(driver.release(0), status::OK);
        driver.disconnect();
        assert!(
            daemon
                .log()
                .contains("more buffers available than the queue holds"),
            "the broken event queue is named in the log"
        );
    });
    check_sink(daemon, dir.path(), &played);
}

/// A hostile local client over HTTP while a Xen guest plays: more half-sent requests than
/// the API takes connections, and requests that try to make the daemon write where it
/// must not. Every trick gets its refusal, the token and saved state are intact, the
/// descriptors and memory stay bounded, `/healthz` answers throughout and the guest's
/// audio is bit-exact.
#[test]
fn a_hostile_http_client_is_refused_while_a_guest_plays_bit_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vm = dir.path().join("vm.sock");
    let daemon = Daemon::start(
        dir.path(),
        &format!("[[virtio]]\nname = \"vm\"\nsocket = \"{}\"\n", vm.display()),
    );
    let shm = dir.path().join("shm");
    let played = tone(6 * 48_000);
    let domain = xen::FrontDomain::connect(&shm.join(SharedMemoryHost::HUB_SOCKET), 1);
    let mut guest = xen::FrontDevice::create_at(
        &shm.join(SharedMemoryHost::XENSTORE_SOCKET),
        &domain,
        0,
        &[("sample-formats", "s16_le")],
        &[(0, 0, Direction::Playback)],
    );
    guest.connect();
    let token_before = fs::read_to_string(daemon.state.join("token")).expect("token");

    std::thread::scope(|scope| {
        let player = scope.spawn(|| {
            xen::play(
                guest.stream(0, 0),
                &xen::Params::s16_stereo(10),
                &played,
                |_| {},
            );
        });
        guest
            .stream(0, 0)
            .events
            .wait_until(xen::REQUEST_TIMEOUT, |pos| pos > 0)
            .expect("the guest plays");
        let (baseline_memory, baseline_fds) = (daemon.rss(), daemon.descriptors());

        // 400 connections, each with half a request line and no token, held open.
        let flood: Vec<std::net::TcpStream> = (0..400)
            .filter_map(|_| {
                use std::io::Write;
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).ok()?;
                stream.write_all(b"GET /api/str").ok()?;
                Some(stream)
            })
            .collect();
        assert!(flood.len() >= 300, "the flood connected ({})", flood.len());
        assert_eq!(
            daemon.http("GET", "/healthz", None).0,
            200,
            "healthz during the flood"
        );
        // A VMM connects during the flood and its guest's driver is answered.
        let mut driver = support::Driver::connect(&vm);
        assert_eq!(
            driver.set_params(&support::SetParams::s16_stereo_48k(0, 8)),
            support::status::OK,
            "a VMM connecting during the flood is served"
        );
        let flooded_fds = daemon.descriptors();

        // Path tricks: each refused, nothing written where it must not be.
        let state = daemon.state.display().to_string();
        let outside = dir.path().join("elsewhere.wav").display().to_string();
        let link = daemon.state.join("outputs").join("link.wav");
        std::os::unix::fs::symlink(daemon.state.join("token"), &link).expect("symlink");
        let endpoint = |name: &str, spec: &str| {
            let direction = if spec.starts_with("wavsrc:") {
                "capture"
            } else {
                "playback"
            };
            format!(r#"{{"name": "{name}", "direction": "{direction}", "spec": "{spec}"}}"#)
        };
        let card = |socket: &str| format!(r#"{{"name": "trick", "socket": "{socket}"}}"#);
        let tricks = [
            (
                "/api/endpoints",
                endpoint("t1", &format!("wav:{state}/token")),
            ),
            ("/api/endpoints", endpoint("t2", "wav:../token")),
            ("/api/endpoints", endpoint("t3", &format!("wav:{outside}"))),
            ("/api/endpoints", endpoint("t4", "wav:link.wav")),
            (
                "/api/endpoints",
                endpoint("t5", &format!("wavsrc:{state}/token")),
            ),
            ("/api/cards", card(&format!("{state}/state.json"))),
            ("/api/cards", card("../state/token")),
            ("/api/cards", card(&format!("{state}/outputs/x.sock"))),
        ];
        for (path, body) in &tricks {
            let (status, answer) = daemon.http("POST", path, Some(body));
            assert!(
                (400..500).contains(&status),
                "{body} was not refused ({status}): {answer}"
            );
        }
        assert_eq!(
            fs::read_to_string(daemon.state.join("token")).expect("token"),
            token_before,
            "the token is untouched"
        );
        assert!(!Path::new(&outside).exists(), "nothing written outside");
        let peak_memory = daemon.rss();
        driver.disconnect();
        drop(flood);
        assert_eq!(daemon.http("GET", "/healthz", None).0, 200);

        player.join().expect("the guest finished");
        eprintln!(
            "daemon under the HTTP flood: {} descriptors before, {} during (+{}), memory +{} MiB",
            baseline_fds,
            flooded_fds,
            flooded_fds.saturating_sub(baseline_fds),
            peak_memory.saturating_sub(baseline_memory) / MIB
        );
        // The API's 256 connections, and room for the daemon's own coming and going.
        assert!(
            flooded_fds <= baseline_fds + 256 + 32,
            "the flood holds {flooded_fds} descriptors (from {baseline_fds})"
        );
        assert!(
            peak_memory.saturating_sub(baseline_memory) <= 32 * MIB,
            "the flood grew the daemon by {} MiB",
            peak_memory.saturating_sub(baseline_memory) / MIB
        );
    });
    guest.set_state(XenbusState::Closing);
    check_sink(daemon, dir.path(), &played);
}
