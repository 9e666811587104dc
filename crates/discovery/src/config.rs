//! Tracker configuration and presets.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use bytes::Bytes;

use crate::AddressPolicy;

/// Configuration of a [`crate::Tracker`].
///
/// Fields marked *must match* have to agree across the peers of one network.
#[derive(Clone, Debug)]
pub struct Config {
    /// Network namespace mixed into every record signature. *Must match.*
    pub namespace: Bytes,
    /// How many peer-set indexes are tracked at once (the most recent ones are kept).
    pub tracked_indexes: NonZeroUsize,
    /// Largest peer set accepted; bounds every bit vector to `ceil(max / 8)` bytes.
    /// *Must match* (or be at least the largest set the application registers).
    pub max_peer_set_size: NonZeroUsize,
    /// Most records we put into one gossip answer.
    pub max_gossip_records: NonZeroUsize,
    /// Most records accepted in one `Peers` message. *Must be* at least every peer's
    /// `max_gossip_records`.
    pub max_records_per_message: NonZeroUsize,
    /// Interval between two bit vectors (pings) sent to the connected peers.
    pub ping_interval: Duration,
    /// How far in the future a record's timestamp may be.
    pub max_clock_skew: Duration,
    /// Delay before the first redial after a failure; doubles with every further failure.
    pub dial_backoff_base: Duration,
    /// Upper bound of the redial delay (before jitter).
    pub dial_backoff_max: Duration,
    /// While we are connected to no peer at all, a failed bootstrapper dial is retried after
    /// at most this long (before jitter) instead of the doubling backoff: a node that knows
    /// nobody else gains nothing by waiting, and a crowd refused by a busy bootstrapper at
    /// start (its handshake slots full) then joins within a few retries instead of after
    /// minutes of doublings. Local policy (need not match).
    pub isolated_backoff_max: Duration,
    /// Uniform random jitter added to every redial delay, in `[0, dial_jitter)`; after a
    /// failed dial, in `[0, max(dial_jitter, backoff / 2))`, so that peers refused together
    /// (a herd at a bootstrapper) spread their retries over the whole backoff window.
    pub dial_jitter: Duration,
    /// After this many consecutive failed dials of one record's address, the address is marked
    /// stale: its bit goes back to 0 (so peers send any newer record) and it is no longer
    /// gossiped. Bootstrapper addresses are never marked stale.
    pub max_failed_dials: NonZeroU32,
    /// From this many consecutive failed dials of one record's address on (at most
    /// `max_failed_dials`), every further failure makes the key count as unknown (bit 0) in
    /// the next ping we send, so every peer that has a newer record sends it; the bit is 1
    /// again in the pings after that (one answer round per failed dial, not every answer
    /// until the peer is reached), and the address is still redialed at the normal backoff.
    /// A node that restarts on a new address is thus found within about one ping interval by
    /// peers that learnt its old record, instead of after `max_failed_dials` backoffs.
    /// Local policy (need not match).
    pub unknown_after_failed_dials: NonZeroU32,
    /// A stale address is still retried, once per this interval (after its capped backoff), so
    /// that peers that lost each other for longer than a few backoffs (a partition that heals)
    /// find each other again without a newer record. A retry that connects clears the stale
    /// mark. Bounds how often a record pointing at a third party makes us dial it once it is
    /// stale. Local policy (need not match).
    pub stale_redial_interval: Duration,
    /// Which addresses other peers' records may advertise; a record whose address the policy
    /// refuses is dropped ([`crate::Error::AddressRefused`]) and never dialed. Local policy
    /// (need not match). `recommended` and `aggressive` refuse loopback and accept private
    /// ranges (validators often run on private networks); `local` accepts loopback too.
    pub address_policy: AddressPolicy,
    /// Where peers' addresses come from: signed records gossiped between peers
    /// ([`Mode::Gossip`], every preset) or the application ([`Mode::Lookup`]: addresses are
    /// registered with the peer sets, no record is sent, received records are ignored and
    /// bit vectors are only keep-alive pings). Local choice (need not match; see
    /// docs/discovery.md, "Lookup mode", for mixed networks).
    pub mode: Mode,
}

/// Where a [`crate::Tracker`] learns peers' addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Signed peer records, exchanged by bit-vector gossip (the default).
    #[default]
    Gossip,
    /// Addresses given by the application with the peer sets
    /// ([`crate::Tracker::handle_peer_set_with_addresses`],
    /// [`crate::Tracker::update_address`]); no record is sent or accepted, and bit vectors are
    /// answered with nothing (they stay the keep-alive ping).
    Lookup,
}

impl Config {
    /// For production networks: up to 32 gossip records per answer (about 3.8 KiB with ed25519),
    /// ping every 5 s, 10 s of clock skew, redials from 1 s up to 1 min (5 s for a bootstrapper
    /// while connected to nobody), stale addresses retried
    /// every 10 min; records may advertise
    /// public and private addresses, not loopback ([`AddressPolicy::recommended`]).
    pub fn recommended(namespace: impl Into<Bytes>) -> Self {
        Self {
            namespace: namespace.into(),
            tracked_indexes: nz(3),
            max_peer_set_size: nz(1 << 16),
            max_gossip_records: nz(32),
            max_records_per_message: nz(64),
            ping_interval: Duration::from_secs(5),
            max_clock_skew: Duration::from_secs(10),
            dial_backoff_base: Duration::from_secs(1),
            dial_backoff_max: Duration::from_secs(60),
            isolated_backoff_max: Duration::from_secs(5),
            dial_jitter: Duration::from_millis(500),
            max_failed_dials: NonZeroU32::new(8).unwrap_or(NonZeroU32::MIN),
            unknown_after_failed_dials: NonZeroU32::MIN,
            stale_redial_interval: Duration::from_secs(600),
            address_policy: AddressPolicy::recommended(),
            mode: Mode::Gossip,
        }
    }

    /// For fast test networks: ping every second, redials from 200 ms up to 5 s, stale addresses
    /// retried every minute (the address
    /// policy of `recommended`: the nodes are on several hosts).
    pub fn aggressive(namespace: impl Into<Bytes>) -> Self {
        Self {
            ping_interval: Duration::from_secs(1),
            dial_backoff_base: Duration::from_millis(200),
            dial_backoff_max: Duration::from_secs(5),
            isolated_backoff_max: Duration::from_secs(1),
            dial_jitter: Duration::from_millis(100),
            max_failed_dials: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
            stale_redial_interval: Duration::from_secs(60),
            ..Self::recommended(namespace)
        }
    }

    /// For a handful of processes on one machine: ping every 250 ms, redials from 50 ms, stale
    /// addresses retried every 5 s, and
    /// loopback addresses accepted in records ([`AddressPolicy::local`]).
    pub fn local(namespace: impl Into<Bytes>) -> Self {
        Self {
            ping_interval: Duration::from_millis(250),
            dial_backoff_base: Duration::from_millis(50),
            dial_backoff_max: Duration::from_secs(1),
            isolated_backoff_max: Duration::from_millis(250),
            dial_jitter: Duration::from_millis(20),
            max_failed_dials: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
            stale_redial_interval: Duration::from_secs(5),
            address_policy: AddressPolicy::local(),
            ..Self::recommended(namespace)
        }
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
