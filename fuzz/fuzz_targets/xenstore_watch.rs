//! XenStore watch events: a WATCH_EVENT payload (`path\0token\0`) decoded as the client
//! does and routed as the backend does.
#![no_main]

use paravox_sndif::backend::route_watch;
use paravox_sndif::xenstore::WatchEvent;
use paravox_sndif::xenstore::wire::{Message, Op};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let message = Message::new(Op::WatchEvent, 0, 0, data.to_vec());
    if let Some(event) = WatchEvent::from_message(&message) {
        let _ = route_watch("/local/domain/0/backend/vsnd", &event);
    }
});
