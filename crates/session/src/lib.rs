//! Sans-IO rules between the layers: one connection's [`Session`] and the node's [`Manager`].
//!
//! The layer crates each own one protocol object (handshake, cipher, frames, discovery, mux).
//! What happens **between** them is decided here, without sockets, tasks or clocks (time and
//! randomness come in as arguments), so every rule is tested deterministically and fuzzed:
//!
//! - [`Session`]: one established connection. It owns the version step (the peer's first frame
//!   must be its version info, within its own deadline, checked before the peer is admitted
//!   anywhere), the send order (version info, then our record, then a bit vector), the routing
//!   of every later frame (chunks to the mux, bit vectors and records to discovery, a second
//!   version info closes), which discovery errors are fatal, per-peer discovery budgets, bounded
//!   pre-decoding ([`decode`]), the idle timer and the pause policy (throttle, backpressure).
//! - [`Manager`]: the set of connections. Admission (authorize and insert atomically, the
//!   simultaneous-dial rule), the pre-handshake order (per-address rate limit, handshake slot,
//!   inbound cap), the dial plan with its own slots and dial-failure reporting, timed blocks,
//!   requested disconnects and dials, peer-id bootstrappers, connection events, pings,
//!   evictions. It wraps discovery's `Tracker` under one lock that is held only for bounded
//!   work: record signatures are verified outside it.
//!
//! - [`simulation`]: a seeded discrete-event simulation of a whole network in one process, each
//!   node running the real [`Manager`] and the session's discovery routing on simulated time
//!   (`cargo xtask simulate`, `docs/discovery.md`).
//!
//! # Driving a connection
//!
//! 1. Inbound: [`Manager::handle_accept`] with the source address (refused: close the socket);
//!    run the handshake with [`Manager::authorize`] as its authorizer; drop the handshake
//!    permit when it ends. Outbound: [`Manager::poll_dials`] on a timer; a failed connect or
//!    handshake is [`Manager::handle_dial_failed`].
//! 2. After the handshake: [`Session::new`]; send every [`Session::poll_transmit`] (the version
//!    info); read frames and hand each opened plaintext to [`Session::handle_frame`]; call
//!    [`Session::handle_timeout`] when [`Session::poll_timeout`] passes.
//! 3. On [`Event::Admit`]: [`Manager::admit`] (refused: close; close the `replaced` handle of
//!    an admitted one), register the peer in the mux, [`Session::handle_admitted`], then
//!    [`Manager::handle_established`], and start the writer. If the connection ends before
//!    this, [`Manager::handle_not_admitted`].
//! 4. Then, after every frame: send what [`Session::poll_transmit`] returns (as control
//!    frames), do not read before [`Session::poll_read`] allows it, and on
//!    [`Event::WaitForRoom`] wait for [`Session::poll_deliver`]. Any `Err` closes the
//!    connection with [`Error::label`] as its reason.
//! 5. When an admitted connection ends: [`Manager::release`] with the close reason (if it
//!    returns `true`, remove the peer from the mux).
//! 6. After each of [`Manager::admit`], [`Manager::handle_established`] and
//!    [`Manager::release`]: drain [`Manager::poll_event`] (one driver at a time, so events keep
//!    their order) and hand the [`PeerEvent`]s to the application.
//! 7. On a timer: [`Manager::poll_housekeeping`]: send the ping to the listed peers, close the
//!    evicted handles, export the counts; poll dials at once when blocks expired
//!    ([`Housekeeping::unblocked`]); report [`Housekeeping::unresolved`] peer-id bootstrappers.
//!
//! The application's controls: [`Manager::block`] / [`Manager::block_for`] (expiry computed
//! from the `now_ms` passed in; every check takes the time too, so an expired block refuses
//! nothing even before housekeeping forgets it), [`Manager::unblock`],
//! [`Manager::disconnect`], [`Manager::dial_now`] (then poll dials at once); close the handles
//! they return.
//!
//! # Design
//!
//! Budgets belong to the peer's key (reconnecting does not refill them) and are counted in
//! fixed windows of the discovery ping interval; past a budget the connection closes
//! ([`Error::DiscoveryFlood`]), so one authorized peer can make us build at most
//! `max_bit_vecs` gossip answers and verify at most `max_peers_messages` messages' worth of
//! records per interval, plus each connection's opening ([`OPENING_BIT_VECS`] and
//! [`OPENING_PEERS`] messages, which every honest peer sends on every connection and which
//! the handshake rate limits bound). A `Peers` message may hold at most one record per
//! key ([`Error::DuplicateRecord`]), so a peer can make us verify at most one self-signed
//! record per message; other keys' records verify only if they are genuinely newer.
//!
//! # Security
//!
//! Requires: the driver hands over only frames that opened under the connection's cipher,
//! honours every `Err`, [`Session::poll_read`] and [`Event::WaitForRoom`], and closes the
//! handles the manager returns. Provides: no peer is admitted (state, mux, tracker) before its
//! version info passed; a key admitted is authorized at that instant under the same lock that
//! rotations take; decoding any frame allocates at most a small constant times its length; a
//! discovery flood costs the flooder its connection and the node a bounded amount of work per
//! interval, none of it under the shared lock except table lookups. Does not provide: fairness
//! of CPU between peers within their budgets, or protection against an authorized peer that
//! sends honest-looking traffic at the allowed rates.

mod error;
mod manager;
mod session;

pub mod decode;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod simulation;

use p2p_identity::Verifier;
use p2p_proto::message::Payload;
use p2p_proto::{BitVec, Peer, Peers, Signature, VersionInfo};

pub use error::{Error, Refused};
pub use manager::{
    Admitted, CLOSE_BLOCKED, CLOSE_EVICTED, CLOSE_REPLACED, CLOSE_REQUESTED, Dial, DialNowError,
    DialPermit, Direction, HandshakePermit, Housekeeping, InboundPermit, InboundPermits,
    MAX_PENDING_EVENTS, Manager, ManagerConfig, PeerEvent, PeerEventKind, UnknownPeerId,
    source_prefix,
};
pub use session::{
    BATCH_MINOR, DEFAULT_COALESCE_LIMIT, Event, HOST_MINOR, Now, OPENING_BIT_VECS, OPENING_PEERS,
    PeerVersion, Session, SessionConfig,
};

/// The largest frame body (plaintext and tag) a node accepts: 16 MiB. Each connection's reader
/// may buffer one frame of the configured size and its writer a batch plus one frame.
pub const MAX_FRAME_LEN: u32 = 16 << 20;

/// The longest control frame plaintext a node of scheme `V` with this discovery configuration
/// sends or accepts: the largest of a full `Peers` message (`max_records_per_message` records
/// with the longest address encoding, a host name of 251 bytes), the bit vector of the largest allowed set, and a version info with the
/// largest allowed fields (namespace of `namespace_len` bytes). The frame size must hold it.
pub fn largest_control_plaintext<V: Verifier>(
    discovery: &p2p_discovery::Config,
    namespace_len: usize,
) -> usize {
    let record = Peer {
        socket: bytes::Bytes::from(vec![0u8; p2p_discovery::host::MAX_ADDRESS_LEN]),
        timestamp: u64::MAX,
        signature: Some(Signature {
            public_key: bytes::Bytes::from(vec![0u8; V::LEN]),
            signature: bytes::Bytes::from(vec![
                0u8;
                <V::Signature as p2p_identity::Signature>::LEN
            ]),
        }),
    };
    let peers = Payload::Peers(Peers {
        peers: vec![record; discovery.max_records_per_message.get()],
    });
    let bit_vec = Payload::BitVec(BitVec {
        index: u64::MAX,
        bits: bytes::Bytes::from(vec![0u8; discovery.max_peer_set_size.get().div_ceil(8)]),
    });
    let version = Payload::Version(VersionInfo {
        protocol_major: u32::MAX,
        protocol_minor: u32::MAX,
        namespace: bytes::Bytes::from(vec![0u8; namespace_len]),
        software_version: "x".repeat(p2p_handshake::version::MAX_SOFTWARE_VERSION_LEN),
        channels: vec![u32::MAX; p2p_handshake::version::MAX_CHANNELS],
    });
    [peers, bit_vec, version]
        .iter()
        .map(p2p_framing::envelope::encoded_len)
        .max()
        .unwrap_or(0)
}
