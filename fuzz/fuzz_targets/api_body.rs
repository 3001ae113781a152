//! API request bodies: `POST /api/cards`, `POST /api/endpoints` and
//! `PATCH /api/streams/{id}` through the handlers' extractor and checks.
#![no_main]

use std::sync::{Arc, OnceLock};

use paravox_api::fuzzing::{Body, check_body};
use paravox_engine::{Direction, Stream, StreamSpec, Transport};
use paravox_virtio_snd::StreamTopology;

fn stream() -> &'static Arc<Stream> {
    static STREAM: OnceLock<Arc<Stream>> = OnceLock::new();
    STREAM.get_or_init(|| {
        let engine = paravox_fuzz::engine();
        let card = engine
            .create_card(
                "api",
                Transport::Virtio {
                    socket: "/fuzz-api.sock".into(),
                },
            )
            .expect("card");
        engine
            .create_stream(
                card.id(),
                StreamSpec {
                    name: "playback".into(),
                    direction: Direction::Playback,
                    constraints: StreamTopology::new("playback", Direction::Playback).constraints(),
                    route: None,
                },
            )
            .expect("stream")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = match selector % 3 {
        0 => Body::Card,
        1 => Body::Endpoint,
        _ => Body::StreamPatch,
    };
    let _ = check_body(paravox_fuzz::engine(), stream(), kind, body);
});
