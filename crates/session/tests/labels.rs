//! Every reason label the layers produce is in the "Reason labels" table of `docs/protocol.md`
//! and in the metrics reference of `docs/operations.md`, and no label has two meanings (two
//! error kinds of different meaning never share one; the table lists each label once).

use std::path::PathBuf;

use p2p_discovery::SocketError;
use p2p_framing::chunk::ReassemblyError;
use p2p_framing::compress::CompressError;
use p2p_handshake::version::VersionError;
use p2p_handshake::{HandshakeError, Malformed, Refusal};
use p2p_identity::{KeyError, SignatureError};
use p2p_mux::MuxError;
use p2p_session::decode::{DecodeError, Kind};
use p2p_session::{Error, Refused};

fn doc(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&path).expect("docs are checked in")
}

/// The labels in the first column of the "Reason labels" table.
fn table_labels(protocol: &str) -> Vec<String> {
    let section = protocol
        .split("\n## Reason labels\n")
        .nth(1)
        .expect("a Reason labels section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn session_labels() -> Vec<&'static str> {
    let errors = vec![
        Error::FirstFrameNotVersion(Kind::Chunk),
        Error::VersionTimeout,
        Error::Incompatible(VersionError::IncompatibleMajor { ours: 1, theirs: 2 }),
        Error::Incompatible(VersionError::NetworkMismatch),
        Error::Incompatible(VersionError::SoftwareVersionTooLong(300)),
        Error::Incompatible(VersionError::TooManyChannels(5000)),
        Error::SecondVersion,
        Error::Decode(DecodeError::Malformed("x")),
        Error::Decode(DecodeError::MissingPayload),
        Error::Decode(DecodeError::MultiplePayloads),
        Error::Decode(DecodeError::TooManyRecords { got: 65, max: 64 }),
        Error::Decode(DecodeError::TooManyChannels {
            got: 5000,
            max: 4096,
        }),
        Error::Decode(DecodeError::SoftwareVersionTooLong { got: 300, max: 256 }),
        Error::Decode(DecodeError::BitVecTooLong {
            got: 9000,
            max: 8192,
        }),
        Error::Discovery(p2p_discovery::Error::WrongBitLength {
            index: 0,
            expected: 1,
            got: 2,
        }),
        Error::Discovery(p2p_discovery::Error::NonzeroPadding { index: 0 }),
        Error::Discovery(p2p_discovery::Error::UnauthorizedSender),
        Error::Discovery(p2p_discovery::Error::TooManyRecords { got: 65, max: 64 }),
        Error::Discovery(p2p_discovery::Error::MissingSignature),
        Error::Discovery(p2p_discovery::Error::MalformedKey(KeyError::InvalidHex)),
        Error::Discovery(p2p_discovery::Error::MalformedSocket(SocketError::Empty)),
        Error::Discovery(p2p_discovery::Error::MalformedSignature(
            SignatureError::Invalid,
        )),
        Error::Discovery(p2p_discovery::Error::BadSignature),
        Error::Discovery(p2p_discovery::Error::AddressRefused {
            socket: "127.0.0.1:1".parse().unwrap(),
            reason: p2p_discovery::AddressRefusal::Loopback,
        }),
        // The fallback: a session never wraps a non-fatal discovery error, so only a future
        // fatal variant would carry it.
        Error::Discovery(p2p_discovery::Error::UnknownIndex { index: 9 }),
        Error::DuplicateRecord,
        Error::DiscoveryFlood {
            kind: Kind::BitVec,
            max: 4,
        },
        Error::DiscoveryFlood {
            kind: Kind::Peers,
            max: 8,
        },
        Error::Mux(MuxError::RateLimitExceeded { channel: 1 }),
        Error::Mux(MuxError::UnknownChannel { channel: 1 }),
        Error::Mux(MuxError::Reassembly(ReassemblyError::ZeroTotalParts)),
        Error::Mux(MuxError::Decompress {
            channel: 1,
            source: CompressError::Malformed,
        }),
        Error::Mux(MuxError::DeliveryPending),
        Error::Idle,
        Error::NotAdmitted,
        Error::BatchNotDrained,
    ];
    let refused = [
        Refused::AddressRateLimited,
        Refused::AddressTableFull,
        Refused::PrefixRateLimited,
        Refused::PrefixTableFull,
        Refused::PrefixHandshakesFull,
        Refused::HandshakeSlotsFull,
        Refused::InboundCap,
        Refused::SelfConnection,
        Refused::NotAuthorized,
        Refused::Blocked,
        Refused::Duplicate,
        Refused::ObserverCap,
    ];
    let handshake = [
        HandshakeError::TooLarge {
            len: 2000,
            max: 1024,
        },
        HandshakeError::Malformed(Malformed::Truncated),
        HandshakeError::InvalidKey(KeyError::NotInSubgroup),
        HandshakeError::WrongRecipient,
        HandshakeError::UnexpectedPeer,
        HandshakeError::SelfConnection,
        HandshakeError::NetworkMismatch,
        HandshakeError::TimestampTooOld {
            timestamp: 0,
            now: 1,
        },
        HandshakeError::TimestampTooNew {
            timestamp: 1,
            now: 0,
        },
        HandshakeError::Refused(Refusal::NotAuthorized),
        HandshakeError::Refused(Refusal::Blocked),
        HandshakeError::Refused(Refusal::AlreadyConnected),
        HandshakeError::Refused(Refusal::ObserverCap),
        HandshakeError::Refused(Refusal::Other("x")),
        HandshakeError::BadSignature(SignatureError::Invalid),
        HandshakeError::NonContributory,
        HandshakeError::Confirmation,
    ];
    let mut labels: Vec<&'static str> = errors.iter().map(Error::label).collect();
    labels.extend(refused.iter().map(Refused::label));
    labels.extend(handshake.iter().map(HandshakeError::label));
    // `p2p_handshake::Error` (the tokio adapter) and the facade's own labels
    // (`crates/p2p/src/{peer,network}.rs`), which this crate cannot construct.
    labels.extend([
        "handshake_timeout",
        "first_message_timeout",
        "closed",
        "oversized_frame",
        "cipher",
        "body_too_large",
        "io",
        "connect_timeout",
        "connect_failed",
        // `crates/p2p/src/resolve.rs`: a dial's host name.
        "resolve_failed",
        "resolve_timeout",
        "resolve_refused",
        "mux_refused",
        "ok",
        "local",
        "shutdown",
        "peer_closed",
        "write_stalled",
        "frame",
    ]);
    labels
}

#[test]
fn every_label_is_documented_once_with_one_meaning() {
    let protocol = doc("protocol.md");
    let operations = doc("operations.md");
    let table = table_labels(&protocol);
    let mut seen = table.clone();
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), before, "a label is listed twice in the table");
    let labels = session_labels();
    for label in &labels {
        assert!(
            table.iter().any(|t| t == label),
            "`{label}` is missing from protocol.md's Reason labels"
        );
        assert!(
            operations.contains(&format!("`{label}`")),
            "`{label}` is missing from operations.md's metrics reference"
        );
    }
    // The reverse: the table documents nothing the code does not produce.
    for t in &table {
        assert!(
            labels.contains(&t.as_str()),
            "`{t}` is in the table but no error produces it"
        );
    }
}

#[test]
fn kinds_of_different_meaning_do_not_share_a_label() {
    // The pairs the specification keeps apart.
    let pairs = [
        (
            HandshakeError::TimestampTooOld {
                timestamp: 0,
                now: 1,
            }
            .label(),
            HandshakeError::TimestampTooNew {
                timestamp: 1,
                now: 0,
            }
            .label(),
        ),
        (
            HandshakeError::SelfConnection.label(),
            HandshakeError::NonContributory.label(),
        ),
        (
            HandshakeError::NonContributory.label(),
            HandshakeError::Confirmation.label(),
        ),
        (
            Error::Discovery(p2p_discovery::Error::BadSignature).label(),
            Error::Discovery(p2p_discovery::Error::MissingSignature).label(),
        ),
        (
            Error::Discovery(p2p_discovery::Error::NonzeroPadding { index: 0 }).label(),
            Error::Discovery(p2p_discovery::Error::UnauthorizedSender).label(),
        ),
        (
            Error::Mux(MuxError::Reassembly(ReassemblyError::ZeroTotalParts)).label(),
            Error::Mux(MuxError::Decompress {
                channel: 1,
                source: CompressError::Malformed,
            })
            .label(),
        ),
    ];
    for (a, b) in pairs {
        assert_ne!(a, b);
    }
}
