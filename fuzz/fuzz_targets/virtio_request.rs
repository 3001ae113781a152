//! virtio-snd control requests: the parser the control queue runs on every request.
#![no_main]

use paravox_virtio_snd::wire::Request;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = Request::parse(data);
});
