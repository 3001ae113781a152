//! Cards created and removed while no VMM is connected (the API's POST and DELETE
//! /api/cards): each removal ends its server thread, so none accumulate.
//!
//! Its own test binary, so that no other test's threads are counted.

mod support;

use std::time::Duration;

use paravox_virtio_snd::{CardTopology, VirtioCard};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn removed_cards_leave_no_server_threads_behind() {
    let host = support::Host::new().null_output();
    let spawn = |index: usize| {
        VirtioCard::spawn(
            host.engine.clone(),
            &format!("vm{index}"),
            &host.path(&format!("vm{index}.sock")),
            CardTopology::quick_start(),
        )
        .expect("card")
    };
    // As the API's DELETE does: the card's socket and thread first, then the engine card.
    let remove = |card: VirtioCard| {
        let id = card.card();
        drop(card);
        host.engine.remove_card(id).expect("remove the engine card");
    };
    remove(spawn(0));
    std::thread::sleep(Duration::from_millis(300));
    let before = threads();
    for index in 1..=10 {
        let card = spawn(index);
        assert!(host.path(&format!("vm{index}.sock")).exists());
        remove(card);
    }
    let server_threads = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("paravox-vu-"))
            .count()
    };
    let settled = host.eventually(Duration::from_secs(5), || {
        server_threads() == 0 && threads() <= before
    });
    println!(
        "after 10 cards created and removed: threads {before} -> {}, card server threads left {}",
        threads(),
        server_threads()
    );
    assert!(
        settled,
        "threads {before} -> {}, {} card server threads left",
        threads(),
        server_threads()
    );
    assert!(host.engine.cards().is_empty(), "every card left the engine");
}
