//! Sans-IO bit-vector peer discovery.
//!
//! The [`Tracker`] knows the peer sets the application registered (by index), the signed
//! address records of their members, which peers are connected, and decides which records to
//! gossip and which peers to dial when. It does no I/O: the facade feeds it events and the
//! current time (milliseconds since the Unix epoch) and randomness, and carries out what it
//! asks for.
//!
//! # Driving the tracker
//!
//! 1. At start: sign our record ([`sign_record`], or [`Tracker::with_signer`]) and build the
//!    tracker with the bootstrappers. Register peer sets with [`Tracker::handle_peer_set`]
//!    whenever the application announces one; afterwards disconnect every key returned by
//!    [`Tracker::take_evictions`].
//! 2. On every timer tick (e.g. every 100 ms, or when the next deadline is due):
//!    - [`Tracker::poll_dials`]: dial each returned `(key, address)`; report each outcome
//!      exactly once with [`Tracker::handle_connected`] or [`Tracker::handle_dial_failed`].
//!      An [`Address::Host`] is resolved for this dial only, its addresses filtered with
//!      [`host::select_targets`]; a name that does not resolve (in time, or to an accepted
//!      address) is reported with [`Tracker::handle_dial_failed`].
//!    - [`Tracker::poll_ping`]: send the returned vector to every connected peer (it is the
//!      keep-alive ping). Better: give each connection its own ping phase (drawn when it
//!      opens) and, at a tick where some are due, send them one [`Tracker::ping_vector`]: a
//!      peer pinged later then sees what earlier answers taught us, and does not send it
//!      again (what the session manager does).
//! 3. Before a handshake completes, ask [`Tracker::is_authorized`]. When a second connection to
//!    a peer completes, keep the one chosen by [`resolve_duplicate`] and close the other.
//! 4. After a kept handshake: [`Tracker::handle_connected`], then send [`Tracker::my_record`] (as
//!    a one-record `Peers`) and [`Tracker::random_bit_vec`].
//! 5. On a received `BitVec`: [`Tracker::handle_bit_vec`]; send back the returned `Peers`, if
//!    any. On a received `Peers`: [`Tracker::handle_peers`]. On an error with
//!    [`Error::is_fatal`], close the connection; otherwise log it and go on.
//! 6. When a kept connection closes: [`Tracker::handle_disconnected`].
//! 7. When our public address changes: [`Tracker::update_my_address`]; send the new record to
//!    the connected peers.
//! 8. For metrics: [`Tracker::stats`].
//!
//! # Design
//!
//! - **Peer sets.** The application registers `(index, keys)`. Keys are sorted (by canonical
//!   bytes) and de-duplicated; the `tracked_indexes` largest indexes are kept. A key is
//!   authorized while it is in any tracked set or is a bootstrapper. Per-peer state lives in one
//!   small slot per key of the sorted union of the tracked sets (a shared `Arc` when only one
//!   set is tracked), so memory grows with the set size and nothing else.
//! - **Bit vectors.** Bit `i` of the vector for `index` is 1 when we know a dialable address of
//!   the `i`-th key of that sorted set; bit `i` is bit `i % 8` (least significant first) of
//!   byte `i / 8`; the vector has exactly `ceil(n / 8)` bytes and the padding bits are zero.
//!   Incoming vectors are checked for a tracked index, the exact length and zero padding.
//! - **Records** ([`record`]): `Peer { socket, timestamp, signature }` signed by the key it
//!   describes, over an explicit byte layout with the prefix [`_P2P_DISCOVERY_PEER_RECORD`] in
//!   the configured namespace. The socket encoding is in [`socket`]. A record replaces the
//!   stored one only if its timestamp is strictly newer; records too far in the future are
//!   dropped, and so are records whose address the configured [`AddressPolicy`] refuses
//!   ([`address`]: never unspecified, multicast, broadcast or port 0; loopback and private
//!   ranges as configured).
//! - **Gossip.** On a vector we answer with up to `max_gossip_records` random records that we
//!   know and the sender lacks, preferring peers we are connected to (their addresses are
//!   proven), or nothing.
//! - **Dials.** Known, not connected peers are dialed at once, then with exponential backoff
//!   and jitter after failures; after `max_failed_dials` consecutive failures the address is
//!   stale (bit 0, not gossiped, retried only once per `stale_redial_interval`) until a newer
//!   record arrives or a retry connects (so a partition that heals is healed). A newer record with
//!   the *same* address keeps the failure count and the redial time (it clears only the stale
//!   mark), so re-signing a record cannot reset the backoff; a new address starts afresh.
//!   Bootstrappers are
//!   always dialed while not connected. Two connections between the same peers resolve with
//!   [`resolve_duplicate`]: the one dialed by the smaller key wins.
//!
//! # Security
//!
//! Requires: the facade passes only authenticated peer keys (after the handshake) as `from`,
//! bounds every decoded message by the frame size, and closes connections on fatal errors.
//!
//! Provides: no record is stored without a valid signature by an authorized key in our
//! namespace; bit vectors and `Peers` messages are bounded by configured limits before any
//! work; equal or older records cost no signature check, so replays are cheap to drop; each
//! answer is bounded by `max_gossip_records`; no panics and no allocation proportional to
//! anything but the configured limits.
//!
//! Does not provide: proof that a signed address really belongs to its signer (a peer may
//! advertise any public address the policy accepts, e.g. a victim's, but that address is
//! dialed only with a backoff that newer records of the same address do not reset, and the
//! handshake then fails on the wrong key); protection against an authorized peer that
//! withholds records; freshness of a record beyond its timestamp (an old record of a peer that
//! moved stays until a newer one arrives or dials to it fail).

pub mod address;
mod config;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod host;
pub mod record;
pub mod simulation;
pub mod socket;
mod tracker;

pub use address::{AddressPolicy, AddressRefusal};
pub use config::{Config, Mode};
pub use error::{Error, SocketError};
pub use host::{Address, HostError, HostName};
pub use record::{
    _P2P_DISCOVERY_PEER_RECORD, DirectVerifier, RecordVerifier, SharedRecordCache, VerifiedRecord,
    record_message, record_message_for, sign_record, sign_record_for, verify_record,
    verify_record_for,
};
pub use tracker::{
    AddressUpdate, KeepConnection, LookupOutcome, PeersOutcome, PeersPlan, RecordCandidate,
    SetStats, Tracker, resolve_duplicate,
};
