//! What the fuzz targets share: one engine per process, with null endpoints so streams
//! can be prepared and started as a guest would. Their cycle is short (32 frames): a
//! stream detached when an input's card goes away waits for the endpoint to let go of it
//! within one cycle, which at the default 10 ms held each such input for that long.

use std::sync::{Arc, OnceLock};

use paravox_engine::{Direction, Engine};
use paravox_host_audio::spec::EndpointSpec;

pub use paravox_fuzz_seeds as layout;

/// The process's engine: a `null` output and input, the defaults of both directions.
pub fn engine() -> &'static Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = Arc::new(Engine::new());
        let spec: EndpointSpec = "null,period=32"
            .parse()
            .expect("the null endpoint spec parses");
        engine
            .add_playback_endpoint(
                "out",
                "null",
                spec.playback_opener().expect("null playback"),
            )
            .expect("the null output opens");
        engine
            .add_capture_endpoint("in", "null", spec.capture_opener().expect("null capture"))
            .expect("the null input opens");
        for (direction, name) in [(Direction::Playback, "out"), (Direction::Capture, "in")] {
            engine
                .set_default_endpoint(direction, name)
                .expect("default endpoint");
        }
        engine
    })
}
