//! The whole life of a playback stream as Linux's `virtio_snd` drives it: probe (config
//! space and every info table), then SET_PARAMS, PREPARE, the buffer queued, START,
//! playing, STOP and RELEASE.

mod support;

use std::time::Duration;

use paravox_engine::StreamState;
use paravox_virtio_snd::CardTopology;
use support::signal::tone_s16_stereo;
use support::spec::{self, ChmapInfo, CtlInfo, JackInfo, PcmInfo, code, ctl, size};
use support::{Driver, Host, Playback, SetParams, queue, status};

#[test]
fn linux_probe_then_play_stop_release() {
    let host = Host::new()
        .null_output()
        .tone_input(440)
        .serve(CardTopology {
            controls: true,
            budget: None,
            ..CardTopology::quick_start()
        });
    let mut driver = Driver::connect(host.socket());

    // Probe: the config space and every table.
    let config = driver.config();
    assert_eq!(
        (config.streams, config.jacks, config.chmaps, config.controls),
        (2, 2, 2, 4),
        "the quick-start card with controls: one playback and one capture stream"
    );

    let jacks: Vec<JackInfo> = driver
        .info_table(code::JACK_INFO, config.jacks, size::JACK_INFO)
        .iter()
        .map(|bytes| JackInfo::parse(bytes))
        .collect();
    assert!(
        jacks.iter().all(|jack| jack.connected == 1),
        "jacks: {jacks:?}"
    );

    let pcms: Vec<PcmInfo> = driver
        .info_table(code::PCM_INFO, config.streams, size::PCM_INFO)
        .iter()
        .map(|bytes| PcmInfo::parse(bytes))
        .collect();
    assert_eq!(pcms[0].direction, spec::DIRECTION_OUTPUT, "stream 0 plays");
    assert_eq!(pcms[1].direction, spec::DIRECTION_INPUT, "stream 1 records");
    for (id, pcm) in pcms.iter().enumerate() {
        assert!(
            pcm.formats & (1 << spec::format::S16) != 0,
            "stream {id} offers S16: {:#x}",
            pcm.formats
        );
        assert!(
            pcm.rates & (1 << spec::rate::R48000) != 0,
            "stream {id} offers 48 kHz: {:#x}",
            pcm.rates
        );
        assert!(
            pcm.channels_min <= 2 && pcm.channels_max >= 2,
            "stream {id} offers stereo: {pcm:?}"
        );
    }

    let chmaps: Vec<ChmapInfo> = driver
        .info_table(code::CHMAP_INFO, config.chmaps, size::CHMAP_INFO)
        .iter()
        .map(|bytes| ChmapInfo::parse(bytes))
        .collect();
    assert_eq!(chmaps[0].direction, spec::DIRECTION_OUTPUT);
    assert_eq!(chmaps[1].direction, spec::DIRECTION_INPUT);
    for chmap in &chmaps {
        assert_eq!(
            chmap.positions,
            [spec::CHMAP_FRONT_LEFT, spec::CHMAP_FRONT_RIGHT],
            "{chmap:?}"
        );
    }

    let controls: Vec<CtlInfo> = driver
        .info_table(code::CTL_INFO, config.controls, size::CTL_INFO)
        .iter()
        .map(|bytes| CtlInfo::parse(bytes))
        .collect();
    let names: Vec<&str> = controls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "PCM Playback Volume",
            "PCM Playback Switch",
            "Capture Volume",
            "Capture Switch"
        ]
    );
    for volume in [&controls[0], &controls[2]] {
        assert_eq!(
            (volume.role, volume.kind, volume.count),
            (ctl::ROLE_VOLUME, ctl::TYPE_INTEGER, 1)
        );
        assert_eq!(
            (volume.min, volume.max, volume.step),
            (0, 240, 1),
            "{volume:?}"
        );
        let access = ctl::ACCESS_READ | ctl::ACCESS_WRITE | ctl::ACCESS_TLV_READ;
        assert_eq!(volume.access & access, access, "{volume:?}");
    }
    for switch in [&controls[1], &controls[3]] {
        assert_eq!(
            (switch.role, switch.kind, switch.max),
            (ctl::ROLE_MUTE, ctl::TYPE_BOOLEAN, 1),
            "{switch:?}"
        );
    }
    driver.post_event_buffers(16);

    // Open: 4 periods of 10 ms, S16 stereo 48 kHz.
    let params = SetParams::s16_stereo_48k(0, 4);
    driver.configure(&params);
    assert_eq!(host.stream(0).state(), StreamState::Prepared);

    // The whole buffer is queued before START, then the stream plays for a while.
    let mut playback = Playback::new(&params, &tone_s16_stereo(440.0, 0.5, 1.0));
    assert_eq!(
        playback.fill(&mut driver),
        4,
        "the whole buffer goes out before START"
    );
    assert_eq!(driver.start(0), status::OK);
    for _ in 0..20 {
        let completion = playback.step(&mut driver);
        assert_eq!(completion.status, status::OK);
        assert!(
            completion.in_order,
            "period {} completed out of order",
            completion.period
        );
    }

    // STOP holds what is queued: late completions of audio already played may still
    // arrive, then nothing.
    assert_eq!(driver.stop(0), status::OK);
    while let Some(done) = driver.wait_io(queue::TX, Duration::from_millis(100)) {
        playback.complete(&done);
    }
    let pending = playback.in_flight();
    assert!(pending > 0, "the test needs messages pending at RELEASE");
    assert!(
        driver
            .wait_io(queue::TX, Duration::from_millis(300))
            .is_none(),
        "a stopped stream completed a message"
    );

    // RELEASE returns every pending message before it answers.
    assert_eq!(driver.release(0), status::OK);
    let mut returned = 0;
    while let Some(done) = driver.wait_io(queue::TX, Duration::from_millis(200)) {
        playback.complete(&done);
        returned += 1;
    }
    assert_eq!(
        returned, pending,
        "RELEASE returned {returned} of {pending} pending messages"
    );
    assert_eq!(driver.in_flight(queue::TX), 0);
    assert_eq!(host.stream(0).state(), StreamState::Released);
}

#[test]
fn a_card_without_controls_does_not_offer_them() {
    // What a card offers unless its configuration asks for controls.
    let topology = CardTopology::quick_start();
    let host = Host::new().null_output().serve(topology);
    let mut driver = Driver::connect(host.socket());
    assert_eq!(
        driver.offered_features() & spec::F_CTLS,
        0,
        "VIRTIO_SND_F_CTLS offered without controls"
    );
    assert_eq!(driver.config().controls, 0);
    assert_eq!(driver.config().streams, 2);
    let (status, _) = driver.query(code::CTL_INFO, 0, 1, size::CTL_INFO);
    assert_eq!(
        status,
        status::BAD_MSG,
        "CTL_INFO of a card without controls"
    );
    // The streams work as before.
    driver.configure(&SetParams::s16_stereo_48k(0, 4));
    assert_eq!(driver.release(0), status::OK);
}
