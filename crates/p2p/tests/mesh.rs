//! Discovery forms a full mesh; messages are delivered exactly once, in order.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use p2p::identity::{bls12381, ed25519};
use p2p::{Priority, Recipients};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_nodes_from_one_bootstrapper_form_a_full_mesh() {
    let nodes = cluster::<ed25519::PrivateKey>(8);
    full_mesh(&nodes, Duration::from_secs(20)).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_all_some_and_one_is_delivered_once_in_order() {
    let mut nodes = cluster::<ed25519::PrivateKey>(4);
    full_mesh(&nodes, Duration::from_secs(20)).await;
    let keys: Vec<_> = nodes.iter().map(|n| n.key.clone()).collect();
    const COUNT: u32 = 200;
    // Node 0 broadcasts to all, then to {1, 2}, then to 3 only.
    for i in 0..COUNT {
        let msg = Bytes::from(format!("all-{i}"));
        let report = nodes[0]
            .plain
            .send(Recipients::All, msg, Priority::Low)
            .unwrap();
        assert_eq!(report.queued.len(), 3, "{report:?}");
    }
    let report = nodes[0]
        .plain
        .send(
            Recipients::List(vec![keys[1].clone(), keys[2].clone()]),
            Bytes::from_static(b"some"),
            Priority::Low,
        )
        .unwrap();
    assert_eq!(report.queued.len(), 2);
    let report = nodes[0]
        .plain
        .send(
            Recipients::One(keys[3].clone()),
            Bytes::from_static(b"one"),
            Priority::Low,
        )
        .unwrap();
    assert_eq!(report.queued, vec![keys[3].clone()]);
    for (idx, node) in nodes.iter_mut().enumerate().skip(1) {
        for i in 0..COUNT {
            let (from, msg) = recv(&mut node.plain_rx, Duration::from_secs(10)).await;
            assert_eq!(from, keys[0]);
            assert_eq!(msg, Bytes::from(format!("all-{i}")), "node {idx} order");
        }
        let (_, msg) = recv(&mut node.plain_rx, Duration::from_secs(10)).await;
        let expected: &[u8] = if idx == 3 { b"one" } else { b"some" };
        assert_eq!(&msg[..], expected, "node {idx}");
        // Nothing else (no duplicates).
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            node.plain_rx.try_recv().is_none(),
            "node {idx} got a duplicate"
        );
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bls_network_works() {
    let mut nodes = cluster::<bls12381::PrivateKey>(3);
    full_mesh(&nodes, Duration::from_secs(30)).await;
    let report = nodes[1]
        .zstd
        .send(
            Recipients::All,
            Bytes::from(vec![7u8; 10_000]),
            Priority::High,
        )
        .unwrap();
    assert_eq!(report.queued.len(), 2);
    let from = nodes[1].key.clone();
    for node in [0, 2] {
        let (who, msg) = recv(&mut nodes[node].zstd_rx, Duration::from_secs(10)).await;
        assert_eq!(who, from);
        assert_eq!(msg, Bytes::from(vec![7u8; 10_000]));
    }
    shutdown(nodes).await;
}
