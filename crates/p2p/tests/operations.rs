//! What operators ask for: connection events, disconnect and dial on demand, timed blocks,
//! peer-id bootstrappers, waiting for room in one recipient's backlog.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use p2p::identity::{PeerUrl, PeerUrlTarget, Signer, Verifier, ed25519};
use p2p::{
    DialNowError, Direction, Events, EventsError, Network, PeerEvent, PeerEventKind, Priority,
    Quota, Recipients,
};
use prometheus_client::registry::Registry;

type K = ed25519::PrivateKey;
type P = Key<K>;

/// The next event within `within`.
async fn next(events: &mut Events<P>, within: Duration) -> Result<PeerEvent<P>, EventsError> {
    tokio::time::timeout(within, events.recv())
        .await
        .expect("an event in time")
}

fn keys(n: u64) -> Vec<P> {
    (0..n)
        .map(|i| K::insecure_from_seed(i).public_key())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_report_connects_and_disconnects_with_their_reasons() {
    let sets = [(0, keys(3))];
    let a = start::<K>(config(0, vec![]), 0, &sets);
    let mut events = a.oracle.subscribe();
    let boot = PeerUrl::new(&a.key, a.oracle.local_addr());
    let b = start::<K>(config(1, vec![boot]), 1, &sets);
    let wait = Duration::from_secs(5);
    let first = next(&mut events, wait).await.unwrap();
    assert_eq!(
        first,
        PeerEvent {
            peer: b.key.clone(),
            direction: Direction::Inbound,
            kind: PeerEventKind::Connected,
        }
    );
    // Disconnect without a block: reported with its reason, and the peer comes back.
    assert!(a.oracle.disconnect(&b.key));
    let gone = next(&mut events, wait).await.unwrap();
    assert_eq!(
        (gone.peer, gone.kind),
        (
            b.key.clone(),
            PeerEventKind::Disconnected {
                reason: "disconnect_requested"
            }
        )
    );
    let back = next(&mut events, wait).await.unwrap();
    assert_eq!((&back.peer, back.kind), (&b.key, PeerEventKind::Connected));
    // A block closes it with its own reason. Both sides may have redialed at once, so a
    // simultaneous-dial replacement (seen here as `replaced`, or `peer_closed` when the peer
    // closed the duplicate first) may come first: connected / disconnected alternate.
    wait_for(|| a.oracle.connected().len() == 1, wait, "b reconnects").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.oracle.block(b.key.clone());
    let mut up = true;
    loop {
        let e = next(&mut events, wait).await.unwrap();
        match e.kind {
            PeerEventKind::Connected => {
                assert!(!up, "connected twice");
                up = true;
            }
            PeerEventKind::Disconnected { reason } => {
                assert!(up, "disconnected twice");
                up = false;
                if reason == "blocked" {
                    break;
                }
                // The simultaneous-dial rule: our side replaced the connection, or the peer
                // closed its duplicate first.
                assert!(
                    ["replaced", "peer_closed"].contains(&reason),
                    "unexpected reason {reason}"
                );
            }
        }
    }
    // Bad requests are typed: nobody to disconnect, nobody to dial.
    assert!(!a.oracle.disconnect(&b.key));
    let stranger = K::insecure_from_seed(77).public_key();
    assert_eq!(
        a.oracle.dial_now(&stranger),
        Err(DialNowError::NotAuthorized)
    );
    assert_eq!(a.oracle.dial_now(&b.key), Err(DialNowError::Blocked));
    assert_eq!(a.oracle.dial_now(&a.key), Err(DialNowError::SelfDial));
    assert!(metric_value(&a.registry, "p2p_peer_events_total") >= 4.0);
    shutdown(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_told_how_many_events_it_missed() {
    let sets = [(0, keys(3))];
    let mut cfg = config::<K>(0, vec![]);
    cfg.event_capacity = std::num::NonZeroUsize::MIN;
    let a = start::<K>(cfg, 0, &sets);
    let mut lagging = a.oracle.subscribe();
    let boot = PeerUrl::new(&a.key, a.oracle.local_addr());
    let b = start::<K>(config(1, vec![boot]), 1, &sets);
    let wait = Duration::from_secs(5);
    wait_for(|| a.oracle.connected().len() == 1, wait, "b connects").await;
    // Connected, disconnected, connected again: three events into a queue of one.
    assert!(a.oracle.disconnect(&b.key));
    wait_for(
        || metric_value(&a.registry, "p2p_peer_events_total") >= 3.0,
        wait,
        "the reconnect's events",
    )
    .await;
    let missed = match next(&mut lagging, wait).await {
        Err(EventsError::Lagged { missed }) => missed,
        other => panic!("expected a lag report, got {other:?}"),
    };
    assert!(missed >= 2, "missed {missed}");
    // After the report, the subscriber reads on from the oldest event still held.
    let latest = next(&mut lagging, wait).await.unwrap();
    assert_eq!(latest.kind, PeerEventKind::Connected);
    assert_eq!(
        metric_value(&a.registry, "p2p_peer_events_missed_total"),
        missed as f64
    );
    shutdown(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_block_expires_and_the_peer_is_dialed_again_at_once() {
    let sets = [(0, keys(3))];
    let a = start::<K>(config(0, vec![]), 0, &sets);
    let boot = PeerUrl::new(&a.key, a.oracle.local_addr());
    let b = start::<K>(config(1, vec![boot]), 1, &sets);
    let nodes = vec![a, b];
    full_mesh(&nodes, Duration::from_secs(5)).await;
    let block = Duration::from_millis(400);
    let t = Instant::now();
    nodes[0].oracle.block_for(nodes[1].key.clone(), Some(block));
    assert!(nodes[0].oracle.is_blocked(&nodes[1].key));
    wait_for(
        || nodes[0].oracle.connected().is_empty(),
        Duration::from_secs(2),
        "the block disconnects",
    )
    .await;
    wait_for(
        || metric_value(&nodes[0].registry, "p2p_blocked_peers") == 1.0,
        Duration::from_secs(2),
        "the gauge counts the block",
    )
    .await;
    // Without any unblock call, the two reconnect once the block expires, not before.
    full_mesh(&nodes, Duration::from_secs(3)).await;
    let took = t.elapsed();
    assert!(
        took >= block,
        "reconnected after {took:?}, inside the block"
    );
    assert!(!nodes[0].oracle.is_blocked(&nodes[1].key));
    wait_for(
        || metric_value(&nodes[0].registry, "p2p_blocked_peers") == 0.0,
        Duration::from_secs(2),
        "the gauge forgets the expired block",
    )
    .await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_id_bootstrappers_resolve_against_tracked_keys_or_are_reported() {
    let sets = [(0, keys(3))];
    let a = start::<K>(config(0, vec![]), 0, &sets);
    let by_id = |key: &P, addr| PeerUrl {
        target: PeerUrlTarget::Id(key.peer_id()),
        ..PeerUrl::new(key, addr)
    };
    // Node 1 knows node 0 only by its peer id: it is found among the tracked keys.
    let b = start::<K>(
        config(1, vec![by_id(&a.key, a.oracle.local_addr())]),
        1,
        &sets,
    );
    let mut nodes = vec![a, b];
    full_mesh(&nodes, Duration::from_secs(5)).await;
    // Node 2's only bootstrapper has the id of a key in no tracked set: never dialed,
    // reported by the gauge.
    let stranger = K::insecure_from_seed(77).public_key();
    let c = start::<K>(
        config(2, vec![by_id(&stranger, nodes[0].oracle.local_addr())]),
        2,
        &sets,
    );
    wait_for(
        || metric_value(&c.registry, "p2p_unresolved_bootstrappers") == 1.0,
        Duration::from_secs(2),
        "the unresolved bootstrapper is reported",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        c.oracle.connected().is_empty(),
        "an unresolved id was dialed"
    );
    nodes.push(c);
    shutdown(nodes).await;
}

/// The slow channel: one message per 200 ms per peer and direction, one queued per peer.
const SLOW: u32 = 3;
const SLOW_PERIOD: Duration = Duration::from_millis(200);

/// A node with the test channels plus [`SLOW`].
fn start_slow(seed: u64, boot: Vec<PeerUrl>, sets: &[(u64, Vec<P>)]) -> (Node<K>, p2p::Channel<K>) {
    let mut registry = Registry::default();
    let (mut network, oracle) = Network::new(config::<K>(seed, boot), &mut registry).unwrap();
    for (index, keys) in sets {
        oracle.register(*index, keys.clone()).unwrap();
    }
    let (plain, plain_rx) = network.register(PLAIN, quota(), 1 << 20, 64, None).unwrap();
    let (zstd, zstd_rx) = network
        .register(ZSTD, quota(), 1 << 20, 64, Some(3))
        .unwrap();
    let slow_quota = Quota::with_period(SLOW_PERIOD).unwrap();
    let slow = network.register(SLOW, slow_quota, 1024, 1, None).unwrap();
    let key = oracle.public_key();
    let handle = tokio::spawn(network.run());
    let node = Node {
        key,
        oracle,
        plain,
        plain_rx,
        zstd,
        zstd_rx,
        handle,
        registry,
        seed,
    };
    (node, slow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_room_on_a_slow_peer_does_not_delay_sends_to_another() {
    let sets = [(0, keys(3))];
    let (a, (slow, _a_rx)) = start_slow(0, vec![], &sets);
    let boot = PeerUrl::new(&a.key, a.oracle.local_addr());
    let (b, (_b_tx, _b_rx)) = start_slow(1, vec![boot.clone()], &sets);
    let (c, (_c_tx, mut c_rx)) = start_slow(2, vec![boot], &sets);
    let nodes = vec![a, b, c];
    full_mesh(&nodes, Duration::from_secs(5)).await;
    let (to_b, to_c) = (nodes[1].key.clone(), nodes[2].key.clone());
    let one = |peer: &P| Recipients::One(peer.clone());
    // Fill b's backlog: the first message takes b's rate token (once its writer ran), the
    // next waits in the queue for b's period, the one after is refused.
    let fill = || {
        (0..3).any(|_| {
            let r = slow
                .send(one(&to_b), Bytes::from_static(b"b"), Priority::Low)
                .unwrap();
            r.backlog_full == vec![to_b.clone()]
        })
    };
    assert!(fill(), "b's backlog of one never filled");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(fill(), "b's backlog of one never filled");
    let mut wait_b = slow.wait_for_room(&to_b);
    // Cancelling a wait (here by a timeout) is harmless.
    assert!(
        tokio::time::timeout(Duration::from_millis(1), slow.wait_for_room(&to_b))
            .await
            .is_err()
    );
    // Meanwhile c is sent to and receives at once, well inside b's period.
    let t = Instant::now();
    let r = slow
        .send(one(&to_c), Bytes::from_static(b"c"), Priority::Low)
        .unwrap();
    assert_eq!(r.queued, vec![to_c.clone()]);
    let (from, msg) = tokio::time::timeout(Duration::from_secs(2), c_rx.recv())
        .await
        .expect("c receives in time")
        .expect("channel open");
    assert_eq!((&from, &msg[..]), (&nodes[0].key, &b"c"[..]));
    let took = t.elapsed();
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut wait_b)
            .await
            .is_err()
            || took >= SLOW_PERIOD / 2,
        "b's wait ended before its queue moved"
    );
    // b's queue moves after its period: the wait ends and the next send is queued.
    tokio::time::timeout(Duration::from_secs(2), wait_b)
        .await
        .expect("room for b in time")
        .expect("b still connected");
    let r = slow
        .send(one(&to_b), Bytes::from_static(b"b"), Priority::Low)
        .unwrap();
    assert_eq!(r.queued, vec![to_b.clone()]);
    // A wait for a peer that is not connected ends at once with a typed error.
    let stranger = K::insecure_from_seed(77).public_key();
    assert!(matches!(
        slow.wait_for_room(&stranger).await,
        Err(p2p::MuxError::NotConnected)
    ));
    shutdown(nodes).await;
}
