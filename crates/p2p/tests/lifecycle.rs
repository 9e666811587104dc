//! Large messages, restarts, peer-set rotation and shutdown.

mod common;

use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use p2p::identity::{PeerUrl, Signer, ed25519};
use p2p::{Priority, Recipients};

type K = ed25519::PrivateKey;

/// Deterministic bytes that zstd cannot shrink much (xorshift).
fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_over_64_kib_frames_beside_a_compressed_channel() {
    let mut nodes = cluster::<K>(2);
    full_mesh(&nodes, Duration::from_secs(10)).await;
    let to = nodes[1].key.clone();
    let big = noise(16 << 20, 7);
    // Compressible text on the zstd channel, sent at the same time.
    let text = Bytes::from("the quick brown fox jumps over the lazy dog. ".repeat(40_000));
    let r1 = nodes[0]
        .plain
        .send(Recipients::One(to.clone()), big.clone(), Priority::Low)
        .unwrap();
    let r2 = nodes[0]
        .zstd
        .send(Recipients::One(to.clone()), text.clone(), Priority::High)
        .unwrap();
    assert!(r1.is_complete() && r2.is_complete());
    let (_, got_text) = recv(&mut nodes[1].zstd_rx, Duration::from_secs(30)).await;
    assert_eq!(got_text, text);
    let (from, got) = recv(&mut nodes[1].plain_rx, Duration::from_secs(60)).await;
    assert_eq!(from, nodes[0].key);
    assert_eq!(got.len(), big.len());
    assert!(got == big, "16 MiB message corrupted");
    shutdown(nodes).await;
}

/// A block refuses the blocked key's dials, each one counted as a failure, so its backoff
/// grows while the block lasts; `unblock` resets that backoff and wakes the dialer, so the
/// peer is dialed at once instead of after the backoff (2 s here) or the dialer's next tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unblocked_peer_is_dialed_at_once() {
    let keys: Vec<_> = (0..2)
        .map(|i| K::insecure_from_seed(i).public_key())
        .collect();
    let sets = [(0, keys)];
    // Node 0 only listens: it drops records advertising loopback, so it never dials node 1.
    let mut cfg = config::<K>(0, vec![]);
    cfg.discovery.address_policy = p2p::discovery::AddressPolicy::recommended();
    let listener = start::<K>(cfg, 0, &sets);
    let boot = PeerUrl::new(&listener.key, listener.oracle.local_addr());
    let mut cfg = config::<K>(1, vec![boot]);
    cfg.discovery.dial_backoff_base = Duration::from_secs(2);
    cfg.discovery.dial_backoff_max = Duration::from_secs(2);
    cfg.dial_interval = Duration::from_secs(1);
    let dialer = start::<K>(cfg, 1, &sets);
    let nodes = vec![listener, dialer];
    full_mesh(&nodes, Duration::from_secs(10)).await;
    nodes[1].oracle.block(nodes[0].key.clone());
    tokio::time::timeout(Duration::from_secs(5), async {
        while !(nodes[0].oracle.connected().is_empty() && nodes[1].oracle.connected().is_empty()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the block disconnects");
    // Long enough for the dialer to refuse the blocked dial at least once (backoff: 2 s).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    nodes[1].oracle.unblock(&nodes[0].key);
    full_mesh(&nodes, Duration::from_secs(5)).await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(700),
        "reconnected {took:?} after unblock: the backoff or the tick was waited out"
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_on_a_new_port_is_found_again() {
    let mut nodes = cluster::<K>(3);
    full_mesh(&nodes, Duration::from_secs(15)).await;
    let old = nodes.pop().unwrap();
    let old_addr = old.oracle.local_addr();
    shutdown(vec![old]).await;
    // Same key (seed 2), new listener (port 0 gives a new port), bootstrapping from node 0.
    let keys: Vec<_> = (0..3)
        .map(|i| K::insecure_from_seed(i).public_key())
        .collect();
    let boot = PeerUrl::new(&nodes[0].key, nodes[0].oracle.local_addr());
    // Wait a millisecond so the new record's timestamp is strictly newer.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = start::<K>(config(2, vec![boot]), 2, &[(0, keys)]);
    assert_ne!(again.oracle.local_addr(), old_addr);
    nodes.push(again);
    full_mesh(&nodes, Duration::from_secs(20)).await;
    // Node 1 reaches the restarted node.
    let to = nodes[2].key.clone();
    nodes[1]
        .plain
        .send(
            Recipients::One(to),
            Bytes::from_static(b"welcome back"),
            Priority::High,
        )
        .unwrap();
    let (_, msg) = recv(&mut nodes[2].plain_rx, Duration::from_secs(5)).await;
    assert_eq!(&msg[..], b"welcome back");
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_peer_sets_connects_new_members_and_drops_removed_ones() {
    // A, B, C start in set 0; D is in set 1 = {A, B, D}. Tracking one index at a time, the
    // move to set 1 must connect D and drop C.
    let keys: Vec<_> = (0..4)
        .map(|i| K::insecure_from_seed(i).public_key())
        .collect();
    let set0 = vec![keys[0].clone(), keys[1].clone(), keys[2].clone()];
    let set1 = vec![keys[0].clone(), keys[1].clone(), keys[3].clone()];
    let one_index = |mut cfg: p2p::Config<K>| {
        cfg.discovery.tracked_indexes = NonZeroUsize::MIN;
        cfg
    };
    let a = start::<K>(one_index(config(0, vec![])), 0, &[(0, set0.clone())]);
    let boot = PeerUrl::new(&a.key, a.oracle.local_addr());
    let b = start::<K>(
        one_index(config(1, vec![boot.clone()])),
        1,
        &[(0, set0.clone())],
    );
    let c = start::<K>(
        one_index(config(2, vec![boot.clone()])),
        2,
        &[(0, set0.clone())],
    );
    let mut abc = vec![a, b, c];
    full_mesh(&abc, Duration::from_secs(15)).await;
    let d = start::<K>(one_index(config(3, vec![boot])), 3, &[(1, set1.clone())]);
    // D is not authorized yet: nobody connects to it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        d.oracle.connected().is_empty(),
        "D must not be connected before the rotation"
    );
    for node in &abc[..2] {
        node.oracle.register(1, set1.clone()).unwrap();
    }
    abc[2].oracle.register(1, set1.clone()).unwrap();
    let c = abc.pop().unwrap();
    let mut abd = abc;
    abd.push(d);
    full_mesh(&abd, Duration::from_secs(20)).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !c.oracle.connected().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("C is dropped by everyone");
    for node in &abd {
        assert!(!node.oracle.connected().contains(&c.key));
    }
    shutdown(abd).await;
    shutdown(vec![c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_task_running() {
    let nodes = cluster::<K>(3);
    full_mesh(&nodes, Duration::from_secs(15)).await;
    // Queue some traffic so writers have something to flush.
    for node in &nodes {
        node.plain
            .send(
                Recipients::All,
                Bytes::from(vec![1u8; 100_000]),
                Priority::High,
            )
            .unwrap();
    }
    shutdown(nodes).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    tokio::time::timeout(Duration::from_secs(5), async {
        // Only this test's own task is alive once every network task has ended.
        while metrics.num_alive_tasks() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} tasks still alive after shutdown",
            metrics.num_alive_tasks()
        )
    });
}

/// Two minor-1 nodes: small messages queued at once go packed into batch frames (counted by
/// `p2p_batched_messages_total`) and arrive whole and in order. On a current-thread runtime the
/// test queues all of them before the writer task runs, so packing is certain.
#[tokio::test(flavor = "current_thread")]
async fn small_messages_queued_together_go_in_batch_frames_in_order() {
    let mut nodes = cluster::<K>(2);
    full_mesh(&nodes, Duration::from_secs(10)).await;
    let to = nodes[1].key.clone();
    for i in 0..200u32 {
        let mut m = i.to_be_bytes().to_vec();
        m.resize(100, 7);
        let r = nodes[0]
            .plain
            .send(Recipients::One(to.clone()), Bytes::from(m), Priority::High)
            .unwrap();
        assert!(r.is_complete());
    }
    for i in 0..200u32 {
        let (from, got) = recv(&mut nodes[1].plain_rx, Duration::from_secs(5)).await;
        assert_eq!(from, nodes[0].key);
        assert_eq!((got.len(), &got[..4]), (100, &i.to_be_bytes()[..]));
    }
    let batched = metric_value(&nodes[0].registry, "p2p_batched_messages_total ");
    assert!(
        batched >= 150.0,
        "only {batched} of 200 messages went in batch frames"
    );
    shutdown(nodes).await;
}
