//! The XenStore wire protocol (`xs_wire.h`): a 16-byte header — `type u32, req_id u32,
//! tx_id u32, len u32`, little-endian on every Xen platform — then `len` bytes of payload,
//! usually NUL-separated strings. The same framing runs over xenstored's unix socket and
//! over `/dev/xen/xenbus`; replies echo the request's type and `req_id`, errors come back
//! as type `XS_ERROR` with the error's name (`"ENOENT\0"`), and watch events arrive
//! unsolicited as `XS_WATCH_EVENT` with `path\0token\0`.

use std::io::{self, Read, Write};
use std::mem::{offset_of, size_of};

/// Largest payload xenstored accepts (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;

/// `struct xsd_sockmsg`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// `XS_*`.
    pub kind: u32,
    /// Echoed in the reply.
    pub req_id: u32,
    /// Transaction, 0 for none.
    pub tx_id: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

const _: () = assert!(size_of::<Header>() == 16);
const _: () = assert!(offset_of!(Header, req_id) == 4);
const _: () = assert!(offset_of!(Header, tx_id) == 8);
const _: () = assert!(offset_of!(Header, len) == 12);

/// `enum xsd_sockmsg_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// 0 (`XS_CONTROL`, formerly `XS_DEBUG`).
    Control,
    /// 1.
    Directory,
    /// 2.
    Read,
    /// 3.
    GetPerms,
    /// 4.
    Watch,
    /// 5.
    Unwatch,
    /// 6.
    TransactionStart,
    /// 7.
    TransactionEnd,
    /// 8.
    Introduce,
    /// 9.
    Release,
    /// 10.
    GetDomainPath,
    /// 11.
    Write,
    /// 12.
    Mkdir,
    /// 13.
    Rm,
    /// 14.
    SetPerms,
    /// 15.
    WatchEvent,
    /// 16.
    Error,
    /// 17.
    IsDomainIntroduced,
    /// 18.
    Resume,
    /// 19.
    SetTarget,
    /// 20.
    Restrict,
}

impl Op {
    const ALL: [Op; 21] = [
        Op::Control,
        Op::Directory,
        Op::Read,
        Op::GetPerms,
        Op::Watch,
        Op::Unwatch,
        Op::TransactionStart,
        Op::TransactionEnd,
        Op::Introduce,
        Op::Release,
        Op::GetDomainPath,
        Op::Write,
        Op::Mkdir,
        Op::Rm,
        Op::SetPerms,
        Op::WatchEvent,
        Op::Error,
        Op::IsDomainIntroduced,
        Op::Resume,
        Op::SetTarget,
        Op::Restrict,
    ];

    /// The wire code.
    pub fn code(self) -> u32 {
        Op::ALL
            .iter()
            .position(|&op| op == self)
            .map_or(u32::MAX, |index| index as u32)
    }

    /// The op of a wire code.
    pub fn from_code(code: u32) -> Option<Op> {
        Op::ALL.get(code as usize).copied()
    }

    /// A lower-case name for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Op::Control => "control",
            Op::Directory => "directory",
            Op::Read => "read",
            Op::GetPerms => "get-perms",
            Op::Watch => "watch",
            Op::Unwatch => "unwatch",
            Op::TransactionStart => "transaction-start",
            Op::TransactionEnd => "transaction-end",
            Op::Introduce => "introduce",
            Op::Release => "release",
            Op::GetDomainPath => "get-domain-path",
            Op::Write => "write",
            Op::Mkdir => "mkdir",
            Op::Rm => "rm",
            Op::SetPerms => "set-perms",
            Op::WatchEvent => "watch-event",
            Op::Error => "error",
            Op::IsDomainIntroduced => "is-domain-introduced",
            Op::Resume => "resume",
            Op::SetTarget => "set-target",
            Op::Restrict => "restrict",
        }
    }
}

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The raw type (kept raw so an unknown one can be answered, not dropped).
    pub kind: u32,
    /// Request id.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Message {
    /// A message of a known type.
    pub fn new(op: Op, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        Message {
            kind: op.code(),
            req_id,
            tx_id,
            payload,
        }
    }

    /// The type, if known.
    pub fn op(&self) -> Option<Op> {
        Op::from_code(self.kind)
    }

    /// The header and payload as one buffer (`/dev/xen/xenbus` wants one write).
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        if self.payload.len() > PAYLOAD_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}-byte XenStore payload exceeds {PAYLOAD_MAX}",
                    self.payload.len()
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(size_of::<Header>() + self.payload.len());
        for word in [
            self.kind,
            self.req_id,
            self.tx_id,
            self.payload.len() as u32,
        ] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(&self.payload);
        Ok(bytes)
    }

    /// Writes the message.
    pub fn write_to(&self, writer: &mut impl Write) -> io::Result<()> {
        writer.write_all(&self.encode()?)?;
        writer.flush()
    }

    /// Reads one message; `Ok(None)` at a clean end of stream.
    pub fn read_from(reader: &mut impl Read) -> io::Result<Option<Message>> {
        let mut header = [0u8; size_of::<Header>()];
        let mut filled = 0;
        while filled < header.len() {
            match reader.read(&mut header[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let word = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let len = word(offset_of!(Header, len)) as usize;
        if len > PAYLOAD_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{len}-byte XenStore payload exceeds {PAYLOAD_MAX}"),
            ));
        }
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload)?;
        Ok(Some(Message {
            kind: word(offset_of!(Header, kind)),
            req_id: word(offset_of!(Header, req_id)),
            tx_id: word(offset_of!(Header, tx_id)),
            payload,
        }))
    }
}

/// Joins strings with a NUL after each (`"a\0b\0"`).
pub fn nul_terminated(parts: &[&[u8]]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for part in parts {
        bytes.extend_from_slice(part);
        bytes.push(0);
    }
    bytes
}

/// Splits a payload at NULs, ignoring one trailing NUL.
pub fn split_nul(payload: &[u8]) -> Vec<&[u8]> {
    let trimmed = payload.strip_suffix(&[0]).unwrap_or(payload);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split(|&byte| byte == 0).collect()
}

/// Access in a permission entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`.
    None,
    /// `r`.
    Read,
    /// `w`.
    Write,
    /// `b`.
    Both,
}

/// One permission entry: the first of a node's list names its owner and everyone's
/// default access; the others grant one domain more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: u32,
    /// Its access.
    pub access: Access,
}

impl Perm {
    /// `"r0"`-style text.
    pub fn encode(&self) -> String {
        let letter = match self.access {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        };
        format!("{letter}{}", self.domid)
    }

    /// Parses `"r0"`-style text.
    pub fn parse(text: &str) -> Option<Perm> {
        let mut chars = text.chars();
        let access = match chars.next()? {
            'n' => Access::None,
            'r' => Access::Read,
            'w' => Access::Write,
            'b' => Access::Both,
            _ => return None,
        };
        let domid = chars.as_str().parse().ok()?;
        Some(Perm { domid, access })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_little_endian_and_16_bytes() {
        let message = Message::new(Op::Write, 0x0102_0304, 7, b"/a\0b".to_vec());
        let bytes = message.encode().unwrap();
        assert_eq!(&bytes[0..4], &11u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &[4, 3, 2, 1]);
        assert_eq!(&bytes[8..12], &7u32.to_le_bytes());
        assert_eq!(&bytes[12..16], &4u32.to_le_bytes());
        assert_eq!(&bytes[16..], b"/a\0b");
        let parsed = Message::read_from(&mut &bytes[..]).unwrap().unwrap();
        assert_eq!(parsed, message);
        assert_eq!(parsed.op(), Some(Op::Write));
    }

    #[test]
    fn op_codes_follow_xs_wire_h() {
        assert_eq!(Op::Control.code(), 0);
        assert_eq!(Op::Read.code(), 2);
        assert_eq!(Op::Watch.code(), 4);
        assert_eq!(Op::TransactionEnd.code(), 7);
        assert_eq!(Op::GetDomainPath.code(), 10);
        assert_eq!(Op::Write.code(), 11);
        assert_eq!(Op::Rm.code(), 13);
        assert_eq!(Op::WatchEvent.code(), 15);
        assert_eq!(Op::Error.code(), 16);
        assert_eq!(Op::Restrict.code(), 20);
        assert_eq!(Op::from_code(21), None);
    }

    #[test]
    fn oversized_payloads_are_refused_both_ways() {
        let message = Message::new(Op::Write, 1, 0, vec![b'x'; PAYLOAD_MAX + 1]);
        assert!(message.encode().is_err());
        let mut bytes = Message::new(Op::Write, 1, 0, Vec::new()).encode().unwrap();
        bytes[12..16].copy_from_slice(&(PAYLOAD_MAX as u32 + 1).to_le_bytes());
        assert!(Message::read_from(&mut &bytes[..]).is_err());
        // A truncated header is an error, an empty stream a clean end.
        assert!(Message::read_from(&mut &bytes[..5]).is_err());
        assert!(Message::read_from(&mut &[][..]).unwrap().is_none());
    }

    #[test]
    fn nul_lists_and_perms() {
        assert_eq!(split_nul(b"a\0bc\0"), vec![&b"a"[..], &b"bc"[..]]);
        assert!(split_nul(b"").is_empty());
        assert_eq!(nul_terminated(&[b"x", b"y"]), b"x\0y\0");
        let perm = Perm::parse("b5").unwrap();
        assert_eq!(
            perm,
            Perm {
                domid: 5,
                access: Access::Both
            }
        );
        assert_eq!(perm.encode(), "b5");
        assert_eq!(Perm::parse("x1"), None);
        assert_eq!(Perm::parse("r"), None);
    }
}
