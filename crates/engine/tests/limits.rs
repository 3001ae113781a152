//! The engine's caps on cards and streams: reached, they refuse with a message that
//! names the limit, and everything already there keeps working.

mod support;

use paravox_engine::budget::{FILTER_DESIGN_BURST, FILTER_DESIGN_INTERVAL, Limit};
use paravox_engine::{
    Budget, Direction, Engine, EngineError, Event, MAX_CARDS, MAX_STREAMS_PER_CARD, StreamSpec,
    Transport,
};
use paravox_pcm::{Format, HwConstraints, HwParams, RateSet};
use support::*;

fn spec(index: usize) -> StreamSpec {
    StreamSpec {
        name: format!("s{index}"),
        direction: Direction::Playback,
        constraints: open_constraints(),
        route: None,
    }
}

#[test]
fn cards_beyond_the_cap_are_refused_by_name_of_the_limit() {
    let engine = Engine::new();
    for index in 0..MAX_CARDS {
        engine
            .create_card(&format!("card{index}"), Transport::Local)
            .expect("a card under the cap");
    }
    match engine.create_card("one-too-many", Transport::Local) {
        Err(error @ EngineError::Limit(_)) => {
            assert_eq!(
                error.to_string(),
                format!("limit reached: at most {MAX_CARDS} cards")
            );
        }
        other => panic!("card {} was not refused: {other:?}", MAX_CARDS + 1),
    }
    assert_eq!(engine.cards().len(), MAX_CARDS);
    // Removing one makes room again.
    let first = engine.cards()[0].id();
    engine.remove_card(first).expect("remove");
    engine
        .create_card("again", Transport::Local)
        .expect("room again");
}

#[test]
fn streams_beyond_the_per_card_cap_are_refused() {
    let engine = Engine::new();
    let card = engine.create_card("big", Transport::Local).expect("card");
    card.set_budget(Budget {
        streams: MAX_STREAMS_PER_CARD as u32,
        ..Budget::default()
    })
    .expect("the largest stream budget");
    for index in 0..MAX_STREAMS_PER_CARD {
        engine
            .create_stream(card.id(), spec(index))
            .expect("a stream under the cap");
    }
    let error = engine
        .create_stream(card.id(), spec(MAX_STREAMS_PER_CARD))
        .expect_err("one stream too many");
    assert!(matches!(error, EngineError::Limit(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&MAX_STREAMS_PER_CARD.to_string()),
        "{error}"
    );
    // Another card is not affected by this one's cap.
    let other = engine.create_card("small", Transport::Local).expect("card");
    engine
        .create_stream(other.id(), spec(0))
        .expect("a stream on another card");
}

fn stereo(rate: u32, buffer_bytes: u32) -> HwParams {
    HwParams {
        format: Format::S16Le,
        rate,
        channels: 2,
        buffer_bytes,
        period_bytes: buffer_bytes / 4,
    }
}

fn refused_limit(error: EngineError) -> Limit {
    match error {
        EngineError::Budget { exceeded, .. } => exceeded.limit,
        other => panic!("not a budget refusal: {other:?}"),
    }
}

/// What a guest asks for past its card's budget is refused with the limit's name and an
/// event naming the card; what it holds is given back when it lets go, and another card
/// is not affected.
#[test]
fn a_card_budget_bounds_what_its_guest_holds_and_names_the_card() {
    let (engine, _recording) = engine_with_sink(format(48_000, 2, 480));
    let mut events = engine.subscribe();
    let card = engine.create_card("guest", Transport::Local).expect("card");
    card.set_budget(Budget {
        streams: 3,
        stream_buffer_bytes: 64 * 1024,
        card_buffer_bytes: 96 * 1024,
        stream_samples_per_second: 96_000,
        card_samples_per_second: 192_000,
    })
    .expect("budget");
    let streams: Vec<_> = (0..3)
        .map(|index| {
            engine
                .create_stream(card.id(), spec(index))
                .expect("stream")
        })
        .collect();
    assert_eq!(
        refused_limit(engine.create_stream(card.id(), spec(3)).unwrap_err()),
        Limit::Streams
    );

    // One stream's own limits, at SET_PARAMS.
    assert_eq!(
        refused_limit(
            streams[0]
                .set_params(stereo(48_000, 65_536 + 1024))
                .unwrap_err()
        ),
        Limit::StreamBuffer
    );
    assert_eq!(
        refused_limit(streams[0].set_params(stereo(96_000, 4096)).unwrap_err()),
        Limit::StreamSamples
    );

    // The card's totals, at prepare.
    streams[0]
        .set_params(stereo(48_000, 64 * 1024))
        .expect("params");
    streams[0].prepare().expect("first ring");
    streams[1]
        .set_params(stereo(48_000, 64 * 1024))
        .expect("params");
    let error = streams[1].prepare().expect_err("past card_buffer_bytes");
    assert!(
        error.to_string().contains("card_buffer_bytes 131072"),
        "{error}"
    );
    assert_eq!(card.budget_used(), (64 * 1024, 96_000));
    // Preparing again does not count the stream twice.
    streams[0].prepare().expect("prepared again");
    assert_eq!(card.budget_used(), (64 * 1024, 96_000));
    // Released, the share comes back.
    streams[0].release().expect("release");
    assert_eq!(card.budget_used(), (0, 0));
    streams[1].prepare().expect("room now");

    // Another card has the default budget and its own account.
    let other = engine.create_card("other", Transport::Local).expect("card");
    assert_eq!(other.budget(), Budget::default());
    let stream = engine.create_stream(other.id(), spec(0)).expect("stream");
    stream.set_params(stereo(48_000, 1 << 20)).expect("params");
    stream.prepare().expect("a large ring on the other card");

    // Removing the card gives everything back.
    engine.remove_card(card.id()).expect("remove");

    let mut refusals = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::BudgetExceeded {
            card: refused,
            limit,
            ..
        } = event
        {
            assert_eq!(refused, card.id());
            refusals.push(limit);
        }
    }
    assert_eq!(
        refusals,
        [
            "streams",
            "stream_buffer_bytes",
            "stream_samples_per_second",
            "card_buffer_bytes"
        ]
    );
}

#[test]
fn cards_follow_the_default_budget_unless_they_have_their_own() {
    let engine = Engine::new();
    let follows = engine
        .create_card("follows", Transport::Local)
        .expect("card");
    let own = engine.create_card("own", Transport::Local).expect("card");
    let mine = Budget {
        streams: 2,
        ..Budget::default()
    };
    own.set_budget(mine).expect("own budget");
    let narrow = Budget {
        stream_buffer_bytes: 8192,
        ..Budget::default()
    };
    engine.set_default_budget(narrow).expect("default");
    assert_eq!(follows.budget(), narrow);
    assert_eq!(own.budget(), mine);
    assert!(own.has_own_budget() && !follows.has_own_budget());
    engine.clear_card_budget(own.id()).expect("clear");
    assert_eq!(own.budget(), narrow);
    let unusable = Budget {
        streams: 0,
        ..Budget::default()
    };
    assert!(engine.set_default_budget(unusable).is_err());
    assert_eq!(engine.default_budget(), narrow);
}

/// Rates no other test uses, each a new resampler filter against 48 kHz: 480·n Hz for n
/// prime to 10 is 100/n, a small table.
fn odd_rates(count: usize) -> Vec<u32> {
    (11u32..)
        .filter(|n| n % 2 != 0 && n % 5 != 0)
        .map(|n| 480 * n)
        .take(count)
        .collect()
}

/// A guest preparing at one new odd rate after another has only so many filters designed
/// for it (each one is work on the thread its transport shares with other guests), then
/// one more per interval; standard rates, rates whose filters are kept, and other cards
/// go on as before.
#[test]
fn a_card_has_only_so_many_new_resampler_filters_designed_at_once() {
    let (engine, _recording) = engine_with_sink(format(48_000, 2, 480));
    let rates = odd_rates(4 * FILTER_DESIGN_BURST as usize);
    // What a Xen guest may list as its rates (its frontend's `sample-rates`).
    let mut offered = rates.clone();
    offered.extend(paravox_pcm::VIRTIO_RATES);
    let any_rate = |index| StreamSpec {
        constraints: HwConstraints {
            rates: RateSet::new(&offered).expect("rates"),
            ..open_constraints()
        },
        ..spec(index)
    };
    let card = engine.create_card("rates", Transport::Local).expect("card");
    let stream = engine
        .create_stream(card.id(), any_rate(0))
        .expect("stream");
    let prepare = |stream: &paravox_engine::Stream, rate: u32| {
        stream.set_params(stereo(rate, 4096))?;
        stream.prepare()
    };
    let started = std::time::Instant::now();
    let mut designed = Vec::new();
    let refused = rates
        .iter()
        .find_map(|&rate| match prepare(&stream, rate) {
            Ok(()) => {
                designed.push(rate);
                None
            }
            Err(error) => Some((rate, error)),
        })
        .expect("a new rate was refused");
    // The burst, and at most what the time the designs took earned on top of it.
    let earned = started.elapsed().as_millis() / FILTER_DESIGN_INTERVAL.as_millis();
    assert!(
        designed.len() >= FILTER_DESIGN_BURST as usize,
        "{designed:?}"
    );
    assert!(
        designed.len() as u128 <= u128::from(FILTER_DESIGN_BURST) + earned,
        "{} designed in {:?}",
        designed.len(),
        started.elapsed()
    );
    match &refused.1 {
        EngineError::Busy(message) => {
            assert!(
                message.contains(&format!("card {}", card.id())),
                "{message}"
            );
            assert!(message.contains(&format!("{} Hz", refused.0)), "{message}");
        }
        other => panic!("not a busy refusal: {other:?}"),
    }
    // A kept filter needs no design: the last rate, and 48 kHz, which needs none.
    prepare(&stream, *designed.last().expect("one")).expect("a kept rate");
    prepare(&stream, 48_000).expect("the endpoint's own rate");
    // Standard rates never count: at most a few dozen filters.
    for rate in [5512, 11_025, 12_000, 44_100] {
        prepare(&stream, rate).expect("a standard rate");
    }
    // Another card has its own designs.
    let other = engine.create_card("other", Transport::Local).expect("card");
    let theirs = engine
        .create_stream(other.id(), any_rate(0))
        .expect("stream");
    prepare(&theirs, refused.0).expect("another card's new rate");
    // One interval later the card may have one more.
    std::thread::sleep(FILTER_DESIGN_INTERVAL + FILTER_DESIGN_INTERVAL / 5);
    let next = rates[designed.len() + 1];
    prepare(&stream, next).expect("one more after the interval");
}
