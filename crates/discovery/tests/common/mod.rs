//! The keys, clock and small builders the tracker test files share.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::net::SocketAddr;

use p2p_identity::{Signer, ed25519};
use p2p_proto::{Peer, Peers};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The identity scheme of these tests.
pub(crate) type Key = ed25519::PublicKey;
/// The namespace every record is signed in.
pub(crate) const NS: &[u8] = b"test-net";
/// "Now", in ms since the Unix epoch.
pub(crate) const NOW: u64 = 1_700_000_000_000;

/// The signer of test key `i`.
pub(crate) fn signer(i: u64) -> ed25519::PrivateKey {
    ed25519::PrivateKey::insecure_from_seed(i)
}

/// Test key `i`.
pub(crate) fn key(i: u64) -> Key {
    signer(i).public_key()
}

/// `127.0.0.1:port`.
pub(crate) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The seeded randomness of the tests.
pub(crate) fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(7)
}

/// A `Peers` message of one record.
pub(crate) fn one(p: Peer) -> Peers {
    Peers { peers: vec![p] }
}
