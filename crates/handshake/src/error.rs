//! Errors of the handshake.

use p2p_identity::{KeyError, SignatureError};

/// Why an authorizer refused a peer (returned by the callback given to
/// [`Dialee::handle_hello`](crate::Dialee::handle_hello)).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The key is not in any tracked peer set.
    #[error("peer not authorized")]
    NotAuthorized,
    /// The key is blocked.
    #[error("peer blocked")]
    Blocked,
    /// A live connection to this key exists (a replayed first message must not displace it).
    #[error("peer already connected")]
    AlreadyConnected,
    /// The key is a registered observer and the inbound connections of observers are at
    /// their own cap.
    #[error("observer connection cap reached")]
    ObserverCap,
    /// Another local reason (for logs).
    #[error("refused: {0}")]
    Other(&'static str),
}

/// Which part of a handshake message is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// Shorter than the namespace tag.
    Truncated,
    /// Not a valid `Handshake` protobuf.
    Protobuf,
    /// `recipient_public_key` has the wrong length for the scheme.
    RecipientLength,
    /// `ephemeral_public_key` is not 32 bytes.
    EphemeralLength,
    /// `signature` is missing.
    MissingSignature,
    /// `signature.public_key` has the wrong length for the scheme.
    SenderKeyLength,
    /// `signature.signature` has the wrong length for the scheme.
    SignatureLength,
}

/// A handshake failed. Every variant is fatal for the connection attempt.
///
/// Classes: malformed input ([`Malformed`](Self::Malformed), [`TooLarge`](Self::TooLarge),
/// [`InvalidKey`](Self::InvalidKey)); incompatibility ([`NetworkMismatch`](Self::NetworkMismatch),
/// [`TimestampTooOld`](Self::TimestampTooOld), [`TimestampTooNew`](Self::TimestampTooNew));
/// wrong or unwanted peer ([`WrongRecipient`](Self::WrongRecipient),
/// [`UnexpectedPeer`](Self::UnexpectedPeer), [`SelfConnection`](Self::SelfConnection),
/// [`Refused`](Self::Refused)); misbehaviour or attack ([`BadSignature`](Self::BadSignature),
/// [`NonContributory`](Self::NonContributory), [`Confirmation`](Self::Confirmation)).
/// Nothing of this goes back over the wire: the connection is just closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The message is larger than [`MAX_MESSAGE_LEN`](crate::MAX_MESSAGE_LEN).
    #[error("handshake message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Length received.
        len: usize,
        /// Maximum.
        max: usize,
    },
    /// The message is malformed.
    #[error("malformed handshake message: {0:?}")]
    Malformed(Malformed),
    /// A key in the message does not parse (e.g. not on the curve).
    #[error("invalid key in handshake: {0}")]
    InvalidKey(#[from] KeyError),
    /// The message is addressed to another key.
    #[error("handshake addressed to another key")]
    WrongRecipient,
    /// The dialee answered with another key than the one dialed.
    #[error("dialee answered with an unexpected key")]
    UnexpectedPeer,
    /// The peer is ourselves.
    #[error("connection to self")]
    SelfConnection,
    /// The peer is on another network (its namespace tag differs from ours).
    #[error("network mismatch: the peer uses another namespace")]
    NetworkMismatch,
    /// The peer's timestamp is older than the window allows.
    #[error("handshake timestamp {timestamp} too old (now {now})")]
    TimestampTooOld {
        /// The peer's timestamp (ms).
        timestamp: u64,
        /// Local time (ms).
        now: u64,
    },
    /// The peer's timestamp is further in the future than the window allows.
    #[error("handshake timestamp {timestamp} too far in the future (now {now})")]
    TimestampTooNew {
        /// The peer's timestamp (ms).
        timestamp: u64,
        /// Local time (ms).
        now: u64,
    },
    /// The local authorizer refused the peer.
    #[error("peer refused: {0}")]
    Refused(Refusal),
    /// The signature does not parse or does not verify.
    #[error("bad handshake signature: {0}")]
    BadSignature(#[from] SignatureError),
    /// The x25519 result is all zeros (the peer sent a low-order ephemeral key).
    #[error("non-contributory key exchange (low-order ephemeral key)")]
    NonContributory,
    /// The dialer's key-confirmation frame did not open or had the wrong content.
    #[error("key confirmation failed")]
    Confirmation,
}

impl Refusal {
    /// A short, stable label for metrics and logs (one meaning per label).
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotAuthorized => "not_authorized",
            Self::Blocked => "blocked",
            Self::AlreadyConnected => "already_connected",
            Self::ObserverCap => "observer_cap",
            Self::Other(_) => "refused_other",
        }
    }
}

impl HandshakeError {
    /// A short, stable label for metrics and logs (one meaning per label; see
    /// `docs/protocol.md`, "Reason labels").
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "handshake_too_large",
            Self::Malformed(_) => "malformed_handshake",
            Self::InvalidKey(_) => "invalid_key",
            Self::WrongRecipient => "wrong_recipient",
            Self::UnexpectedPeer => "unexpected_peer",
            Self::SelfConnection => "self_connection",
            Self::NetworkMismatch => "network_mismatch",
            Self::TimestampTooOld { .. } => "timestamp_too_old",
            Self::TimestampTooNew { .. } => "timestamp_too_new",
            Self::Refused(r) => r.label(),
            Self::BadSignature(_) => "bad_signature",
            Self::NonContributory => "non_contributory",
            Self::Confirmation => "confirmation_failed",
        }
    }
}
