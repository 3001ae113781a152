//! The mixer as `amixer` sees it: volume and switch values, the dB scale, their effect on
//! what is played, and notifications of changes made on the host.

mod support;

use std::time::Duration;

use paravox_virtio_snd::CardTopology;
use support::signal::{bytes_for, rms_db, tone_s16_stereo};
use support::spec::{self, ctl, event};
use support::{Driver, Host, Playback, SetParams, queue, status};

const PLAYBACK_VOLUME: u32 = 0;
const PLAYBACK_SWITCH: u32 = 1;

/// Plays `tone` on stream 0 from PREPARE to RELEASE and returns what the WAV file gained.
/// The quick-start card with volume and mute controls (`controls = true`).
fn with_controls() -> CardTopology {
    CardTopology {
        controls: true,
        budget: None,
        ..CardTopology::quick_start()
    }
}

fn play_into_wav(host: &Host, driver: &mut Driver, tone: &[u8]) -> Vec<u8> {
    let before = host.wav_data().len();
    let params = SetParams::s16_stereo_48k(0, 16);
    driver.configure(&params);
    let mut playback = Playback::new(&params, tone);
    playback.fill(driver);
    assert_eq!(driver.start(0), status::OK);
    playback.run(driver);
    assert!(playback.completions.iter().all(|c| c.status == status::OK));
    assert_eq!(driver.stop(0), status::OK);
    assert_eq!(driver.release(0), status::OK);
    host.wav_data()[before..].to_vec()
}

#[test]
fn volume_reads_in_steps_with_a_db_scale_and_attenuates_what_is_played() {
    let host = Host::new().wav_output().serve(with_controls());
    let mut driver = Driver::connect(host.socket());

    assert_eq!(
        driver.ctl_read(PLAYBACK_VOLUME),
        (status::OK, Some(240)),
        "full volume is step 240"
    );
    assert_eq!(
        driver.ctl_read(PLAYBACK_SWITCH),
        (status::OK, Some(1)),
        "the switch starts on"
    );

    let (tlv_status, tlv) = driver.ctl_tlv_read(PLAYBACK_VOLUME, 64);
    assert_eq!(tlv_status, status::OK);
    let words = spec::tlv_words(&tlv);
    assert!(words.len() >= 4, "TLV {words:?}");
    assert_eq!(
        (words[0], words[1]),
        (ctl::TLV_DB_SCALE, 8),
        "an ALSA dB-scale TLV: {words:?}"
    );
    let min_centibels = words[2] as i32;
    let step_centibels = (words[3] & 0xFFFF) as i32;
    assert_eq!(
        min_centibels + 240 * step_centibels,
        0,
        "step 240 is 0 dB: {words:?}"
    );
    assert_eq!(
        min_centibels + 228 * step_centibels,
        -600,
        "step 228 is −6 dB: {words:?}"
    );

    // −6 dB: the played tone's level drops by 6 dB.
    assert_eq!(driver.ctl_write(PLAYBACK_VOLUME, 228), status::OK);
    assert_eq!(driver.ctl_read(PLAYBACK_VOLUME), (status::OK, Some(228)));
    let tone = tone_s16_stereo(440.0, 0.5, 1.0);
    let played = play_into_wav(&host, &mut driver, &tone);
    assert!(
        played.len() >= tone.len() - bytes_for(0.01),
        "{} of {} bytes reached the file",
        played.len(),
        tone.len()
    );
    // Measure past the first 100 ms, where any gain ramp has settled, and stop where
    // the tone ends.
    let measured = &played[bytes_for(0.1)..tone.len().min(played.len())];
    let drop = rms_db(measured) - rms_db(&tone[bytes_for(0.1)..]);
    assert!(
        (drop + 6.0).abs() <= 0.1,
        "the level changed by {drop:.3} dB, expected −6 dB"
    );

    // Switch off: silence.
    assert_eq!(driver.ctl_write(PLAYBACK_SWITCH, 0), status::OK);
    assert_eq!(driver.ctl_read(PLAYBACK_SWITCH), (status::OK, Some(0)));
    let played = play_into_wav(&host, &mut driver, &tone_s16_stereo(440.0, 0.5, 0.5));
    assert!(
        played.len() >= bytes_for(0.49),
        "the muted stream still plays (silence): {} bytes",
        played.len()
    );
    let loudest = played
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs())
        .max();
    assert!(
        loudest.unwrap_or(0) == 0,
        "a muted stream reached the file at level {loudest:?}"
    );
}

#[test]
fn a_host_side_volume_change_is_notified_on_a_held_event_buffer() {
    let host = Host::new().null_output().serve(with_controls());
    let mut driver = Driver::connect(host.socket());
    driver.post_event_buffers(8);

    // Nothing to report: the device keeps the buffers.
    assert!(
        driver.next_event(Duration::from_millis(300)).is_none(),
        "an event with nothing to report"
    );
    assert_eq!(
        driver.in_flight(queue::EVENT),
        8,
        "the device holds every event buffer"
    );

    host.stream(0).set_volume_db(-10.0);
    let notify = driver
        .next_event(Duration::from_secs(2))
        .expect("a CTL_NOTIFY after a host volume change");
    assert_eq!(notify.code, event::CTL_NOTIFY, "event {notify:?}");
    assert_eq!(
        notify.control_id(),
        PLAYBACK_VOLUME as u16,
        "event {notify:?}"
    );
    assert_eq!(
        notify.control_mask() & ctl::EVT_MASK_VALUE,
        ctl::EVT_MASK_VALUE,
        "event {notify:?}"
    );
    assert_eq!(
        driver.ctl_read(PLAYBACK_VOLUME),
        (status::OK, Some(220)),
        "−10 dB is step 220"
    );

    host.stream(0).set_muted(true);
    let notify = driver
        .next_event(Duration::from_secs(2))
        .expect("a CTL_NOTIFY after a host mute");
    assert_eq!(
        (notify.code, notify.control_id()),
        (event::CTL_NOTIFY, PLAYBACK_SWITCH as u16)
    );
    assert_eq!(driver.ctl_read(PLAYBACK_SWITCH), (status::OK, Some(0)));

    // The capture stream's controls are separate: a change there names control 2.
    host.stream(1).set_volume_db(-6.0);
    let notify = driver
        .next_event(Duration::from_secs(2))
        .expect("a CTL_NOTIFY for the capture volume");
    assert_eq!((notify.code, notify.control_id()), (event::CTL_NOTIFY, 2));
    assert!(
        driver.next_event(Duration::from_millis(200)).is_none(),
        "one change, one event"
    );
}

/// Found while writing the `virtio_queue` fuzz target (which also shapes cards without
/// controls): a card offered without controls (QEMU without `controls=on`) took CTL_WRITE
/// for control 0 and indexed an empty table, panicking the card's queue thread, so the
/// card stopped answering. Every control request must get BAD_MSG and the card carry on.
#[test]
fn a_card_without_controls_refuses_control_requests() {
    let topology = CardTopology {
        controls: false,
        budget: None,
        ..CardTopology::quick_start()
    };
    let host = Host::new().null_output().serve(topology);
    let mut driver = Driver::connect(host.socket());

    assert_eq!(driver.ctl_write(PLAYBACK_VOLUME, 100), status::BAD_MSG);
    assert_eq!(driver.ctl_write(PLAYBACK_SWITCH, 0), status::BAD_MSG);
    assert_eq!(driver.ctl_read(PLAYBACK_VOLUME), (status::BAD_MSG, None));
    assert_eq!(driver.ctl_tlv_read(PLAYBACK_VOLUME, 64).0, status::BAD_MSG);
    // The card still answers, and its stream still plays.
    let params = SetParams::s16_stereo_48k(0, 4);
    driver.configure(&params);
    assert_eq!(driver.start(0), status::OK);
    assert_eq!(driver.stop(0), status::OK);
    assert_eq!(driver.release(0), status::OK);
}

/// A hostile driver makes its one event buffer available 200 times more (within the
/// ring's size, so the ring itself stays valid): the
/// device holds it once, so three host-side changes return it once (a second return of
/// the same descriptor would be the device using it twice), and the rest wait.
#[test]
fn an_event_buffer_made_available_again_is_held_once() {
    let host = Host::new().null_output().serve(with_controls());
    let mut driver = Driver::connect(host.socket());
    let buffer = driver.ram().alloc(8, 8);
    let head = driver.post_raw(
        queue::EVENT,
        &[support::virtqueue::Segment::writable(buffer, 8)],
    );
    driver.repost(queue::EVENT, head, 200);
    host.stream(0).set_volume_db(-10.0);
    host.stream(0).set_muted(true);
    host.stream(0).set_volume_db(-20.0);
    let first = driver
        .wait_raw(queue::EVENT, Duration::from_secs(2))
        .expect("the event buffer comes back with the first change");
    assert_eq!((first.head, first.len), (head, 8));
    // pop_used panics on a head returned twice; nothing more may come.
    assert!(
        driver
            .wait_raw(queue::EVENT, Duration::from_millis(500))
            .is_none(),
        "the device returned the buffer again"
    );
}
