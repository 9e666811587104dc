//! The manager's policy: admission, the pre-handshake order, the dial plan, pings, evictions.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use p2p_discovery::Tracker;
use p2p_handshake::Refusal;
use p2p_identity::{Signer, Verifier, bls12381};
use p2p_proto::Peers;
use p2p_session::{Manager, ManagerConfig, Refused};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn pre_handshake_order_is_rate_limit_then_slot_then_cap() {
    let node = node(4);
    let ip: IpAddr = [127, 0, 0, 1].into();
    let t = node.t0;
    let a = node.manager.handle_accept(ip, t).unwrap();
    let b = node.manager.handle_accept(ip, t).unwrap();
    // Two handshake slots are taken: the third is refused for its slot, not its address.
    assert_eq!(
        node.manager
            .handle_accept([127, 0, 0, 2].into(), t)
            .unwrap_err(),
        Refused::HandshakeSlotsFull
    );
    // The address's burst (3) is spent by a third attempt, refused first for its rate.
    assert!(node.manager.handle_accept(ip, t).is_err());
    assert_eq!(
        node.manager.handle_accept(ip, t).unwrap_err(),
        Refused::AddressRateLimited
    );
    // Handshakes end; the connections stay and count against the inbound cap (4).
    drop((a.0, b.0));
    let c = node
        .manager
        .handle_accept([127, 0, 0, 2].into(), t)
        .unwrap();
    drop(c.0);
    let d = node
        .manager
        .handle_accept([127, 0, 0, 3].into(), t)
        .unwrap();
    drop(d.0);
    assert_eq!(
        node.manager
            .handle_accept([127, 0, 0, 4].into(), t)
            .unwrap_err(),
        Refused::InboundCap
    );
    drop(c.1);
    assert!(node.manager.handle_accept([127, 0, 0, 4].into(), t).is_ok());
    let _keep = (a.1, b.1, d.1);
}

/// Silent connections from many addresses of one network (here 64 of one /24, as a host with
/// an IPv6 /64 or a small IPv4 block has) take at most their prefix's share of the handshake
/// slots; a peer from another prefix still gets one.
#[test]
fn one_prefix_cannot_take_every_handshake_slot() {
    let config = ManagerConfig {
        max_inbound: NonZeroUsize::new(1024).unwrap(),
        max_inbound_handshakes: NonZeroUsize::new(64).unwrap(),
        max_handshakes_per_prefix: NonZeroUsize::new(8).unwrap(),
        handshakes_per_prefix_per_minute: NonZeroU32::new(10_000).unwrap(),
        max_tracked_ips: NonZeroUsize::new(4096).unwrap(),
        ..manager_config()
    };
    let node = node_with(4, config);
    let t = node.t0;
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for host in 1..=64u8 {
        match node.manager.handle_accept([10, 1, 2, host].into(), t) {
            Ok(p) => held.push(p),
            Err(e) => refused.push(e),
        }
    }
    assert_eq!(held.len(), 8, "one /24 holds at most its 8 slots");
    assert!(
        refused.iter().all(|e| *e == Refused::PrefixHandshakesFull),
        "{refused:?}"
    );
    assert_eq!(
        Refused::PrefixHandshakesFull.label(),
        "prefix_handshakes_full"
    );
    // Another network is served while the first still holds its slots.
    let honest = node.manager.handle_accept([10, 1, 3, 1].into(), t);
    assert!(honest.is_ok(), "{honest:?}");
    // A finished handshake gives its prefix a slot back.
    drop(held.pop().map(|p| p.0));
    assert!(
        node.manager
            .handle_accept([10, 1, 2, 200].into(), t)
            .is_ok()
    );
}

/// Fresh addresses from one IPv6 /64 share one quota: a host that owns a /64 does not get a
/// new burst per address. The exact-address quota still applies inside a prefix.
#[test]
fn an_ipv6_slash_64_shares_one_handshake_quota() {
    let config = ManagerConfig {
        max_inbound: NonZeroUsize::new(10_000).unwrap(),
        max_inbound_handshakes: NonZeroUsize::new(10_000).unwrap(),
        max_handshakes_per_prefix: NonZeroUsize::new(10_000).unwrap(),
        handshakes_per_ip_per_minute: NonZeroU32::new(3).unwrap(),
        handshakes_per_prefix_per_minute: NonZeroU32::new(12).unwrap(),
        max_tracked_ips: NonZeroUsize::new(4096).unwrap(),
        ..manager_config()
    };
    let node = node_with(4, config);
    let t = node.t0;
    let mut outcomes = Vec::new();
    for i in 0..100u16 {
        let ip: IpAddr = format!("2001:db8:0:1::{i:x}").parse().unwrap();
        outcomes.push(node.manager.handle_accept(ip, t).map(drop));
    }
    let granted = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(granted, 12, "the /64's burst, not one burst per address");
    assert_eq!(outcomes[12], Err(Refused::PrefixRateLimited));
    // Another /64 has its own quota; one address still has its own, smaller one.
    let other: IpAddr = "2001:db8:0:2::1".parse().unwrap();
    for _ in 0..3 {
        assert_eq!(node.manager.handle_accept(other, t).map(drop), Ok(()));
    }
    assert_eq!(
        node.manager.handle_accept(other, t).map(drop),
        Err(Refused::AddressRateLimited)
    );
    // IPv4 clients seen through a dual-stack listener (`::ffff:a.b.c.d`) are counted by their
    // IPv4 /24, not all in one IPv6 /64.
    for last in 1..=12u8 {
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(192, 0, 2, last).to_ipv6_mapped());
        assert_eq!(node.manager.handle_accept(mapped, t).map(drop), Ok(()));
    }
    let mapped = IpAddr::V6(std::net::Ipv4Addr::new(198, 51, 100, 1).to_ipv6_mapped());
    assert_eq!(node.manager.handle_accept(mapped, t).map(drop), Ok(()));
    assert_eq!(
        node.manager
            .handle_accept([192, 0, 2, 77].into(), t)
            .map(drop),
        Err(Refused::PrefixRateLimited)
    );
}

#[test]
fn authorizer_refuses_blocked_connected_and_unknown_keys() {
    let mut node = node(4);
    let stranger = K::insecure_from_seed(99).public_key();
    assert_eq!(
        node.manager.authorize(stranger.as_bytes(), UNIX0),
        Err(Refusal::NotAuthorized)
    );
    // Bytes that are no key at all are looked up, not parsed: simply unknown.
    assert_eq!(
        node.manager.authorize(&[0xff; 32], UNIX0),
        Err(Refusal::NotAuthorized)
    );
    assert!(
        node.manager
            .authorize(node.key(1).as_bytes(), UNIX0)
            .is_ok()
    );
    node.manager.block(node.key(2), UNIX0);
    assert_eq!(
        node.manager.authorize(node.key(2).as_bytes(), UNIX0),
        Err(Refusal::Blocked)
    );
    let _s = node.admitted(1, 1);
    assert_eq!(
        node.manager.authorize(node.key(1).as_bytes(), UNIX0),
        Err(Refusal::AlreadyConnected)
    );
}

#[test]
fn admission_refuses_and_reports_refused_dials() {
    let mut node = node(4);
    let stranger = K::insecure_from_seed(99).public_key();
    assert_eq!(
        node.manager
            .admit(&stranger, false, 1, UNIX0, &mut node.rng)
            .unwrap_err(),
        Refused::NotAuthorized
    );
    assert_eq!(
        node.manager
            .admit(&node.key(0), false, 1, UNIX0, &mut node.rng)
            .unwrap_err(),
        Refused::SelfConnection
    );
    node.manager.block(node.key(3), UNIX0);
    assert_eq!(
        node.manager
            .admit(&node.key(3), true, 1, UNIX0, &mut node.rng)
            .unwrap_err(),
        Refused::Blocked
    );
    assert!(node.manager.connected().is_empty());
}

#[test]
fn simultaneous_dials_keep_the_connection_dialed_by_the_smaller_key() {
    let mut node = node(4);
    let me = node.key(0);
    let peer = node.key(1);
    let first = node
        .manager
        .admit(&peer, true, 10, UNIX0, &mut node.rng)
        .unwrap();
    let second = node.manager.admit(&peer, false, 11, UNIX0, &mut node.rng);
    // The connection dialed by the smaller key survives, on both sides alike.
    if me < peer {
        assert_eq!(second.unwrap_err(), Refused::Duplicate);
    } else {
        let second = second.unwrap();
        assert_eq!(second.replaced, Some(10));
        assert!(
            !node
                .manager
                .release(&peer, first.id, "test", UNIX0, &mut node.rng)
        );
        assert_eq!(node.manager.connected(), vec![peer.clone()]);
    }
    // Same direction twice: the live one stays.
    let third = node
        .manager
        .admit(&peer, me >= peer, 12, UNIX0, &mut node.rng);
    assert_eq!(third.unwrap_err(), Refused::Duplicate);
}

/// A thousand rotations interleaved with admissions and releases: an admitted key is always
/// authorized or its handle was handed back for closing by the rotation that removed it.
#[test]
fn rotations_never_leave_an_unauthorized_key_connected() {
    let mut node = node(8);
    let all: Vec<P> = (0..8).map(|i| node.key(i)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    // handle -> (key, connection id)
    let mut live: Vec<(u32, P, u64)> = Vec::new();
    let mut to_close: HashSet<u32> = HashSet::new();
    let mut next_handle = 0u32;
    let mut index = 0u64;
    for step in 0..1000 {
        match rng.random_range(0..4) {
            0 => {
                // Rotate to a random subset of the keys (always including ourselves).
                index += 1;
                let set: Vec<P> = std::iter::once(all[0].clone())
                    .chain(all[1..].iter().filter(|_| rng.random_bool(0.5)).cloned())
                    .collect();
                for h in node.manager.handle_peer_set(index, set).unwrap() {
                    to_close.insert(h);
                }
            }
            1 | 2 => {
                let i = rng.random_range(1..8);
                next_handle += 1;
                if let Ok(a) = node.manager.admit(
                    &all[i],
                    rng.random_bool(0.5),
                    next_handle,
                    UNIX0,
                    &mut node.rng,
                ) {
                    if let Some(old) = a.replaced {
                        to_close.insert(old);
                    }
                    live.push((next_handle, all[i].clone(), a.id));
                }
            }
            _ => {
                // The driver closes what it was asked to close, and now and then another one.
                let random = (!live.is_empty() && rng.random_bool(0.3))
                    .then(|| live[rng.random_range(0..live.len())].0);
                live.retain(|(h, key, id)| {
                    let ends = to_close.remove(h) || Some(*h) == random;
                    if ends {
                        node.manager.release(key, *id, "test", UNIX0, &mut node.rng);
                    }
                    !ends
                });
            }
        }
        for key in node.manager.unauthorized_connected() {
            let pending = live
                .iter()
                .any(|(h, k, _)| *k == key && to_close.contains(h));
            assert!(
                pending,
                "step {step}: {key} connected, unauthorized, not being closed"
            );
        }
    }
    // Once every close is carried out, nothing unauthorized is left.
    for (h, key, id) in &live {
        if to_close.contains(h) {
            node.manager.release(key, *id, "test", UNIX0, &mut node.rng);
        }
    }
    assert!(node.manager.unauthorized_connected().is_empty());
}

#[test]
fn dials_are_planned_within_their_own_slots_and_blocked_keys_are_skipped() {
    let node = node(6);
    // Learn addresses of keys 1..6.
    for i in 1..6 {
        let r = p2p_discovery::sign_record(
            &node.keys[i],
            NAMESPACE,
            ([127, 0, 0, 1], 9000 + i as u16).into(),
            UNIX0,
        );
        node.manager
            .handle_peers(&node.key(1), Peers { peers: vec![r] }, UNIX0)
            .unwrap();
    }
    node.manager.block(node.key(1), UNIX0);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Inbound slots are all taken: dials have their own.
    let _a = node
        .manager
        .handle_accept([127, 0, 0, 9].into(), node.t0)
        .unwrap();
    let _b = node
        .manager
        .handle_accept([127, 0, 0, 8].into(), node.t0)
        .unwrap();
    let first = node.manager.poll_dials(UNIX0, &mut rng);
    assert_eq!(first.len(), 2, "max_dials is 2");
    assert!(
        first.iter().all(|d| d.key != node.key(1)),
        "blocked key dialed"
    );
    assert!(
        node.manager.poll_dials(UNIX0, &mut rng).is_empty(),
        "no free slot"
    );
    let mut first = first.into_iter();
    let done = first.next().unwrap();
    let _still_dialing = first.next().unwrap();
    node.manager.handle_dial_failed(&done.key, UNIX0, &mut rng);
    drop(done);
    assert_eq!(
        node.manager.poll_dials(UNIX0, &mut rng).len(),
        1,
        "one slot came free"
    );
}

/// Each admitted peer gets one ping per interval, at its own phase drawn at admission: peers
/// admitted together are pinged at different ticks, so a peer pinged later is asked with what
/// the answers to the earlier pings taught us (without it all 11 go out at one tick).
#[test]
fn each_peer_is_pinged_once_per_interval_on_its_own_phase_and_rotations_evict() {
    let mut node = node(12);
    let _sessions: Vec<_> = (1..12).map(|i| node.admitted(i, i as u32)).collect();
    let t = node.t0;
    let interval = node.discovery.ping_interval.as_millis() as u64;
    let tick = interval / 10;
    assert_eq!(interval % tick, 0, "ticks fall on the interval");
    let hk = node.manager.poll_housekeeping(UNIX0, t, &mut node.rng);
    assert!(hk.ping.is_none(), "the admission vector was the first");
    let mut pinged: HashMap<P, Vec<u64>> = HashMap::new();
    let mut now = UNIX0;
    while now < UNIX0 + 3 * interval {
        now += tick;
        if let Some((_, to)) = node.manager.poll_housekeeping(now, t, &mut node.rng).ping {
            assert!(!to.is_empty(), "a ping is only built for due peers");
            for k in to {
                pinged.entry(k).or_default().push(now - UNIX0);
            }
        }
    }
    assert_eq!(pinged.len(), 11, "every admitted peer is pinged");
    for at in pinged.values() {
        assert_eq!(at.len(), 3, "once per interval: {at:?}");
        assert!(
            at[0] <= interval,
            "the first periodic ping within one interval: {at:?}"
        );
        assert!(at.windows(2).all(|w| w[1] - w[0] == interval), "{at:?}");
    }
    let phases: HashSet<u64> = pinged.values().map(|at| at[0]).collect();
    assert!(
        phases.len() >= 3,
        "pings are spread over the interval: {phases:?}"
    );
    // Key 2 leaves every tracked set: its handle comes back to be closed.
    let keep: Vec<P> = (0..12).filter(|&i| i != 2).map(|i| node.key(i)).collect();
    let evicted = node.manager.handle_peer_set(1, keep.clone()).unwrap();
    assert!(evicted.is_empty(), "set 0 is still tracked");
    node.manager.handle_peer_set(2, keep.clone()).unwrap();
    let evicted = node.manager.handle_peer_set(3, keep).unwrap();
    assert_eq!(evicted, vec![2]);
}

/// Records are verified outside the lock every connection shares: while one thread verifies a
/// burst of BLS records, another takes the lock without waiting for the verifications.
#[test]
fn record_signatures_are_verified_outside_the_shared_lock() {
    type B = bls12381::PrivateKey;
    let keys: Vec<B> = (0..65).map(B::insecure_from_seed).collect();
    let discovery = p2p_discovery::Config::local(NAMESPACE.to_vec());
    let tracker = Tracker::with_signer(
        discovery,
        &keys[0],
        "127.0.0.1:7000".parse::<std::net::SocketAddr>().unwrap(),
        UNIX0,
        vec![],
    )
    .unwrap();
    let manager: Arc<Manager<bls12381::PublicKey, u32>> =
        Arc::new(Manager::new(manager_config(), tracker, Instant::now()));
    manager
        .handle_peer_set(0, keys.iter().map(Signer::public_key).collect())
        .unwrap();
    // 64 records, one per key: 64 BLS verifications in one message.
    let records: Vec<_> = keys[1..]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            p2p_discovery::sign_record(
                k,
                NAMESPACE,
                ([127, 0, 0, 1], 9000 + i as u16).into(),
                UNIX0,
            )
        })
        .collect();
    let from = keys[1].public_key();
    let m2 = Arc::clone(&manager);
    let worker = std::thread::spawn(move || {
        let start = Instant::now();
        let outcome = m2
            .handle_peers(&from, Peers { peers: records }, UNIX0)
            .unwrap();
        (outcome.accepted, start.elapsed())
    });
    let mut worst = Duration::ZERO;
    while !worker.is_finished() {
        let t = Instant::now();
        let _ = manager.connected();
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_micros(200));
    }
    let (accepted, total) = worker.join().unwrap();
    assert_eq!(accepted, 64);
    assert!(
        worst * 4 < total,
        "the lock was held for {worst:?} of the {total:?} the verifications took"
    );
}

#[test]
fn a_block_that_expires_during_a_dial_lets_the_answer_in() {
    let mut node = node(3);
    let peer = node.key(1);
    // A dial to key 1 is under way when it is blocked for one second.
    assert_eq!(
        node.manager
            .block_for(peer.clone(), Some(Duration::from_secs(1)), UNIX0),
        None,
        "not connected: nothing to close"
    );
    assert!(node.manager.is_blocked(&peer, UNIX0 + 999));
    assert_eq!(
        node.manager.authorize(peer.as_bytes(), UNIX0 + 999),
        Err(Refusal::Blocked)
    );
    // Its answer arrives while the block lasts: refused.
    assert_eq!(
        node.manager
            .admit(&peer, true, 1, UNIX0 + 500, &mut node.rng)
            .unwrap_err(),
        Refused::Blocked
    );
    // A later answer, after the block expired: admitted, without any unblock call.
    assert!(!node.manager.is_blocked(&peer, UNIX0 + 1000));
    node.manager
        .admit(&peer, true, 2, UNIX0 + 1000, &mut node.rng)
        .unwrap();
    let t = node.t0;
    let hk = node
        .manager
        .poll_housekeeping(UNIX0 + 1000, t, &mut node.rng);
    assert_eq!((hk.blocked, hk.unblocked), (0, 1));
    // A block without a duration lasts until `unblock`; the preset one is the config's.
    node.manager.block_for(node.key(2), None, UNIX0);
    assert!(node.manager.is_blocked(&node.key(2), u64::MAX));
    let hk = node.manager.poll_housekeeping(u64::MAX, t, &mut node.rng);
    assert_eq!((hk.blocked, hk.unblocked), (1, 0));
    node.manager.unblock(&node.key(2));
    node.manager.block(node.key(2), UNIX0);
    assert!(node.manager.is_blocked(&node.key(2), UNIX0 + 59_999));
    assert!(!node.manager.is_blocked(&node.key(2), UNIX0 + 60_000));
}

#[test]
fn connection_events_follow_admission_and_name_the_managers_reason() {
    use p2p_session::{Direction, PeerEvent, PeerEventKind};
    let mut node = node(4);
    let event = |peer: P, kind| PeerEvent {
        peer,
        direction: Direction::Inbound,
        kind,
    };
    let gone = |reason| PeerEventKind::Disconnected { reason };
    let a = node
        .manager
        .admit(&node.key(1), false, 1, UNIX0, &mut node.rng)
        .unwrap();
    assert_eq!(node.manager.poll_event(), None, "not before the mux has it");
    node.manager.handle_established(&node.key(1), a.id);
    assert_eq!(
        node.manager.poll_event(),
        Some(event(node.key(1), PeerEventKind::Connected))
    );
    // Closed because blocked: the driver's generic label is replaced by the manager's.
    assert_eq!(node.manager.block(node.key(1), UNIX0), Some(1));
    assert!(
        node.manager
            .release(&node.key(1), a.id, "local", UNIX0, &mut node.rng)
    );
    assert_eq!(
        node.manager.poll_event(),
        Some(event(node.key(1), gone(p2p_session::CLOSE_BLOCKED)))
    );
    // Disconnect without a block: the key stays welcome.
    let b = node
        .manager
        .admit(&node.key(2), false, 2, UNIX0, &mut node.rng)
        .unwrap();
    node.manager.handle_established(&node.key(2), b.id);
    assert_eq!(node.manager.disconnect(&node.key(2)), Some(2));
    assert!(
        node.manager
            .release(&node.key(2), b.id, "local", UNIX0, &mut node.rng)
    );
    assert!(
        node.manager
            .authorize(node.key(2).as_bytes(), UNIX0)
            .is_ok()
    );
    assert_eq!(node.manager.disconnect(&node.key(2)), None, "not connected");
    // A connection that closes for its own reason keeps the driver's label.
    let c = node
        .manager
        .admit(&node.key(3), false, 3, UNIX0, &mut node.rng)
        .unwrap();
    node.manager.handle_established(&node.key(3), c.id);
    assert!(
        node.manager
            .release(&node.key(3), c.id, "peer_closed", UNIX0, &mut node.rng)
    );
    // One that never reached the mux reports nothing.
    let d = node
        .manager
        .admit(&node.key(3), false, 4, UNIX0, &mut node.rng)
        .unwrap();
    assert!(
        node.manager
            .release(&node.key(3), d.id, "mux_refused", UNIX0, &mut node.rng)
    );
    let rest: Vec<_> = std::iter::from_fn(|| node.manager.poll_event()).collect();
    assert_eq!(
        rest,
        vec![
            event(node.key(2), PeerEventKind::Connected),
            event(node.key(2), gone(p2p_session::CLOSE_REQUESTED)),
            event(node.key(3), PeerEventKind::Connected),
            event(node.key(3), gone("peer_closed")),
        ]
    );
    assert_eq!(node.manager.events_dropped(), 0);
}

#[test]
fn dial_now_refuses_with_a_typed_reason() {
    use p2p_session::DialNowError;
    let mut node = node(4);
    let stranger = K::insecure_from_seed(99).public_key();
    assert_eq!(
        node.manager.dial_now(&node.key(0), UNIX0),
        Err(DialNowError::SelfDial)
    );
    assert_eq!(
        node.manager.dial_now(&stranger, UNIX0),
        Err(DialNowError::NotAuthorized)
    );
    node.manager.block(node.key(1), UNIX0);
    assert_eq!(
        node.manager.dial_now(&node.key(1), UNIX0),
        Err(DialNowError::Blocked)
    );
    let _s = node.admitted(2, 2);
    assert_eq!(
        node.manager.dial_now(&node.key(2), UNIX0),
        Err(DialNowError::AlreadyConnected)
    );
    assert_eq!(node.manager.dial_now(&node.key(3), UNIX0), Ok(()));
}

#[test]
fn a_peer_id_bootstrapper_is_dialed_only_once_a_tracked_key_has_its_id() {
    let mut node = node(3);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let stranger = K::insecure_from_seed(99).public_key();
    let far: std::net::SocketAddr = "127.0.0.1:9099".parse().unwrap();
    assert!(node.manager.add_id_bootstrapper(stranger.peer_id(), far));
    assert!(
        !node.manager.add_id_bootstrapper(stranger.peer_id(), far),
        "the same id twice"
    );
    // No tracked key has the id: nothing is dialed, and housekeeping reports it once.
    assert!(node.manager.poll_dials(UNIX0, &mut rng).is_empty());
    let t = node.t0;
    let hk = node.manager.poll_housekeeping(UNIX0, t, &mut node.rng);
    assert_eq!(hk.unresolved.len(), 1);
    assert_eq!(hk.unresolved[0].id, stranger.peer_id());
    assert!(
        hk.unresolved[0]
            .to_string()
            .contains("no key of the tracked peer sets has this peer id")
    );
    let hk = node.manager.poll_housekeeping(UNIX0, t, &mut node.rng);
    assert!(hk.unresolved.is_empty(), "reported once per set change");
    // A tracked key's id (key 2 has no known address otherwise): dialed at the URL's address.
    let near: std::net::SocketAddr = "127.0.0.1:9002".parse().unwrap();
    assert!(
        node.manager
            .add_id_bootstrapper(node.key(2).peer_id(), near)
    );
    let dials = node.manager.poll_dials(UNIX0, &mut rng);
    assert_eq!(dials.len(), 1);
    assert_eq!(
        (&dials[0].key, &dials[0].addr),
        (&node.key(2), &near.into())
    );
    drop(dials);
    // Once a set names the stranger, its id resolves too.
    let mut keys: Vec<P> = (0..3).map(|i| node.key(i)).collect();
    keys.push(stranger.clone());
    node.manager.handle_peer_set(1, keys).unwrap();
    let dials = node.manager.poll_dials(UNIX0, &mut rng);
    assert!(
        dials.iter().any(|d| d.key == stranger && d.addr == far),
        "{:?}",
        dials.iter().map(|d| &d.addr).collect::<Vec<_>>()
    );
}

#[test]
fn an_expired_block_makes_the_key_dialable_at_once() {
    let mut node = node(3);
    let r = p2p_discovery::sign_record(
        &node.keys[1],
        NAMESPACE,
        ([127, 0, 0, 1], 9001).into(),
        UNIX0,
    );
    node.manager
        .handle_peers(&node.key(1), Peers { peers: vec![r] }, UNIX0)
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    node.manager
        .block_for(node.key(1), Some(Duration::from_secs(1)), UNIX0);
    // While blocked, the planned dial is refused and counted as a failure (backoff grows).
    assert!(node.manager.poll_dials(UNIX0, &mut rng).is_empty());
    assert!(node.manager.poll_dials(UNIX0 + 999, &mut rng).is_empty());
    // Housekeeping after the expiry forgets the block and resets the backoff: dialed at once.
    let t = node.t0;
    let hk = node
        .manager
        .poll_housekeeping(UNIX0 + 1000, t, &mut node.rng);
    assert_eq!(hk.unblocked, 1);
    let dials = node.manager.poll_dials(UNIX0 + 1000, &mut rng);
    assert_eq!(dials.len(), 1);
    assert_eq!(dials[0].key, node.key(1));
}
