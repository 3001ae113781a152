//! The configuration file: TOML parsed and validated as `paravox serve` does, up to the
//! virtio cards' topologies.
#![no_main]

use std::path::Path;

use paravox::config::{Config, Source};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Source {
        name: "fuzz.toml".into(),
        text,
    };
    if let Ok(config) = Config::parse(&source, Path::new("/var/lib/paravox")) {
        let _ = config.virtio_cards(&source);
    }
});
