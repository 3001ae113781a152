//! The vsnd card configuration as the toolstack and frontend write it into XenStore:
//! `path=value` lines below the frontend directory, read by the backend's parser.
#![no_main]

use std::collections::BTreeMap;

use paravox_fuzz::layout::xenstore_config::FRONTEND;
use paravox_sndif::config::parse_card;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut store = BTreeMap::new();
    for line in text.lines() {
        let (path, value) = line.split_once('=').unwrap_or((line, ""));
        store.insert(format!("{FRONTEND}/{path}"), value.to_owned());
    }
    if let Ok(card) = parse_card(&store, FRONTEND) {
        for stream in card.streams() {
            let _ = stream.hw.constraints();
        }
    }
});
