//! sndif request slots: the parser every slot copied out of a frontend's ring goes
//! through, and the HW_PARAM_QUERY block's conversion to ranges.
#![no_main]

use paravox_sndif::wire::{ParsedRequest, RING_ENTRY_SIZE, Request};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for slot in data.chunks(RING_ENTRY_SIZE) {
        let mut bytes = [0u8; RING_ENTRY_SIZE];
        bytes[..slot.len()].copy_from_slice(slot);
        let parsed = ParsedRequest::decode(&bytes);
        if let Ok(Request::HwParamQuery(block)) = parsed.body {
            let _ = block.to_query();
        }
    }
});
