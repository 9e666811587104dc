//! Tracker behaviour: peer sets, validation of vectors and records, gossip, dials.

mod common;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use bytes::Bytes;
use p2p_discovery::{
    AddressPolicy, AddressRefusal, Config, Error, KeepConnection, SocketError, Tracker,
    resolve_duplicate, sign_record,
};
use p2p_identity::{KeyError, SignatureError, Signer, Verifier, bls12381};
use p2p_proto::{BitVec, Peer, Peers};
use rand_chacha::ChaCha8Rng;

use common::{Key, NOW, NS, addr, key, one, rng, signer};

fn config() -> Config {
    let mut c = Config::recommended(NS);
    c.max_gossip_records = NonZeroUsize::new(4).unwrap();
    c.max_records_per_message = NonZeroUsize::new(8).unwrap();
    c.tracked_indexes = NonZeroUsize::new(2).unwrap();
    c.max_peer_set_size = NonZeroUsize::new(64).unwrap();
    c.dial_backoff_base = Duration::from_millis(100);
    c.dial_backoff_max = Duration::from_millis(1000);
    c.dial_jitter = Duration::from_millis(10);
    c.max_failed_dials = NonZeroU32::new(3).unwrap();
    c.max_clock_skew = Duration::from_secs(5);
    c.ping_interval = Duration::from_secs(1);
    // Every address of these tests is on loopback.
    c.address_policy = AddressPolicy::local();
    c
}

/// A tracker for key 0 at port 1000, without bootstrappers.
fn tracker() -> Tracker<Key> {
    Tracker::with_signer(config(), &signer(0), addr(1000), NOW, vec![]).unwrap()
}

fn record(i: u64, port: u16, ts: u64) -> Peer {
    sign_record(&signer(i), NS, addr(port), ts)
}

fn keys(ids: &[u64]) -> Vec<Key> {
    ids.iter().map(|&i| key(i)).collect()
}

/// Position of key `i` in the sorted set of `ids`.
fn pos(ids: &[u64], i: u64) -> usize {
    let mut k = keys(ids);
    k.sort();
    k.binary_search(&key(i)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

#[test]
fn new_rejects_foreign_record() {
    let r = Tracker::new(config(), key(0), record(1, 1000, NOW), vec![]);
    assert_eq!(r.err(), Some(Error::NotMyKey));
    let mut bad = record(0, 1000, NOW);
    bad.timestamp += 1;
    let r = Tracker::new(config(), key(0), bad, vec![]);
    assert_eq!(r.err(), Some(Error::BadSignature));
}

// ---------------------------------------------------------------------------------------------
// Peer sets
// ---------------------------------------------------------------------------------------------

#[test]
fn peer_set_sorted_and_deduplicated() {
    let mut t = tracker();
    t.handle_peer_set(1, keys(&[3, 1, 2, 3, 0, 1])).unwrap();
    let stats = t.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].peers, 4);
    // Only we are known: our own bit.
    assert_eq!(stats[0].known, 1);
    let bv = t.bit_vec(1).unwrap();
    assert_eq!(bv.bits.len(), 1);
    assert_eq!(bv.bits[0], 1 << pos(&[0, 1, 2, 3], 0));
    let listed: Vec<Key> = t.records().map(|(k, _)| k.clone()).collect();
    let mut sorted = keys(&[0, 1, 2, 3]);
    sorted.sort();
    assert_eq!(listed, sorted);
}

#[test]
fn peer_set_limits() {
    let mut t = tracker();
    let big: Vec<Key> = (0..65).map(key).collect();
    assert_eq!(
        t.handle_peer_set(1, big),
        Err(Error::PeerSetTooLarge { got: 65, max: 64 })
    );
    t.handle_peer_set(5, keys(&[1])).unwrap();
    assert_eq!(
        t.handle_peer_set(5, keys(&[2])),
        Err(Error::PeerSetExists { index: 5 })
    );
    t.handle_peer_set(6, keys(&[2])).unwrap();
    assert_eq!(
        t.handle_peer_set(4, keys(&[3])),
        Err(Error::PeerSetTooOld {
            index: 4,
            oldest: 5
        })
    );
}

#[test]
fn rotation_forgets_old_sets_and_evicts() {
    let mut t = Tracker::with_signer(
        config(),
        &signer(0),
        addr(1000),
        NOW,
        vec![(key(9), addr(9).into())],
    )
    .unwrap();
    t.handle_peer_set(1, keys(&[0, 1, 2, 9])).unwrap();
    t.handle_peer_set(2, keys(&[0, 1, 3])).unwrap();
    for i in [1, 2, 3, 9] {
        assert!(t.is_authorized(&key(i)));
    }
    t.handle_connected(&key(2), true).unwrap();
    t.handle_connected(&key(9), true).unwrap();
    assert!(t.take_evictions().is_empty());
    // Index 3 pushes index 1 out (two tracked indexes).
    t.handle_peer_set(3, keys(&[0, 3, 4])).unwrap();
    assert_eq!(t.tracked_indexes().collect::<Vec<_>>(), vec![2, 3]);
    assert!(!t.is_authorized(&key(2)), "only in the forgotten set");
    assert!(t.is_authorized(&key(1)), "still in set 2");
    assert!(t.is_authorized(&key(9)), "bootstrappers stay authorized");
    assert!(t.is_authorized(&key(4)));
    assert!(!t.is_authorized(&key(0)), "never ourselves");
    assert_eq!(t.take_evictions(), vec![key(2)]);
    assert!(t.take_evictions().is_empty());
    assert!(t.bit_vec(1).is_none());
    assert_eq!(
        t.handle_connected(&key(2), false),
        Err(Error::NotAuthorized)
    );
}

#[test]
fn records_survive_rotation_for_keys_that_stay() {
    let mut t = tracker();
    t.handle_peer_set(1, keys(&[0, 1, 2])).unwrap();
    t.handle_peers(&key(1), one(record(1, 2001, NOW)), NOW)
        .unwrap();
    t.handle_peer_set(2, keys(&[1, 5])).unwrap();
    t.handle_peer_set(3, keys(&[1, 6])).unwrap();
    assert_eq!(t.record(&key(1)).unwrap().socket(), Some(addr(2001)));
    let bv = t.bit_vec(3).unwrap();
    assert_eq!(bv.bits[0], 1 << pos(&[1, 6], 1));
}

// ---------------------------------------------------------------------------------------------
// Bit vectors
// ---------------------------------------------------------------------------------------------

fn ten() -> (Tracker<Key>, Vec<u64>) {
    let ids: Vec<u64> = (0..10).collect();
    let mut t = tracker();
    t.handle_peer_set(7, keys(&ids)).unwrap();
    (t, ids)
}

/// `ten()` with key 2's record (port 2002) learned from key 1; also returns key 2's position.
fn ten_knowing_2() -> (Tracker<Key>, usize) {
    let (mut t, ids) = ten();
    t.handle_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    (t, pos(&ids, 2))
}

/// Whether bit `p` of our vector for set 7 is set.
fn bit(t: &mut Tracker<Key>, p: usize) -> bool {
    t.bit_vec(7).unwrap().bits[p / 8] & (1 << (p % 8)) != 0
}

/// Whether our answer to key 1's empty vector for set 7 (it knows nothing) holds key `i`'s
/// record (we always have something to answer with: our own record).
fn gossips(t: &mut Tracker<Key>, r: &mut ChaCha8Rng, i: u64) -> bool {
    let empty = BitVec {
        index: 7,
        bits: Bytes::from_static(&[0, 0]),
    };
    let answer = t.handle_bit_vec(&key(1), &empty, r).unwrap().unwrap();
    answer
        .peers
        .iter()
        .any(|p| &p.signature.as_ref().unwrap().public_key[..] == key(i).as_bytes())
}

/// Dials key 2 and fails, three times 1010 ms apart from `now` (the config's
/// `max_failed_dials`: its address is then stale); returns the time 1010 ms after the last.
fn fail_key_2_until_stale(t: &mut Tracker<Key>, r: &mut ChaCha8Rng, mut now: u64) -> u64 {
    for _ in 0..3 {
        assert_eq!(t.poll_dials(now), vec![(key(2), addr(2002).into())]);
        t.handle_dial_failed(&key(2), now, r).unwrap();
        now += 1_010;
    }
    now
}

#[test]
fn bit_order_is_lsb_first() {
    let (mut t, ids) = ten();
    // Learn the key at sorted position 9: byte 1, bit 1.
    let mut sorted = keys(&ids);
    sorted.sort();
    let ninth = (0..10).find(|&i| key(i) == sorted[9]).unwrap();
    if ninth != 0 {
        t.handle_peers(&key(ninth), one(record(ninth, 2000, NOW)), NOW)
            .unwrap();
    }
    let bv = t.bit_vec(7).unwrap();
    assert_eq!(bv.bits.len(), 2);
    assert_eq!(bv.bits[1], 0b10);
    let me = pos(&ids, 0);
    assert_ne!(bv.bits[me / 8] & (1 << (me % 8)), 0);
}

#[test]
fn bit_vec_validation() {
    let (mut t, _) = ten();
    let mut r = rng();
    let from = key(1);
    let bv = |index, bits: &[u8]| BitVec {
        index,
        bits: Bytes::copy_from_slice(bits),
    };
    assert_eq!(
        t.handle_bit_vec(&from, &bv(8, &[0, 0]), &mut r),
        Err(Error::UnknownIndex { index: 8 })
    );
    assert_eq!(
        t.handle_bit_vec(&from, &bv(7, &[0]), &mut r),
        Err(Error::WrongBitLength {
            index: 7,
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        t.handle_bit_vec(&from, &bv(7, &[0, 0, 0]), &mut r),
        Err(Error::WrongBitLength {
            index: 7,
            expected: 2,
            got: 3
        })
    );
    // 10 keys: bits 10..16 of the vector are padding.
    assert_eq!(
        t.handle_bit_vec(&from, &bv(7, &[0, 0b100]), &mut r),
        Err(Error::NonzeroPadding { index: 7 })
    );
    assert_eq!(
        t.handle_bit_vec(&key(99), &bv(7, &[0xff, 0b11]), &mut r),
        Err(Error::UnauthorizedSender)
    );
    // Valid, and the sender knows everything: no answer.
    assert_eq!(
        t.handle_bit_vec(&from, &bv(7, &[0xff, 0b11]), &mut r),
        Ok(None)
    );
    assert!(
        Error::WrongBitLength {
            index: 0,
            expected: 0,
            got: 1
        }
        .is_fatal()
    );
    assert!(!Error::UnknownIndex { index: 0 }.is_fatal());
}

#[test]
fn gossip_answers_what_the_sender_lacks_up_to_the_maximum() {
    let (mut t, ids) = ten();
    let mut r = rng();
    for i in 1..10 {
        t.handle_peers(&key(i), one(record(i, 2000 + i as u16, NOW)), NOW)
            .unwrap();
    }
    // Sender 1 knows only itself: it lacks 9 records, gets the maximum (4), never its own.
    let mut bits = [0u8; 2];
    let p1 = pos(&ids, 1);
    bits[p1 / 8] |= 1 << (p1 % 8);
    let vec = BitVec {
        index: 7,
        bits: Bytes::copy_from_slice(&bits),
    };
    let answer = t.handle_bit_vec(&key(1), &vec, &mut r).unwrap().unwrap();
    assert_eq!(answer.peers.len(), 4);
    for p in &answer.peers {
        let sig = p.signature.as_ref().unwrap();
        assert_ne!(&sig.public_key[..], key(1).as_bytes());
    }
    // Sender lacks its own bit only: nothing to send (we never send it its own record).
    let all_but_1 = {
        let mut b = [0xffu8, 0b11];
        b[p1 / 8] &= !(1 << (p1 % 8));
        b
    };
    let vec = BitVec {
        index: 7,
        bits: Bytes::copy_from_slice(&all_but_1),
    };
    assert_eq!(t.handle_bit_vec(&key(1), &vec, &mut r), Ok(None));
}

#[test]
fn gossip_prefers_connected_peers() {
    let ids: Vec<u64> = (1..=10).collect(); // we (key 0) are not in the set
    let mut c = config();
    c.max_gossip_records = NonZeroUsize::new(2).unwrap();
    let mut t = Tracker::with_signer(c, &signer(0), addr(1000), NOW, vec![]).unwrap();
    t.handle_peer_set(7, keys(&ids)).unwrap();
    for i in 1..=10 {
        t.handle_peers(&key(i), one(record(i, 2000 + i as u16, NOW)), NOW)
            .unwrap();
    }
    t.handle_connected(&key(4), true).unwrap();
    t.handle_connected(&key(6), false).unwrap();
    let mut r = rng();
    for _ in 0..10 {
        let vec = BitVec {
            index: 7,
            bits: Bytes::from_static(&[0, 0]),
        };
        let answer = t.handle_bit_vec(&key(1), &vec, &mut r).unwrap().unwrap();
        let mut got: Vec<Bytes> = answer
            .peers
            .iter()
            .map(|p| p.signature.as_ref().unwrap().public_key.clone())
            .collect();
        got.sort();
        let mut want = vec![
            Bytes::copy_from_slice(key(4).as_bytes()),
            Bytes::copy_from_slice(key(6).as_bytes()),
        ];
        want.sort();
        assert_eq!(got, want);
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

#[test]
fn record_validation() {
    let (mut t, _) = ten();
    let from = key(1);
    // Too many records: rejected before looking at any.
    let many = Peers {
        peers: (0..9).map(|_| record(2, 2000, NOW)).collect(),
    };
    assert_eq!(
        t.handle_peers(&from, many, NOW),
        Err(Error::TooManyRecords { got: 9, max: 8 })
    );
    assert!(t.record(&key(2)).is_none());
    // Unauthorized sender.
    assert_eq!(
        t.handle_peers(&key(99), one(record(2, 2000, NOW)), NOW),
        Err(Error::UnauthorizedSender)
    );
    // Missing signature.
    let mut p = record(2, 2000, NOW);
    p.signature = None;
    assert_eq!(
        t.handle_peers(&from, one(p), NOW),
        Err(Error::MissingSignature)
    );
    // Malformed key.
    let mut p = record(2, 2000, NOW);
    p.signature.as_mut().unwrap().public_key = Bytes::from_static(&[1, 2, 3]);
    assert_eq!(
        t.handle_peers(&from, one(p), NOW),
        Err(Error::MalformedKey(KeyError::WrongLength {
            expected: 32,
            got: 3
        }))
    );
    // Malformed socket.
    let mut p = record(2, 2000, NOW);
    p.socket = Bytes::from_static(&[9, 1, 2]);
    assert_eq!(
        t.handle_peers(&from, one(p), NOW),
        Err(Error::MalformedSocket(SocketError::UnknownFamily(9)))
    );
    // Malformed signature.
    let mut p = record(2, 2000, NOW);
    p.signature.as_mut().unwrap().signature = Bytes::from_static(&[0; 10]);
    assert_eq!(
        t.handle_peers(&from, one(p), NOW),
        Err(Error::MalformedSignature(SignatureError::WrongLength {
            expected: 64,
            got: 10
        }))
    );
    // Bad signature: signed in another namespace; and a tampered timestamp.
    let p = sign_record(&signer(2), b"other-net", addr(2000), NOW);
    assert_eq!(t.handle_peers(&from, one(p), NOW), Err(Error::BadSignature));
    let mut p = record(2, 2000, NOW);
    p.timestamp -= 1;
    assert_eq!(t.handle_peers(&from, one(p), NOW), Err(Error::BadSignature));
    // Signed by someone else's key but claiming key 2.
    let mut p = record(3, 2000, NOW);
    p.signature.as_mut().unwrap().public_key = Bytes::copy_from_slice(key(2).as_bytes());
    assert_eq!(t.handle_peers(&from, one(p), NOW), Err(Error::BadSignature));
    assert!(t.record(&key(2)).is_none());
    // Non-fatal: unauthorized signer and future timestamp drop only that record.
    let msg = Peers {
        peers: vec![
            record(99, 2000, NOW),
            record(3, 2003, NOW + 5_001),
            record(2, 2002, NOW + 5_000),
        ],
    };
    let outcome = t.handle_peers(&from, msg, NOW).unwrap();
    assert_eq!(outcome.accepted, 1);
    assert_eq!(
        outcome.dropped,
        vec![
            Error::UnauthorizedSigner,
            Error::FutureTimestamp {
                timestamp: NOW + 5_001,
                now: NOW,
                max_skew_ms: 5_000
            }
        ]
    );
    assert_eq!(t.record(&key(2)).unwrap().socket(), Some(addr(2002)));
    assert!(t.record(&key(3)).is_none());
}

#[test]
fn fatal_record_stops_processing_but_keeps_earlier_records() {
    let (mut t, _) = ten();
    let mut bad = record(3, 2003, NOW);
    bad.socket = Bytes::new();
    let msg = Peers {
        peers: vec![record(2, 2002, NOW), bad, record(4, 2004, NOW)],
    };
    assert_eq!(
        t.handle_peers(&key(1), msg, NOW),
        Err(Error::MalformedSocket(SocketError::Empty))
    );
    assert!(t.record(&key(2)).is_some());
    assert!(t.record(&key(4)).is_none());
}

#[test]
fn newer_records_replace_older_are_ignored() {
    let (mut t, _) = ten();
    let from = key(1);
    let o = t
        .handle_peers(&from, one(record(2, 2000, NOW)), NOW)
        .unwrap();
    assert_eq!(o.accepted, 1);
    let o = t
        .handle_peers(&from, one(record(2, 2001, NOW)), NOW)
        .unwrap();
    assert_eq!(
        (o.accepted, o.ignored),
        (0, 1),
        "equal timestamp is ignored"
    );
    let o = t
        .handle_peers(&from, one(record(2, 2001, NOW - 1)), NOW)
        .unwrap();
    assert_eq!((o.accepted, o.ignored), (0, 1), "older is ignored");
    // An ignored old record is not even signature-checked (replay costs nothing).
    let mut forged = record(2, 2009, NOW - 5);
    forged.signature.as_mut().unwrap().signature = Bytes::from(vec![0u8; 64]);
    let o = t.handle_peers(&from, one(forged), NOW).unwrap();
    assert_eq!(o.ignored, 1);
    assert_eq!(t.record(&key(2)).unwrap().socket(), Some(addr(2000)));
    let o = t
        .handle_peers(&from, one(record(2, 2001, NOW + 1)), NOW)
        .unwrap();
    assert_eq!(o.accepted, 1);
    assert_eq!(t.record(&key(2)).unwrap().socket(), Some(addr(2001)));
    // Records about ourselves never replace our own.
    let o = t
        .handle_peers(&from, one(record(0, 3000, NOW + 10)), NOW)
        .unwrap();
    assert_eq!(o.ignored, 1);
    assert_eq!(t.my_record().timestamp, NOW);
}

#[test]
fn update_my_address() {
    let mut t = tracker();
    t.handle_peer_set(1, keys(&[0, 1])).unwrap();
    assert_eq!(
        t.update_my_address(&signer(1), addr(5), NOW),
        Err(Error::NotMyKey)
    );
    // The clock went back: the new record is still newer.
    let p = t
        .update_my_address(&signer(0), addr(1001), NOW - 10)
        .unwrap();
    assert_eq!(p.timestamp, NOW + 1);
    assert_eq!(t.my_record(), p);
    // Another tracker accepts it as a replacement.
    let mut other = Tracker::with_signer(config(), &signer(1), addr(7), NOW, vec![]).unwrap();
    other.handle_peer_set(1, keys(&[0, 1])).unwrap();
    other
        .handle_peers(&key(0), one(record(0, 1000, NOW)), NOW)
        .unwrap();
    other.handle_peers(&key(0), one(p), NOW).unwrap();
    assert_eq!(other.record(&key(0)).unwrap().socket(), Some(addr(1001)));
}

#[test]
fn works_with_bls() {
    let s0 = bls12381::PrivateKey::insecure_from_seed(0);
    let s1 = bls12381::PrivateKey::insecure_from_seed(1);
    let mut t = Tracker::with_signer(config(), &s0, addr(1000), NOW, vec![]).unwrap();
    t.handle_peer_set(1, vec![s0.public_key(), s1.public_key()])
        .unwrap();
    let p = sign_record(&s1, NS, addr(2000), NOW);
    let o = t
        .handle_peers(&s1.public_key(), one(p.clone()), NOW)
        .unwrap();
    assert_eq!(o.accepted, 1);
    let mut bad = p;
    bad.timestamp += 1;
    assert_eq!(
        t.handle_peers(&s1.public_key(), one(bad), NOW),
        Err(Error::BadSignature)
    );
}

// ---------------------------------------------------------------------------------------------
// Dials
// ---------------------------------------------------------------------------------------------

#[test]
fn dials_known_unconnected_peers_once() {
    let (mut t, _) = ten();
    assert!(t.poll_dials(NOW).is_empty());
    t.handle_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    t.handle_peers(&key(1), one(record(3, 2003, NOW)), NOW)
        .unwrap();
    t.handle_connected(&key(3), false).unwrap();
    assert_eq!(t.poll_dials(NOW), vec![(key(2), addr(2002).into())]);
    // In flight: not returned again.
    assert!(t.poll_dials(NOW + 10_000).is_empty());
    t.handle_connected(&key(2), true).unwrap();
    assert!(t.poll_dials(NOW + 10_000).is_empty());
    // Disconnected: redialed after the base backoff (+ jitter < 10 ms).
    t.handle_disconnected(&key(2), NOW, &mut rng()).unwrap();
    assert!(t.poll_dials(NOW + 99).is_empty());
    assert_eq!(t.poll_dials(NOW + 150), vec![(key(2), addr(2002).into())]);
}

/// The first failed dial clears the bit (`unknown_after_failed_dials` = 1 in every preset) for
/// the next ping, so peers send any newer record, while the record is still gossiped and its
/// address redialed at the doubling backoff; `max_failed_dials` (3 here) failures make it stale (redialed only once per
/// `stale_redial_interval`, not gossiped) until a newer record arrives.
#[test]
fn backoff_doubles_the_bit_clears_at_the_first_failure_and_the_address_goes_stale_later() {
    let (mut t, ids) = ten();
    let mut r = rng();
    t.handle_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    let p2 = pos(&ids, 2);
    let bit = |t: &mut Tracker<Key>| t.bit_vec(7).unwrap().bits[p2 / 8] & (1 << (p2 % 8)) != 0;
    assert!(bit(&mut t));
    let mut now = NOW;
    // Failures 1 and 2: delays 100 ms and 200 ms (+ a random part below half of it); the bit
    // is 0 from the first failure on, but the address is still dialed.
    for delay in [100, 200] {
        assert_eq!(t.poll_dials(now), vec![(key(2), addr(2002).into())]);
        t.handle_dial_failed(&key(2), now, &mut r).unwrap();
        assert!(!bit(&mut t));
        assert!(t.poll_dials(now + delay - 1).is_empty());
        now += delay + delay / 2;
    }
    // Suspect, not stale: the record is still gossiped to a peer that lacks it.
    assert!(gossips(&mut t, &mut r, 2));
    assert!(t.record(&key(2)).is_some());
    // A peer answering our vector sends the record it has: the same one changes nothing.
    let o = t
        .handle_peers(&key(1), one(record(2, 2002, NOW)), now)
        .unwrap();
    assert_eq!(o.ignored, 1);
    assert!(!bit(&mut t));
    // The bit is 0 in one ping only: the pings after it do not ask again until the next
    // failed dial.
    let ping = t.poll_ping(now, &mut r).unwrap();
    assert_eq!(ping.bits[p2 / 8] & (1 << (p2 % 8)), 0);
    assert!(bit(&mut t));
    assert_eq!(t.stats(), t.stats_uncached());
    // Third failure: the address is stale (bit 0, not dialed, not gossiped).
    assert_eq!(t.poll_dials(now), vec![(key(2), addr(2002).into())]);
    t.handle_dial_failed(&key(2), now, &mut r).unwrap();
    assert!(!bit(&mut t));
    assert!(t.record(&key(2)).is_none());
    // A stale address is retried only once per `stale_redial_interval` (10 min in this
    // preset) after its backoff (400 ms + up to 200 ms).
    let stale = 600_000;
    assert!(t.poll_dials(now + stale + 399).is_empty());
    assert!(!gossips(&mut t, &mut r, 2));
    // The same record again does not revive it; a newer one does.
    let o = t
        .handle_peers(&key(1), one(record(2, 2002, NOW)), now)
        .unwrap();
    assert_eq!(o.ignored, 1);
    assert!(!bit(&mut t));
    t.handle_peers(&key(1), one(record(2, 2012, NOW + 1)), now)
        .unwrap();
    assert!(bit(&mut t));
    assert_eq!(t.poll_dials(now), vec![(key(2), addr(2012).into())]);
}

/// With `unknown_after_failed_dials` equal to `max_failed_dials`, the bit stays 1 until the
/// address is stale (the behaviour before the setting existed); the bit comes back when the
/// peer connects, even inbound.
#[test]
fn the_bit_clears_after_the_configured_number_of_failures_and_a_connection_sets_it() {
    let mut config = config();
    config.unknown_after_failed_dials = NonZeroU32::new(2).unwrap();
    let mut t = Tracker::with_signer(config, &signer(0), addr(1000), NOW, vec![]).unwrap();
    let ids: Vec<u64> = (0..10).collect();
    t.handle_peer_set(7, keys(&ids)).unwrap();
    t.handle_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    let p2 = pos(&ids, 2);
    let mut r = rng();
    assert_eq!(t.poll_dials(NOW), vec![(key(2), addr(2002).into())]);
    t.handle_dial_failed(&key(2), NOW, &mut r).unwrap();
    assert!(bit(&mut t, p2));
    assert_eq!(t.poll_dials(NOW + 150), vec![(key(2), addr(2002).into())]);
    t.handle_dial_failed(&key(2), NOW + 150, &mut r).unwrap();
    assert!(!bit(&mut t, p2));
    assert_eq!(t.stats()[0].known, t.stats_uncached()[0].known);
    // A connection in either direction sets it again: the peer sends its current record
    // right after the handshake, so there is nothing newer to ask others for.
    t.handle_connected(&key(2), false).unwrap();
    assert!(bit(&mut t, p2));
    assert_eq!(t.stats(), t.stats_uncached());
}

/// Peers that lost each other for longer than a few backoffs (a partition) must find each other
/// again although no newer record comes: records are signed once per start. A stale address is
/// retried once per `stale_redial_interval`; a failed retry waits another interval, a retry
/// that connects revives the address (bit 1, gossiped, redialed at the base backoff).
#[test]
fn a_stale_address_is_retried_once_per_stale_interval_and_revived_by_a_connection() {
    let (mut t, p2) = ten_knowing_2();
    let mut r = rng();
    let mut now = fail_key_2_until_stale(&mut t, &mut r, NOW);
    assert!(!bit(&mut t, p2));
    // Failure 3 at `now - 1010` waits 400 ms (+ up to 200 ms), then the 10 min stale interval.
    let stale = 600_000;
    assert!(t.poll_dials(now - 1_010 + stale + 399).is_empty());
    now = now - 1_010 + stale + 600;
    assert_eq!(t.poll_dials(now), vec![(key(2), addr(2002).into())]);
    // The retry fails: stale still, next retry one more interval (after 800 ms of backoff,
    // plus up to 400 ms).
    t.handle_dial_failed(&key(2), now, &mut r).unwrap();
    assert!(!bit(&mut t, p2));
    assert!(t.poll_dials(now + stale + 799).is_empty());
    now += stale + 1_200;
    assert_eq!(t.poll_dials(now), vec![(key(2), addr(2002).into())]);
    // The retry connects: the address is proven, the bit is back and the record is gossiped.
    t.handle_connected(&key(2), true).unwrap();
    assert!(bit(&mut t, p2));
    assert_eq!(t.record(&key(2)).and_then(|r| r.socket()), Some(addr(2002)));
    // After a disconnection it is redialed at the base backoff, not the stale interval.
    t.handle_disconnected(&key(2), now, &mut r).unwrap();
    assert_eq!(t.poll_dials(now + 110), vec![(key(2), addr(2002).into())]);
}

/// An inbound connection from a peer with a stale address proves nothing about that address:
/// the mark stays.
#[test]
fn an_inbound_connection_does_not_revive_a_stale_address() {
    let (mut t, p2) = ten_knowing_2();
    fail_key_2_until_stale(&mut t, &mut rng(), NOW);
    t.handle_connected(&key(2), false).unwrap();
    assert!(!bit(&mut t, p2));
    assert!(t.record(&key(2)).is_none());
}

#[test]
fn backoff_is_capped() {
    let mut c = config();
    c.max_failed_dials = NonZeroU32::new(100).unwrap();
    let mut t2 = Tracker::with_signer(c, &signer(0), addr(1000), NOW, vec![]).unwrap();
    t2.handle_peer_set(7, (0..10).map(key).collect()).unwrap();
    t2.handle_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    let mut r = rng();
    let mut now = NOW;
    for _ in 0..12 {
        assert_eq!(t2.poll_dials(now).len(), 1);
        t2.handle_dial_failed(&key(2), now, &mut r).unwrap();
        // Uncapped, the 12th delay would be 100 ms * 2^11; it is at most max (1000 ms) plus
        // half of it, so the peer is due again 1500 ms later (asserted at the top of the loop).
        now += 1_500;
    }
}

#[test]
fn bootstrappers_always_dialed_never_stale() {
    let mut t = Tracker::with_signer(
        config(),
        &signer(0),
        addr(1000),
        NOW,
        vec![
            (key(5), addr(5005).into()),
            (key(0), addr(1).into()),
            (key(5), addr(1).into()),
        ],
    )
    .unwrap();
    // No peer set needed; ourselves and duplicates dropped.
    assert_eq!(t.poll_dials(NOW), vec![(key(5), addr(5005).into())]);
    let mut r = rng();
    let mut now = NOW;
    for _ in 0..10 {
        t.handle_dial_failed(&key(5), now, &mut r).unwrap();
        // At most the capped backoff (1 s) plus half of it.
        now += 1_500;
        assert_eq!(t.poll_dials(now), vec![(key(5), addr(5005).into())]);
    }
    t.handle_connected(&key(5), true).unwrap();
    assert!(t.is_connected(&key(5)));
    assert!(t.poll_dials(now + 100_000).is_empty());
}

/// While connected to nobody, a failed bootstrapper dial is retried after at most
/// `isolated_backoff_max` (plus its spread), not the doubling backoff: a node refused by a
/// busy bootstrapper at start does not wait for minutes. Once it is connected to anyone, the
/// bootstrapper's failures back off as any peer's.
#[test]
fn an_isolated_node_retries_its_bootstrapper_without_long_backoffs() {
    let mut c = config();
    c.dial_backoff_max = Duration::from_secs(8);
    c.isolated_backoff_max = Duration::from_millis(300);
    let boots = vec![(key(5), addr(5005).into())];
    let mut t = Tracker::with_signer(c, &signer(0), addr(1000), NOW, boots).unwrap();
    t.handle_peer_set(0, keys(&[0, 3, 5])).unwrap();
    let mut r = rng();
    let due = |t: &mut Tracker<Key>, now: u64| t.poll_dials(now).iter().any(|(k, _)| *k == key(5));
    let mut now = NOW;
    assert!(due(&mut t, now));
    for failures in 1..=8 {
        t.handle_dial_failed(&key(5), now, &mut r).unwrap();
        // The capped backoff (300 ms) plus at most half of it; uncapped, the fifth failure
        // would wait 1.6 s.
        now += 450;
        assert!(due(&mut t, now), "due again after {failures} failures");
    }
    // Connected to key 3: the ninth failure waits the capped doubling backoff (8 s).
    t.handle_connected(&key(3), false).unwrap();
    t.handle_dial_failed(&key(5), now, &mut r).unwrap();
    assert!(!due(&mut t, now + 7_999));
    assert!(due(&mut t, now + 12_000));
}

#[test]
fn unauthorized_peer_events() {
    let (mut t, _) = ten();
    let mut r = rng();
    assert_eq!(
        t.handle_connected(&key(50), true),
        Err(Error::NotAuthorized)
    );
    assert_eq!(
        t.handle_disconnected(&key(50), NOW, &mut r),
        Err(Error::NotAuthorized)
    );
    assert_eq!(
        t.handle_dial_failed(&key(50), NOW, &mut r),
        Err(Error::NotAuthorized)
    );
    assert_eq!(t.handle_connected(&key(0), true), Err(Error::NotAuthorized));
}

// ---------------------------------------------------------------------------------------------
// Pings, simultaneous dials, stats
// ---------------------------------------------------------------------------------------------

#[test]
fn ping_once_per_interval() {
    let mut t = tracker();
    let mut r = rng();
    assert!(t.poll_ping(NOW, &mut r).is_none(), "no set tracked");
    t.handle_peer_set(1, keys(&[0, 1])).unwrap();
    t.handle_peer_set(2, keys(&[0, 2, 3])).unwrap();
    let first = t.poll_ping(NOW, &mut r).unwrap();
    assert!(first.index == 1 || first.index == 2);
    assert!(t.poll_ping(NOW + 999, &mut r).is_none());
    let mut seen = std::collections::HashSet::new();
    for i in 1..40 {
        seen.insert(t.poll_ping(NOW + 1000 * i, &mut r).unwrap().index);
    }
    assert_eq!(seen.len(), 2, "pings pick a random tracked index");
}

#[test]
fn simultaneous_dials_resolve_to_one_connection() {
    let (a, b) = (key(1), key(2));
    let (small, large) = if a < b { (a, b) } else { (b, a) };
    // Each side sees its own dial as `dialed_by_me`, and may see the two connections complete
    // in either order. Whatever the order, both keep the connection dialed by `small`.
    let kept_dialer = |me: &Key, peer: &Key, existing_by_me: bool| {
        let keep = resolve_duplicate(me, peer, existing_by_me, !existing_by_me);
        let kept_by_me = match keep {
            KeepConnection::Existing => existing_by_me,
            KeepConnection::New => !existing_by_me,
        };
        if kept_by_me { me.clone() } else { peer.clone() }
    };
    for order in [true, false] {
        assert_eq!(kept_dialer(&small, &large, order), small);
        assert_eq!(kept_dialer(&large, &small, order), small);
    }
    // Same direction: the live connection stays.
    assert_eq!(
        resolve_duplicate(&small, &large, true, true),
        KeepConnection::Existing
    );
    assert_eq!(
        resolve_duplicate(&large, &small, false, false),
        KeepConnection::Existing
    );
}

#[test]
fn stats_count_known_and_connected() {
    let (mut t, _) = ten();
    t.handle_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    t.handle_connected(&key(3), true).unwrap();
    let s = t.stats();
    assert_eq!(s[0].index, 7);
    assert_eq!(s[0].peers, 10);
    assert_eq!(s[0].known, 2);
    assert_eq!(s[0].connected, 1);
}

#[test]
fn memory_estimate_grows_linearly() {
    let (mut t, _) = ten();
    let small = t.memory_estimate();
    for i in 1..10 {
        t.handle_peers(&key(1), one(record(i, 2000, NOW)), NOW)
            .unwrap();
    }
    let full = t.memory_estimate();
    assert!(full > small);
    // Well under 1 KiB per peer.
    assert!(full < 10 * 1024, "{full}");
}

#[test]
fn wire_record_round_trips() {
    let p = record(3, 4000, NOW);
    let (mut t, _) = ten();
    t.handle_peers(&key(1), one(p.clone()), NOW).unwrap();
    let vec = BitVec {
        index: 7,
        bits: Bytes::from_static(&[0, 0]),
    };
    let mut c = config();
    c.max_gossip_records = NonZeroUsize::new(64).unwrap();
    let answer = t
        .handle_bit_vec(&key(1), &vec, &mut rng())
        .unwrap()
        .unwrap();
    assert!(answer.peers.contains(&p));
}

// ---------------------------------------------------------------------------------------------
// Address policy, and the backoff of an address across newer records
// ---------------------------------------------------------------------------------------------

/// A tracker for key 0 with `policy`, tracking keys 0..10 at index 7.
fn with_policy(policy: AddressPolicy) -> Tracker<Key> {
    let mut c = config();
    c.address_policy = policy;
    let mut t = Tracker::with_signer(c, &signer(0), addr(1000), NOW, vec![]).unwrap();
    t.handle_peer_set(7, (0..10).map(key).collect()).unwrap();
    t
}

#[test]
fn records_with_refused_addresses_are_dropped_and_never_dialed() {
    let refused: [(AddressPolicy, &str, AddressRefusal); 9] = [
        (
            AddressPolicy::local(),
            "224.0.0.1:9000",
            AddressRefusal::Multicast,
        ),
        (
            AddressPolicy::local(),
            "[ff02::1]:9000",
            AddressRefusal::Multicast,
        ),
        (
            AddressPolicy::local(),
            "255.255.255.255:9000",
            AddressRefusal::Broadcast,
        ),
        (
            AddressPolicy::local(),
            "0.1.2.3:9000",
            AddressRefusal::Unspecified,
        ),
        (
            AddressPolicy::recommended(),
            "127.0.0.1:9000",
            AddressRefusal::Loopback,
        ),
        (
            AddressPolicy::recommended(),
            "[::1]:9000",
            AddressRefusal::Loopback,
        ),
        (
            AddressPolicy::recommended(),
            "[::ffff:127.0.0.1]:9000",
            AddressRefusal::Loopback,
        ),
        (
            AddressPolicy::public_only(),
            "192.168.1.10:9000",
            AddressRefusal::Private,
        ),
        (
            AddressPolicy::public_only(),
            "[fe80::1]:9000",
            AddressRefusal::Private,
        ),
    ];
    for (policy, socket, reason) in refused {
        let mut t = with_policy(policy);
        let socket: SocketAddr = socket.parse().unwrap();
        // Relayed by key 1, signed by key 2: dropped, not fatal (the connection stays).
        let o = t
            .handle_peers(&key(1), one(sign_record(&signer(2), NS, socket, NOW)), NOW)
            .unwrap();
        assert_eq!(o.accepted, 0, "{socket}");
        assert_eq!(o.dropped, vec![Error::AddressRefused { socket, reason }]);
        assert!(!o.dropped[0].is_fatal());
        // The owner sending it itself: the same.
        let o = t
            .handle_peers(&key(2), one(sign_record(&signer(2), NS, socket, NOW)), NOW)
            .unwrap();
        assert_eq!(o.dropped.len(), 1, "{socket}");
        // Through the two-step path too.
        let plan = t
            .plan_peers(&key(1), one(sign_record(&signer(2), NS, socket, NOW)), NOW)
            .unwrap();
        assert!(plan.candidates.is_empty());
        assert_eq!(plan.dropped, vec![Error::AddressRefused { socket, reason }]);
        assert!(t.record(&key(2)).is_none());
        assert!(
            t.poll_dials(NOW + 1_000_000).is_empty(),
            "{socket} was dialed"
        );
    }
}

/// A record verified outside the lock is committed under its own key even when the tracked
/// sets changed between plan and commit (positions in the union moved, or the key left).
#[test]
fn a_planned_record_is_committed_under_its_key_after_the_sets_changed() {
    let (mut t, _) = ten();
    let plan = t
        .plan_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    let moved = &plan.candidates[0];
    let plan = t
        .plan_peers(&key(1), one(record(3, 3003, NOW)), NOW)
        .unwrap();
    let gone = &plan.candidates[0];
    // Ten more keys join: positions in the union move.
    t.handle_peer_set(8, keys(&(0..20).collect::<Vec<_>>()))
        .unwrap();
    assert!(t.commit_candidate(moved, moved.verify(NS).unwrap()));
    assert_eq!(t.record(&key(2)).and_then(|r| r.socket()), Some(addr(2002)));
    for i in (1..20).filter(|&i| i != 2) {
        assert!(t.record(&key(i)).is_none(), "key {i} got key 2's record");
    }
    // Key 3 leaves every tracked set (two are tracked): nothing is stored.
    let without_3: Vec<u64> = (0..20).filter(|&i| i != 3).collect();
    t.handle_peer_set(9, keys(&without_3)).unwrap();
    t.handle_peer_set(10, keys(&without_3)).unwrap();
    assert!(!t.commit_candidate(gone, gone.verify(NS).unwrap()));
    assert!(t.record(&key(3)).is_none());
    assert!(
        t.records()
            .all(|(_, r)| r.is_none_or(|r| r.socket() != Some(addr(3003))))
    );
}

#[test]
fn refused_newer_record_keeps_the_stored_one() {
    let mut t = with_policy(AddressPolicy::recommended());
    let good: SocketAddr = "10.0.0.2:9000".parse().unwrap();
    let o = t
        .handle_peers(&key(1), one(sign_record(&signer(2), NS, good, NOW)), NOW)
        .unwrap();
    assert_eq!(o.accepted, 1);
    let bad: SocketAddr = "127.0.0.1:22".parse().unwrap();
    let o = t
        .handle_peers(&key(1), one(sign_record(&signer(2), NS, bad, NOW + 1)), NOW)
        .unwrap();
    assert_eq!(o.accepted, 0);
    assert_eq!(t.record(&key(2)).unwrap().socket(), Some(good));
    assert_eq!(t.poll_dials(NOW), vec![(key(2), good.into())]);
}

#[test]
fn newer_record_with_the_same_address_keeps_the_backoff() {
    let (mut t, _) = ten();
    let mut r = rng();
    t.handle_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    assert_eq!(t.poll_dials(NOW), vec![(key(2), addr(2002).into())]);
    t.handle_dial_failed(&key(2), NOW, &mut r).unwrap();
    // A re-signed record of the same address (a newer timestamp) does not make the address
    // due again: the first redial is still 100 ms (+ up to 50 ms) after the failure.
    let o = t
        .handle_peers(&key(1), one(record(2, 2002, NOW + 1)), NOW + 1)
        .unwrap();
    assert_eq!(o.accepted, 1);
    assert!(t.poll_dials(NOW + 1).is_empty(), "backoff was reset");
    assert!(t.poll_dials(NOW + 99).is_empty());
    assert_eq!(t.poll_dials(NOW + 150), vec![(key(2), addr(2002).into())]);
    // The failure count is kept too: the second failure doubles the delay (200 ms).
    t.handle_dial_failed(&key(2), NOW + 150, &mut r).unwrap();
    t.handle_peers(&key(1), one(record(2, 2002, NOW + 2)), NOW + 150)
        .unwrap();
    assert!(t.poll_dials(NOW + 150 + 199).is_empty());
    assert_eq!(
        t.poll_dials(NOW + 150 + 300),
        vec![(key(2), addr(2002).into())]
    );
    // Third failure: stale. A newer record of the same address revives the bit, but one more
    // failure makes it stale again at once (the count was not reset).
    t.handle_dial_failed(&key(2), NOW + 450, &mut r).unwrap();
    assert!(t.record(&key(2)).is_none());
    t.handle_peers(&key(1), one(record(2, 2002, NOW + 3)), NOW + 450)
        .unwrap();
    assert!(t.record(&key(2)).is_some());
    assert!(
        t.poll_dials(NOW + 450 + 399).is_empty(),
        "backoff was reset"
    );
    assert_eq!(
        t.poll_dials(NOW + 450 + 600),
        vec![(key(2), addr(2002).into())]
    );
    t.handle_dial_failed(&key(2), NOW + 1050, &mut r).unwrap();
    assert!(t.record(&key(2)).is_none());
}

#[test]
fn newer_record_with_a_new_address_resets_the_backoff() {
    let (mut t, _) = ten();
    let mut r = rng();
    t.handle_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    assert_eq!(t.poll_dials(NOW), vec![(key(2), addr(2002).into())]);
    t.handle_dial_failed(&key(2), NOW, &mut r).unwrap();
    t.handle_peers(&key(1), one(record(2, 2003, NOW + 1)), NOW + 1)
        .unwrap();
    assert_eq!(t.poll_dials(NOW + 1), vec![(key(2), addr(2003).into())]);
    // And the count starts again: the next failure waits the base delay only.
    t.handle_dial_failed(&key(2), NOW + 1, &mut r).unwrap();
    assert_eq!(
        t.poll_dials(NOW + 1 + 110),
        vec![(key(2), addr(2003).into())]
    );
}

/// `handle_dial_now` (an unblock) makes a backed-off peer due at once and restarts its failure
/// count; a stale address gets one dial at once but stays stale; an unknown key is refused.
#[test]
fn dial_now_resets_the_backoff_but_not_a_stale_mark() {
    let (mut t, p2) = ten_knowing_2();
    let mut r = rng();
    assert_eq!(t.poll_dials(NOW).len(), 1);
    t.handle_dial_failed(&key(2), NOW, &mut r).unwrap();
    assert_eq!(t.poll_dials(NOW + 150).len(), 1);
    t.handle_dial_failed(&key(2), NOW + 150, &mut r).unwrap();
    assert!(t.poll_dials(NOW + 151).is_empty(), "backed off 200 ms");
    t.handle_dial_now(&key(2)).unwrap();
    assert_eq!(t.poll_dials(NOW + 151), vec![(key(2), addr(2002).into())]);
    // The count restarted: the next failure waits the base delay (100 ms, plus up to 50 ms),
    // not 400 ms.
    t.handle_dial_failed(&key(2), NOW + 151, &mut r).unwrap();
    assert!(t.poll_dials(NOW + 151 + 99).is_empty());
    // Two more failures make three in a row: stale. dial_now asks for one dial at once (a
    // stale retry ahead of time) but leaves the mark: after that dial fails, the next waits the
    // backoff and the whole stale interval.
    let mut now = NOW + 151 + 150;
    for _ in 0..2 {
        assert_eq!(t.poll_dials(now).len(), 1);
        t.handle_dial_failed(&key(2), now, &mut r).unwrap();
        now += 1_010;
    }
    assert!(!bit(&mut t, p2));
    assert!(t.poll_dials(now).is_empty());
    t.handle_dial_now(&key(2)).unwrap();
    assert!(!bit(&mut t, p2));
    assert_eq!(t.poll_dials(now), vec![(key(2), addr(2002).into())]);
    t.handle_dial_failed(&key(2), now, &mut r).unwrap();
    assert!(t.poll_dials(now + 600_000 + 99).is_empty());
    assert_eq!(t.poll_dials(now + 600_000 + 150).len(), 1);
    assert_eq!(t.handle_dial_now(&key(99)), Err(Error::NotAuthorized));
}

#[test]
fn an_added_bootstrapper_takes_over_a_tracked_keys_dials_without_doubling_them() {
    let mut t = tracker();
    let mut r = rng();
    t.handle_peer_set(7, keys(&[0, 1, 2])).unwrap();
    // Key 2 has a record: it is being dialed when it becomes a bootstrapper.
    t.handle_peers(&key(1), one(record(2, 2002, NOW)), NOW)
        .unwrap();
    assert_eq!(t.poll_dials(NOW), vec![(key(2), addr(2002).into())]);
    assert!(t.add_bootstrapper(key(2), addr(3002)));
    assert!(!t.add_bootstrapper(key(2), addr(3003)), "a key twice");
    assert!(!t.add_bootstrapper(key(0), addr(3000)), "ourselves");
    assert!(
        t.poll_dials(NOW).is_empty(),
        "the dial under way is not repeated"
    );
    t.handle_dial_failed(&key(2), NOW, &mut r).unwrap();
    // Key 1 (no record) is dialed at the added address only.
    assert!(t.add_bootstrapper(key(1), addr(3001)));
    let mut dials: Vec<(_, p2p_discovery::Address)> = t.poll_dials(NOW + 60_000);
    dials.sort();
    // Key 2 failed once: as any bootstrapper, it alternates to its configured address.
    let mut expected = vec![(key(1), addr(3001).into()), (key(2), addr(3002).into())];
    expected.sort();
    assert_eq!(dials, expected, "each key once");
    // A bootstrapper stays authorized after its set is gone.
    t.handle_peer_set(8, keys(&[0])).unwrap();
    t.handle_peer_set(9, keys(&[0])).unwrap();
    t.handle_peer_set(10, keys(&[0])).unwrap();
    assert!(t.is_authorized(&key(1)));
}
