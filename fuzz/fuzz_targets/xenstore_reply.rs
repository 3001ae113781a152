//! The XenStore wire protocol from the daemon's side: a byte stream of framed messages
//! read as the client's reader thread reads it, each decoded as a watch event and as the
//! reply to every request the client makes.
#![no_main]

use paravox_sndif::xenstore::wire::{Message, Op};
use paravox_sndif::xenstore::{
    WatchEvent, XenbusState, decode_directory, decode_perms, decode_tx_id, first_string,
    reply_payload,
};

const OPS: [Op; 10] = [
    Op::Read,
    Op::Write,
    Op::Directory,
    Op::Mkdir,
    Op::Rm,
    Op::GetPerms,
    Op::SetPerms,
    Op::Watch,
    Op::TransactionStart,
    Op::GetDomainPath,
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    while let Ok(Some(message)) = Message::read_from(&mut stream) {
        if WatchEvent::from_message(&message).is_some() {
            continue;
        }
        for op in OPS {
            let Ok(payload) = reply_payload(op, "/local/domain/1", message.clone()) else {
                continue;
            };
            match op {
                Op::Read => {
                    let _ = XenbusState::parse(&String::from_utf8_lossy(&payload));
                }
                Op::Directory => {
                    let _ = decode_directory(&payload);
                }
                Op::GetPerms => {
                    let _ = decode_perms("/local/domain/1", &payload);
                }
                Op::TransactionStart => {
                    let _ = decode_tx_id(&payload);
                }
                _ => {
                    let _ = first_string(&payload);
                }
            }
        }
    }
});
