//! The configuration file: TOML parsed and validated as `paravox serve` does, up to the
//! declaration the control layer is given.
#![no_main]

use std::path::Path;

use paravox::config::{Config, Overrides, Source};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Source {
        name: "fuzz.toml".into(),
        text,
    };
    if let Ok(config) = Config::parse(&source, Path::new("/var/lib/paravox")) {
        let _ = config.declaration(&source, &Overrides::default());
    }
});
