//! `p2p-node soak`: the reliability soak. N member processes on loopback send random traffic
//! on three channels for minutes to hours while members are restarted (SIGTERM) or crashed
//! (SIGKILL) at random; at the end every message sent is accounted for and each member's
//! resident memory over time is checked for growth. `cargo xtask soak` builds the release
//! binary and runs it; `docs/reliability.md` explains the accounting and holds the figures.
//!
//! # Design
//!
//! One process per node, so resident memory is per node ([`coordinator`] samples
//! `/proc/<pid>/status`). A member ([`member`], the hidden `p2p-node soak-member`) runs one
//! `Network` and reports on standard output, one JSON line at a time ([`wire::Line`]):
//! - before each batch of sends, the sequence numbers it is about to use (`plan`), and after the
//!   batch the recipients the API refused, with the reason (`done`); a plan line reaches the
//!   coordinator before the messages it names are sent, so even a SIGKILL cannot hide a send;
//! - every 250 ms the sequence numbers delivered to it since the last report (`recv`);
//! - every second, and once more after shutdown, the library's drop counters (`metrics`).
//!
//! Every message carries, per recipient, a sequence number of its stream (sender,
//! incarnation, recipient, channel, priority) and a checksum ([`probe`]). The coordinator
//! rebuilds the sets of numbers attempted, refused, and delivered ([`intervals`]) and
//! reconciles them per sender ([`account`]).
//!
//! # Security
//!
//! Requires nothing: the soak is a test. Keys come from `insecure_from_seed`, every socket is
//! on 127.0.0.1, and members end when the coordinator does (standard input closes, and the
//! kernel's parent-death signal).

pub mod account;
pub mod coordinator;
pub mod intervals;
pub mod member;
pub mod probe;
pub mod wire;

use std::net::{Ipv4Addr, SocketAddr};

use p2p_identity::{Signer, ed25519};

/// Namespace of the soak network.
pub const NAMESPACE: &[u8] = b"_P2P_NODE_SOAK";
/// The only address the soak uses.
pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// One channel of the soak (the same on every member: ids and limits must match).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    /// Channel id.
    pub id: u8,
    /// Name in reports.
    pub name: &'static str,
    /// Quota per peer, messages per second (each direction).
    pub per_second: u32,
    /// Largest message, bytes.
    pub max_size: usize,
    /// Backlog per peer (and the receiver queue).
    pub backlog: usize,
    /// zstd level, if the channel compresses.
    pub zstd: Option<i32>,
}

/// Small control-like messages, always high priority; bursts on it fill backlogs on purpose.
pub const SMALL: ChannelSpec = ChannelSpec {
    id: 1,
    name: "small",
    per_second: 4000,
    max_size: 4096,
    backlog: 512,
    zstd: None,
};
/// Medium messages (1 to 16 KiB), both priorities.
pub const MEDIUM: ChannelSpec = ChannelSpec {
    id: 2,
    name: "medium",
    per_second: 1000,
    max_size: 64 * 1024,
    backlog: 256,
    zstd: None,
};
/// Large messages (many MiB before compression, often several 1 MiB frames after), zstd,
/// low priority, one recipient at a time.
pub const BULK: ChannelSpec = ChannelSpec {
    id: 3,
    name: "bulk",
    per_second: 20,
    max_size: 4 * 1024 * 1024,
    backlog: 16,
    zstd: Some(3),
};
/// Every channel, by id order.
pub const CHANNELS: [ChannelSpec; 3] = [SMALL, MEDIUM, BULK];

/// The key of node `index` in a soak seeded with `seed` (the same for every incarnation).
pub fn signer(seed: u64, index: u16) -> ed25519::PrivateKey {
    ed25519::PrivateKey::insecure_from_seed(
        seed.wrapping_mul(1 << 16).wrapping_add(u64::from(index)),
    )
}

/// The address of a member.
pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((LOOPBACK, port))
}

/// The nodes a member bootstraps from: nodes 0, 1 and 2, except itself (the coordinator
/// restarts at most one member at a time, so one of them is always up when `nodes >= 3`).
pub fn bootstrap_nodes(nodes: u16, me: u16) -> impl Iterator<Item = u16> {
    (0..nodes.min(3)).filter(move |&i| i != me)
}
