//! A loopback cluster of nodes for the integration tests.

#![allow(dead_code, reason = "each test file uses a different part")]

pub(crate) mod adversary;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use bytes::Bytes;
use p2p::identity::{PeerUrl, Signer};
use p2p::{Config, Network, Oracle, Quota, Receiver, Sender};
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;

pub(crate) const NAMESPACE: &[u8] = b"_P2P_TEST_NETWORK";
/// Channel used by most tests: uncompressed.
pub(crate) const PLAIN: u32 = 1;
/// Compressed channel.
pub(crate) const ZSTD: u32 = 2;

pub(crate) type Key<S> = <S as Signer>::PublicKey;

pub(crate) struct Node<S: Signer> {
    pub(crate) key: Key<S>,
    pub(crate) oracle: Oracle<S>,
    pub(crate) plain: Sender<Key<S>>,
    pub(crate) plain_rx: Receiver<Key<S>>,
    pub(crate) zstd: Sender<Key<S>>,
    pub(crate) zstd_rx: Receiver<Key<S>>,
    pub(crate) handle: JoinHandle<Result<(), p2p::Error>>,
    pub(crate) registry: Registry,
    pub(crate) seed: u64,
}

pub(crate) fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub(crate) fn quota() -> Quota {
    Quota::per_second(NonZeroU32::new(100_000).unwrap())
}

/// A config for `seed` with `bootstrappers`, tuned for tests.
pub(crate) fn config<S: Signer>(seed: u64, bootstrappers: Vec<PeerUrl>) -> Config<S> {
    let mut cfg = Config::aggressive(
        S::insecure_from_seed(seed),
        NAMESPACE,
        loopback(),
        loopback(),
        bootstrappers,
    );
    cfg.set_max_frame_len(64 * 1024);
    cfg
}

/// Starts a node from `cfg`, registering `sets` and the two test channels.
pub(crate) fn start<S: Signer>(cfg: Config<S>, seed: u64, sets: &[(u64, Vec<Key<S>>)]) -> Node<S> {
    let mut registry = Registry::default();
    let (mut network, oracle) = Network::new(cfg, &mut registry).unwrap();
    for (index, keys) in sets {
        oracle.register(*index, keys.clone()).unwrap();
    }
    let (plain, plain_rx) = network
        .register(PLAIN, quota(), 32 << 20, 1024, None)
        .unwrap();
    let (zstd, zstd_rx) = network
        .register(ZSTD, quota(), 32 << 20, 1024, Some(3))
        .unwrap();
    let key = oracle.public_key();
    let handle = tokio::spawn(network.run());
    Node {
        key,
        oracle,
        plain,
        plain_rx,
        zstd,
        zstd_rx,
        handle,
        registry,
        seed,
    }
}

/// `n` nodes with seeds `0..n`; node 0 is the only bootstrapper every other node knows.
pub(crate) fn cluster<S: Signer>(n: u64) -> Vec<Node<S>> {
    let keys: Vec<Key<S>> = (0..n)
        .map(|i| S::insecure_from_seed(i).public_key())
        .collect();
    let first = start::<S>(config(0, vec![]), 0, &[(0, keys.clone())]);
    let boot = PeerUrl::new(&first.key, first.oracle.local_addr());
    let mut nodes = vec![first];
    for i in 1..n {
        nodes.push(start::<S>(
            config(i, vec![boot.clone()]),
            i,
            &[(0, keys.clone())],
        ));
    }
    nodes
}

/// Waits until every node is connected to every other one.
pub(crate) async fn full_mesh<S: Signer>(nodes: &[Node<S>], within: Duration) {
    let n = nodes.len();
    tokio::time::timeout(within, async {
        loop {
            if nodes
                .iter()
                .all(|node| node.oracle.connected().len() == n - 1)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let counts: Vec<usize> = nodes.iter().map(|n| n.oracle.connected().len()).collect();
        panic!("no full mesh within {within:?}: connections per node {counts:?}")
    });
}

/// Shuts every node down and checks that `run` returned cleanly.
pub(crate) async fn shutdown<S: Signer>(nodes: Vec<Node<S>>) {
    for node in &nodes {
        node.oracle.shutdown();
    }
    for node in nodes {
        tokio::time::timeout(Duration::from_secs(10), node.handle)
            .await
            .expect("run ends after shutdown")
            .expect("run task did not panic")
            .expect("run returns Ok");
    }
}

/// Receives one message within `within`.
pub(crate) async fn recv<P: Clone + Eq + std::hash::Hash>(
    rx: &mut Receiver<P>,
    within: Duration,
) -> (P, Bytes) {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("a message arrives in time")
        .expect("channel open")
}

/// The value of the first metric line of `registry` starting with `prefix`, or 0.
pub(crate) fn metric_value(registry: &Registry, prefix: &str) -> f64 {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `cond` holds (polled every 10 ms), or panics naming `what` after `within`.
pub(crate) async fn wait_for(mut cond: impl FnMut() -> bool, within: Duration, what: &str) {
    tokio::time::timeout(within, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}
