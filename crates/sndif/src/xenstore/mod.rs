//! XenStore: the wire protocol, a client, and an in-process server.
//!
//! The client talks to xenstored (its unix socket or `/dev/xen/xenbus`) on Xen, and to
//! [`XsServer`] under the shared-memory transport; both speak the same protocol, so the
//! backend cannot tell them apart.

mod client;
mod server;
pub mod wire;

pub use client::{
    DEFAULT_SOCKETS, NO_TX, TxId, WatchEvent, XENBUS_DEVICE, XsAddress, XsClient, decode_directory,
    decode_perms, decode_tx_id, first_string, reply_payload,
};
pub use server::XsServer;
pub use wire::{Access, Perm};

/// `XenbusState`, as the `state` nodes hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XenbusState {
    /// 0: no state node, or an unreadable one.
    Unknown,
    /// 1.
    Initialising,
    /// 2: the backend is ready for the frontend's rings.
    InitWait,
    /// 3: the frontend published its rings.
    Initialised,
    /// 4.
    Connected,
    /// 5.
    Closing,
    /// 6.
    Closed,
    /// 7.
    Reconfiguring,
    /// 8.
    Reconfigured,
}

impl XenbusState {
    /// The number written to XenStore.
    pub const fn code(self) -> u32 {
        match self {
            XenbusState::Unknown => 0,
            XenbusState::Initialising => 1,
            XenbusState::InitWait => 2,
            XenbusState::Initialised => 3,
            XenbusState::Connected => 4,
            XenbusState::Closing => 5,
            XenbusState::Closed => 6,
            XenbusState::Reconfiguring => 7,
            XenbusState::Reconfigured => 8,
        }
    }

    /// Parses a `state` node's value; anything else is `Unknown`.
    pub fn parse(text: &str) -> XenbusState {
        match text.trim().parse::<u32>() {
            Ok(1) => XenbusState::Initialising,
            Ok(2) => XenbusState::InitWait,
            Ok(3) => XenbusState::Initialised,
            Ok(4) => XenbusState::Connected,
            Ok(5) => XenbusState::Closing,
            Ok(6) => XenbusState::Closed,
            Ok(7) => XenbusState::Reconfiguring,
            Ok(8) => XenbusState::Reconfigured,
            _ => XenbusState::Unknown,
        }
    }
}

impl std::fmt::Display for XenbusState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            XenbusState::Unknown => "Unknown",
            XenbusState::Initialising => "Initialising",
            XenbusState::InitWait => "InitWait",
            XenbusState::Initialised => "Initialised",
            XenbusState::Connected => "Connected",
            XenbusState::Closing => "Closing",
            XenbusState::Closed => "Closed",
            XenbusState::Reconfiguring => "Reconfiguring",
            XenbusState::Reconfigured => "Reconfigured",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for code in 0..=8 {
            let state = XenbusState::parse(&code.to_string());
            assert_eq!(state.code(), code);
        }
        assert_eq!(XenbusState::parse("9"), XenbusState::Unknown);
        assert_eq!(XenbusState::parse("x"), XenbusState::Unknown);
        assert_eq!(XenbusState::parse(" 4\n"), XenbusState::Connected);
    }
}
