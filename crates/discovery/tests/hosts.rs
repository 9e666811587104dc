//! Host-name records in the tracker: stored, gossiped, planned for dialing, failing like any
//! other address, and malformed names refused.

mod common;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use bytes::Bytes;
use p2p_discovery::{
    Address, AddressPolicy, Config, Error, HostError, SocketError, Tracker, sign_record_for,
};
use p2p_identity::Verifier;
use p2p_proto::{BitVec, Peer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use common::{Key, NOW, NS, key, one, signer};

fn host(text: &str) -> Address {
    text.parse().unwrap()
}

fn config(policy: AddressPolicy) -> Config {
    let mut c = Config::recommended(NS);
    c.max_gossip_records = NonZeroUsize::new(4).unwrap();
    c.max_records_per_message = NonZeroUsize::new(8).unwrap();
    c.dial_backoff_base = Duration::from_millis(100);
    c.dial_backoff_max = Duration::from_millis(1000);
    c.dial_jitter = Duration::from_millis(10);
    c.max_failed_dials = NonZeroU32::new(3).unwrap();
    c.address_policy = policy;
    c
}

fn record(i: u64, address: &str, ts: u64) -> Peer {
    sign_record_for(&signer(i), NS, &host(address), ts)
}

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(3)
}

/// Key 0's tracker (its own record a host name), tracking keys 0..4 as set 1.
fn tracker(policy: AddressPolicy) -> Tracker<Key> {
    let mut t = Tracker::with_signer(
        config(policy),
        &signer(0),
        host("node0.example.com:1000"),
        NOW,
        vec![],
    )
    .unwrap();
    t.handle_peer_set(1, (0..4).map(key).collect()).unwrap();
    t
}

#[test]
fn own_host_record_is_sent_as_signed() {
    let t = tracker(AddressPolicy::recommended());
    let mine = t.my_record();
    assert_eq!(mine.socket[0], 0x48);
    assert_eq!(&mine.socket[2..19], b"node0.example.com");
    // Another tracker stores it, under a policy that refuses loopback and private addresses:
    // a name is judged when it is resolved, not when it arrives.
    let mut other = Tracker::with_signer(
        config(AddressPolicy::public_only()),
        &signer(1),
        host("node1.example.com:1001"),
        NOW,
        vec![],
    )
    .unwrap();
    other.handle_peer_set(1, (0..4).map(key).collect()).unwrap();
    let out = other.handle_peers(&key(0), one(mine), NOW).unwrap();
    assert_eq!(out.accepted, 1);
    assert_eq!(
        other.record(&key(0)).unwrap().address(),
        &host("node0.example.com:1000")
    );
}

#[test]
fn host_record_is_stored_gossiped_and_dialed() {
    let mut t = tracker(AddressPolicy::recommended());
    let out = t
        .handle_peers(&key(1), one(record(2, "Node2.Example.com.:2002", NOW)), NOW)
        .unwrap();
    assert_eq!(out.accepted, 1);
    let stored = t.record(&key(2)).unwrap();
    assert_eq!(stored.address(), &host("node2.example.com:2002"));
    assert_eq!(stored.socket(), None);
    // Dialed by name.
    assert_eq!(
        t.poll_dials(NOW),
        vec![(key(2), host("node2.example.com:2002"))]
    );
    // Gossiped unchanged to a peer that lacks it.
    let mut r = rng();
    let answer = t
        .handle_bit_vec(
            &key(3),
            &BitVec {
                index: 1,
                bits: Bytes::from_static(&[0]),
            },
            &mut r,
        )
        .unwrap()
        .unwrap();
    let relayed = answer
        .peers
        .iter()
        .find(|p| p.signature.as_ref().unwrap().public_key[..] == *key(2).as_bytes())
        .unwrap();
    assert_eq!(relayed, &record(2, "node2.example.com:2002", NOW));
}

#[test]
fn a_name_that_keeps_failing_goes_stale_and_a_new_ip_needs_no_new_record() {
    let mut t = tracker(AddressPolicy::recommended());
    let mut r = rng();
    t.handle_peers(&key(1), one(record(2, "node2.example.com:2002", NOW)), NOW)
        .unwrap();
    let mut now = NOW;
    // A name that does not resolve is reported as a failed dial, like a refused connect.
    for i in 0..3 {
        if i > 0 {
            now += 1_010;
        }
        assert_eq!(t.poll_dials(now).len(), 1);
        t.handle_dial_failed(&key(2), now, &mut r).unwrap();
    }
    assert!(t.record(&key(2)).is_none(), "stale after max_failed_dials");
    // A newer record of the same name keeps the backoff (as for a socket).
    t.handle_peers(
        &key(1),
        one(record(2, "node2.example.com:2002", NOW + 1)),
        now,
    )
    .unwrap();
    assert!(t.record(&key(2)).is_some());
    assert!(t.poll_dials(now + 1).is_empty(), "backoff kept");
    // The retry that connects (the name resolves again) proves the address.
    let due = now + 1_000;
    assert_eq!(t.poll_dials(due).len(), 1);
    t.handle_connected(&key(2), true).unwrap();
    assert!(t.record(&key(2)).is_some());
}

#[test]
fn host_bootstrappers_are_planned_by_name() {
    let boot = host("boot.example.net:26656");
    let mut t = Tracker::with_signer(
        config(AddressPolicy::recommended()),
        &signer(0),
        "10.0.0.1:1000".parse::<SocketAddr>().unwrap(),
        NOW,
        vec![(key(9), boot.clone())],
    )
    .unwrap();
    assert_eq!(t.poll_dials(NOW), vec![(key(9), boot.clone())]);
    let mut r = rng();
    // Never stale: redialed after each backoff, at the name.
    for i in 0..5u64 {
        t.handle_dial_failed(&key(9), NOW + i * 10_000, &mut r)
            .unwrap();
        assert_eq!(
            t.poll_dials(NOW + (i + 1) * 10_000 - 1),
            vec![(key(9), boot.clone())]
        );
    }
    assert!(t.add_bootstrapper(key(8), host("other.example.net:1")));
}

fn raw_record(i: u64, socket: Vec<u8>) -> Peer {
    let mut p = record(i, "node.example.com:1", NOW);
    p.socket = Bytes::from(socket);
    p
}

#[test]
fn malformed_host_encodings_close_the_connection() {
    let mut bad_name = vec![0x48, 3];
    bad_name.extend_from_slice(b"a\0b");
    bad_name.extend_from_slice(&[0, 1]);
    let mut ip_literal = vec![0x48, 9];
    ip_literal.extend_from_slice(b"127.0.0.1");
    ip_literal.extend_from_slice(&[0, 1]);
    let mut upper = vec![0x48, 1, b'A', 0, 1];
    let mut huge = vec![0x48, 255];
    huge.extend(std::iter::repeat_n(b'a', 255));
    huge.extend_from_slice(&[0, 1]);
    let cases = [
        (
            bad_name,
            SocketError::Host(HostError::InvalidByte { byte: 0, offset: 1 }),
        ),
        (ip_literal, SocketError::Host(HostError::NumericName)),
        (
            std::mem::take(&mut upper),
            SocketError::Host(HostError::NotCanonical),
        ),
        (
            huge,
            SocketError::Host(HostError::TooLong { len: 255, max: 251 }),
        ),
        (vec![0x48, 1, b'a', 0, 0], SocketError::PortZero),
        (
            vec![0x48, 9, b'a', 0, 1],
            SocketError::WrongLength {
                family: 0x48,
                expected: 13,
                got: 5,
            },
        ),
    ];
    for (bytes, why) in cases {
        let mut t = tracker(AddressPolicy::local());
        let err = t
            .handle_peers(&key(1), one(raw_record(2, bytes)), NOW)
            .unwrap_err();
        assert_eq!(err, Error::MalformedSocket(why.clone()));
        assert!(err.is_fatal(), "{why}");
        assert!(t.record(&key(2)).is_none());
    }
}

#[test]
fn a_host_record_replaced_by_a_socket_record_is_dialed_at_once() {
    let mut t = tracker(AddressPolicy::local());
    let mut r = rng();
    t.handle_peers(&key(1), one(record(2, "node2.example.com:2002", NOW)), NOW)
        .unwrap();
    assert_eq!(t.poll_dials(NOW).len(), 1);
    t.handle_dial_failed(&key(2), NOW, &mut r).unwrap();
    // The peer moved from its name to an IP: a new address, dialed without the backoff.
    t.handle_peers(&key(1), one(record(2, "127.0.0.1:2002", NOW + 1)), NOW)
        .unwrap();
    assert_eq!(t.poll_dials(NOW), vec![(key(2), host("127.0.0.1:2002"))]);
}
