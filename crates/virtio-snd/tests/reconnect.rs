//! The VMM goes away mid-playback (crash, restart, migration source): the card releases
//! its streams, listens again, and the next VMM gets a working card.

mod support;

use std::time::Duration;

use paravox_engine::StreamState;
use paravox_virtio_snd::CardTopology;
use support::signal::{find_frames, tone_s16_stereo};
use support::spec::{code, event, size};
use support::{Driver, Host, Playback, SetParams, status};

#[test]
fn a_new_vmm_gets_a_working_card_after_the_old_one_vanished_mid_playback() {
    // With controls: a host-side volume change must reach the new VMM as CTL_NOTIFY.
    let host = Host::new().wav_output().serve(CardTopology {
        controls: true,
        budget: None,
        ..CardTopology::quick_start()
    });
    let params = SetParams::s16_stereo_48k(0, 4);

    let mut first = Driver::connect(host.socket());
    let config = first.config();
    first.configure(&params);
    let mut playback = Playback::new(&params, &tone_s16_stereo(440.0, 0.5, 2.0));
    playback.fill(&mut first);
    assert_eq!(first.start(0), status::OK);
    for _ in 0..10 {
        playback.step(&mut first);
    }
    assert_eq!(host.stream(0).state(), StreamState::Running);
    first.disconnect();

    let stream = host.stream(0);
    assert!(
        host.eventually(Duration::from_secs(3), || matches!(
            stream.state(),
            StreamState::Released | StreamState::Idle
        )),
        "the engine stream is still {} after its VMM disconnected",
        stream.state()
    );

    // A new VMM: the whole setup again, on the same socket.
    let mut second = Driver::connect(host.socket());
    assert_eq!(second.config(), config);
    let pcm_info = second.info_table(code::PCM_INFO, config.streams, size::PCM_INFO);
    assert_eq!(pcm_info.len(), 2);
    second.post_event_buffers(4);
    second.configure(&params);
    let tone = tone_s16_stereo(880.0, 0.5, 0.5);
    let mut playback = Playback::new(&params, &tone);
    playback.fill(&mut second);
    assert_eq!(second.start(0), status::OK);
    playback.run(&mut second);
    assert!(
        playback
            .completions
            .iter()
            .all(|c| c.status == status::OK && c.in_order)
    );
    assert_eq!(second.stop(0), status::OK);
    assert_eq!(second.release(0), status::OK);
    assert!(
        find_frames(&host.wav_data(), &tone).is_some(),
        "the second VMM's audio reached the file intact"
    );

    // Host-side notifications reach the new VMM.
    host.stream(0).set_volume_db(-20.0);
    let notify = second
        .next_event(Duration::from_secs(2))
        .expect("a CTL_NOTIFY on the new connection");
    assert_eq!((notify.code, notify.control_id()), (event::CTL_NOTIFY, 0));
}
