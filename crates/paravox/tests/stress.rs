//! Bit-exactness under stress: guests over both transports play a position-stamped
//! pattern through real daemons (conversion and mixing in the Wasm plugins, and native)
//! while other threads load every CPU, and each WAV sink must hold exactly what its
//! guest played. A wrong byte is named: where it is in the sink, the stream and the
//! endpoint cycle, what should be there, and where the bytes that are there came from.
//!
//! The sndif guest writes chunks that are not whole periods and wraps them around the end
//! of its buffer, keeping the buffer as full as its positions allow (a WRITE beyond them,
//! which Linux's frontend never sends, meets the backend's bounded wait; the frontend
//! tests cover that). The virtio guest queues a whole buffer before START, as Linux does.
//!
//! Capture gets the same scrutiny: each daemon's capture endpoint plays a stamped WAV
//! file in a loop, guests of both transports record while the others play, and every
//! recorded frame must be a frame of that file (a jump between frames is an overrun and
//! only counted; a frame the file does not hold, or silence, fails).
//!
//! `PARAVOX_STRESS_SECONDS` sets the audio each guest plays, in plays of 5 s (default: two);
//! `cargo xtask stress --minutes M` runs it long.

#[path = "../../virtio-snd/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations, dead_code, unused_imports)]
mod support;
#[path = "../../sndif/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations, dead_code, unused_imports)]
mod xen;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use paravox_engine::Direction;
use paravox_host_audio::wav::WavReader;
use paravox_sndif::SharedMemoryHost;
use paravox_sndif::wire::TriggerKind;

/// 48 kHz stereo S16: four bytes a frame.
const FRAME_BYTES: usize = 4;
/// The endpoints' cycle, in frames (the daemon's default period).
const CYCLE_FRAMES: u64 = 480;
/// One play of a guest, in frames (5 s); longer runs play more of them.
const PLAY_FRAMES: usize = 240_000;

/// Stamp of frame `frame` of play `play` of guest `guest`: the left sample is the frame
/// number's low 16 bits, the right one the guest (2 bits), the play (6 bits, counting
/// modulo 64) and the frame number's next 8 bits. Within 64 plays every frame of a guest
/// differs from every other, so a misplaced frame tells where it belongs.
fn stamp(guest: u8, play: u8, frame: usize) -> [u8; FRAME_BYTES] {
    let left = (frame & 0xffff) as u16;
    let right = (u16::from(guest & 0x3) << 14)
        | (u16::from(play & 0x3f) << 8)
        | ((frame >> 16) & 0xff) as u16;
    let [l0, l1] = left.to_le_bytes();
    let [r0, r1] = right.to_le_bytes();
    [l0, l1, r0, r1]
}

/// What a stamped frame says about itself: (guest, play, frame).
fn unstamp(bytes: &[u8]) -> (u8, u8, usize) {
    let left = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
    let right = u16::from_le_bytes([bytes[2], bytes[3]]);
    (
        (right >> 14) as u8,
        ((right >> 8) & 0x3f) as u8,
        (usize::from(right & 0xff) << 16) | left,
    )
}

fn pattern(guest: u8, play: u8, frames: usize) -> Vec<u8> {
    (0..frames)
        .flat_map(|frame| stamp(guest, play, frame))
        .collect()
}

/// The sndif guests' stream: S16 stereo at 48 kHz, the 64 KiB buffer and 16 KiB periods
/// aplay gets from xen-snd-front.
const SNDIF_PARAMS: xen::Params = xen::Params {
    format: 2,
    rate: 48_000,
    channels: 2,
    buffer_bytes: 65_536,
    period_bytes: 16_384,
};

/// Frames of the stamped file the capture endpoints loop (10 s).
const SOURCE_FRAMES: usize = 480_000;
/// The guest and play numbers the capture source's stamps carry.
const SOURCE_TAG: (u8, u8) = (3, 63);

/// What the capture endpoints play, over and over.
fn source_pattern() -> Vec<u8> {
    pattern(SOURCE_TAG.0, SOURCE_TAG.1, SOURCE_FRAMES)
}

fn write_wav(path: &Path, data: &[u8]) {
    let mut writer =
        paravox_host_audio::wav::WavWriter::create(path, paravox_pcm::Format::S16Le, 48_000, 2)
            .expect("WAV writer");
    writer.write_bytes(data).expect("WAV data");
    writer.finalize().expect("WAV header");
}

/// How many plays of [`PLAY_FRAMES`] each guest makes.
fn plays() -> usize {
    let seconds: f64 = std::env::var("PARAVOX_STRESS_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(6.0);
    ((seconds * 48_000.0 / PLAY_FRAMES as f64).ceil() as usize).clamp(2, 100_000)
}

/// A running `paravox serve` with a sndif transport and one virtio card, each routed
/// to a WAV sink of its own.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(binary: &Path, dir: &Path, dsp: &str) -> Daemon {
        fs::create_dir_all(dir).expect("daemon directory");
        let config = dir.join("paravox.toml");
        let sink = |name: &str| {
            format!(
                "[[output]]\nname = \"{name}\"\nspec = \"wav:{},rate=48000,channels=2,format=s16_le\"\n",
                dir.join(format!("{name}.wav")).display()
            )
        };
        let source = dir.join("stamped.wav");
        write_wav(&source, &source_pattern());
        fs::write(
            &config,
            format!(
                "{}{}[[input]]\nname = \"stamped\"\nspec = \"wavsrc:{},loop=1\"\n\
                 [defaults]\noutput = \"sndif\"\ninput = \"stamped\"\ndsp = \"{dsp}\"\n\
                 [[virtio]]\nname = \"vm\"\nsocket = \"{}\"\n\
                 [[virtio.stream]]\ndirection = \"playback\"\nroute = \"virtio\"\n\
                 [[virtio]]\nname = \"mic\"\nsocket = \"{}\"\n\
                 [[virtio.stream]]\ndirection = \"capture\"\nroute = \"stamped\"\n",
                sink("sndif"),
                sink("virtio"),
                source.display(),
                dir.join("vm.sock").display(),
                dir.join("mic.sock").display()
            ),
        )
        .expect("configuration");
        let log = fs::File::create(dir.join("daemon.log")).expect("log");
        let child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--sndif-shm")
            .arg(dir.join("shm"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("paravox serve starts");
        let daemon = Daemon {
            child,
            dir: dir.to_owned(),
        };
        let ready = [
            dir.join("vm.sock"),
            dir.join("mic.sock"),
            dir.join("shm").join(SharedMemoryHost::HUB_SOCKET),
            dir.join("shm").join(SharedMemoryHost::XENSTORE_SOCKET),
        ];
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.iter().all(|path| path.exists()) {
            assert!(
                Instant::now() < deadline,
                "the daemon's sockets never appeared:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Stops the daemon (SIGTERM), so the sinks are final.
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

/// Plays `data` like xen-snd-front under aplay, but with uneven WRITEs: chunk sizes
/// cycle through values that are not whole periods, each is cut at the buffer's end
/// (the next starts at offset 0), and a chunk is sent as soon as the positions show
/// room for it, so the buffer is kept as full as it can be.
fn play_sndif(stream: &xen::FrontStream, params: &xen::Params, data: &[u8]) {
    const CHUNKS: [u64; 5] = [5_000, 16_384, 12_348, 4_100, 9_996];
    assert_eq!(stream.open(params), 0, "OPEN");
    let buffer = u64::from(params.buffer_bytes);
    let total = data.len() as u64;
    let mut appl = 0u64;
    let mut turn = 0usize;
    let mut started = false;
    while appl < total {
        let offset = appl % buffer;
        let chunk = CHUNKS[turn % CHUNKS.len()]
            .min(total - appl)
            .min(buffer - offset);
        let position = stream.events.last_position();
        if buffer < appl - position + chunk {
            if !started {
                assert_eq!(stream.trigger(TriggerKind::Start), 0, "START");
                started = true;
                continue;
            }
            let before = appl;
            stream
                .events
                .wait_until(xen::REQUEST_TIMEOUT, |pos| buffer >= before - pos + chunk)
                .expect("CUR_POS shows room within 3 s");
            continue;
        }
        let status = stream.write(offset as u32, &data[appl as usize..(appl + chunk) as usize]);
        assert_eq!(status, 0, "WRITE of {chunk} bytes at {appl}");
        appl += chunk;
        turn += 1;
    }
    if !started {
        assert_eq!(stream.trigger(TriggerKind::Start), 0, "START");
    }
    let drain = Duration::from_secs_f64(buffer as f64 / params.byte_rate()) + xen::REQUEST_TIMEOUT;
    stream
        .events
        .wait_until(drain, |pos| pos >= total)
        .expect("the stream drains");
    assert_eq!(stream.trigger(TriggerKind::Stop), 0, "STOP");
    assert_eq!(stream.close(), 0, "CLOSE");
}

/// The sndif guest: `plays` plays of its pattern ([`SNDIF_PARAMS`]), and as many
/// recordings on the device's capture stream meanwhile.
fn sndif_guest(shm: &Path, guest: u8, plays: usize) -> (Vec<u8>, Vec<u8>) {
    let domain = xen::FrontDomain::connect(&shm.join(SharedMemoryHost::HUB_SOCKET), 1);
    let mut device = xen::FrontDevice::create_at(
        &shm.join(SharedMemoryHost::XENSTORE_SOCKET),
        &domain,
        0,
        &[("sample-formats", "s16_le"), ("short-name", "stress")],
        &[(0, 0, Direction::Playback), (0, 1, Direction::Capture)],
    );
    device.connect();
    let params = SNDIF_PARAMS;
    let (played, recorded) = std::thread::scope(|scope| {
        let recorder = scope.spawn(|| sndif_recorder(device.stream(0, 1), plays));
        let mut played = Vec::new();
        for play in 0..plays {
            let data = pattern(guest, play as u8, PLAY_FRAMES);
            play_sndif(device.stream(0, 0), &params, &data);
            played.extend_from_slice(&data);
        }
        (played, recorder.join().expect("sndif recorder"))
    });
    device.set_state(paravox_sndif::xenstore::XenbusState::Closing);
    (played, recorded)
}

/// The virtio guest: `plays` plays of its pattern, eight 10 ms periods queued ahead.
fn virtio_guest(socket: &Path, guest: u8, plays: usize) -> Vec<u8> {
    let mut driver = support::Driver::connect(socket);
    driver.post_event_buffers(4);
    let params = support::SetParams::s16_stereo_48k(0, 8);
    let mut played = Vec::new();
    for play in 0..plays {
        // Whole periods, so the guest's padding adds nothing.
        let data = pattern(guest, play as u8, PLAY_FRAMES);
        assert_eq!(data.len() % params.period_bytes as usize, 0);
        support::play_through(&mut driver, &params, &data);
        played.extend_from_slice(&data);
    }
    driver.disconnect();
    played
}

/// The sndif capture guest: `plays` recordings of [`PLAY_FRAMES`], like arecord.
fn sndif_recorder(stream: &xen::FrontStream, plays: usize) -> Vec<u8> {
    (0..plays)
        .flat_map(|_| xen::record(stream, &SNDIF_PARAMS, (PLAY_FRAMES * FRAME_BYTES) as u64))
        .collect()
}

/// The virtio capture guest: `plays` recordings of [`PLAY_FRAMES`], the whole buffer
/// queued at START as Linux does.
fn virtio_recorder(socket: &Path, plays: usize) -> Vec<u8> {
    let mut driver = support::Driver::connect(socket);
    driver.post_event_buffers(4);
    let params = support::SetParams::s16_stereo_48k(0, 8);
    let recorded = (0..plays)
        .flat_map(|_| support::record_through(&mut driver, &params, PLAY_FRAMES * FRAME_BYTES))
        .collect();
    driver.disconnect();
    recorded
}

/// Checks that every frame of a guest's recordings (one per [`PLAY_FRAMES`]) is a frame
/// of the capture source; returns the number of jumps inside a recording (overruns:
/// frames the guest never got). The error names the first frame the source does not hold.
fn check_recording(recorded: &[u8]) -> Result<usize, String> {
    let source = source_pattern();
    let mut jumps = 0;
    let mut previous: Option<usize> = None;
    for (index, frame) in recorded.chunks_exact(FRAME_BYTES).enumerate() {
        if index % PLAY_FRAMES == 0 {
            // A new recording starts wherever the source is by then.
            previous = None;
        }
        let (guest, play, number) = unstamp(frame);
        let genuine = (guest, play) == SOURCE_TAG
            && number < SOURCE_FRAMES
            && source[number * FRAME_BYTES..][..FRAME_BYTES] == *frame;
        if !genuine {
            let at = index * FRAME_BYTES;
            return Err(format!(
                "recorded frame {index} (byte {at}, after source frame {previous:?}) is not a \
                 frame of the source: {}",
                recorded[at..(at + 64).min(recorded.len())]
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect::<String>()
            ));
        }
        if previous.is_some_and(|previous| (previous + 1) % SOURCE_FRAMES != number) {
            jumps += 1;
        }
        previous = Some(number);
    }
    Ok(jumps)
}

/// Compares a sink with what its guest played; the error names the first wrong frame.
fn check_sink(sink: &Path, played: &[u8]) -> Result<(), String> {
    let mut reader =
        WavReader::open(sink).map_err(|error| format!("{}: {error}", sink.display()))?;
    let mut recorded = vec![0u8; played.len() + 4 * FRAME_BYTES];
    let mut len = 0;
    loop {
        let n = reader
            .read_bytes(&mut recorded[len..])
            .map_err(|error| format!("{}: {error}", sink.display()))?;
        if n == 0 || len + n == recorded.len() {
            len += n;
            break;
        }
        len += n;
    }
    recorded.truncate(len);
    let Some(first) = recorded
        .chunks_exact(FRAME_BYTES)
        .zip(played.chunks_exact(FRAME_BYTES))
        .position(|(got, want)| got != want)
    else {
        return if recorded.len() == played.len() {
            Ok(())
        } else {
            Err(format!(
                "{}: {} bytes recorded for {} played",
                sink.display(),
                recorded.len(),
                played.len()
            ))
        };
    };
    let wrong = recorded
        .chunks_exact(FRAME_BYTES)
        .zip(played.chunks_exact(FRAME_BYTES))
        .skip(first)
        .take_while(|(got, want)| got != want)
        .count();
    let at = first * FRAME_BYTES;
    let got = &recorded[at..(at + wrong * FRAME_BYTES).min(recorded.len())];
    let (want_guest, want_play, want_frame) = unstamp(&played[at..at + FRAME_BYTES]);
    let (guest, play, frame) = unstamp(got);
    let origin = played
        .chunks_exact(FRAME_BYTES)
        .position(|candidate| candidate == &got[..FRAME_BYTES])
        .map_or_else(
            || "bytes that no guest of this sink played".to_owned(),
            |index| {
                format!(
                    "guest {guest} play {play} frame {frame} (sink frame {index}, {} frames away)",
                    index as i64 - first as i64
                )
            },
        );
    Err(format!(
        "{}: {wrong} wrong frames from sink frame {first} (byte {at}; frame {} of its \
         endpoint cycle unless a cycle was cut short before; guest {want_guest} play \
         {want_play} frame {want_frame}); the first holds {origin}; bytes: {}",
        sink.display(),
        first as u64 % CYCLE_FRAMES,
        got.iter()
            .take(64)
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    ))
}

/// Threads that keep every CPU busy at normal priority until told to stop.
fn load_every_cpu(stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (0..cpus)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..10_000u64 {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
                    }
                    std::hint::black_box(x);
                }
            })
        })
        .collect()
}

/// What one guest thread did: the audio it played (checked against its sink) and the
/// audio it recorded (checked against the capture source).
type GuestRun = std::thread::JoinHandle<(Vec<u8>, Vec<u8>)>;

#[test]
fn every_sink_and_recording_is_exact_while_the_host_is_loaded() {
    let binary = Path::new(env!("CARGO_BIN_EXE_paravox"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let plays = plays();
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_every_cpu(&stop);
    let daemons: Vec<(&str, Daemon)> = ["wasm", "native"]
        .into_iter()
        .map(|dsp| (dsp, Daemon::start(binary, &dir.path().join(dsp), dsp)))
        .collect();
    let guests: Vec<(PathBuf, String, GuestRun)> = daemons
        .iter()
        .enumerate()
        .flat_map(|(index, (dsp, daemon))| {
            let (shm, socket) = (daemon.dir.join("shm"), daemon.dir.join("vm.sock"));
            let mic = daemon.dir.join("mic.sock");
            let (sndif, virtio) = (2 * index as u8, 2 * index as u8 + 1);
            [
                (
                    daemon.dir.join("sndif.wav"),
                    format!("{dsp} sndif"),
                    std::thread::spawn(move || sndif_guest(&shm, sndif, plays)),
                ),
                (
                    daemon.dir.join("virtio.wav"),
                    format!("{dsp} virtio"),
                    std::thread::spawn(move || (virtio_guest(&socket, virtio, plays), Vec::new())),
                ),
                (
                    PathBuf::new(),
                    format!("{dsp} virtio capture"),
                    std::thread::spawn(move || (Vec::new(), virtio_recorder(&mic, plays))),
                ),
            ]
        })
        .collect();
    let outcomes: Vec<_> = guests
        .into_iter()
        .map(|(sink, name, guest)| (sink, name, guest.join()))
        .collect();
    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().expect("load thread");
    }
    let logs: Vec<String> = daemons
        .into_iter()
        .map(|(_, daemon)| daemon.stop())
        .collect();
    let seconds = |bytes: &[u8]| bytes.len() as f64 / (48_000.0 * FRAME_BYTES as f64);
    let mut problems = Vec::new();
    for (sink, name, outcome) in outcomes {
        let Ok((played, recorded)) = outcome else {
            problems.push(format!("{name}: the guest failed (see its panic above)"));
            continue;
        };
        if !played.is_empty() {
            println!("{name}: {:.1} s of audio played", seconds(&played));
            if let Err(problem) = check_sink(&sink, &played) {
                problems.push(format!("{name}: {problem}"));
            }
        }
        if !recorded.is_empty() {
            match check_recording(&recorded) {
                Ok(jumps) => println!(
                    "{name}: {:.1} s of audio recorded, every frame from the source, {jumps} \
                     overruns",
                    seconds(&recorded)
                ),
                Err(problem) => problems.push(format!("{name} recording: {problem}")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\ndaemon logs:\n{}",
        problems.join("\n"),
        logs.join("\n----\n")
    );
}

#[test]
fn the_checkers_name_a_wrong_frame_and_where_it_came_from() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let played = pattern(1, 0, 4_800);
    let mut recorded = played.clone();
    // A recording: a stretch of the source, then an overrun, then a foreign frame.
    let source = source_pattern();
    let mut take = source[400 * FRAME_BYTES..900 * FRAME_BYTES].to_vec();
    take.extend_from_slice(&source[1_000 * FRAME_BYTES..1_100 * FRAME_BYTES]);
    assert_eq!(check_recording(&take), Ok(1));
    take.extend_from_slice(&played[..FRAME_BYTES]);
    let problem = check_recording(&take).expect_err("a foreign frame");
    assert!(
        problem.contains("recorded frame 600 (byte 2400, after source frame Some(1099))"),
        "{problem}"
    );
    // 16 frames of another buffer's bytes at frame 1000, then frame 3000 played early.
    recorded[4_000..4_064]
        .copy_from_slice(&[0x98, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f].repeat(8));
    let early = played[12_000..12_004].to_vec();
    recorded[8_000..8_004].copy_from_slice(&early);
    let path = dir.path().join("sink.wav");
    write_wav(&path, &recorded);
    let problem = check_sink(&path, &played).expect_err("corruption found");
    assert!(
        problem.contains("16 wrong frames from sink frame 1000"),
        "{problem}"
    );
    assert!(
        problem.contains("frame 40 of its endpoint cycle"),
        "{problem}"
    );
    assert!(
        problem.contains("no guest of this sink played"),
        "{problem}"
    );
    assert!(problem.contains("989999999999b93f"), "{problem}");
    recorded[4_000..4_064].copy_from_slice(&played[4_000..4_064]);
    write_wav(&path, &recorded);
    let problem = check_sink(&path, &played).expect_err("misplaced frame found");
    assert!(
        problem.contains("guest 1 play 0 frame 3000 (sink frame 3000, 1000 frames away)"),
        "{problem}"
    );
    // And a faithful sink passes.
    recorded[8_000..8_004].copy_from_slice(&played[8_000..8_004]);
    write_wav(&path, &recorded);
    assert_eq!(check_sink(&path, &played), Ok(()));
}
