//! Lookup mode and observers through the manager and a session: admission, caps, opening
//! frames, ignored records, address updates, blocks that expire during a dial.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2p_discovery::{AddressUpdate, Mode, Tracker};
use p2p_handshake::Refusal;
use p2p_identity::{Signer, Verifier};
use p2p_mux::Role;
use p2p_proto::message::Payload;
use p2p_proto::{BitVec, Peers};
use p2p_session::decode::encode;
use p2p_session::{Event, Manager, ManagerConfig, Refused, Session};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use common::{K, NAMESPACE, P, UNIX0, manager_config, version};

fn key(i: u64) -> P {
    K::insecure_from_seed(i).public_key()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(3)
}

/// Node 0 in `mode`, with set 0 = keys 0..4 (at ports 7000 + i in lookup mode) and observers
/// 10 (at port 7010) and 11 (no address).
fn manager(mode: Mode, config: ManagerConfig) -> Arc<Manager<P, u32>> {
    let mut discovery = p2p_discovery::Config::local(NAMESPACE.to_vec());
    discovery.mode = mode;
    let tracker = Tracker::with_signer(
        discovery,
        &K::insecure_from_seed(0),
        addr(7000),
        UNIX0,
        vec![],
    )
    .unwrap();
    let m = Arc::new(Manager::new(config, tracker, Instant::now()));
    match mode {
        Mode::Gossip => {
            m.handle_peer_set(0, (0..4).map(key).collect()).unwrap();
        }
        Mode::Lookup => {
            let peers = (0..4).map(|i| (key(i), addr(7000 + i as u16))).collect();
            let (outcome, evicted) = m.handle_peer_set_with_addresses(0, peers).unwrap();
            assert_eq!((outcome.stored, evicted.len()), (3, 0));
        }
    }
    let (outcome, evicted) = m
        .handle_observers(vec![(key(10), Some(addr(7010))), (key(11), None)])
        .unwrap();
    assert_eq!((outcome.stored, evicted.len()), (1, 0));
    m
}

fn caps(validators: usize, observers: usize) -> ManagerConfig {
    ManagerConfig {
        max_inbound: NonZeroUsize::new(validators).unwrap(),
        max_inbound_handshakes: NonZeroUsize::new(8).unwrap(),
        max_handshakes_per_prefix: NonZeroUsize::new(8).unwrap(),
        max_observer_inbound: observers,
        max_dials: NonZeroUsize::new(8).unwrap(),
        ..manager_config()
    }
}

#[test]
fn observers_and_validators_have_separate_inbound_caps() {
    let m = manager(Mode::Gossip, caps(1, 1));
    let mut r = rng();
    let now = Instant::now();
    // Observer 10 connects inbound: authorized, admitted as an observer.
    let (hs1, in1) = m.handle_accept(ip(1), now).unwrap();
    assert_eq!(m.authorize(key(10).as_bytes(), UNIX0), Ok(()));
    drop(hs1);
    let a = m.admit(&key(10), false, 10, UNIX0, &mut r).unwrap();
    assert_eq!(a.role, Role::Observer);
    // Its place moved to the observers' cap: a validator still gets the validators' place.
    let (hs2, _in2) = m.handle_accept(ip(2), now).unwrap();
    drop(hs2);
    assert_eq!(m.authorize(key(1).as_bytes(), UNIX0), Ok(()));
    let v = m.admit(&key(1), false, 1, UNIX0, &mut r).unwrap();
    assert_eq!(v.role, Role::Validator);
    // The validators' cap is full now, and so is the observers'.
    assert_eq!(
        m.handle_accept(ip(3), now).map(drop),
        Err(Refused::InboundCap)
    );
    assert_eq!(
        m.authorize(key(11).as_bytes(), UNIX0),
        Err(Refusal::ObserverCap)
    );
    assert_eq!(
        m.admit(&key(11), false, 11, UNIX0, &mut r).map(drop),
        Err(Refused::ObserverCap)
    );
    assert_eq!(Refused::ObserverCap.label(), "observer_cap");
    // An observer we dial is not counted against the inbound cap.
    let dial = m
        .poll_dials(UNIX0, &mut r)
        .into_iter()
        .find(|d| d.key == key(10));
    assert!(dial.is_none(), "connected observers are not dialed");
    // The observer leaves: its place is free again; the validators' place is still taken.
    assert!(m.release(&key(10), a.id, "peer_closed", UNIX0, &mut r));
    drop(in1);
    assert_eq!(m.authorize(key(11).as_bytes(), UNIX0), Ok(()));
    assert_eq!(
        m.handle_accept(ip(4), now + Duration::from_secs(1))
            .map(drop),
        Err(Refused::InboundCap)
    );
}

#[test]
fn observers_can_be_refused_inbound_and_still_be_dialed() {
    let m = manager(Mode::Gossip, caps(4, 0));
    let mut r = rng();
    assert_eq!(
        m.authorize(key(10).as_bytes(), UNIX0),
        Err(Refusal::ObserverCap)
    );
    let dials = m.poll_dials(UNIX0, &mut r);
    let dial = dials.into_iter().find(|d| d.key == key(10)).unwrap();
    assert_eq!(dial.addr, addr(7010));
    let a = m.admit(&key(10), true, 10, UNIX0, &mut r).unwrap();
    assert_eq!(a.role, Role::Observer);
    let hk = m.poll_housekeeping(UNIX0 + 10_000, Instant::now(), &mut r);
    assert_eq!(hk.observers, 1);
    // Observers get the pings (the keep-alive), and are in no set's counts.
    assert!(hk.ping.unwrap().1.contains(&key(10)));
    assert!(hk.stats.iter().all(|s| s.connected == 0));
}

#[test]
fn removing_an_observer_closes_its_connection() {
    let m = manager(Mode::Gossip, caps(4, 4));
    let mut r = rng();
    m.admit(&key(10), false, 10, UNIX0, &mut r).unwrap();
    m.admit(&key(11), false, 11, UNIX0, &mut r).unwrap();
    let (_, evicted) = m.handle_observers(vec![(key(11), None)]).unwrap();
    assert_eq!(evicted, vec![10]);
    assert!(!m.is_authorized(&key(10)));
    assert!(m.is_observer(&key(11)));
    assert_eq!(m.unauthorized_connected(), vec![key(10)]);
    // A key in both sets is a validator.
    m.handle_observers(vec![(key(1), None)]).unwrap();
    assert!(!m.is_observer(&key(1)));
    assert_eq!(
        m.admit(&key(1), false, 1, UNIX0, &mut r).unwrap().role,
        Role::Validator
    );
}

/// Admits peer `i` over a session; returns the session and the opening control frames.
fn admitted(m: &Manager<P, u32>, i: u64, mux: &p2p_mux::Mux<P>) -> (Session<P>, usize) {
    let discovery = p2p_discovery::Config::local(NAMESPACE.to_vec());
    let config =
        p2p_session::SessionConfig::new(&discovery, Duration::from_secs(2), Duration::from_secs(5));
    let mut s = Session::new(key(i), false, version(NAMESPACE), config, Instant::now());
    while s.poll_transmit().is_some() {}
    let now = p2p_session::Now {
        instant: Instant::now(),
        unix_ms: UNIX0,
    };
    let event = s
        .handle_frame(
            encode(&Payload::Version(version(NAMESPACE))),
            now,
            m,
            &mut rng(),
        )
        .unwrap();
    assert!(matches!(event, Event::Admit));
    let a = m
        .admit(&key(i), false, i as u32, UNIX0, &mut rng())
        .unwrap();
    let mut opening = 0;
    s.handle_admitted(&a, |frames| {
        opening = frames.len();
        mux.peer_connected_as(key(i), frames, a.role)
            .map(|h| h.inbound)
    })
    .unwrap();
    (s, opening)
}

#[test]
fn lookup_mode_sends_no_record_answers_no_vector_and_ignores_records() {
    let m = manager(Mode::Lookup, caps(4, 4));
    let mux = p2p_mux::Mux::new(p2p_mux::MuxConfig::recommended());
    let (mut s, opening) = admitted(&m, 1, &mux);
    // Only the bit vector: no record.
    assert_eq!(opening, 1);
    let now = p2p_session::Now {
        instant: Instant::now(),
        unix_ms: UNIX0,
    };
    // A gossip peer's record and answers: ignored (typed), the connection stays.
    let record =
        p2p_discovery::sign_record(&K::insecure_from_seed(1), NAMESPACE, addr(9001), UNIX0);
    for _ in 0..3 {
        let frame = encode(&Payload::Peers(Peers {
            peers: vec![record.clone()],
        }));
        match s.handle_frame(frame, now, &m, &mut rng()).unwrap() {
            Event::Ignored(p2p_discovery::Error::LookupModeRecords { records: 1 }) => {}
            other => panic!("{other:?}"),
        }
    }
    // The dial plan still uses the application's address.
    let dial = m.poll_dials(UNIX0, &mut rng());
    assert!(dial.iter().any(|d| d.key == key(2) && d.addr == addr(7002)));
    // A bit vector that lacks everything is answered with nothing.
    let empty = encode(&Payload::BitVec(BitVec {
        index: 0,
        bits: vec![0u8].into(),
    }));
    assert!(matches!(
        s.handle_frame(empty, now, &m, &mut rng()).unwrap(),
        Event::Continue
    ));
    assert!(s.poll_transmit().is_none());
    // Address updates: unknown keys are refused, known ones redial.
    assert_eq!(
        m.update_address(&key(9), addr(9009)),
        Err(p2p_discovery::Error::UnknownKey)
    );
    assert_eq!(
        m.update_address(&key(1), addr(9001)),
        Ok(AddressUpdate::Connected)
    );
}

#[test]
fn an_observer_gets_no_gossip_and_its_records_are_ignored() {
    let m = manager(Mode::Gossip, caps(4, 4));
    let mux = p2p_mux::Mux::new(p2p_mux::MuxConfig::recommended());
    let (mut s, opening) = admitted(&m, 10, &mux);
    // Gossip mode: our record and a bit vector, as to anyone.
    assert_eq!(opening, 2);
    let now = p2p_session::Now {
        instant: Instant::now(),
        unix_ms: UNIX0,
    };
    let own = p2p_discovery::sign_record(&K::insecure_from_seed(10), NAMESPACE, addr(9010), UNIX0);
    let frame = encode(&Payload::Peers(Peers { peers: vec![own] }));
    assert!(matches!(
        s.handle_frame(frame, now, &m, &mut rng()).unwrap(),
        Event::Ignored(p2p_discovery::Error::ObserverRecords { records: 1 })
    ));
    let empty = encode(&Payload::BitVec(BitVec {
        index: 0,
        bits: vec![0u8].into(),
    }));
    assert!(matches!(
        s.handle_frame(empty, now, &m, &mut rng()).unwrap(),
        Event::Continue
    ));
    assert!(s.poll_transmit().is_none(), "no gossip to observers");
}

#[test]
fn a_block_that_expires_during_a_dial() {
    let m = manager(Mode::Lookup, caps(4, 4));
    let mut r = rng();
    let dials = m.poll_dials(UNIX0, &mut r);
    let d1 = dials.iter().find(|d| d.key == key(1)).unwrap();
    let d2 = dials.iter().find(|d| d.key == key(2)).unwrap();
    assert_eq!(
        (d1.addr.clone(), d2.addr.clone()),
        (addr(7001).into(), addr(7002).into())
    );
    // Both are blocked for 100 ms while their dials run.
    assert!(
        m.block_for(key(1), Some(Duration::from_millis(100)), UNIX0)
            .is_none()
    );
    assert!(
        m.block_for(key(2), Some(Duration::from_millis(100)), UNIX0)
            .is_none()
    );
    // Dial 1 completes inside the block: refused, counted as a failed dial.
    assert_eq!(
        m.admit(&key(1), true, 1, UNIX0 + 50, &mut r).map(drop),
        Err(Refused::Blocked)
    );
    // The blocks expire (dial 2 still runs): key 1 is dialable at once, key 2 is not dialed
    // a second time.
    let hk = m.poll_housekeeping(UNIX0 + 150, Instant::now(), &mut r);
    assert_eq!(hk.unblocked, 2);
    drop(dials);
    let again: Vec<_> = m
        .poll_dials(UNIX0 + 150, &mut r)
        .into_iter()
        .map(|d| (d.key, d.addr))
        .collect();
    assert!(again.contains(&(key(1), addr(7001).into())), "{again:?}");
    assert!(again.iter().all(|(k, _)| *k != key(2)));
    // Dial 2 completes after its block expired: admitted.
    assert!(m.admit(&key(2), true, 2, UNIX0 + 160, &mut r).is_ok());
}
