//! Several cards playing at once through one endpoint: every card's streams are moved by
//! the one position loop of the process (not a thread per card), every guest gets all of
//! its completions in order, and a card whose VMM goes away and comes back leaves the
//! loop and joins it again without disturbing the others.

mod support;

use std::path::Path;

use paravox_virtio_snd::{CardTopology, VirtioCard};
use support::signal::tone_s16_stereo;
use support::{Driver, Host, Playback, SetParams, status};

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .count()
}

/// Plays `seconds` of tone on stream 0 of the card at `socket`, as a guest would, and
/// checks every completion came back OK and in order.
fn play(socket: &Path, seconds: f64, frequency: f64) -> Result<usize, String> {
    let mut driver = Driver::connect(socket);
    let params = SetParams::s16_stereo_48k(0, 8);
    driver.configure(&params);
    let tone = tone_s16_stereo(frequency, 0.25, seconds);
    let mut playback = Playback::new(&params, &tone);
    playback.fill(&mut driver);
    if driver.start(0) != status::OK {
        return Err("START refused".into());
    }
    playback.run(&mut driver);
    if driver.stop(0) != status::OK || driver.release(0) != status::OK {
        return Err("STOP or RELEASE refused".into());
    }
    driver.disconnect();
    for (index, completion) in playback.completions.iter().enumerate() {
        if completion.period != index || !completion.in_order {
            return Err(format!(
                "completion {index} was period {}",
                completion.period
            ));
        }
        if completion.status != status::OK {
            return Err(format!(
                "period {index}: {}",
                status::name(completion.status)
            ));
        }
    }
    Ok(playback.completions.len())
}

#[test]
fn cards_playing_at_once_share_one_position_loop() {
    let host = Host::new().null_output().serve(CardTopology::quick_start());
    let others: Vec<VirtioCard> = (1..4)
        .map(|n| {
            VirtioCard::spawn(
                host.engine.clone(),
                &format!("card{n}"),
                &host.path(&format!("card{n}.sock")),
                CardTopology::quick_start(),
            )
            .expect("another card")
        })
        .collect();
    let sockets: Vec<&Path> = std::iter::once(host.socket())
        .chain(others.iter().map(VirtioCard::socket))
        .collect();

    // Two rounds: between them every VMM goes away and a new one connects, so each card
    // leaves the loop and joins it again.
    for round in 0..2 {
        let played: Vec<Result<usize, String>> = std::thread::scope(|scope| {
            let players: Vec<_> = sockets
                .iter()
                .enumerate()
                .map(|(card, socket)| {
                    scope.spawn(move || play(socket, 0.5, 300.0 + 100.0 * card as f64))
                })
                .collect();
            players
                .into_iter()
                .map(|player| player.join().expect("a player thread"))
                .collect()
        });
        for (card, outcome) in played.iter().enumerate() {
            assert_eq!(
                outcome,
                &Ok(50),
                "round {round}, card {card}: every period completed"
            );
        }
        assert_eq!(
            threads_named("vsnd-positions"),
            1,
            "one loop moves the streams of all four cards"
        );
    }
}
