//! Host names in peer records and dial plans: [`HostName`], [`Address`], their wire encoding
//! and the choice among a name's resolved addresses.
//!
//! A record (or a configured bootstrapper) may name its peer by a DNS host name instead of a
//! socket address, so that a validator whose IP changes stays reachable under its name. The
//! name is resolved by the driver (the facade) at **every** dial; nothing here does I/O.
//!
//! # Host-name syntax
//!
//! [`HostName`] accepts exactly the "preferred name syntax" of RFC 1035 as relaxed by RFC 1123
//! (letters, digits and hyphens):
//!
//! - one or more labels separated by `.`, each 1 to [`MAX_LABEL_LEN`] (63) bytes of
//!   `a-z`, `0-9` and `-`, not starting or ending with `-`;
//! - at most [`MAX_HOST_NAME_LEN`] (251) bytes in all: DNS allows 253, but the encoded
//!   address (tag, length, name, port) must fit the record's one-byte length prefix;
//! - the last label starts with a letter, so that no IP literal in any of the forms a system
//!   resolver accepts (`127.0.0.1`, `127.1`, `2130706433`, `0x7f000001`) passes as a name;
//! - no NUL, space, `_`, `:`, `%`, non-ASCII byte (internationalized names must be given in
//!   their `xn--` form) or any other byte.
//!
//! Text input ([`HostName::parse`]) is lower-cased and may end with one `.` (the root), which
//! is dropped. The wire form is canonical: [`decode_address`] refuses upper-case letters and a
//! trailing dot ([`HostError::NotCanonical`]), so one name has exactly one encoding.
//!
//! # Wire encoding (`Peer.socket`, tag `0x48`)
//!
//! ```text
//! Host name (4 + n bytes, n = 1..=251):
//! +------+--------+------------------------+----------+
//! | 0x48 | u8 n   | name (n bytes, ASCII)  | port u16 |
//! +------+--------+------------------------+----------+
//! ```
//!
//! Tags `0x04` and `0x06` (IPv4, IPv6) are unchanged (see [`crate::socket`]). The port is
//! big-endian and never 0. Nodes of protocol minor 1 or older treat tag `0x48` as a malformed
//! socket, which closes the connection, so a host record is never sent to them (see
//! `p2p_session::HOST_MINOR`).
//!
//! # Security
//!
//! A name in a record is chosen by its signer, and what it resolves to by whoever controls
//! its DNS zone, at dial time. Both are untrusted: the name is validated here (bounded,
//! canonical, no IP literal), and every address it resolves to passes the same
//! [`AddressPolicy`] as a socket record before it is dialed ([`select_targets`]); a name that
//! resolves only to refused addresses is a failed dial.

use std::fmt;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroU16;
use std::str::FromStr;
use std::sync::Arc;

use crate::socket::{EncodedSocket, SOCKET_LEN_IPV4, SOCKET_LEN_IPV6, encode_socket};
use crate::{AddressPolicy, AddressRefusal, SocketError};

/// Family tag of a host-name address (`'H'`).
pub const SOCKET_TAG_HOST: u8 = 0x48;
/// Longest host name in bytes (see the module docs for why not 253).
pub const MAX_HOST_NAME_LEN: usize = 251;
/// Longest label of a host name in bytes.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest encoding of any address: a host name of [`MAX_HOST_NAME_LEN`] bytes.
pub const MAX_ADDRESS_LEN: usize = 1 + 1 + MAX_HOST_NAME_LEN + 2;
/// Most resolved addresses [`select_targets`] keeps for one dial.
pub const MAX_DIAL_TARGETS: usize = 4;

/// Why a host name (or a `host:port` text) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The name is empty.
    #[error("host name is empty")]
    Empty,
    /// The name is longer than [`MAX_HOST_NAME_LEN`] bytes.
    #[error("host name has {len} bytes, at most {max} allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// [`MAX_HOST_NAME_LEN`].
        max: usize,
    },
    /// Two dots in a row, or a dot at the start.
    #[error("host name has an empty label")]
    EmptyLabel,
    /// A label is longer than [`MAX_LABEL_LEN`] bytes.
    #[error("host name label has {len} bytes, at most 63 allowed")]
    LabelTooLong {
        /// The label's length.
        len: usize,
    },
    /// A byte that is not a letter, digit, hyphen or dot (NUL, space, `_`, `:`, non-ASCII...).
    #[error("host name has invalid byte 0x{byte:02x} at offset {offset}")]
    InvalidByte {
        /// The byte.
        byte: u8,
        /// Its offset in the name.
        offset: usize,
    },
    /// A label starts or ends with a hyphen.
    #[error("host name label starts or ends with '-'")]
    HyphenAtLabelEdge,
    /// The last label does not start with a letter: an IP literal or a numeric name.
    #[error("host name is an IP literal or its last label does not start with a letter")]
    NumericName,
    /// Wire form only: upper-case letters or a trailing dot.
    #[error("host name is not in canonical form (lower case, no trailing dot)")]
    NotCanonical,
    /// Text form: no `:port` after the host.
    #[error("missing :port")]
    MissingPort,
    /// Text form: the port is not a number in 1..=65535.
    #[error("invalid port (expected 1..=65535)")]
    InvalidPort,
}

/// A validated, canonical (lower-case, no trailing dot) DNS host name; cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostName(Arc<str>);

impl HostName {
    /// Parses a name from text: lower-cases it and drops one trailing dot, then validates it
    /// (see the module docs).
    ///
    /// Errors: every [`HostError`] but `NotCanonical`, `MissingPort` and `InvalidPort`.
    pub fn parse(text: &str) -> Result<Self, HostError> {
        // Bound the work and the copy before anything else.
        if text.len() > MAX_HOST_NAME_LEN + 1 {
            return Err(HostError::TooLong {
                len: text.len(),
                max: MAX_HOST_NAME_LEN,
            });
        }
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        validate(trimmed.as_bytes())?;
        Ok(Self(Arc::from(trimmed.to_ascii_lowercase())))
    }

    /// Validates a name in wire form (canonical only, see [`HostError::NotCanonical`]).
    pub fn from_wire(bytes: &[u8]) -> Result<Self, HostError> {
        if bytes.len() > MAX_HOST_NAME_LEN {
            return Err(HostError::TooLong {
                len: bytes.len(),
                max: MAX_HOST_NAME_LEN,
            });
        }
        if bytes.last() == Some(&b'.') || bytes.iter().any(u8::is_ascii_uppercase) {
            return Err(HostError::NotCanonical);
        }
        validate(bytes)?;
        // `validate` accepted only ASCII bytes.
        let text = std::str::from_utf8(bytes).map_err(|_| HostError::InvalidByte {
            byte: 0xff,
            offset: 0,
        })?;
        Ok(Self(Arc::from(text)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks the syntax of a name without a trailing dot (see the module docs).
fn validate(name: &[u8]) -> Result<(), HostError> {
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.len() > MAX_HOST_NAME_LEN {
        return Err(HostError::TooLong {
            len: name.len(),
            max: MAX_HOST_NAME_LEN,
        });
    }
    if let Some(offset) = name
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        return Err(HostError::InvalidByte {
            byte: name[offset],
            offset,
        });
    }
    let mut last: &[u8] = &[];
    for label in name.split(|&b| b == b'.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::LabelTooLong { len: label.len() });
        }
        if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            return Err(HostError::HyphenAtLabelEdge);
        }
        last = label;
    }
    if !last.first().is_some_and(u8::is_ascii_alphabetic) {
        return Err(HostError::NumericName);
    }
    Ok(())
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostName({:?})", &*self.0)
    }
}

impl FromStr for HostName {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, HostError> {
        Self::parse(s)
    }
}

/// Where a peer can be dialed: a socket address, or a host name resolved at each dial.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    /// An IP address and port.
    Socket(SocketAddr),
    /// A DNS name and port.
    Host {
        /// The name.
        name: HostName,
        /// The port.
        port: NonZeroU16,
    },
}

impl Address {
    /// A host-name address.
    pub fn host(name: HostName, port: NonZeroU16) -> Self {
        Self::Host { name, port }
    }

    /// The socket address, if this is one.
    pub fn socket(&self) -> Option<SocketAddr> {
        match self {
            Self::Socket(s) => Some(*s),
            Self::Host { .. } => None,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Socket(s) => s.port(),
            Self::Host { port, .. } => port.get(),
        }
    }

    /// Whether this is a host name.
    pub fn is_host(&self) -> bool {
        matches!(self, Self::Host { .. })
    }
}

impl From<SocketAddr> for Address {
    fn from(socket: SocketAddr) -> Self {
        Self::Socket(socket)
    }
}

impl PartialEq<SocketAddr> for Address {
    fn eq(&self, other: &SocketAddr) -> bool {
        self.socket() == Some(*other)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket(s) => write!(f, "{s}"),
            Self::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

impl FromStr for Address {
    type Err = HostError;

    /// `IP:PORT`, `[IPv6]:PORT` or `NAME:PORT` (the name as [`HostName::parse`] takes it).
    /// A socket address is taken as it is (its port may be 0); a name's port may not be 0.
    fn from_str(s: &str) -> Result<Self, HostError> {
        if let Ok(socket) = s.parse::<SocketAddr>() {
            return Ok(Self::Socket(socket));
        }
        let (host, port) = s.rsplit_once(':').ok_or(HostError::MissingPort)?;
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HostError::InvalidPort);
        }
        let port = port
            .parse::<u16>()
            .ok()
            .and_then(NonZeroU16::new)
            .ok_or(HostError::InvalidPort)?;
        Ok(Self::Host {
            name: HostName::parse(host)?,
            port,
        })
    }
}

/// An encoded address: at most [`MAX_ADDRESS_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodedAddress {
    /// A socket (on the stack).
    Socket(EncodedSocket),
    /// A host name.
    Host(Vec<u8>),
}

impl EncodedAddress {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Socket(s) => s.as_bytes(),
            Self::Host(v) => v,
        }
    }
}

/// Encodes `address` for `Peer.socket` (see the module docs and [`crate::socket`]).
pub fn encode_address(address: &Address) -> EncodedAddress {
    match address {
        Address::Socket(s) => EncodedAddress::Socket(encode_socket(s)),
        Address::Host { name, port } => {
            let name = name.as_str().as_bytes();
            let mut out = Vec::with_capacity(4 + name.len());
            out.push(SOCKET_TAG_HOST);
            // A `HostName` holds at most 251 bytes.
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.extend_from_slice(&port.get().to_be_bytes());
            EncodedAddress::Host(out)
        }
    }
}

/// Decodes `Peer.socket`: an IPv4 or IPv6 socket ([`crate::socket::decode_socket`]) or a host
/// name. Errors: [`SocketError`]; a bad name is [`SocketError::Host`].
pub fn decode_address(bytes: &[u8]) -> Result<Address, SocketError> {
    match bytes.first() {
        Some(&SOCKET_TAG_HOST) => {}
        _ => return crate::socket::decode_socket(bytes).map(Address::Socket),
    }
    // Tag, length, at least one name byte, port.
    let n = usize::from(*bytes.get(1).ok_or(SocketError::WrongLength {
        family: SOCKET_TAG_HOST,
        expected: 5,
        got: bytes.len(),
    })?);
    let expected = 4 + n;
    if bytes.len() != expected {
        return Err(SocketError::WrongLength {
            family: SOCKET_TAG_HOST,
            expected,
            got: bytes.len(),
        });
    }
    let name = HostName::from_wire(&bytes[2..2 + n]).map_err(SocketError::Host)?;
    let port = u16::from_be_bytes([bytes[expected - 2], bytes[expected - 1]]);
    let port = NonZeroU16::new(port).ok_or(SocketError::PortZero)?;
    Ok(Address::Host { name, port })
}

/// The addresses to try, in order, for a name that resolved to `resolved`: those `policy`
/// accepts, without duplicates, at most [`MAX_DIAL_TARGETS`], in the resolver's order.
/// IPv6 flow info and scope id are dropped (as in records).
///
/// Errors: the refusal of the first address when the policy accepts none of them; an empty
/// resolution is [`AddressRefusal::Unspecified`] (nothing dialable).
pub fn select_targets(
    policy: &AddressPolicy,
    resolved: impl IntoIterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, AddressRefusal> {
    let mut out = Vec::new();
    let mut first_refusal = None;
    for addr in resolved {
        let addr = match addr {
            SocketAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0)),
            SocketAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(*v4.ip(), v4.port())),
        };
        match policy.check(&addr) {
            Ok(()) if !out.contains(&addr) => {
                out.push(addr);
                if out.len() >= MAX_DIAL_TARGETS {
                    break;
                }
            }
            Ok(()) => {}
            Err(reason) => {
                first_refusal.get_or_insert(reason);
            }
        }
    }
    if out.is_empty() {
        return Err(first_refusal.unwrap_or(AddressRefusal::Unspecified));
    }
    Ok(out)
}

// The longest socket encoding fits the bound too.
const _: () = assert!(SOCKET_LEN_IPV4 < MAX_ADDRESS_LEN && SOCKET_LEN_IPV6 < MAX_ADDRESS_LEN);
const _: () = assert!(MAX_ADDRESS_LEN <= u8::MAX as usize);

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> HostName {
        HostName::parse(s).unwrap()
    }

    fn port(p: u16) -> NonZeroU16 {
        NonZeroU16::new(p).unwrap()
    }

    #[test]
    fn accepts_and_canonicalizes_names() {
        assert_eq!(name("localhost").as_str(), "localhost");
        assert_eq!(
            name("Validator-1.Example.COM.").as_str(),
            "validator-1.example.com"
        );
        assert_eq!(
            name("xn--bcher-kva.example").as_str(),
            "xn--bcher-kva.example"
        );
        assert_eq!(name("a1.b2.c3").as_str(), "a1.b2.c3");
        let label = "a".repeat(63);
        assert_eq!(name(&format!("{label}.x")).as_str().len(), 65);
        // 251 bytes exactly: four labels of 62/62/62/62 plus three dots.
        let long = [
            "b".repeat(62),
            "c".repeat(62),
            "d".repeat(62),
            "e".repeat(62),
        ]
        .join(".");
        assert_eq!(long.len(), 251);
        assert_eq!(name(&long).as_str(), long);
    }

    #[test]
    fn refuses_malicious_names() {
        let cases: Vec<(String, HostError)> = vec![
            (String::new(), HostError::Empty),
            (".".into(), HostError::Empty),
            ("a..b".into(), HostError::EmptyLabel),
            (".a".into(), HostError::EmptyLabel),
            ("a..".into(), HostError::EmptyLabel),
            ("a".repeat(64), HostError::LabelTooLong { len: 64 }),
            (
                "a.".repeat(126) + "a",
                HostError::TooLong { len: 253, max: 251 },
            ),
            (
                "x".repeat(10_000),
                HostError::TooLong {
                    len: 10_000,
                    max: 251,
                },
            ),
            ("-a.com".into(), HostError::HyphenAtLabelEdge),
            ("a-.com".into(), HostError::HyphenAtLabelEdge),
            ("127.0.0.1".into(), HostError::NumericName),
            ("127.1".into(), HostError::NumericName),
            ("2130706433".into(), HostError::NumericName),
            ("0x7f000001".into(), HostError::NumericName),
            ("example.123".into(), HostError::NumericName),
            ("a\0b".into(), HostError::InvalidByte { byte: 0, offset: 1 }),
            (
                "a b".into(),
                HostError::InvalidByte {
                    byte: b' ',
                    offset: 1,
                },
            ),
            (
                "a_b.com".into(),
                HostError::InvalidByte {
                    byte: b'_',
                    offset: 1,
                },
            ),
            (
                "::1".into(),
                HostError::InvalidByte {
                    byte: b':',
                    offset: 0,
                },
            ),
            (
                "bücher.de".into(),
                HostError::InvalidByte {
                    byte: 0xc3,
                    offset: 1,
                },
            ),
            (
                "evil.com%00".into(),
                HostError::InvalidByte {
                    byte: b'%',
                    offset: 8,
                },
            ),
            (
                "a.com/x".into(),
                HostError::InvalidByte {
                    byte: b'/',
                    offset: 5,
                },
            ),
        ];
        for (input, err) in cases {
            assert_eq!(HostName::parse(&input), Err(err), "{input:?}");
        }
    }

    #[test]
    fn address_text_forms() {
        assert_eq!(
            "127.0.0.1:9000".parse::<Address>(),
            Ok(Address::Socket("127.0.0.1:9000".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:9000".parse::<Address>(),
            Ok(Address::Socket("[::1]:9000".parse().unwrap()))
        );
        let a: Address = "Node1.Example.com:26656".parse().unwrap();
        assert_eq!(a, Address::host(name("node1.example.com"), port(26656)));
        assert_eq!(a.to_string(), "node1.example.com:26656");
        assert_eq!(a.port(), 26656);
        assert!(a.is_host() && a.socket().is_none());
        for (text, err) in [
            ("example.com", HostError::MissingPort),
            ("example.com:", HostError::InvalidPort),
            ("example.com:0", HostError::InvalidPort),
            ("example.com:65536", HostError::InvalidPort),
            ("example.com:+1", HostError::InvalidPort),
            (":80", HostError::Empty),
            ("1.2.3:80", HostError::NumericName),
            (
                "a b:80",
                HostError::InvalidByte {
                    byte: b' ',
                    offset: 1,
                },
            ),
        ] {
            assert_eq!(text.parse::<Address>(), Err(err), "{text}");
        }
    }

    #[test]
    fn host_encoding_round_trip() {
        let a = Address::host(name("node1.example.com"), port(0x1234));
        let enc = encode_address(&a);
        let mut expected = vec![0x48, 17];
        expected.extend_from_slice(b"node1.example.com");
        expected.extend_from_slice(&[0x12, 0x34]);
        assert_eq!(enc.as_bytes(), &expected[..]);
        assert_eq!(decode_address(enc.as_bytes()), Ok(a));
        // The longest name fits the one-byte record length.
        let long = [
            "b".repeat(62),
            "c".repeat(62),
            "d".repeat(62),
            "e".repeat(62),
        ]
        .join(".");
        let a = Address::host(name(&long), port(1));
        let enc = encode_address(&a);
        assert_eq!(enc.as_bytes().len(), MAX_ADDRESS_LEN);
        assert_eq!(decode_address(enc.as_bytes()), Ok(a));
        // Sockets are unchanged.
        let s: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(
            encode_address(&Address::Socket(s)).as_bytes(),
            &[4, 127, 0, 0, 1, 0x0b, 0xb8]
        );
        assert_eq!(
            decode_address(&[4, 127, 0, 0, 1, 0x0b, 0xb8]),
            Ok(Address::Socket(s))
        );
    }

    #[test]
    fn refuses_malformed_host_encodings() {
        let wrong = |expected, got| SocketError::WrongLength {
            family: SOCKET_TAG_HOST,
            expected,
            got,
        };
        assert_eq!(decode_address(&[]), Err(SocketError::Empty));
        assert_eq!(decode_address(&[0x48]), Err(wrong(5, 1)));
        // Length byte larger or smaller than the field.
        assert_eq!(decode_address(&[0x48, 3, b'a', 0, 1]), Err(wrong(7, 5)));
        assert_eq!(decode_address(&[0x48, 1, b'a', 0, 1, 9]), Err(wrong(5, 6)));
        assert_eq!(
            decode_address(&[0x48, 0, 0, 1]),
            Err(SocketError::Host(HostError::Empty))
        );
        assert_eq!(
            decode_address(&[0x48, 1, b'a', 0, 0]),
            Err(SocketError::PortZero)
        );
        assert_eq!(
            decode_address(&[0x48, 1, b'A', 0, 1]),
            Err(SocketError::Host(HostError::NotCanonical))
        );
        assert_eq!(
            decode_address(&[0x48, 2, b'a', b'.', 0, 1]),
            Err(SocketError::Host(HostError::NotCanonical))
        );
        assert_eq!(
            decode_address(&[0x48, 3, b'a', 0, b'b', 0, 1]),
            Err(SocketError::Host(HostError::InvalidByte {
                byte: 0,
                offset: 1
            }))
        );
        assert_eq!(
            decode_address(&[0x48, 2, 0xc3, 0xbc, 0, 1]),
            Err(SocketError::Host(HostError::InvalidByte {
                byte: 0xc3,
                offset: 0
            }))
        );
        let mut ip = vec![0x48, 9];
        ip.extend_from_slice(b"127.0.0.1");
        ip.extend_from_slice(&[0, 1]);
        assert_eq!(
            decode_address(&ip),
            Err(SocketError::Host(HostError::NumericName))
        );
        // A 252..255-byte name: the length byte allows it, the name limit does not.
        let mut long = vec![0x48, 255];
        long.extend(std::iter::repeat_n(b'a', 255));
        long.extend_from_slice(&[0, 1]);
        assert_eq!(
            decode_address(&long),
            Err(SocketError::Host(HostError::TooLong { len: 255, max: 251 }))
        );
    }

    #[test]
    fn targets_follow_the_policy() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let local = AddressPolicy::local();
        let rec = AddressPolicy::recommended();
        assert_eq!(
            select_targets(&local, [a("127.0.0.1:9"), a("[::1]:9"), a("127.0.0.1:9")]),
            Ok(vec![a("127.0.0.1:9"), a("[::1]:9")])
        );
        assert_eq!(
            select_targets(&rec, [a("127.0.0.1:9"), a("[::1]:9")]),
            Err(AddressRefusal::Loopback)
        );
        assert_eq!(
            select_targets(&rec, [a("0.0.0.0:9"), a("10.0.0.1:9")]),
            Ok(vec![a("10.0.0.1:9")])
        );
        assert_eq!(
            select_targets(&local, [a("224.0.0.1:9")]),
            Err(AddressRefusal::Multicast)
        );
        assert_eq!(select_targets(&local, []), Err(AddressRefusal::Unspecified));
        let many = (1..=100).map(|i| SocketAddr::from(([127, 0, 0, i], 9)));
        assert_eq!(
            select_targets(&local, many).map(|v| v.len()),
            Ok(MAX_DIAL_TARGETS)
        );
    }
}
