//! Many playback streams on one card at once: the backend keeps every one of them fed in
//! real time while the guest keeps their buffers full. How far one backend goes is
//! measured by `cargo bench -p paravox-virtio-snd --bench capacity`.

mod support;

use std::time::Duration;

use support::scale::play_streams;

#[test]
fn four_streams_play_at_once_without_xruns() {
    // Linux's default buffer, 160 ms, so a busy test machine cannot starve a stream.
    let outcome = play_streams(4, 16, 1.0).expect("four streams");
    assert!(outcome.all_ok, "every completion OK and in order");
    assert_eq!(
        outcome.xruns_while_fed, [0; 4],
        "xruns while the guest kept every buffer full"
    );
    assert!(
        outcome.elapsed >= Duration::from_millis(900),
        "1 s of audio took {:?}",
        outcome.elapsed
    );
}
