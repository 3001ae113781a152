//! A guest past its card's budget: SET_PARAMS beyond a stream's limits and PREPARE beyond
//! the card's totals are answered NOT_SUPP with an event naming the card; what a released
//! stream held is given back, and the card keeps playing byte-exact.

mod support;

use paravox_engine::{Budget, Event};
use paravox_virtio_snd::{CardTopology, StreamTopology};
use support::signal::{find_frames, tone_s16_stereo};
use support::spec::PERIOD_10MS_BYTES;
use support::{Driver, Host, Playback, SetParams, status};

/// virtio's rate code for 96 kHz.
const RATE_96000: u8 = 10;

#[test]
fn a_guest_past_its_budget_gets_not_supp_and_the_card_plays_on() {
    let buffer = 8 * PERIOD_10MS_BYTES;
    let budget = Budget {
        streams: 3,
        stream_buffer_bytes: buffer,
        card_buffer_bytes: 2 * u64::from(buffer),
        stream_samples_per_second: 96_000,
        card_samples_per_second: 3 * 96_000,
    };
    let host = Host::new().wav_output().serve(CardTopology {
        streams: ["a", "b", "c"]
            .map(|name| StreamTopology::new(name, paravox_engine::Direction::Playback))
            .to_vec(),
        controls: false,
        budget: Some(budget),
    });
    let mut events = host.engine.subscribe();
    let card = host.engine.cards()[0].clone();
    assert_eq!(card.budget(), budget);
    let mut driver = Driver::connect(host.socket());
    let params = |stream_id| SetParams {
        buffer_bytes: buffer,
        ..SetParams::s16_stereo_48k(stream_id, 8)
    };

    // One stream's own limits.
    let too_large = SetParams {
        buffer_bytes: buffer + PERIOD_10MS_BYTES,
        ..params(0)
    };
    assert_eq!(driver.set_params(&too_large), status::NOT_SUPP);
    let too_fast = SetParams {
        rate: RATE_96000,
        ..params(0)
    };
    assert_eq!(driver.set_params(&too_fast), status::NOT_SUPP);

    // The card's total: two full buffers fit, the third does not.
    for stream_id in 0..3 {
        assert_eq!(driver.set_params(&params(stream_id)), status::OK);
    }
    assert_eq!(driver.prepare(0), status::OK);
    assert_eq!(driver.prepare(1), status::OK);
    assert_eq!(
        driver.prepare(2),
        status::NOT_SUPP,
        "past card_buffer_bytes"
    );
    assert_eq!(card.budget_used().0, 2 * u64::from(buffer));
    // Released, stream 0's share is free for stream 2.
    assert_eq!(driver.release(0), status::OK);
    assert_eq!(driver.prepare(2), status::OK);

    let mut refused = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::BudgetExceeded {
            card: id, limit, ..
        } = event
        {
            assert_eq!(id, card.id());
            refused.push(limit);
        }
    }
    assert_eq!(
        refused,
        [
            "stream_buffer_bytes",
            "stream_samples_per_second",
            "card_buffer_bytes"
        ]
    );

    // The card plays on, byte-exact.
    let tone = tone_s16_stereo(440.0, 0.5, 0.5);
    let mut playback = Playback::new(&params(2), &tone);
    playback.fill(&mut driver);
    assert_eq!(driver.start(2), status::OK);
    playback.run(&mut driver);
    assert!(
        playback
            .completions
            .iter()
            .all(|c| c.status == status::OK && c.in_order)
    );
    assert_eq!(driver.stop(2), status::OK);
    assert_eq!(driver.release(2), status::OK);
    assert!(
        find_frames(&host.wav_data(), &tone).is_some(),
        "the tone reached the file intact"
    );
}
