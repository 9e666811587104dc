//! `PeerUrl`: `<public-key-hex or peer-id>@<host>:<port>`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::{KeyError, PeerId, PeerUrlError, Verifier};

/// Who a [`PeerUrl`] says is at the address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerUrlTarget {
    /// The full public key (canonical bytes, not yet validated against a scheme).
    Key(Vec<u8>),
    /// The short id of the key.
    Id(PeerId),
}

/// The host part of a [`PeerUrl`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IP address (v4, or v6 written in brackets).
    Ip(IpAddr),
    /// A DNS name (lowercased), resolved by whoever dials it.
    Dns(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Dns(name) => f.write_str(name),
        }
    }
}

/// Where to reach a peer and who must answer there: `<key-or-id>@<host>:<port>`.
///
/// The part before `@` is either the hex of a full public key (64 digits for ed25519, 96 for
/// BLS12-381) or the 40-digit hex [`PeerId`]. The host is an IPv4 address, a bracketed IPv6
/// address or a DNS name. When a peer is dialed through a URL, the handshake must prove that the
/// answering peer holds the named key ([`PeerUrl::matches`]).
///
/// ```
/// use p2p_identity::{PeerUrl, Host};
/// let url: PeerUrl = "0123456789abcdef0123456789abcdef01234567@[::1]:26656".parse().unwrap();
/// assert_eq!(url.port, 26656);
/// assert!(matches!(url.host, Host::Ip(ip) if ip.is_loopback()));
/// assert_eq!(url.to_string(), "0123456789abcdef0123456789abcdef01234567@[::1]:26656");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerUrl {
    /// The key or id that must answer.
    pub target: PeerUrlTarget,
    /// The host to dial.
    pub host: Host,
    /// The TCP port to dial.
    pub port: u16,
}

/// Hex digits of a peer id.
const PEER_ID_HEX_LEN: usize = 2 * PeerId::LEN;
/// Hex digits of the public keys of the supported schemes (ed25519, BLS12-381).
const KEY_HEX_LENS: [usize; 2] = [64, 96];
/// Longest DNS name (RFC 1035).
const MAX_DNS_LEN: usize = 253;
/// Longest DNS label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

impl PeerUrl {
    /// A URL naming `key` at `addr`.
    pub fn new<V: Verifier>(key: &V, addr: SocketAddr) -> Self {
        Self {
            target: PeerUrlTarget::Key(key.as_bytes().to_vec()),
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// The peer id named by the URL (derived from the key when the URL gives a key).
    pub fn peer_id(&self) -> PeerId {
        match &self.target {
            PeerUrlTarget::Key(bytes) => PeerId::of_key_bytes(bytes),
            PeerUrlTarget::Id(id) => *id,
        }
    }

    /// The public key, when the URL gives one, validated for scheme `V`.
    ///
    /// Returns `Ok(None)` when the URL names only a peer id.
    pub fn public_key<V: Verifier>(&self) -> Result<Option<V>, KeyError> {
        match &self.target {
            PeerUrlTarget::Key(bytes) => V::from_bytes(bytes).map(Some),
            PeerUrlTarget::Id(_) => Ok(None),
        }
    }

    /// Whether `key` is the peer this URL names (by key, or by the id of the key).
    pub fn matches<V: Verifier>(&self, key: &V) -> bool {
        match &self.target {
            PeerUrlTarget::Key(bytes) => bytes.as_slice() == key.as_bytes(),
            PeerUrlTarget::Id(id) => *id == key.peer_id(),
        }
    }

    /// The socket address, when the host is an IP address (DNS names need resolving).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Dns(_) => None,
        }
    }
}

fn parse_target(s: &str) -> Result<PeerUrlTarget, PeerUrlError> {
    if s.is_empty() {
        return Err(PeerUrlError::MissingKey);
    }
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PeerUrlError::InvalidKeyHex);
    }
    if s.len() == PEER_ID_HEX_LEN {
        let id = PeerId::from_str(s).map_err(|_| PeerUrlError::InvalidKeyHex)?;
        return Ok(PeerUrlTarget::Id(id));
    }
    if !KEY_HEX_LENS.contains(&s.len()) {
        return Err(PeerUrlError::InvalidKeyLength(s.len()));
    }
    let bytes = hex::decode(s).map_err(|_| PeerUrlError::InvalidKeyHex)?;
    Ok(PeerUrlTarget::Key(bytes))
}

fn parse_port(s: &str) -> Result<u16, PeerUrlError> {
    if s.is_empty() {
        return Err(PeerUrlError::MissingPort);
    }
    // Digits only: `u16::from_str` would accept a leading '+'.
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PeerUrlError::InvalidPort);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(PeerUrlError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

fn is_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_DNS_LEN {
        return false;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut labels = 0usize;
    for label in name.split('.') {
        labels += 1;
        let ok_len = !label.is_empty() && label.len() <= MAX_LABEL_LEN;
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let ok_ends = !label.starts_with('-') && !label.ends_with('-');
        if !(ok_len && ok_chars && ok_ends) {
            return false;
        }
    }
    // A name made only of digits and dots would be a malformed IPv4 address, not a name.
    labels > 0 && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn parse_host(s: &str) -> Result<Host, PeerUrlError> {
    if s.is_empty() {
        return Err(PeerUrlError::MissingHost);
    }
    if let Some(inner) = s.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or(PeerUrlError::UnbracketedIpv6)?;
        let ip = Ipv6Addr::from_str(inner).map_err(|_| PeerUrlError::InvalidIpv6)?;
        return Ok(Host::Ip(IpAddr::V6(ip)));
    }
    if s.contains(['[', ']']) {
        return Err(PeerUrlError::UnbracketedIpv6);
    }
    if let Ok(ip) = Ipv4Addr::from_str(s) {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    if is_dns_name(s) {
        return Ok(Host::Dns(s.to_ascii_lowercase()));
    }
    Err(PeerUrlError::InvalidHost)
}

impl FromStr for PeerUrl {
    type Err = PeerUrlError;

    fn from_str(s: &str) -> Result<Self, PeerUrlError> {
        let (target, addr) = s.split_once('@').ok_or(PeerUrlError::MissingAt)?;
        let target = parse_target(target)?;
        // An unbracketed IPv6 address has several colons and no brackets.
        if !addr.starts_with('[') && addr.matches(':').count() > 1 {
            return Err(PeerUrlError::UnbracketedIpv6);
        }
        let (host, port) = addr.rsplit_once(':').ok_or(PeerUrlError::MissingPort)?;
        if host.starts_with('[') != host.ends_with(']') {
            return Err(PeerUrlError::UnbracketedIpv6);
        }
        let host = parse_host(host)?;
        let port = parse_port(port)?;
        Ok(Self { target, host, port })
    }
}

impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            PeerUrlTarget::Key(bytes) => f.write_str(&hex::encode(bytes))?,
            PeerUrlTarget::Id(id) => write!(f, "{id}")?,
        }
        write!(f, "@{}:{}", self.host, self.port)
    }
}
