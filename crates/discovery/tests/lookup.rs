//! Lookup mode (addresses from the application) and observers (keys outside every peer set).

mod common;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use p2p_discovery::{
    Address, AddressPolicy, AddressRefusal, AddressUpdate, Config, Error, Mode, Tracker,
    sign_record,
};
use p2p_identity::Verifier;
use p2p_proto::{BitVec, Peer, Peers};

use common::{Key, NOW, NS, addr, key, rng, signer};

fn config(mode: Mode) -> Config {
    let mut c = Config::recommended(NS);
    c.max_peer_set_size = NonZeroUsize::new(64).unwrap();
    c.dial_backoff_base = Duration::from_millis(100);
    c.dial_backoff_max = Duration::from_millis(1000);
    c.dial_jitter = Duration::from_millis(10);
    c.max_failed_dials = NonZeroU32::new(3).unwrap();
    c.address_policy = AddressPolicy::local();
    c.mode = mode;
    c
}

fn tracker(mode: Mode) -> Tracker<Key> {
    Tracker::with_signer(config(mode), &signer(0), addr(1000), NOW, vec![]).unwrap()
}

fn record(i: u64, port: u16, ts: u64) -> Peer {
    sign_record(&signer(i), NS, addr(port), ts)
}

/// Keys 0..4 at ports 1000 + i (0 is us).
fn lookup_tracker() -> Tracker<Key> {
    let mut t = tracker(Mode::Lookup);
    let peers = (0..4).map(|i| (key(i), addr(1000 + i as u16))).collect();
    let outcome = t.handle_peer_set_with_addresses(1, peers).unwrap();
    assert_eq!(outcome.stored, 3);
    assert!(outcome.rejected.is_empty());
    t
}

/// Dials due at `now` (every lookup-mode address is a socket).
fn dials(t: &mut Tracker<Key>, now: u64) -> Vec<(Key, SocketAddr)> {
    let mut d: Vec<(Key, SocketAddr)> = t
        .poll_dials(now)
        .into_iter()
        .map(|(k, a)| (k, socket_of(a)))
        .collect();
    d.sort();
    d
}

fn dial_of(t: &mut Tracker<Key>, now: u64, k: &Key) -> Option<SocketAddr> {
    t.poll_dials(now)
        .into_iter()
        .find(|(d, _)| d == k)
        .map(|(_, a)| socket_of(a))
}

fn socket_of(a: Address) -> SocketAddr {
    match a {
        Address::Socket(s) => s,
        other => panic!("a lookup-mode dial to a host name: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Lookup mode
// ---------------------------------------------------------------------------------------------

#[test]
fn lookup_mode_dials_the_application_addresses_and_marks_them_known() {
    let mut t = lookup_tracker();
    let mut want: Vec<(Key, SocketAddr)> =
        (1..4).map(|i| (key(i), addr(1000 + i as u16))).collect();
    want.sort();
    assert_eq!(dials(&mut t, NOW), want);
    // Every key is known (ourselves included): the keep-alive vector is all ones.
    let bv = t.bit_vec(1).unwrap();
    assert_eq!(&bv.bits[..], &[0b1111]);
    assert_eq!(t.stats()[0].known, 4);
    assert_eq!(t.address(&key(2)), Some(addr(1002)));
    // No record is ever sent.
    assert_eq!(t.opening_record(), None);
    assert!(tracker(Mode::Gossip).opening_record().is_some());
}

#[test]
fn lookup_mode_ignores_records_cheaply_and_without_closing() {
    let mut t = lookup_tracker();
    // Valid, newer records of tracked keys: not stored, not even looked at.
    let peers = Peers {
        peers: vec![record(1, 2001, NOW), record(2, 2002, NOW)],
    };
    let err = t.handle_peers(&key(1), peers.clone(), NOW).unwrap_err();
    assert_eq!(err, Error::LookupModeRecords { records: 2 });
    assert!(!err.is_fatal());
    assert_eq!(
        t.plan_peers(&key(1), peers, NOW).unwrap_err(),
        Error::LookupModeRecords { records: 2 }
    );
    // A garbage record too (no signature check is spent on it).
    let mut bad = record(3, 2003, NOW);
    bad.signature = None;
    assert_eq!(
        t.handle_peers(&key(1), Peers { peers: vec![bad] }, NOW),
        Err(Error::LookupModeRecords { records: 1 })
    );
    assert!(t.record(&key(1)).is_none());
    assert_eq!(dial_of(&mut t, NOW, &key(1)), Some(addr(1001)));
    // An unauthorized sender and an oversized message stay fatal.
    assert_eq!(
        t.handle_peers(&key(9), Peers { peers: vec![] }, NOW),
        Err(Error::UnauthorizedSender)
    );
    let many = Peers {
        peers: vec![record(1, 2001, NOW); 65],
    };
    assert!(t.handle_peers(&key(1), many, NOW).unwrap_err().is_fatal());
}

#[test]
fn lookup_mode_answers_bit_vectors_with_nothing_but_still_checks_them() {
    let mut t = lookup_tracker();
    let empty = BitVec {
        index: 1,
        bits: vec![0u8].into(),
    };
    assert_eq!(t.handle_bit_vec(&key(1), &empty, &mut rng()), Ok(None));
    let wrong = BitVec {
        index: 1,
        bits: vec![0u8, 0].into(),
    };
    assert!(
        t.handle_bit_vec(&key(1), &wrong, &mut rng())
            .unwrap_err()
            .is_fatal()
    );
    // The ping still goes out.
    assert!(t.poll_ping(NOW, &mut rng()).is_some());
}

#[test]
fn gossip_mode_refuses_application_addresses() {
    let mut t = tracker(Mode::Gossip);
    assert_eq!(
        t.handle_peer_set_with_addresses(1, vec![(key(1), addr(1001))]),
        Err(Error::NotLookupMode)
    );
    // Nothing was registered.
    assert!(!t.is_authorized(&key(1)));
    t.handle_peer_set(1, vec![key(1)]).unwrap();
    assert_eq!(
        t.update_address(&key(1), addr(1001)),
        Err(Error::NotLookupMode)
    );
}

#[test]
fn an_address_update_for_an_unknown_key_is_an_error() {
    let mut t = lookup_tracker();
    assert_eq!(
        t.update_address(&key(9), addr(1009)),
        Err(Error::UnknownKey)
    );
    assert_eq!(
        t.update_address(&key(0), addr(1009)),
        Err(Error::UnknownKey)
    );
    assert!(!t.is_authorized(&key(9)));
    assert!(dial_of(&mut t, NOW, &key(9)).is_none());
}

#[test]
fn malicious_addresses_are_refused_and_the_keys_still_registered() {
    let mut t = Tracker::with_signer(
        Config {
            address_policy: AddressPolicy::recommended(),
            ..config(Mode::Lookup)
        },
        &signer(0),
        addr(1000),
        NOW,
        vec![],
    )
    .unwrap();
    let multicast: SocketAddr = "224.0.0.1:9000".parse().unwrap();
    let public: SocketAddr = "203.0.113.7:9000".parse().unwrap();
    let outcome = t
        .handle_peer_set_with_addresses(
            1,
            vec![
                (key(1), addr(1001)),
                (key(2), multicast),
                (key(3), public),
                (key(3), "203.0.113.8:9000".parse().unwrap()),
            ],
        )
        .unwrap();
    assert_eq!(outcome.stored, 1);
    let mut rejected = outcome.rejected;
    rejected.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (
            key(1),
            Error::AddressRefused {
                socket: addr(1001),
                reason: AddressRefusal::Loopback,
            },
        ),
        (
            key(2),
            Error::AddressRefused {
                socket: multicast,
                reason: AddressRefusal::Multicast,
            },
        ),
        (key(3), Error::DuplicateKey),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rejected, want);
    // Refused keys are authorized (they may dial us) but never dialed; the first of two
    // addresses is kept.
    assert!(t.is_authorized(&key(1)) && t.is_authorized(&key(2)));
    assert_eq!(dials(&mut t, NOW), vec![(key(3), public)]);
    // An update to a refused address changes nothing.
    assert_eq!(
        t.update_address(&key(3), "0.0.0.0:9000".parse().unwrap()),
        Err(Error::AddressRefused {
            socket: "0.0.0.0:9000".parse().unwrap(),
            reason: AddressRefusal::Unspecified,
        })
    );
    assert_eq!(
        t.update_address(&key(3), SocketAddr::from(([203, 0, 113, 7], 0))),
        Err(Error::AddressRefused {
            socket: SocketAddr::from(([203, 0, 113, 7], 0)),
            reason: AddressRefusal::PortZero,
        })
    );
    assert_eq!(t.address(&key(3)), Some(public));
}

#[test]
fn an_address_update_redials_at_once_with_a_fresh_backoff() {
    let mut t = lookup_tracker();
    let mut r = rng();
    let k = key(1);
    let mut now = NOW;
    // Fail a few times: the backoff grows, but an application address never goes stale.
    for _ in 0..5 {
        let due = (now..now + 5_000)
            .step_by(10)
            .find(|&at| dial_of(&mut t, at, &k).is_some())
            .expect("redialed within the capped backoff");
        now = due;
        t.handle_dial_failed(&k, now, &mut r).unwrap();
    }
    assert_eq!(t.bit_vec(1).unwrap().bits[0], 0b1111, "never stale");
    assert!(dial_of(&mut t, now + 500, &k).is_none(), "backed off");
    // Same address: nothing changes, the backoff stays.
    assert_eq!(
        t.update_address(&k, addr(1001)),
        Ok(AddressUpdate::Unchanged)
    );
    assert!(dial_of(&mut t, now + 500, &k).is_none());
    // A new address: dialed at once.
    assert_eq!(t.update_address(&k, addr(3001)), Ok(AddressUpdate::Dial));
    assert_eq!(dial_of(&mut t, now, &k), Some(addr(3001)));
    // One failure of the new address waits the base backoff only (100 ms, plus up to half).
    t.handle_dial_failed(&k, now, &mut r).unwrap();
    assert_eq!(dial_of(&mut t, now + 150, &k), Some(addr(3001)));
}

#[test]
fn an_update_during_a_dial_does_not_count_that_dials_failure() {
    let mut t = lookup_tracker();
    let mut r = rng();
    let k = key(2);
    assert_eq!(dial_of(&mut t, NOW, &k), Some(addr(1002)));
    // While the dial to the old address runs, the application moves the peer.
    assert_eq!(t.update_address(&k, addr(3002)), Ok(AddressUpdate::Dial));
    // Not dialed twice at once.
    assert_eq!(dial_of(&mut t, NOW, &k), None);
    // The old dial fails: the new address is due at once.
    t.handle_dial_failed(&k, NOW + 1, &mut r).unwrap();
    assert_eq!(dial_of(&mut t, NOW + 1, &k), Some(addr(3002)));
}

#[test]
fn an_update_keeps_a_live_connection_and_is_dialed_when_it_closes() {
    let mut t = lookup_tracker();
    let mut r = rng();
    let k = key(3);
    assert_eq!(dial_of(&mut t, NOW, &k), Some(addr(1003)));
    t.handle_connected(&k, true).unwrap();
    assert_eq!(
        t.update_address(&k, addr(3003)),
        Ok(AddressUpdate::Connected)
    );
    assert!(t.is_connected(&k));
    assert_eq!(dial_of(&mut t, NOW, &k), None, "connected: not dialed");
    t.handle_disconnected(&k, NOW, &mut r).unwrap();
    assert_eq!(dial_of(&mut t, NOW + 200, &k), Some(addr(3003)));
}

#[test]
fn addresses_follow_rotations_and_are_forgotten_with_their_keys() {
    let mut t = lookup_tracker();
    // A key that stays keeps its address even when the next set names none.
    t.handle_peer_set(2, vec![key(0), key(1), key(5)]).unwrap();
    assert_eq!(t.address(&key(1)), Some(addr(1001)));
    // Key 5 has no address: authorized, not dialed, bit 0.
    assert!(t.is_authorized(&key(5)));
    assert!(t.poll_dials(NOW).iter().all(|(k, _)| *k != key(5)));
    // A later set replaces an address.
    t.handle_peer_set_with_addresses(3, vec![(key(1), addr(4001))])
        .unwrap();
    assert_eq!(t.address(&key(1)), Some(addr(4001)));
    // Once key 2 leaves every tracked set, its address is gone with it.
    t.handle_peer_set_with_addresses(4, vec![(key(1), addr(4001))])
        .unwrap();
    t.handle_peer_set_with_addresses(5, vec![(key(1), addr(4001))])
        .unwrap();
    assert!(!t.is_authorized(&key(2)));
    assert_eq!(t.address(&key(2)), None);
    assert_eq!(t.update_address(&key(2), addr(1)), Err(Error::UnknownKey));
}

// ---------------------------------------------------------------------------------------------
// Observers
// ---------------------------------------------------------------------------------------------

/// A gossip tracker with set 1 = keys 0..4 (records of 1..4 known) and observers 10 (with an
/// address) and 11 (without).
fn with_observers() -> Tracker<Key> {
    let mut t = tracker(Mode::Gossip);
    t.handle_peer_set(1, (0..4).map(key).collect()).unwrap();
    let records = Peers {
        peers: (1..4).map(|i| record(i, 1000 + i as u16, NOW)).collect(),
    };
    assert_eq!(t.handle_peers(&key(1), records, NOW).unwrap().accepted, 3);
    let outcome = t
        .handle_observers(vec![(key(10), Some(addr(1010))), (key(11), None)])
        .unwrap();
    assert_eq!(outcome.stored, 1);
    t
}

#[test]
fn observers_are_authorized_and_dialed_but_in_no_bit_vector() {
    let mut t = with_observers();
    for k in [key(10), key(11)] {
        assert!(t.is_authorized(&k));
        assert!(t.is_observer(&k));
        assert_eq!(t.authorized_key(k.as_bytes()), Some(&k));
    }
    assert!(!t.is_observer(&key(1)));
    // The vector still covers the four keys of the set only.
    let bv = t.bit_vec(1).unwrap();
    assert_eq!(&bv.bits[..], &[0b1111]);
    // Observer 10 is dialed at its address; 11 has none.
    let d = dials(&mut t, NOW);
    assert!(d.contains(&(key(10), addr(1010))));
    assert!(d.iter().all(|(k, _)| *k != key(11)));
    t.handle_connected(&key(10), true).unwrap();
    t.handle_connected(&key(11), false).unwrap();
    assert_eq!(t.observers_connected(), 2);
    assert_eq!(t.stats()[0].connected, 0, "observers are not set members");
    assert_eq!(t.bit_vec(1).unwrap().bits[0], 0b1111);
}

#[test]
fn observers_are_never_gossiped_nor_feed_records() {
    let mut t = with_observers();
    // An observer's vector that lacks everything gets no answer (it is only a ping)...
    let empty = BitVec {
        index: 1,
        bits: vec![0u8].into(),
    };
    assert_eq!(t.handle_bit_vec(&key(10), &empty, &mut rng()), Ok(None));
    // ...whereas a validator's gets records.
    assert!(
        t.handle_bit_vec(&key(1), &empty, &mut rng())
            .unwrap()
            .is_some()
    );
    // An observer's records (its own, or newer ones of validators) are dropped whole.
    let peers = Peers {
        peers: vec![record(10, 2010, NOW), record(2, 2002, NOW + 1)],
    };
    let err = t.handle_peers(&key(10), peers, NOW).unwrap_err();
    assert_eq!(err, Error::ObserverRecords { records: 2 });
    assert!(!err.is_fatal());
    assert_eq!(t.record(&key(2)).unwrap().socket(), Some(addr(1002)));
    // A validator relaying an observer's record: dropped as an unauthorized signer.
    let outcome = t
        .handle_peers(
            &key(1),
            Peers {
                peers: vec![record(10, 2010, NOW)],
            },
            NOW,
        )
        .unwrap();
    assert_eq!(outcome.dropped, vec![Error::UnauthorizedSigner]);
    // And a validator's vector never yields an observer's record.
    let answer = t.handle_bit_vec(&key(1), &empty, &mut rng()).unwrap();
    assert!(
        answer
            .unwrap()
            .peers
            .iter()
            .all(|p| { p.signature.as_ref().unwrap().public_key[..] != key(10).as_bytes()[..] })
    );
}

#[test]
fn removing_an_observer_evicts_it_and_a_key_in_both_sets_is_a_validator() {
    let mut t = with_observers();
    t.handle_connected(&key(10), false).unwrap();
    t.handle_connected(&key(11), false).unwrap();
    // Key 1 is also registered as an observer: still a validator, dialed once, at its record.
    t.handle_observers(vec![(key(11), None), (key(1), Some(addr(3001)))])
        .unwrap();
    assert!(!t.is_observer(&key(1)));
    let d = dials(&mut t, NOW);
    assert_eq!(
        d.iter().filter(|(k, _)| *k == key(1)).collect::<Vec<_>>(),
        vec![&(key(1), addr(1001))]
    );
    // Observer 10 was removed while connected: evicted, and no longer authorized.
    assert_eq!(t.take_evictions(), vec![key(10)]);
    assert!(!t.is_authorized(&key(10)));
    assert_eq!(
        t.handle_disconnected(&key(10), NOW, &mut rng()),
        Err(Error::NotAuthorized)
    );
    // Our own key is never an observer; too many observers is an error.
    t.handle_observers(vec![(key(0), None)]).unwrap();
    assert!(!t.is_observer(&key(0)));
    let many = (100..165).map(|i| (key(i), None)).collect();
    assert_eq!(
        t.handle_observers(many),
        Err(Error::PeerSetTooLarge { got: 65, max: 64 })
    );
}

#[test]
fn an_observer_dial_backs_off_and_its_address_can_be_updated() {
    let mut t = with_observers();
    let mut r = rng();
    let k = key(10);
    assert_eq!(dial_of(&mut t, NOW, &k), Some(addr(1010)));
    t.handle_dial_failed(&k, NOW, &mut r).unwrap();
    assert_eq!(dial_of(&mut t, NOW + 50, &k), None, "backed off");
    // Observer addresses may be updated in gossip mode too.
    assert_eq!(t.update_address(&k, addr(2010)), Ok(AddressUpdate::Dial));
    assert_eq!(dial_of(&mut t, NOW + 50, &k), Some(addr(2010)));
    // A validator that leaves its set while it is an observer is evicted (it reconnects as
    // an observer).
    t.handle_connected(&key(2), true).unwrap();
    t.handle_observers(vec![(key(2), None)]).unwrap();
    t.handle_peer_set(2, vec![key(0), key(1)]).unwrap();
    t.handle_peer_set(3, vec![key(0), key(1)]).unwrap();
    t.handle_peer_set(4, vec![key(0), key(1)]).unwrap();
    assert!(t.is_observer(&key(2)));
    assert_eq!(t.take_evictions(), vec![key(2)]);
}
