//! End to end: a Linux-like frontend (tests/support) against the backend over the
//! shared-memory transport, with the engine's real-time paced endpoints behind it.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use paravox_engine::budget::FILTER_DESIGN_BURST;
use paravox_engine::{Direction, Engine};
use paravox_sndif::wire::{
    HwParamBlock, OpenRequest, Request, RwRequest, TriggerKind, WireRange, encode_request,
};
use paravox_sndif::xenstore::XenbusState;
use support::*;

const EINVAL: i32 = -22;
const EBUSY: i32 = -16;
const EIO: i32 = -5;
const EOPNOTSUPP: i32 = -95;

fn samples(recording: &Recording) -> Vec<f64> {
    recording
        .lock()
        .unwrap()
        .iter()
        .map(|&s| f64::from(s))
        .collect()
}

/// Checks what Linux's frontend relies on: monotonic positions, the last one the end of
/// what was written, and no period boundary unreported for longer than an engine cycle.
fn check_events(events: &[CurPos], period: u64, total: u64) {
    let cycle = 480 * 4;
    let mut previous = 0;
    for event in events {
        assert!(
            event.position >= previous,
            "positions went back: {events:?}"
        );
        assert!(
            event.position - previous <= period + cycle,
            "no event between {previous} and {}",
            event.position
        );
        assert!(
            event.position <= total,
            "{} reported of {total} written",
            event.position
        );
        previous = event.position;
    }
    assert_eq!(
        previous, total,
        "the frontend learns that everything was played"
    );
}

#[test]
fn playback_is_byte_exact_in_a_wav_and_paced_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("guest.wav");
    let engine = Engine::new();
    let spec: paravox_host_audio::spec::EndpointSpec =
        format!("wav:{},rate=48000,channels=2,format=s16_le", wav.display())
            .parse()
            .unwrap();
    engine
        .add_playback_endpoint("wav", "wav", spec.playback_opener().unwrap())
        .unwrap();
    engine
        .set_default_endpoint(Direction::Playback, "wav")
        .unwrap();
    let engine = Arc::new(engine);
    let harness = Harness::new(engine.clone());
    let domain = harness.domain(3);
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[
            ("sample-rates", "44100,48000"),
            ("sample-formats", "s16_le"),
        ],
        &[(0, 0, Direction::Playback)],
    );
    device.connect();

    // One second of stereo S16 that walks through many sample values on both channels.
    let frames = 48_000usize;
    let mut data = Vec::with_capacity(frames * 4);
    for n in 0..frames {
        data.extend_from_slice(&((n as i32 * 7) as i16).to_le_bytes());
        data.extend_from_slice(&((n as i32 * -13 + 5) as i16).to_le_bytes());
    }
    let params = Params::s16_stereo(10);
    let report = play(device.stream(0, 0), &params, &data, |_| {});
    let elapsed = report.finished - report.started;
    println!("1.000 s of audio played in {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(980),
        "faster than real time: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "far slower than real time: {elapsed:?}"
    );
    check_events(
        &report.events,
        params.period_bytes as u64,
        data.len() as u64,
    );
    assert_eq!(device.stream(0, 0).events.state().dropped, 0);
    let periods = data.len() as u64 / params.period_bytes as u64;
    assert!(
        (report.events.len() as u64).abs_diff(periods) <= 2,
        "{} events for {periods} periods",
        report.events.len()
    );

    drop(device);
    drop(harness);
    engine.shutdown();
    let mut reader = paravox_host_audio::wav::WavReader::open(&wav).unwrap();
    let mut written = vec![0u8; data.len() + 48_000];
    let mut got = 0;
    loop {
        let n = reader.read_bytes(&mut written[got..]).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    written.truncate(got);
    let start = written
        .windows(64)
        .position(|w| w == &data[..64])
        .expect("the stream's first bytes are in the file");
    assert_eq!(
        &written[start..start + data.len()],
        &data[..],
        "the WAV holds exactly what the guest wrote"
    );
}

#[test]
fn capture_delivers_the_tone() {
    let (engine, _recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    let domain = harness.domain(4);
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[("sample-formats", "s16_le")],
        &[(0, 0, Direction::Capture)],
    );
    device.connect();
    let params = Params::s16_stereo(10);
    let started = Instant::now();
    let bytes = record(device.stream(0, 0), &params, 48_000 * 4);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "capture ran ahead of real time: {elapsed:?}"
    );
    let left = paravox_testkit::channel(&paravox_testkit::from_s16_bytes(&bytes), 2, 0);
    // Skip the first 100 ms (the tone's fade-in, if any) and fit the rest.
    let fit = paravox_testkit::fit_sine(&left[4_800..], 48_000.0).expect("a sine");
    println!("captured tone: {fit:?}");
    assert!((fit.frequency - 880.0).abs() < 0.5, "{} Hz", fit.frequency);
    assert!(
        (fit.amplitude - 0.708).abs() < 0.05,
        "amplitude {}",
        fit.amplitude
    );
    assert!(fit.thd_n_db < -60.0, "THD+N {} dB", fit.thd_n_db);
    assert_eq!(device.stream(0, 0).events.state().dropped, 0);
}

#[test]
fn volume_and_mute_change_the_output_level() {
    let (engine, recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    let domain = harness.domain(5);
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[("sample-formats", "s16_le")],
        &[(0, 0, Direction::Playback)],
    );
    device.connect();
    let stream = device.stream(0, 0);
    // 160 ms of buffer, so a busy machine cannot starve the stream.
    let params = Params {
        buffer_bytes: 1920 * 16,
        ..Params::s16_stereo(10)
    };
    // 1.5 s of a 500 Hz sine at half scale: 0 dB, then −20 dB from 0.5 s (by the played
    // position), then muted from 1 s.
    let data = sine_s16(500.0, 0.5, 72_000);
    let (mut volume_set, mut muted) = (false, false);
    play(stream, &params, &data, |_| {
        let played = stream.events.last_position();
        if !volume_set && played >= 24_000 * 4 {
            assert_eq!(stream.set_volume(&[-20_000, -20_000]), 0);
            let (status, values) = stream.get_volume(2);
            assert_eq!((status, values), (0, vec![-20_000, -20_000]));
            volume_set = true;
        }
        if !muted && played >= 48_000 * 4 {
            assert_eq!(stream.mute(&[1, 1], true), 0);
            muted = true;
        }
    });
    assert!(volume_set && muted);
    let output = paravox_testkit::channel(&samples(&recording), 2, 0);
    let start = paravox_testkit::first_above(&output, 0.01).expect("audio arrived");
    let window = |from_ms: usize, to_ms: usize| &output[start + from_ms * 48..start + to_ms * 48];
    let full = paravox_testkit::rms_db(window(100, 450));
    let quiet = paravox_testkit::rms_db(window(600, 950));
    let silent = paravox_testkit::rms_db(window(1100, 1450));
    println!("levels: {full:.2} dBFS, {quiet:.2} dBFS after -20 dB, {silent:.1} dBFS muted");
    assert!((full - -9.03).abs() < 0.2, "0 dB segment at {full}");
    assert!(
        (quiet - full + 20.0).abs() < 0.2,
        "-20 dB segment at {quiet}"
    );
    assert!(silent < -100.0, "muted segment at {silent}");
}

#[test]
fn every_bad_request_gets_its_errno_while_another_stream_plays() {
    let (engine, recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    let domain = harness.domain(6);
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[("sample-formats", "s16_le"), ("sample-rates", "48000")],
        &[
            (0, 0, Direction::Playback),
            (0, 1, Direction::Playback),
            (0, 2, Direction::Capture),
        ],
    );
    device.connect();
    let (good, bad, capture) = (
        device.stream(0, 0),
        device.stream(0, 1),
        device.stream(0, 2),
    );
    let params = Params::s16_stereo(10);
    // The good stream keeps 160 ms queued (Linux's default buffer), so a busy test machine
    // cannot starve it.
    let player_params = Params {
        buffer_bytes: params.period_bytes * 16,
        ..params
    };
    let tone = sine_s16(440.0, 0.5, 72_000);

    std::thread::scope(|scope| {
        let player = scope.spawn(|| play(good, &player_params, &tone, |_| {}));

        // Codes the protocol does not define.
        let mut raw = [0u8; 64];
        raw[2] = 42;
        assert_eq!(
            bad.request_bytes(raw).unwrap().status,
            EOPNOTSUPP,
            "unknown operation"
        );
        assert_eq!(
            bad.request_bytes(raw).unwrap().operation,
            42,
            "operation echoed"
        );
        raw = encode_request(0, &Request::Trigger(TriggerKind::Start));
        raw[8] = 9;
        assert_eq!(
            bad.request_bytes(raw).unwrap().status,
            EINVAL,
            "unknown trigger type"
        );

        // Before OPEN.
        let rw = |offset, length| RwRequest { offset, length };
        assert_eq!(
            bad.status(&Request::Write(rw(0, 4))),
            EINVAL,
            "WRITE before OPEN"
        );
        assert_eq!(
            bad.status(&Request::GetVolume(rw(0, 8))),
            EINVAL,
            "GET_VOLUME before OPEN"
        );
        assert_eq!(bad.trigger(TriggerKind::Start), EINVAL, "START before OPEN");
        assert_eq!(
            bad.close(),
            0,
            "CLOSE of a closed stream is harmless (Linux's hw_free)"
        );

        // OPEN with parameters outside the configuration.
        let open = |change: &dyn Fn(&mut Params)| {
            let mut p = params;
            change(&mut p);
            bad.open_raw(&p, None)
        };
        assert_eq!(open(&|p| p.format = 99), EINVAL, "undefined format code");
        assert_eq!(
            open(&|p| p.format = 23),
            EINVAL,
            "MPEG (not configured, not convertible)"
        );
        assert_eq!(
            open(&|p| p.format = 14),
            EINVAL,
            "float_le (not configured)"
        );
        assert_eq!(open(&|p| p.rate = 44_100), EINVAL, "rate not configured");
        assert_eq!(open(&|p| p.channels = 0), EINVAL, "zero channels");
        assert_eq!(
            open(&|p| p.channels = 6),
            EINVAL,
            "more channels than configured"
        );
        assert_eq!(
            open(&|p| p.buffer_bytes = 1 << 20),
            EINVAL,
            "buffer above buffer-size"
        );
        assert_eq!(open(&|p| p.buffer_bytes = 0), EINVAL, "empty buffer");
        assert_eq!(
            open(&|p| p.period_bytes = p.buffer_bytes * 2),
            EINVAL,
            "period above buffer"
        );
        assert_eq!(
            open(&|p| p.period_bytes = 6),
            EINVAL,
            "period not whole frames"
        );
        assert_eq!(
            open(&|p| p.buffer_bytes = 7_682),
            EINVAL,
            "buffer not whole frames"
        );
        assert_eq!(
            bad.open_raw(&params, Some(999_999)),
            EINVAL,
            "directory outside the grants"
        );

        // HW_PARAM_QUERY with nothing in common.
        let any = any_params();
        assert_eq!(
            bad.query(HwParamBlock {
                formats: 1 << 23,
                ..any
            }),
            Err(EINVAL),
            "MPEG only"
        );
        assert_eq!(
            bad.query(HwParamBlock {
                rates: WireRange { min: 1, max: 2 },
                ..any
            }),
            Err(EINVAL),
            "no rate"
        );
        assert_eq!(
            bad.query(HwParamBlock {
                channels: WireRange { min: 3, max: 2 },
                ..any
            }),
            Err(EINVAL),
            "inverted channel range"
        );

        // Opened: ranges and states.
        assert_eq!(bad.open(&params), 0, "a good OPEN after all that");
        let size = params.buffer_bytes;
        assert_eq!(
            bad.status(&Request::Write(rw(size - 2, 4))),
            EINVAL,
            "WRITE past the end"
        );
        assert_eq!(
            bad.status(&Request::Write(rw(u32::MAX, 4))),
            EINVAL,
            "WRITE offset overflow"
        );
        assert_eq!(
            bad.status(&Request::Write(rw(0, 2))),
            EINVAL,
            "WRITE of half a frame"
        );
        assert_eq!(
            bad.status(&Request::Read(rw(0, 4))),
            EINVAL,
            "READ on playback"
        );
        assert_eq!(
            bad.status(&Request::SetVolume(rw(0, 12))),
            EINVAL,
            "volume for 3 of 2 channels"
        );
        assert_eq!(
            bad.status(&Request::SetVolume(rw(0, 0))),
            EINVAL,
            "volume for no channel"
        );
        assert_eq!(
            bad.status(&Request::SetVolume(rw(0, 6))),
            EINVAL,
            "volume of half a value"
        );
        assert_eq!(
            bad.status(&Request::Mute(rw(size, 2))),
            EINVAL,
            "mute flags past the end"
        );
        assert_eq!(
            bad.status(&Request::Mute(rw(0, 3))),
            EINVAL,
            "mute flags for 3 of 2 channels"
        );
        assert_eq!(
            bad.trigger(TriggerKind::Pause),
            EINVAL,
            "PAUSE while not running"
        );
        assert_eq!(
            bad.trigger(TriggerKind::Resume),
            EINVAL,
            "RESUME while not paused"
        );
        assert_eq!(
            bad.trigger(TriggerKind::Stop),
            0,
            "STOP while stopped is harmless"
        );
        // More than the buffer while nothing consumes: the ring is full.
        let period = vec![0u8; params.period_bytes as usize];
        for index in 0..4 {
            assert_eq!(
                bad.write(index * params.period_bytes, &period),
                0,
                "filling the buffer"
            );
        }
        assert_eq!(
            bad.write(0, &period),
            EIO,
            "WRITE beyond the room CUR_POS allowed"
        );
        assert_eq!(bad.trigger(TriggerKind::Start), 0);
        assert_eq!(bad.trigger(TriggerKind::Start), EINVAL, "START twice");
        assert_eq!(bad.trigger(TriggerKind::Pause), 0);
        assert_eq!(bad.trigger(TriggerKind::Resume), 0);
        assert_eq!(bad.trigger(TriggerKind::Stop), 0);
        assert_eq!(bad.close(), 0);

        // The capture stream refuses playback requests.
        assert_eq!(capture.open(&params), 0);
        assert_eq!(
            capture.status(&Request::Write(rw(0, 4))),
            EINVAL,
            "WRITE on capture"
        );
        assert_eq!(capture.close(), 0);

        // And a raw OPEN with reserved bytes set is still read field by field.
        let mut open_raw = encode_request(
            0,
            &Request::Open(OpenRequest {
                pcm_rate: 48_000,
                pcm_format: 2,
                pcm_channels: 2,
                reserved: 0,
                buffer_sz: 4,
                gref_directory: 888_888,
                period_sz: 4,
            }),
        );
        open_raw[3..8].copy_from_slice(&[0xff; 5]);
        assert_eq!(bad.request_bytes(open_raw).unwrap().status, EINVAL);

        let report = player.join().expect("the good stream played to the end");
        check_events(
            &report.events,
            params.period_bytes as u64,
            tone.len() as u64,
        );
    });
    assert_eq!(good.events.state().dropped, 0);
    // The good stream's output is one continuous 440 Hz tone.
    let output = paravox_testkit::channel(&samples(&recording), 2, 0);
    let start = paravox_testkit::first_above(&output, 0.01).expect("audio arrived");
    let played = &output[start..start + 70_000];
    let quiet = paravox_testkit::longest_quiet_run(played, 0.001);
    assert!(
        quiet < 48,
        "the good stream dropped out for {quiet} samples"
    );
    let fit = paravox_testkit::fit_sine(played, 48_000.0).unwrap();
    assert!((fit.frequency - 440.0).abs() < 0.2, "{} Hz", fit.frequency);
}

#[test]
fn a_hostile_ring_index_cuts_off_only_that_device_which_can_reconnect() {
    let (engine, recording) = engine_with_memory_sink();
    let harness = Harness::new(engine.clone());
    let (good_domain, hostile_domain) = (harness.domain(7), harness.domain(8));
    let layout = [(0, 0, Direction::Playback)];
    let card = [("sample-formats", "s16_le")];
    let mut good = FrontDevice::create(&harness.host, &good_domain, 0, &card, &layout);
    let mut hostile = FrontDevice::create(&harness.host, &hostile_domain, 0, &card, &layout);
    good.connect();
    hostile.connect();
    assert_eq!(engine.cards().len(), 2);
    let params = Params::s16_stereo(10);
    let player_params = Params {
        buffer_bytes: params.period_bytes * 16,
        ..params
    };
    let tone = sine_s16(440.0, 0.5, 72_000);

    std::thread::scope(|scope| {
        let player = scope.spawn(|| play(good.stream(0, 0), &player_params, &tone, |_| {}));
        std::thread::sleep(Duration::from_millis(300));
        // req_prod 1000 requests ahead of the backend's req_cons.
        hostile.stream(0, 0).corrupt_req_prod(1000);
        assert!(
            hostile.wait_backend_state(XenbusState::Closed, Duration::from_secs(3)),
            "the backend did not cut the hostile device off"
        );
        let error = hostile.backend_error().expect("an error node");
        assert!(error.contains("req_prod"), "{error}");
        assert_eq!(engine.cards().len(), 1, "the hostile device's card is gone");
        // Nobody answers the hostile ring any more.
        assert!(hostile.stream(0, 0).request(&Request::Close).is_err());
        player.join().expect("the good device played on");
    });
    let output = paravox_testkit::channel(&samples(&recording), 2, 0);
    let start = paravox_testkit::first_above(&output, 0.01).expect("audio arrived");
    let quiet = paravox_testkit::longest_quiet_run(&output[start..start + 70_000], 0.001);
    assert!(
        quiet < 48,
        "the good device dropped out for {quiet} samples"
    );

    // Like Linux after a backend Closed: Initialising, then a fresh connection.
    hostile.set_state(XenbusState::Initialising);
    hostile.connect();
    assert_eq!(engine.cards().len(), 2);
    let short = sine_s16(440.0, 0.5, 9_600);
    play(hostile.stream(0, 0), &params, &short, |_| {});
    assert_eq!(hostile.stream(0, 0).events.state().dropped, 0);

    // The event page too: a consumer index past the producer's cuts the device off.
    let stream = hostile.stream(0, 0);
    assert_eq!(stream.open(&params), 0);
    let period = vec![0u8; params.period_bytes as usize];
    for index in 0..4 {
        assert_eq!(stream.write(index * params.period_bytes, &period), 0);
    }
    stream.corrupt_in_cons(5_000);
    assert_eq!(stream.trigger(TriggerKind::Start), 0);
    assert!(
        hostile.wait_backend_state(XenbusState::Closed, Duration::from_secs(3)),
        "a corrupted event page must cut the device off"
    );
    assert!(hostile.backend_error().unwrap().contains("in_cons"));
    assert_eq!(good.backend_state(), XenbusState::Connected);
}

#[test]
fn a_frontend_that_closes_can_connect_again() {
    let (engine, _recording) = engine_with_memory_sink();
    let harness = Harness::new(engine.clone());
    let domain = harness.domain(9);
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[("sample-formats", "s16_le"), ("short-name", "Guest")],
        &[(0, 0, Direction::Playback), (0, 1, Direction::Capture)],
    );
    device.connect();
    assert_eq!(engine.cards()[0].name(), "dom9-Guest");
    // Watch events repeat and a frontend may rewrite its state: a connected device stays
    // connected, with the same card, until the frontend starts over.
    let card = engine.cards()[0].id();
    device.set_state(XenbusState::Initialised);
    device.set_state(XenbusState::Connected);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(device.backend_state(), XenbusState::Connected);
    assert_eq!(engine.cards().len(), 1);
    assert_eq!(
        engine.cards()[0].id(),
        card,
        "no reconnect behind the frontend's back"
    );
    let params = Params::s16_stereo(10);
    let short = sine_s16(440.0, 0.5, 9_600);
    play(device.stream(0, 0), &params, &short, |_| {});

    // Linux's xenbus_dev_shutdown (and xen_drv_remove): Closing, then wait for the
    // backend's Closing before going Closed; after Closed the backend is ready again.
    // xenbus_dev_shutdown waits 5 s for the backend.
    device.set_state(XenbusState::Closing);
    assert!(device.wait_backend_state(XenbusState::Closing, Duration::from_secs(5)));
    assert!(
        engine.cards().is_empty(),
        "the card went with the connection"
    );
    device.set_state(XenbusState::Closed);
    assert!(device.wait_backend_state(XenbusState::InitWait, Duration::from_secs(3)));
    // The module comes back: probe → Initialising, and the whole handshake again.
    device.set_state(XenbusState::Initialising);
    device.connect();
    assert_eq!(engine.cards().len(), 1);
    let report = play(device.stream(0, 0), &params, &short, |_| {});
    check_events(
        &report.events,
        params.period_bytes as u64,
        short.len() as u64,
    );
    let captured = record(device.stream(0, 1), &params, 9_600);
    assert_eq!(captured.len(), 9_600);

    // The toolstack removes the device: online = 0 → Closed and the card is gone.
    let xs = &device.xs;
    xs.write(
        paravox_sndif::xenstore::NO_TX,
        &format!("{}/online", device.be_path),
        b"0",
    )
    .unwrap();
    xs.write(
        paravox_sndif::xenstore::NO_TX,
        &format!("{}/state", device.be_path),
        b"5",
    )
    .unwrap();
    // libxl gives a backend 10 s (LIBXL_DESTROY_TIMEOUT) to close a removed device.
    assert!(device.wait_backend_state(XenbusState::Closed, Duration::from_secs(10)));
    assert!(engine.cards().is_empty());
}

#[test]
fn hw_param_query_narrows_like_the_configuration_says() {
    let (engine, _recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    let domain = harness.domain(10);
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[
            ("sample-rates", "44100,48000,96000"),
            ("sample-formats", "s16_le,float_le,mpeg"),
            ("channels-max", "8"),
            ("buffer-size", "65536"),
            ("0/0/channels-max", "2"),
            ("0/0/sample-rates", "44100,48000"),
        ],
        &[(0, 0, Direction::Playback)],
    );
    device.connect();
    let stream = device.stream(0, 0);
    let any = HwParamBlock {
        formats: u64::MAX >> 39,
        rates: WireRange {
            min: 0,
            max: u32::MAX,
        },
        channels: WireRange {
            min: 0,
            max: u32::MAX,
        },
        buffer: WireRange {
            min: 0,
            max: u32::MAX,
        },
        period: WireRange {
            min: 0,
            max: u32::MAX,
        },
    };
    let full = stream.query(any).unwrap();
    // MPEG is configured but not convertible, so it is not offered.
    assert_eq!(full.formats, 1 << 2 | 1 << 14);
    assert_eq!(
        full.rates,
        WireRange {
            min: 44_100,
            max: 48_000
        }
    );
    assert_eq!(full.channels, WireRange { min: 1, max: 2 });
    // 64 KiB of the smallest frame (S16 mono, 2 bytes).
    assert_eq!(full.buffer.max, 32_768);
    let float_stereo = stream
        .query(HwParamBlock {
            formats: 1 << 14,
            channels: WireRange { min: 2, max: 2 },
            ..any
        })
        .unwrap();
    assert_eq!(float_stereo.buffer.max, 8_192, "64 KiB of 8-byte frames");
    assert!(float_stereo.period.max <= 8_192);
    let rates = stream
        .query(HwParamBlock {
            rates: WireRange {
                min: 46_000,
                max: 96_000,
            },
            ..any
        })
        .unwrap();
    assert_eq!(
        rates.rates,
        WireRange {
            min: 48_000,
            max: 48_000
        }
    );
    // A buffer larger than the bytes allow has no answer.
    assert!(
        stream
            .query(HwParamBlock {
                formats: 1 << 14,
                channels: WireRange { min: 2, max: 2 },
                buffer: WireRange {
                    min: 10_000,
                    max: 20_000
                },
                ..any
            })
            .is_err()
    );
}

/// Reports how closely CUR_POS follows what the engine really consumed.
#[test]
fn cur_pos_accuracy() {
    let (engine, _recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    let device = harness.connected_device(11, &[(0, 0, Direction::Playback)]);
    let engine_stream = harness.engine_stream(11, 0);
    let stream = device.stream(0, 0);
    stream
        .events
        .set_sampler(Box::new(move || engine_stream.position_bytes()));
    // Request round trips, as Linux's HW rules issue them.
    let any = HwParamBlock {
        formats: u64::MAX >> 39,
        rates: WireRange {
            min: 0,
            max: u32::MAX,
        },
        channels: WireRange {
            min: 0,
            max: u32::MAX,
        },
        buffer: WireRange {
            min: 0,
            max: u32::MAX,
        },
        period: WireRange {
            min: 0,
            max: u32::MAX,
        },
    };
    let mut round_trips: Vec<f64> = (0..500)
        .map(|_| {
            let sent = Instant::now();
            stream.query(any).expect("an answer");
            sent.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    round_trips.sort_by(f64::total_cmp);
    println!(
        "request round trip over 500 HW_PARAM_QUERY: median {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        round_trips[250], round_trips[495], round_trips[499]
    );
    // A 7 ms period that does not match the endpoint's 10 ms cycle.
    let mut params = Params::s16_stereo(7);
    params.buffer_bytes = params.period_bytes * 6;
    let data = sine_s16(440.0, 0.5, 96_000);
    let report = play(stream, &params, &data, |_| {});
    check_events(
        &report.events,
        params.period_bytes as u64,
        data.len() as u64,
    );
    assert_eq!(stream.events.state().dropped, 0);
    for event in &report.events {
        let sampled = event.sampled.expect("sampled");
        assert!(
            event.position <= sampled,
            "reported {} before the engine played it ({sampled}); all: {:?}",
            event.position,
            report
                .events
                .iter()
                .map(|e| (e.position, e.sampled))
                .collect::<Vec<_>>()
        );
    }

    let byte_rate = params.byte_rate();
    let ms = |bytes: f64| bytes / byte_rate * 1000.0;
    let period = params.period_bytes as u64;
    let (mut overshoot, mut staleness, mut lateness) = (Vec::new(), Vec::new(), Vec::new());
    for event in &report.events {
        // How far past its period boundary the reported position is.
        overshoot.push((event.position % period) as f64);
        // How far the engine had moved on when the frontend received it.
        let sampled = event.sampled.expect("sampled");
        staleness.push(sampled.saturating_sub(event.position) as f64);
        // Wall-clock arrival relative to when that position was due.
        let due = report.started + Duration::from_secs_f64(event.position as f64 / byte_rate);
        lateness.push(event.at.saturating_duration_since(due).as_secs_f64() * 1000.0);
    }
    let stats = |values: &[f64]| {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let max = values.iter().copied().fold(0.0, f64::max);
        (mean, max)
    };
    let (over_mean, over_max) = stats(&overshoot);
    let (stale_mean, stale_max) = stats(&staleness);
    let (late_mean, late_max) = stats(&lateness);
    println!(
        "CUR_POS accuracy over {} events (period {} B = 7 ms, endpoint cycle 10 ms):",
        report.events.len(),
        period
    );
    println!(
        "  reported past the period boundary: mean {:.2} ms, max {:.2} ms",
        ms(over_mean),
        ms(over_max)
    );
    println!(
        "  engine ahead of the report at receipt: mean {:.3} ms, max {:.3} ms",
        ms(stale_mean),
        ms(stale_max)
    );
    println!("  arrival after the position was due: mean {late_mean:.2} ms, max {late_max:.2} ms");
    // The engine moves in 10 ms cycles, so one cycle may cross two 7 ms boundaries and
    // earn one event carrying the real position (check_events bounds the gaps).
    assert!(ms(over_max) <= 10.5, "overshoot {:.2} ms", ms(over_max));
    assert!(ms(stale_mean) <= 10.0, "staleness {:.2} ms", ms(stale_mean));
}

#[test]
fn a_new_device_gets_initwait_at_once_and_a_bad_configuration_is_explained() {
    let (engine, _recording) = engine_with_memory_sink();
    let harness = Harness::new(engine.clone());
    let domain = harness.domain(12);
    let created = Instant::now();
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[("sample-rates", "44100,fast")],
        &[(0, 0, Direction::Playback)],
    );
    assert!(device.wait_backend_state(XenbusState::InitWait, Duration::from_secs(2)));
    let latency = created.elapsed();
    println!("new device to InitWait: {latency:?}");
    assert!(
        latency < Duration::from_secs(1),
        "xl waits ~10 s; we took {latency:?}"
    );
    let versions = device
        .xs
        .read_string(
            paravox_sndif::xenstore::NO_TX,
            &format!("{}/versions", device.be_path),
        )
        .unwrap();
    assert_eq!(versions.as_deref(), Some("2"));

    device.publish();
    assert!(
        device.wait_backend_state(XenbusState::Closing, Duration::from_secs(3)),
        "a configuration the backend cannot serve must not connect"
    );
    let error = device.backend_error().expect("an error node");
    assert!(
        error.contains(&format!("{}/sample-rates", device.fe_path)) && error.contains("'fast'"),
        "{error}"
    );
    assert!(engine.cards().is_empty());
    // The daemon carries on: another domain's device connects fine.
    let other = harness.domain(13);
    let mut good =
        FrontDevice::create(&harness.host, &other, 0, &[], &[(0, 0, Direction::Capture)]);
    good.connect();
    assert_eq!(engine.cards().len(), 1);
}

/// An xrun as Linux's frontend lives it: the guest is late, the stream runs dry mid-buffer,
/// ALSA stops, prepares (its pointer carries on from where it was: the frontend clears it
/// only on OPEN) and writes a whole buffer before it starts again. Positions carry on
/// from what was really played, never jumping; the full buffer fits; and a write beyond
/// the room waits for the endpoint instead of failing.
#[test]
fn a_restart_after_an_underrun_carries_on_and_a_write_beyond_the_room_waits() {
    let (engine, recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    let device = harness.connected_device(11, &[(0, 0, Direction::Playback)]);
    let stream = device.stream(0, 0);
    let params = Params::s16_stereo(10);
    let (buffer, period) = (params.buffer_bytes as u64, params.period_bytes as u64);
    let tone = sine_s16(440.0, 0.5, 48_000);
    assert_eq!(stream.open(&params), 0, "OPEN");

    let mut appl = 0u64;
    let write_period = |appl: &mut u64| {
        let offset = (*appl % buffer) as u32;
        let status = stream.write(offset, &tone[*appl as usize..(*appl + period) as usize]);
        *appl += period;
        status
    };
    for _ in 0..4 {
        assert_eq!(write_period(&mut appl), 0, "WRITE before START");
    }
    assert_eq!(stream.trigger(TriggerKind::Start), 0, "START");
    // The buffer is full: this write has to wait about a period for room.
    assert_eq!(write_period(&mut appl), 0, "a WRITE beyond the room waits");
    assert_eq!(write_period(&mut appl), 0);
    // Then the guest is late: everything written is played and the stream runs dry.
    let written = appl;
    assert_eq!(written % buffer, buffer / 2);
    stream
        .events
        .wait_until(REQUEST_TIMEOUT, |pos| pos >= written)
        .expect("everything written is played");
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(stream.trigger(TriggerKind::Stop), 0, "STOP after the xrun");

    // ALSA prepares and fills a whole buffer from its pointer, then starts again.
    for _ in 0..4 {
        assert_eq!(write_period(&mut appl), 0, "WRITE after the xrun");
    }
    assert_eq!(stream.trigger(TriggerKind::Start), 0, "START again");
    stream
        .events
        .wait_until(REQUEST_TIMEOUT, |pos| pos >= appl)
        .expect("the second run is played");
    assert_eq!(stream.trigger(TriggerKind::Stop), 0, "STOP");
    let positions: Vec<u64> = stream
        .events
        .state()
        .positions
        .iter()
        .map(|p| p.position)
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] <= w[1]),
        "positions went back: {positions:?}"
    );
    assert_eq!(
        positions.last(),
        Some(&appl),
        "the position is exactly what was played, across the stop"
    );
    assert_eq!(stream.close(), 0, "CLOSE");
    // Every frame written reached the sink (silence filled the gap in between).
    let loud = samples(&recording)
        .iter()
        .filter(|s| s.abs() > 0.05)
        .count() as u64;
    let frames_written = appl / 4;
    assert!(
        loud * 100 >= frames_written * 2 * 55,
        "{loud} loud samples of {frames_written} stereo frames written"
    );
}

/// A playback device whose writes wait for the test to open its gate: the endpoint stops
/// consuming, so the stream's ring stays full for as long as the test wants.
struct GatedSink {
    format: paravox_engine::device::DeviceFormat,
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    pacer: paravox_engine::clock::Pacer,
}

impl paravox_engine::device::PlaybackDevice for GatedSink {
    fn format(&self) -> paravox_engine::device::DeviceFormat {
        self.format
    }
    fn write(&mut self, _samples: &[f32]) -> Result<(), paravox_engine::device::DeviceError> {
        let (open, changed) = &*self.gate;
        let mut open = open.lock().unwrap();
        while !*open {
            open = changed.wait(open).unwrap();
        }
        drop(open);
        self.pacer.wait();
        Ok(())
    }
}

struct GatedSinkOpener {
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl paravox_engine::device::PlaybackOpener for GatedSinkOpener {
    fn open(
        &self,
    ) -> Result<Box<dyn paravox_engine::device::PlaybackDevice>, paravox_engine::device::DeviceError>
    {
        Ok(Box::new(GatedSink {
            format: paravox_engine::device::DeviceFormat {
                rate: 48_000,
                channels: 2,
                period_frames: 480,
            },
            gate: self.gate.clone(),
            pacer: paravox_engine::clock::Pacer::new(48_000, 480),
        }))
    }
}

/// One stream's WRITE that does not fit waits for room, parked in the device's event
/// loop, while another stream of the same device records: the recording's requests are
/// answered while the WRITE still waits, and the recording has no gap. The playback
/// endpoint is held still by a gate, so the WRITE cannot finish before the test opens it.
#[test]
fn a_write_waiting_for_room_does_not_hold_up_a_recording_on_the_same_device() {
    let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let engine = Engine::new();
    engine
        .add_playback_endpoint(
            "out",
            "gated",
            Box::new(GatedSinkOpener { gate: gate.clone() }),
        )
        .unwrap();
    engine
        .set_default_endpoint(Direction::Playback, "out")
        .unwrap();
    add_tone(&engine);
    let harness = Harness::new(Arc::new(engine));
    let domain = harness.domain(12);
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[("sample-formats", "s16_le"), ("buffer-size", "262144")],
        &[(0, 0, Direction::Playback), (1, 0, Direction::Capture)],
    );
    device.connect();
    let (player, recorder) = (device.stream(0, 0), device.stream(1, 0));

    // Playback: a whole buffer written, started; the endpoint takes one period and stops
    // at the gate, so the ring has room for one period and the next WRITE of two periods
    // must wait.
    let params = Params::s16_stereo(125);
    let (buffer, period) = (params.buffer_bytes as usize, params.period_bytes as usize);
    let tone = sine_s16(440.0, 0.5, buffer / 4 * 3);
    assert_eq!(player.open(&params), 0, "OPEN playback");
    for chunk in 0..4 {
        let offset = chunk * period;
        assert_eq!(
            player.write(offset as u32, &tone[offset..offset + period]),
            0,
            "WRITE before START"
        );
    }
    assert_eq!(player.trigger(TriggerKind::Start), 0, "START playback");
    let write_answered = std::sync::Mutex::new(None::<(i32, Instant)>);
    let read_answers = std::sync::Mutex::new(Vec::<Instant>::new());
    let captured = std::thread::scope(|scope| {
        scope.spawn(|| {
            let status = player.write(0, &tone[buffer..buffer + 2 * period]);
            *write_answered.lock().unwrap() = Some((status, Instant::now()));
        });
        // Give the WRITE time to reach the backend and park: what is asserted below does
        // not depend on it (a WRITE not yet parked cannot hold anything up).
        std::thread::sleep(Duration::from_millis(20));

        // Capture on the same device, five periods of 10 ms, each READ sent once the
        // position says the audio is there.
        let capture = Params::s16_stereo(10);
        let (cap_buffer, cap_period) = (capture.buffer_bytes as u64, capture.period_bytes as u64);
        assert_eq!(recorder.open(&capture), 0, "OPEN capture");
        assert_eq!(recorder.trigger(TriggerKind::Start), 0, "START capture");
        let mut bytes = Vec::new();
        for index in 0..5u64 {
            let done = index * cap_period;
            recorder
                .events
                .wait_until(REQUEST_TIMEOUT, |pos| pos >= done + cap_period)
                .expect("capture progresses");
            let offset = (done % cap_buffer) as u32;
            let status = recorder.status(&Request::Read(RwRequest {
                offset,
                length: cap_period as u32,
            }));
            read_answers.lock().unwrap().push(Instant::now());
            assert_eq!(status, 0, "READ {index}");
            let mut chunk = vec![0u8; cap_period as usize];
            recorder.read_buffer(offset, &mut chunk);
            bytes.extend_from_slice(&chunk);
        }
        let parked_meanwhile = write_answered.lock().unwrap().is_none();
        // Now let the endpoint play: the parked WRITE gets its room.
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        (bytes, parked_meanwhile)
    });
    let (bytes, parked_meanwhile) = captured;
    let (write_status, write_at) = write_answered.lock().unwrap().expect("WRITE answered");
    let first_read = read_answers.lock().unwrap()[0];
    assert!(
        first_read < write_at,
        "the recording's first READ was answered only after the WRITE"
    );
    assert!(
        parked_meanwhile,
        "the WRITE was answered before its room came (status {write_status})"
    );
    assert_eq!(
        write_status, 0,
        "the parked WRITE completes once there is room"
    );
    // No gap: the five periods are one clean tone.
    let left = paravox_testkit::channel(&paravox_testkit::from_s16_bytes(&bytes), 2, 0);
    let fit = paravox_testkit::fit_sine(&left, 48_000.0).expect("a sine");
    assert!((fit.frequency - 880.0).abs() < 1.0, "{} Hz", fit.frequency);
    assert!(fit.thd_n_db < -60.0, "THD+N {} dB: a gap", fit.thd_n_db);
    assert_eq!(recorder.trigger(TriggerKind::Stop), 0, "STOP capture");
    assert_eq!(player.trigger(TriggerKind::Stop), 0, "STOP playback");
}

/// The xrun rule over sndif: a stream played to its end and stopped, as aplay does,
/// counts none; a guest late in the middle (the ring runs dry, then more audio comes)
/// counts one.
#[test]
fn a_natural_end_is_no_xrun_and_a_gap_in_the_middle_is_one() {
    let (engine, _recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    let device = harness.connected_device(13, &[(0, 0, Direction::Playback)]);
    let stream = device.stream(0, 0);
    let engine_stream = harness.engine_stream(13, 0);
    let params = Params::s16_stereo(10);
    let tone = sine_s16(440.0, 0.5, 9_600);
    play(stream, &params, &tone, |_| {});
    assert_eq!(engine_stream.xruns(), 0, "aplay's natural end");

    let (buffer, period) = (params.buffer_bytes as u64, params.period_bytes as u64);
    assert_eq!(stream.open(&params), 0, "OPEN");
    let mut appl = 0u64;
    let write_period = |appl: &mut u64| {
        let offset = (*appl % buffer) as u32;
        let status = stream.write(offset, &tone[..period as usize]);
        *appl += period;
        status
    };
    for _ in 0..2 {
        assert_eq!(write_period(&mut appl), 0);
    }
    assert_eq!(stream.trigger(TriggerKind::Start), 0, "START");
    let written = appl;
    stream
        .events
        .wait_until(REQUEST_TIMEOUT, |pos| pos >= written)
        .expect("the two periods are played");
    // Late: the ring is dry for a while, then the guest writes again.
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(
        engine_stream.xruns(),
        0,
        "dry, but not yet known to be a gap"
    );
    assert_eq!(write_period(&mut appl), 0);
    let written = appl;
    stream
        .events
        .wait_until(REQUEST_TIMEOUT, |pos| pos >= written)
        .expect("the late period is played");
    assert_eq!(engine_stream.xruns(), 1, "one gap in the middle");
    assert_eq!(stream.trigger(TriggerKind::Stop), 0, "STOP");
    assert_eq!(stream.close(), 0, "CLOSE");
    assert_eq!(engine_stream.xruns(), 1, "and its end added none");
}

/// A rate the host would need a filter of millions of coefficients for (767,994 Hz
/// against the 48 kHz endpoint: 8,000 phases of 1,024 taps, 32 MiB designed on the loop
/// that serves every Xen guest) is refused with EINVAL at OPEN, and the stream opens at
/// a rate it can serve afterwards.
#[test]
fn a_rate_the_host_cannot_resample_is_refused_at_open() {
    let (engine, _recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    let domain = harness.domain(9);
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[
            ("sample-formats", "s16_le"),
            ("sample-rates", "767994,48000"),
        ],
        &[(0, 0, Direction::Playback)],
    );
    device.connect();
    let stream = device.stream(0, 0);
    let odd = Params {
        rate: 767_994,
        channels: 1,
        buffer_bytes: 4 * 7_680 * 2,
        period_bytes: 7_680 * 2,
        ..Params::s16_stereo(10)
    };
    assert_eq!(stream.open(&odd), EINVAL, "OPEN at 767,994 Hz");
    assert_eq!(stream.open(&Params::s16_stereo(10)), 0, "OPEN at 48 kHz");
    assert_eq!(stream.close(), 0);
}

/// A guest may list any rates in its frontend's `sample-rates` and open at each in turn;
/// every new one makes the backend's loop design a filter while the other guests wait.
/// After the card's burst of new filters, OPEN at yet another new rate is `-EBUSY`
/// (one more is allowed each interval), and rates that need no new filter still open.
#[test]
fn a_guest_opening_at_one_new_rate_after_another_is_told_to_wait() {
    let (engine, _recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    let domain = harness.domain(9);
    // 480·n Hz against 48 kHz is 100/n: each a new, small filter.
    let rates: Vec<u32> = (11u32..)
        .filter(|n| n % 2 != 0 && n % 5 != 0)
        .map(|n| 480 * n)
        .take(3 * FILTER_DESIGN_BURST as usize)
        .collect();
    let listed: Vec<String> = rates.iter().chain(&[48_000]).map(u32::to_string).collect();
    let mut device = FrontDevice::create(
        &harness.host,
        &domain,
        0,
        &[
            ("sample-formats", "s16_le"),
            ("sample-rates", &listed.join(",")),
        ],
        &[(0, 0, Direction::Playback)],
    );
    device.connect();
    let stream = device.stream(0, 0);
    let mut opened = 0;
    let mut refused = None;
    for &rate in &rates {
        let params = Params {
            rate,
            channels: 1,
            buffer_bytes: 4 * 960,
            period_bytes: 960,
            ..Params::s16_stereo(10)
        };
        match stream.open(&params) {
            0 => {
                opened += 1;
                assert_eq!(stream.close(), 0);
            }
            status => {
                refused = Some((rate, status));
                break;
            }
        }
    }
    let (rate, status) = refused.expect("a new rate was refused");
    assert_eq!(status, EBUSY, "OPEN at {rate} Hz after {opened} new rates");
    assert!(opened >= FILTER_DESIGN_BURST as usize, "{opened}");
    assert_eq!(stream.open(&Params::s16_stereo(10)), 0, "OPEN at 48 kHz");
    assert_eq!(stream.close(), 0);
}
