//! Why a session closes, and why a connection is refused.

use p2p_handshake::version::VersionError;

use crate::decode::{DecodeError, Kind};

/// Why a session ends. Every variant closes the connection; [`Error::label`] names it for
/// metrics and logs (nothing goes back over the wire).
///
/// Classes: malformed input ([`Error::Decode`]), incompatibility ([`Error::Incompatible`]),
/// protocol violation ([`Error::FirstFrameNotVersion`], [`Error::SecondVersion`],
/// [`Error::DuplicateRecord`]), misbehaviour ([`Error::Discovery`], [`Error::Mux`],
/// [`Error::DiscoveryFlood`]), timers ([`Error::VersionTimeout`], [`Error::Idle`]) and local
/// misuse ([`Error::NotAdmitted`], [`Error::BatchNotDrained`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer's first frame after the handshake is not its version info.
    #[error("first frame after the handshake is a {0:?}, not the version info")]
    FirstFrameNotVersion(Kind),
    /// The version info did not arrive within the version deadline.
    #[error("no version info within the version deadline")]
    VersionTimeout,
    /// The peer's version info is refused (major version, namespace, field sizes).
    #[error(transparent)]
    Incompatible(#[from] VersionError),
    /// A second version info.
    #[error("second version info")]
    SecondVersion,
    /// The frame plaintext is malformed or over a count limit (checked before decoding).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A fatal discovery error (bad record, wrong bit-vector length, ...).
    #[error("discovery: {0}")]
    Discovery(p2p_discovery::Error),
    /// A `Peers` message holds two records of the same key.
    #[error("peers message holds two records of one key")]
    DuplicateRecord,
    /// Discovery messages of one kind faster than the budget allows: more than `max` per
    /// budget interval, beyond the unused budget saved up (`SessionConfig::budget_burst`).
    #[error("more than {max} {kind:?} messages per budget interval, beyond the saved-up budget")]
    DiscoveryFlood {
        /// `Kind::BitVec` or `Kind::Peers`.
        kind: Kind,
        /// The budget per interval.
        max: u32,
    },
    /// A fatal mux error (unknown channel, reassembly, decompression, gross rate violation).
    #[error("mux: {0}")]
    Mux(p2p_mux::MuxError),
    /// Nothing arrived within the idle timeout.
    #[error("nothing received within the idle timeout")]
    Idle,
    /// A frame was handed to the session after the version step but before
    /// [`crate::Session::handle_admitted`] (local misuse by the driver).
    #[error("frame handled before the peer was admitted")]
    NotAdmitted,
    /// A frame was handed to the session before every envelope of the previous batch frame
    /// was handled with [`crate::Session::handle_rest`] (local misuse by the driver).
    #[error("frame handled before the previous batch frame was drained")]
    BatchNotDrained,
}

impl Error {
    /// A short, stable label for metrics and logs: one meaning per label (see
    /// `docs/protocol.md`, "Reason labels"). `discovery` and `mux` are left for errors that
    /// no peer input produces today (a future fatal discovery error; local misuse of the mux).
    pub fn label(&self) -> &'static str {
        match self {
            Self::FirstFrameNotVersion(_) => "first_frame_not_version",
            Self::VersionTimeout => "version_timeout",
            Self::Incompatible(v) => match v {
                VersionError::IncompatibleMajor { .. } => "incompatible_version",
                VersionError::NetworkMismatch => "network_mismatch",
                _ => "invalid_version_info",
            },
            Self::SecondVersion => "second_version",
            Self::Decode(d) => match d {
                DecodeError::TooManyRecords { .. } => "too_many_records",
                DecodeError::TooManyChannels { .. }
                | DecodeError::SoftwareVersionTooLong { .. } => "invalid_version_info",
                DecodeError::BitVecTooLong { .. } => "bit_vec_too_long",
                _ => "malformed",
            },
            Self::Discovery(d) => match d {
                p2p_discovery::Error::WrongBitLength { .. }
                | p2p_discovery::Error::NonzeroPadding { .. } => "invalid_bit_vec",
                p2p_discovery::Error::UnauthorizedSender => "unauthorized_sender",
                p2p_discovery::Error::TooManyRecords { .. } => "too_many_records",
                p2p_discovery::Error::MissingSignature
                | p2p_discovery::Error::MalformedKey(_)
                | p2p_discovery::Error::MalformedSocket(_)
                | p2p_discovery::Error::MalformedSignature(_) => "invalid_record",
                p2p_discovery::Error::BadSignature => "bad_record_signature",
                // Not fatal: a session never closes with it (the record is dropped); the label
                // names it wherever it is reported.
                p2p_discovery::Error::AddressRefused { .. } => "address_refused",
                _ => "discovery",
            },
            Self::DuplicateRecord => "duplicate_record",
            Self::DiscoveryFlood { kind, .. } => match kind {
                Kind::BitVec => "bit_vec_flood",
                _ => "peers_flood",
            },
            Self::Mux(m) => match m {
                p2p_mux::MuxError::RateLimitExceeded { .. } => "rate_limit_exceeded",
                p2p_mux::MuxError::UnknownChannel { .. } => "unknown_channel",
                p2p_mux::MuxError::Reassembly(_) => "reassembly_failed",
                p2p_mux::MuxError::Decompress { .. } => "decompression_failed",
                _ => "mux",
            },
            Self::Idle => "idle_timeout",
            Self::NotAdmitted => "not_admitted",
            Self::BatchNotDrained => "batch_not_drained",
        }
    }
}

/// Why a connection is refused by the [`crate::Manager`] (before or after the handshake).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The source address made too many handshakes recently.
    #[error("too many handshakes from this address")]
    AddressRateLimited,
    /// The per-address limiter's table is full.
    #[error("too many distinct addresses are handshaking")]
    AddressTableFull,
    /// The source prefix (/24 or /64) made too many handshakes recently.
    #[error("too many handshakes from this network prefix")]
    PrefixRateLimited,
    /// The per-prefix limiter's table is full.
    #[error("too many distinct network prefixes are handshaking")]
    PrefixTableFull,
    /// The source prefix holds its share of the inbound handshake slots.
    #[error("no free handshake slot for this network prefix")]
    PrefixHandshakesFull,
    /// Every inbound handshake slot is taken.
    #[error("no free handshake slot")]
    HandshakeSlotsFull,
    /// The inbound connection cap is reached.
    #[error("inbound connection cap reached")]
    InboundCap,
    /// The key is ours.
    #[error("connection to self")]
    SelfConnection,
    /// The key is in no tracked set and is not a bootstrapper.
    #[error("peer not authorized")]
    NotAuthorized,
    /// The key is blocked.
    #[error("peer blocked")]
    Blocked,
    /// A connection to the key exists and the simultaneous-dial rule keeps it.
    #[error("duplicate connection")]
    Duplicate,
    /// The key is an observer and the inbound connections of observers are at
    /// [`crate::ManagerConfig::max_observer_inbound`].
    #[error("observer connection cap reached")]
    ObserverCap,
}

impl Refused {
    /// The same refusal from the per-prefix limiter.
    pub(crate) fn for_prefix(self) -> Self {
        match self {
            Self::AddressRateLimited => Self::PrefixRateLimited,
            Self::AddressTableFull => Self::PrefixTableFull,
            other => other,
        }
    }

    /// A short, stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::AddressRateLimited => "ip_rate_limited",
            Self::AddressTableFull => "ip_table_full",
            Self::PrefixRateLimited => "prefix_rate_limited",
            Self::PrefixTableFull => "prefix_table_full",
            Self::PrefixHandshakesFull => "prefix_handshakes_full",
            Self::HandshakeSlotsFull => "handshake_slots_full",
            Self::InboundCap => "inbound_cap",
            Self::SelfConnection => "self_connection",
            Self::NotAuthorized => "not_authorized",
            Self::Blocked => "blocked",
            Self::Duplicate => "duplicate",
            Self::ObserverCap => "observer_cap",
        }
    }
}
