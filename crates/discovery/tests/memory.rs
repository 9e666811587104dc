//! Memory of one tracker that knows the records of 10,000 peers (ignored: run with --release).

use std::net::SocketAddr;
use std::num::NonZeroUsize;

use p2p_discovery::{Config, Tracker, sign_record};
use p2p_identity::{Signer, ed25519};
use p2p_proto::Peers;

const NS: &[u8] = b"mem";
const NOW: u64 = 1_700_000_000_000;

/// Resident set size of this process in bytes (Linux), 0 elsewhere.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

#[test]
#[ignore = "signs and verifies 10,000 records: run with --release (docs/discovery.md)"]
fn tracker_memory_10000() {
    const N: u64 = 10_000;
    let signers: Vec<ed25519::PrivateKey> = (0..N)
        .map(ed25519::PrivateKey::insecure_from_seed)
        .collect();
    let keys: Vec<_> = signers.iter().map(|s| s.public_key()).collect();
    let batches: Vec<Peers> = signers
        .iter()
        .enumerate()
        .skip(1)
        .collect::<Vec<_>>()
        .chunks(64)
        .map(|chunk| Peers {
            peers: chunk
                .iter()
                .map(|(i, s)| {
                    let addr = SocketAddr::from(([127, 0, (i >> 8) as u8, *i as u8], 9000));
                    sign_record(*s, NS, addr, NOW)
                })
                .collect(),
        })
        .collect();
    let before = rss();
    let mut config = Config::recommended(NS);
    config.max_peer_set_size = NonZeroUsize::new(N as usize).unwrap();
    // The records advertise loopback addresses.
    config.address_policy = p2p_discovery::AddressPolicy::local();
    let addr = SocketAddr::from(([127, 0, 0, 1], 9000));
    let mut t = Tracker::with_signer(config, &signers[0], addr, NOW, vec![]).unwrap();
    t.handle_peer_set(1, keys.clone()).unwrap();
    // The tracker copies what it keeps (DirectVerifier), as it would from a network frame.
    for batch in &batches {
        let o = t.handle_peers(&keys[1], batch.clone(), NOW).unwrap();
        assert_eq!(o.accepted, batch.peers.len());
    }
    let stats = t.stats();
    assert_eq!(stats[0].known, N as usize);
    let after = rss();
    let estimate = t.memory_estimate();
    eprintln!(
        "tracker with {N} peers: estimate {estimate} bytes ({:.2} MiB), RSS delta {} bytes ({:.2} MiB)",
        estimate as f64 / 1048576.0,
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / 1048576.0
    );
    assert!(estimate <= 16 << 20, "{estimate}");
    assert!(after.saturating_sub(before) <= 16 << 20);
}
