//! An sndif stream serving a ring page the fuzzer wrote: hostile `req_prod`, `rsp_prod`
//! and `rsp_event`, up to a ring of requests (OPEN with a hostile page directory,
//! WRITE/READ ranges, volumes, triggers, queries) answered by the real handlers.
#![no_main]

use paravox_engine::Direction;
use paravox_fuzz::layout::sndif_ring::*;
use paravox_sndif::fuzzing::serve_ring;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(&selector) = data.first() else {
        return;
    };
    let direction = if selector % 2 == 0 {
        Direction::Playback
    } else {
        Direction::Capture
    };
    let ring = &data[RING_AT.min(data.len())..GRANT_AT.min(data.len())];
    let grant = &data[GRANT_AT.min(data.len())..];
    // A corrupted ring is an error for this device, which is the point: no panic.
    let _ = serve_ring(paravox_fuzz::engine(), direction, ring, grant);
});
