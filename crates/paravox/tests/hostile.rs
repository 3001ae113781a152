//! A hostile Xen guest against a real daemon: it writes its XenStore nodes at their
//! limits (64 MiB buffers, 384 kHz × 8 channels, a card of 64 streams, an overlong
//! name) and then asks for the most its card's budget allows on every stream, and more.
//! Each request past the budget gets its errno, the daemon's memory stays within the
//! stated bound, and a well-behaved guest on the same endpoint plays bit-exact meanwhile.

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
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let sink = dir.join("out.wav");
        let config = dir.join("paravox.toml");
        fs::write(
            &config,
            format!(
                "[[output]]\nname = \"out\"\nspec = \"wav:{},rate=48000,channels=2,format=s16_le\"\n\
                 [[input]]\nname = \"in\"\nspec = \"null\"\n\
                 [defaults]\noutput = \"out\"\ninput = \"in\"\n",
                sink.display()
            ),
        )
        .expect("configuration");
        let log = dir.join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_paravox"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--sndif-shm")
            .arg(dir.join("shm"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("paravox serve starts");
        let daemon = Daemon { child, log };
        let ready = [
            SharedMemoryHost::HUB_SOCKET,
            SharedMemoryHost::XENSTORE_SOCKET,
        ]
        .map(|name| dir.join("shm").join(name));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.iter().all(|path| path.exists()) {
            assert!(Instant::now() < deadline, "no sockets:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
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
    let daemon = Daemon::start(dir.path());
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
    let log = daemon.stop();
    assert!(!log.contains("panicked"), "{log}");
    let sink = sink_audio(&dir.path().join("out.wav"));
    assert!(
        sink == played,
        "the good guest's audio is not bit-exact in the sink ({} bytes for {} played; first difference at byte {:?})",
        sink.len(),
        played.len(),
        sink.iter().zip(&played).position(|(a, b)| a != b)
    );
}
