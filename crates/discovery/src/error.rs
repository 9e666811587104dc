//! Typed errors of the discovery crate.

use std::net::SocketAddr;

use p2p_identity::{KeyError, SignatureError};

use crate::AddressRefusal;
use crate::host::HostError;

/// Why the bytes of a `Peer.socket` field are not a dialable socket address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The field is empty.
    #[error("socket is empty")]
    Empty,
    /// The family tag is neither 4 (IPv4), 6 (IPv6) nor 0x48 (host name).
    #[error("unknown socket family tag {0}")]
    UnknownFamily(u8),
    /// The length does not match the family (7 bytes for IPv4, 19 for IPv6, 4 plus the
    /// name length byte for a host name).
    #[error("socket of family {family} must be {expected} bytes, got {got}")]
    WrongLength {
        /// The family tag.
        family: u8,
        /// The exact length of that family's encoding.
        expected: usize,
        /// The length that was received.
        got: usize,
    },
    /// Port 0 cannot be dialed.
    #[error("socket port is 0")]
    PortZero,
    /// The unspecified address (0.0.0.0 or ::) cannot be dialed.
    #[error("socket address is unspecified")]
    Unspecified,
    /// A host-name address (tag 0x48) whose name is not a valid canonical host name.
    #[error("host name: {0}")]
    Host(HostError),
}

/// Everything that can go wrong in the tracker.
///
/// Errors caused by a remote peer are either *fatal* ([`Error::is_fatal`]: the peer sent
/// something no honest peer sends; the facade closes the connection) or not (the peer may be
/// honest but out of sync with us: different peer-set indexes or clocks; the input is dropped and
/// the connection kept). Local misuse errors come from the application or the facade and never
/// from the network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- Bit vectors -----
    /// A bit vector names a peer-set index we do not track (not fatal: the sender may be ahead
    /// of or behind us in peer-set rotation).
    #[error("bit vector for untracked peer-set index {index}")]
    UnknownIndex {
        /// The index in the vector.
        index: u64,
    },
    /// A bit vector's length is not exactly `ceil(set size / 8)` bytes (fatal).
    #[error("bit vector for index {index} has {got} bytes, expected {expected}")]
    WrongBitLength {
        /// The peer-set index.
        index: u64,
        /// The exact length for that set.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The bits after the last key of the set are not zero (fatal).
    #[error("bit vector for index {index} has nonzero padding bits")]
    NonzeroPadding {
        /// The peer-set index.
        index: u64,
    },

    // ----- Senders -----
    /// A message came from a peer that is in no tracked set and is not a bootstrapper (fatal:
    /// the facade should already have evicted it).
    #[error("message from unauthorized peer")]
    UnauthorizedSender,

    // ----- Records -----
    /// A `Peers` message holds more records than the configured maximum (fatal; checked before
    /// any record is looked at).
    #[error("peers message holds {got} records, at most {max} allowed")]
    TooManyRecords {
        /// Records in the message.
        got: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A record has no `signature` field (fatal).
    #[error("peer record has no signature")]
    MissingSignature,
    /// A record's public key is not a canonical key of the scheme (fatal).
    #[error("peer record key is malformed: {0}")]
    MalformedKey(KeyError),
    /// A record's signer is in no tracked set and is not a bootstrapper (not fatal: peer sets
    /// may differ between nodes for a while; the record is dropped).
    #[error("peer record signed by an unauthorized key")]
    UnauthorizedSigner,
    /// A record's socket field is malformed (fatal).
    #[error("peer record socket is malformed: {0}")]
    MalformedSocket(SocketError),
    /// A record's well-formed address is refused by the configured
    /// [`crate::AddressPolicy`] (not fatal: the record may be genuinely signed by its owner and
    /// merely relayed by the sender; it is dropped, never stored, gossiped or dialed).
    #[error("peer record address {socket} refused by the address policy: {reason}")]
    AddressRefused {
        /// The advertised address.
        socket: SocketAddr,
        /// Which rule refused it.
        reason: AddressRefusal,
    },
    /// A record's timestamp lies further in the future than the allowed clock skew (not fatal:
    /// clocks may differ; the record is dropped and may be accepted later).
    #[error("peer record timestamp {timestamp} is more than {max_skew_ms} ms after now ({now})")]
    FutureTimestamp {
        /// The record's timestamp (ms since the Unix epoch).
        timestamp: u64,
        /// Our clock (ms since the Unix epoch).
        now: u64,
        /// The allowed skew in ms.
        max_skew_ms: u64,
    },
    /// A record's signature bytes are not a canonical signature of the scheme (fatal).
    #[error("peer record signature is malformed: {0}")]
    MalformedSignature(SignatureError),
    /// A record's signature does not verify (fatal).
    #[error("peer record signature does not verify")]
    BadSignature,

    /// A `Peers` message arrived while we are in [`crate::Mode::Lookup`] (not fatal: a peer in
    /// gossip mode sends its record and answers our pings with records; they are dropped
    /// without any check of their contents).
    #[error("{records} peer records ignored in lookup mode")]
    LookupModeRecords {
        /// Records in the message.
        records: usize,
    },
    /// A `Peers` message arrived from an observer (not fatal: an observer may run gossip
    /// discovery for its own peers; observers' messages never feed our records).
    #[error("{records} peer records from an observer ignored")]
    ObserverRecords {
        /// Records in the message.
        records: usize,
    },

    // ----- Local misuse -----
    /// Addresses were given by the application while the tracker is in
    /// [`crate::Mode::Gossip`].
    #[error("application-supplied addresses need lookup mode")]
    NotLookupMode,
    /// An address update named a key that is in no tracked set and is not an observer (or is
    /// our own).
    #[error("address update for a key that is neither tracked nor an observer")]
    UnknownKey,
    /// The application gave two different addresses for one key in one registration (the
    /// first one is kept).
    #[error("two different addresses for one key")]
    DuplicateKey,
    /// A peer set larger than the configured maximum was registered.
    #[error("peer set has {got} keys, at most {max} allowed")]
    PeerSetTooLarge {
        /// Keys in the set (after de-duplication).
        got: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A peer set with this index is already registered.
    #[error("peer set {index} is already registered")]
    PeerSetExists {
        /// The index.
        index: u64,
    },
    /// The index is older than every tracked index and no slot is free.
    #[error("peer set {index} is older than the oldest tracked index {oldest}")]
    PeerSetTooOld {
        /// The index.
        index: u64,
        /// The oldest tracked index.
        oldest: u64,
    },
    /// `handle_connected` (or another per-peer input) named a peer that is not authorized.
    #[error("peer is not authorized")]
    NotAuthorized,
    /// Our own record does not belong to our key, or the signer given does not match our key.
    #[error("record or signer does not match our own key")]
    NotMyKey,
}

impl Error {
    /// For a `Peers` message dropped whole without any check ([`Error::LookupModeRecords`],
    /// [`Error::ObserverRecords`]): a short, stable reason label (`lookup_mode`, `observer`)
    /// and the number of records, for metrics. `None` for every other error.
    pub fn records_ignored(&self) -> Option<(&'static str, usize)> {
        match self {
            Self::LookupModeRecords { records } => Some(("lookup_mode", *records)),
            Self::ObserverRecords { records } => Some(("observer", *records)),
            _ => None,
        }
    }

    /// Whether the remote peer that caused this error should be disconnected.
    ///
    /// `false` for errors that an honest peer can cause (out-of-sync peer sets or clocks) and for
    /// local misuse.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::WrongBitLength { .. }
                | Self::NonzeroPadding { .. }
                | Self::UnauthorizedSender
                | Self::TooManyRecords { .. }
                | Self::MissingSignature
                | Self::MalformedKey(_)
                | Self::MalformedSocket(_)
                | Self::MalformedSignature(_)
                | Self::BadSignature
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatality() {
        assert!(Error::BadSignature.is_fatal());
        assert!(Error::MalformedSocket(SocketError::Empty).is_fatal());
        assert!(!Error::UnknownIndex { index: 1 }.is_fatal());
        assert!(!Error::UnauthorizedSigner.is_fatal());
        assert!(
            !Error::AddressRefused {
                socket: "127.0.0.1:1".parse().unwrap(),
                reason: AddressRefusal::Loopback
            }
            .is_fatal()
        );
        assert!(
            !Error::FutureTimestamp {
                timestamp: 2,
                now: 1,
                max_skew_ms: 0
            }
            .is_fatal()
        );
        assert!(!Error::NotMyKey.is_fatal());
    }
}
