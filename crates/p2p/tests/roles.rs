//! Lookup mode (addresses from the application, no gossip) and observers, on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use p2p::identity::{Signer, ed25519};
use p2p::{
    AddressUpdate, Config, DiscoveryMode, Network, Oracle, Priority, Receiver, Recipients, Sender,
};
use prometheus_client::registry::Registry;

type S = ed25519::PrivateKey;
type K = Key<S>;

/// The validators-only channel of these tests.
const VALIDATORS: u32 = 3;

fn key(seed: u64) -> K {
    S::insecure_from_seed(seed).public_key()
}

/// A node that is built (its listener bound) but not running yet.
struct Built {
    network: Network<S>,
    oracle: Oracle<S>,
    registry: Registry,
    seed: u64,
}

fn build(seed: u64, tweak: impl FnOnce(&mut Config<S>)) -> Built {
    let mut cfg = config::<S>(seed, vec![]);
    tweak(&mut cfg);
    let mut registry = Registry::default();
    let (network, oracle) = Network::new(cfg, &mut registry).unwrap();
    Built {
        network,
        oracle,
        registry,
        seed,
    }
}

fn lookup(cfg: &mut Config<S>) {
    cfg.discovery.mode = DiscoveryMode::Lookup;
}

/// A running node with the plain channel and the validators-only channel.
struct Running {
    node: Node<S>,
    validators: Sender<K>,
    validators_rx: Receiver<K>,
}

/// Registers the test channels (channel 3 validators-only when `restricted`) and runs it.
fn run(mut b: Built, restricted: bool) -> Running {
    let (plain, plain_rx) = b
        .network
        .register(PLAIN, quota(), 1 << 16, 64, None)
        .unwrap();
    let (zstd, zstd_rx) = b
        .network
        .register(ZSTD, quota(), 1 << 16, 64, Some(3))
        .unwrap();
    let (validators, validators_rx) = if restricted {
        b.network
            .register_validators_only(VALIDATORS, quota(), 1 << 16, 64, None)
            .unwrap()
    } else {
        b.network
            .register(VALIDATORS, quota(), 1 << 16, 64, None)
            .unwrap()
    };
    let handle = tokio::spawn(b.network.run());
    Running {
        node: Node {
            key: b.oracle.public_key(),
            oracle: b.oracle,
            plain,
            plain_rx,
            zstd,
            zstd_rx,
            handle,
            registry: b.registry,
            seed: b.seed,
        },
        validators,
        validators_rx,
    }
}

fn metric(node: &Node<S>, prefix: &str) -> f64 {
    metric_value(&node.registry, prefix)
}

async fn connected(a: &Oracle<S>, b: &K, within: Duration, what: &str) {
    wait_for(|| a.connected().contains(b), within, what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_lookup_nodes_form_a_mesh_from_application_addresses_without_records() {
    let built: Vec<Built> = (0..3).map(|i| build(i, lookup)).collect();
    let peers: Vec<(K, SocketAddr)> = built
        .iter()
        .map(|b| (b.oracle.public_key(), b.oracle.local_addr()))
        .collect();
    for b in &built {
        let outcome = b.oracle.register_with_addresses(0, peers.clone()).unwrap();
        assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    }
    let nodes: Vec<Node<S>> = built.into_iter().map(|b| run(b, false).node).collect();
    full_mesh(&nodes, Duration::from_secs(5)).await;
    // Let a few pings (every 250 ms) go both ways.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for node in &nodes {
        // A lookup node counts every `Peers` message it receives: none was sent.
        assert_eq!(metric(node, "p2p_records_ignored_total"), 0.0);
        assert_eq!(metric(node, "p2p_known_peers{index=\"0\"}"), 3.0);
        assert_eq!(metric(node, "p2p_connected_peers{index=\"0\"}"), 2.0);
        assert_eq!(node.oracle.connected().len(), 2);
    }
    // An update for a key the node does not track is a typed error.
    assert_eq!(
        nodes[0]
            .oracle
            .update_address(&key(9), "127.0.0.1:9".parse().unwrap()),
        Err(p2p::discovery::Error::UnknownKey)
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossip_node_talking_to_a_lookup_node_has_its_records_ignored_and_stays_connected() {
    let a = build(0, lookup);
    let b = build(1, |_| {});
    let keys = vec![key(0), key(1)];
    a.oracle
        .register_with_addresses(
            0,
            vec![
                (key(0), a.oracle.local_addr()),
                (key(1), b.oracle.local_addr()),
            ],
        )
        .unwrap();
    // The gossip node has no address for the lookup node: it never receives its record.
    b.oracle.register(0, keys).unwrap();
    assert_eq!(
        b.oracle.register_with_addresses(1, vec![]),
        Err(p2p::discovery::Error::NotLookupMode)
    );
    let a = run(a, false).node;
    let b = run(b, false).node;
    connected(&a.oracle, &b.key, Duration::from_secs(5), "a dials b").await;
    // The gossip node sent its record (and answers pings): ignored and counted, not fatal.
    wait_for(
        || metric(&a, "p2p_records_ignored_total{reason=\"lookup_mode\"}") >= 1.0,
        Duration::from_secs(3),
        "records ignored",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(a.oracle.connected().contains(&b.key));
    assert_eq!(metric(&a, "p2p_disconnects_total"), 0.0);
    shutdown(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_update_moves_the_connection_to_a_new_listener() {
    let a = build(0, lookup);
    let b = build(1, lookup);
    let (a_addr, b_addr) = (a.oracle.local_addr(), b.oracle.local_addr());
    let peers = vec![(key(0), a_addr), (key(1), b_addr)];
    a.oracle.register_with_addresses(0, peers.clone()).unwrap();
    b.oracle.register_with_addresses(0, peers).unwrap();
    let a = run(a, false).node;
    let b = run(b, false).node;
    connected(
        &a.oracle,
        &b.key,
        Duration::from_secs(5),
        "first connection",
    )
    .await;
    // B moves: the old listener goes away, a new one (same key) listens elsewhere and knows
    // no address for A, so only A's update can bring them together.
    shutdown(vec![b]).await;
    wait_for(
        || a.oracle.connected().is_empty(),
        Duration::from_secs(5),
        "a notices b left",
    )
    .await;
    let moved = build(1, lookup);
    moved.oracle.register(0, vec![key(0), key(1)]).unwrap();
    let new_addr = moved.oracle.local_addr();
    assert_ne!(new_addr, b_addr);
    let moved = run(moved, false).node;
    // Without the update A keeps dialing the old address.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.oracle.connected().is_empty());
    // A refused address changes nothing; the real one is dialed at once.
    assert!(matches!(
        a.oracle
            .update_address(&key(1), "127.0.0.1:0".parse().unwrap()),
        Err(p2p::discovery::Error::AddressRefused { .. })
    ));
    assert_eq!(
        a.oracle.update_address(&key(1), new_addr),
        Ok(AddressUpdate::Dial)
    );
    connected(
        &a.oracle,
        &moved.key,
        Duration::from_secs(3),
        "connection to the new listener",
    )
    .await;
    assert!(moved.oracle.connected().contains(&a.key));
    // While connected, an update keeps the live connection.
    assert_eq!(
        a.oracle.update_address(&key(1), b_addr),
        Ok(AddressUpdate::Connected)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.oracle.connected().contains(&moved.key));
    shutdown(vec![a, moved]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_gets_broadcasts_but_not_validators_only_channels_and_is_capped() {
    // The validator: its set is itself; two observers, one inbound observer connection.
    let v = build(0, |cfg| {
        lookup(cfg);
        cfg.max_observer_connections = 1;
    });
    let v_addr = v.oracle.local_addr();
    v.oracle
        .register_with_addresses(0, vec![(key(0), v_addr)])
        .unwrap();
    v.oracle
        .register_observers(vec![(key(10), None), (key(11), None)])
        .unwrap();
    assert!(v.oracle.is_observer(&key(10)));
    // The observers track the validator (as their own peer set) and dial it.
    let observer = |seed| {
        let o = build(seed, lookup);
        o.oracle
            .register_with_addresses(0, vec![(key(0), v_addr)])
            .unwrap();
        o
    };
    let mut v = run(v, true);
    let mut o1 = run(observer(10), false);
    connected(
        &v.node.oracle,
        &key(10),
        Duration::from_secs(5),
        "observer 1 connects",
    )
    .await;
    wait_for(
        || metric(&v.node, "p2p_observers_connected") == 1.0,
        Duration::from_secs(2),
        "observer gauge",
    )
    .await;
    // Observers are in no set's counts.
    assert_eq!(metric(&v.node, "p2p_connected_peers{index=\"0\"}"), 0.0);

    // A broadcast reaches the observer...
    let report = v
        .node
        .plain
        .send(
            Recipients::All,
            Bytes::from_static(b"block"),
            Priority::High,
        )
        .unwrap();
    assert_eq!(report.queued, vec![key(10)]);
    let (from, msg) = recv(&mut o1.node.plain_rx, Duration::from_secs(2)).await;
    assert_eq!((from, &msg[..]), (key(0), &b"block"[..]));
    // ...but not on the validators-only channel, where naming it is reported.
    let report = v
        .validators
        .send(Recipients::All, Bytes::from_static(b"vote"), Priority::High)
        .unwrap();
    assert!(report.queued.is_empty() && report.is_complete());
    let report = v
        .validators
        .send(
            Recipients::One(key(10)),
            Bytes::from_static(b"vote"),
            Priority::High,
        )
        .unwrap();
    assert_eq!(report.restricted, vec![key(10)]);
    // The observer's message on that channel is dropped and counted; the connection stays.
    o1.validators
        .send(
            Recipients::One(key(0)),
            Bytes::from_static(b"forged vote"),
            Priority::High,
        )
        .unwrap();
    wait_for(
        || {
            metric(
                &v.node,
                "p2p_mux_dropped_total{channel=\"3\",reason=\"ValidatorsOnly\"}",
            ) >= 2.0
        },
        Duration::from_secs(2),
        "the refused message counted",
    )
    .await;
    o1.node
        .plain
        .send(
            Recipients::One(key(0)),
            Bytes::from_static(b"tx"),
            Priority::High,
        )
        .unwrap();
    let (from, msg) = recv(&mut v.node.plain_rx, Duration::from_secs(2)).await;
    assert_eq!((from, &msg[..]), (key(10), &b"tx"[..]));
    assert!(v.validators_rx.try_recv().is_none());
    assert!(v.node.oracle.connected().contains(&key(10)));

    // A second observer is over the observer cap: refused at the handshake.
    let o2 = run(observer(11), false);
    wait_for(
        || {
            metric(
                &v.node,
                "p2p_handshakes_total{direction=\"Inbound\",reason=\"observer_cap\"}",
            ) >= 1.0
        },
        Duration::from_secs(3),
        "the observer cap refusal",
    )
    .await;
    assert!(!v.node.oracle.connected().contains(&key(11)));

    // Removing observer 1 disconnects it, and frees the place for observer 2.
    v.node
        .oracle
        .register_observers(vec![(key(11), None)])
        .unwrap();
    wait_for(
        || !v.node.oracle.connected().contains(&key(10)),
        Duration::from_secs(2),
        "observer 1 disconnected",
    )
    .await;
    connected(
        &v.node.oracle,
        &key(11),
        Duration::from_secs(5),
        "observer 2 connects",
    )
    .await;
    shutdown(vec![v.node, o1.node, o2.node]).await;
}
