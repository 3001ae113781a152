//! The blocking client `paravox ctl` uses, against a live server.

mod support;

use paravox_api::Error;
use paravox_api::client::Client;
use paravox_api::model::{CardRequest, DirectionName, EndpointRequest};
use paravox_engine::Direction;
use support::TestServer;

#[test]
fn the_client_lists_and_changes_what_ctl_needs() {
    let server = TestServer::start();
    let stream = support::local_stream(&server.engine, "vm1", Direction::Playback);
    let client =
        Client::from_state_dir(&server.base, &support::state_dir(&server.dir)).expect("client");

    let cards = client.cards().expect("cards");
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].name, "vm1");
    assert_eq!(client.streams().expect("streams")[0].id, stream.id());
    assert_eq!(client.endpoints().expect("endpoints").len(), 3);
    client.alsa_pcms().expect("alsa");

    let view = client.set_volume(stream.id(), -12.0).expect("volume");
    assert_eq!(view.volume_db, vec![-12.0]);
    assert!(client.mute(stream.id(), true).expect("mute").muted);
    assert_eq!(
        client
            .route(stream.id(), Some("file"))
            .expect("route")
            .route
            .as_deref(),
        Some("file")
    );
    assert_eq!(
        client.route(stream.id(), None).expect("default").route,
        None
    );
    assert!(client.stream(stream.id()).expect("stream").muted);

    let endpoint = client
        .create_endpoint(&EndpointRequest {
            name: "spare".into(),
            direction: DirectionName::Playback,
            spec: "null".into(),
        })
        .expect("create endpoint");
    assert_eq!(endpoint.name, "spare");
    client.delete_endpoint("spare").expect("delete endpoint");
    let card = client
        .create_card(&CardRequest {
            name: "vm2".into(),
            socket: server.dir.path().join("vm2.sock").display().to_string(),
            streams: vec![],
            controls: None,
            budget: None,
        })
        .expect("create card");
    client.delete_card(card.id).expect("delete card");
}

#[test]
fn client_errors_carry_the_problem_detail() {
    let server = TestServer::start();
    let client = Client::new(&server.base, &server.token);
    match client.set_volume(9999, 0.0) {
        Err(Error::Api {
            status: 404,
            detail,
            ..
        }) => assert!(detail.contains("no stream 9999"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let stream = support::local_stream(&server.engine, "vm1", Direction::Playback);
    match client.set_volume(stream.id(), 1000.0) {
        Err(Error::Api {
            status: 422,
            detail,
            ..
        }) => assert!(detail.contains("outside"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let wrong = Client::new(&server.base, "nope");
    let message = wrong.cards().expect_err("refused").to_string();
    assert!(
        message.contains("401") && message.contains("wrong token"),
        "{message}"
    );
    let nowhere = Client::new("http://127.0.0.1:9", &server.token);
    assert!(matches!(nowhere.cards(), Err(Error::Transport { .. })));
}
