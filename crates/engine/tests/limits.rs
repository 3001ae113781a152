//! The engine's caps on cards and streams: reached, they refuse with a message that
//! names the limit, and everything already there keeps working.

mod support;

use paravox_engine::{
    Direction, Engine, EngineError, MAX_CARDS, MAX_STREAMS_PER_CARD, StreamSpec, Transport,
};
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
