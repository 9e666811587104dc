//! Harnesses for the cargo-fuzz targets in `fuzz/` (enabled by the `fuzzing` feature).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use p2p_identity::{Signer, ed25519};
use p2p_proto::{BitVec, Peer, Peers, Signature as WireSignature};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::host::{Address, HostName, decode_address, encode_address};
use crate::{AddressPolicy, Config, Tracker, sign_record, sign_record_for};

/// Keys in the pool that the operations pick from (key 0 is the tracker's own).
const POOL: u8 = 12;

/// One record of a fuzzed `Peers` message.
#[derive(Arbitrary, Debug)]
pub struct FuzzRecord {
    signer: u8,
    port: u16,
    timestamp_delta: i32,
    /// Sign a host-name address (`h<n>.example:<port>`) instead of a loopback socket.
    host: Option<u8>,
    /// Replace the socket with these bytes.
    raw_socket: Option<Vec<u8>>,
    /// Replace the public key with these bytes.
    raw_key: Option<Vec<u8>>,
    /// Replace the signature with these bytes.
    raw_signature: Option<Vec<u8>>,
    no_signature: bool,
}

/// One input to the tracker.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// Register a peer set of pool keys (bit i of `members` = key i).
    PeerSet {
        /// Index.
        index: u8,
        /// Members.
        members: u16,
    },
    /// A bit vector from a pool key.
    BitVec {
        /// Sender.
        from: u8,
        /// Index.
        index: u8,
        /// Bits.
        bits: Vec<u8>,
    },
    /// Records from a pool key.
    Peers {
        /// Sender.
        from: u8,
        /// Records.
        records: Vec<FuzzRecord>,
    },
    /// A connection completed.
    Connected {
        /// Peer.
        peer: u8,
        /// Direction.
        dialed_by_me: bool,
    },
    /// A connection closed.
    Disconnected {
        /// Peer.
        peer: u8,
    },
    /// A dial failed.
    DialFailed {
        /// Peer.
        peer: u8,
    },
    /// Time passes.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Poll dials and pings.
    Poll,
    /// Our address changes.
    UpdateAddress {
        /// New port.
        port: u16,
    },
}

fn socket(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port.max(1))
}

fn host(n: u8, port: u16) -> Address {
    let name = HostName::parse(&format!("h{n}.example")).unwrap_or_else(|e| panic!("{e}"));
    Address::host(
        name,
        std::num::NonZeroU16::MIN.saturating_add(port.saturating_sub(1)),
    )
}

/// Decodes arbitrary bytes as a `Peer.socket` field and parses them as `host:port` text; a
/// decoded address must re-encode to exactly the same bytes, and a parsed name must be
/// canonical and re-parse to itself. Also feeds the policy filter of resolved addresses.
pub fn address(data: &[u8]) {
    if let Ok(address) = decode_address(data) {
        assert_eq!(encode_address(&address).as_bytes(), data);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(address) = text.parse::<Address>()
        && let Address::Host { name, .. } = &address
    {
        assert!(name.as_str().len() <= crate::host::MAX_HOST_NAME_LEN);
        assert_eq!(
            HostName::from_wire(name.as_str().as_bytes()).as_ref(),
            Ok(name)
        );
        assert_eq!(
            decode_address(encode_address(&address).as_bytes()),
            Ok(address.clone())
        );
    }
    let resolved = data.chunks_exact(6).map(|c| {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
            u16::from_be_bytes([c[4], c[5]]),
        )
    });
    if let Ok(targets) = crate::host::select_targets(&AddressPolicy::recommended(), resolved) {
        assert!(!targets.is_empty() && targets.len() <= crate::host::MAX_DIAL_TARGETS);
    }
}

/// Feeds the tracker an arbitrary sequence of operations; panics only on a broken invariant.
pub fn tracker_ops(data: &[u8]) {
    let u = Unstructured::new(data);
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(u) else {
        return;
    };
    let signers: Vec<ed25519::PrivateKey> = (0..u64::from(POOL))
        .map(ed25519::PrivateKey::insecure_from_seed)
        .collect();
    let keys: Vec<ed25519::PublicKey> = signers.iter().map(|s| s.public_key()).collect();
    let mut config = Config::local(&b"fuzz"[..]);
    config.max_gossip_records = NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN);
    config.max_records_per_message = NonZeroUsize::new(6).unwrap_or(NonZeroUsize::MIN);
    config.max_peer_set_size = NonZeroUsize::new(10).unwrap_or(NonZeroUsize::MIN);
    let ns = config.namespace.clone();
    let mut now: u64 = 1_000_000;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let Ok(mut tracker) = Tracker::with_signer(
        config.clone(),
        &signers[0],
        socket(1),
        now,
        vec![(keys[1].clone(), socket(2).into())],
    ) else {
        panic!("own record must verify");
    };
    let key = |i: u8| keys[usize::from(i % POOL)].clone();
    for op in ops.into_iter().take(256) {
        match op {
            Op::PeerSet { index, members } => {
                let set: Vec<_> = (0..POOL)
                    .filter(|i| members & (1 << i) != 0)
                    .map(key)
                    .collect();
                let _ = tracker.handle_peer_set(u64::from(index), set);
                for evicted in tracker.take_evictions() {
                    assert!(!tracker.is_authorized(&evicted));
                }
            }
            Op::BitVec { from, index, bits } => {
                let bv = BitVec {
                    index: u64::from(index),
                    bits: Bytes::from(bits),
                };
                if let Ok(Some(answer)) = tracker.handle_bit_vec(&key(from), &bv, &mut rng) {
                    assert!(!answer.peers.is_empty());
                    assert!(answer.peers.len() <= config.max_gossip_records.get());
                }
            }
            Op::Peers { from, records } => {
                let peers = records
                    .into_iter()
                    .map(|r| {
                        let signer = &signers[usize::from(r.signer % POOL)];
                        let ts = now.saturating_add_signed(i64::from(r.timestamp_delta));
                        let mut p = match r.host {
                            Some(h) => sign_record_for(signer, &ns, &host(h, r.port), ts),
                            None => sign_record(signer, &ns, socket(r.port), ts),
                        };
                        if let Some(raw) = r.raw_socket {
                            p.socket = Bytes::from(raw);
                        }
                        if let Some(sig) = p.signature.as_mut() {
                            if let Some(raw) = r.raw_key {
                                sig.public_key = Bytes::from(raw);
                            }
                            if let Some(raw) = r.raw_signature {
                                sig.signature = Bytes::from(raw);
                            }
                        }
                        if r.no_signature {
                            p.signature = None::<WireSignature>;
                        }
                        p
                    })
                    .collect::<Vec<Peer>>();
                let _ = tracker.handle_peers(&key(from), Peers { peers }, now);
            }
            Op::Connected { peer, dialed_by_me } => {
                let k = key(peer);
                let ok = tracker.handle_connected(&k, dialed_by_me).is_ok();
                assert_eq!(ok, tracker.is_authorized(&k));
            }
            Op::Disconnected { peer } => {
                let _ = tracker.handle_disconnected(&key(peer), now, &mut rng);
            }
            Op::DialFailed { peer } => {
                let _ = tracker.handle_dial_failed(&key(peer), now, &mut rng);
            }
            Op::Advance { ms } => now += u64::from(ms),
            Op::Poll => {
                // The walk-skipping hint never hides a due dial.
                let due = tracker.due_dials_uncached(now);
                let dials = tracker.poll_dials(now);
                for k in &due {
                    assert!(dials.iter().any(|(d, _)| d == k), "due but not dialed");
                }
                for (k, _) in dials {
                    assert_ne!(&k, tracker.me());
                    assert!(tracker.is_authorized(&k));
                    assert!(!tracker.is_connected(&k));
                }
                if let Some(bv) = tracker.poll_ping(now, &mut rng) {
                    let stats = tracker.stats();
                    let set = stats.iter().find(|s| s.index == bv.index);
                    assert!(set.is_some_and(|s| s.peers.div_ceil(8) == bv.bits.len()));
                }
            }
            Op::UpdateAddress { port } => {
                let before = tracker.my_record().timestamp;
                if let Ok(rec) = tracker.update_my_address(&signers[0], socket(port), now) {
                    assert!(rec.timestamp > before);
                }
            }
        }
        for s in tracker.stats() {
            assert!(s.known <= s.peers && s.connected <= s.peers);
        }
        // The bit vectors and counts kept up to date as slots change agree with the ones
        // counted from scratch.
        assert_eq!(tracker.stats(), tracker.stats_uncached());
        let indexes: Vec<u64> = tracker.tracked_indexes().collect();
        for index in indexes {
            let uncached = tracker.bit_vec_uncached(index);
            assert_eq!(tracker.bit_vec(index), uncached);
        }
    }
}
