//! Live loopback networks against a peer that speaks the real protocol from a raw socket and
//! misbehaves: discovery floods, peer-set rotations racing its dials, a peer that never reads.

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use p2p::handshake::FrameSender;
use p2p::identity::{PeerUrl, Signer, bls12381, ed25519};
use p2p::{Priority, Recipients};
use p2p_proto::message::Payload;
use p2p_proto::{BitVec, Peers, VersionInfo};
use prometheus_client::encoding::text::encode;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The tests of this file measure latencies and fill socket buffers: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn body(payload: &Payload) -> BytesMut {
    let mut out = BytesMut::new();
    p2p::framing::envelope::encode(payload, &mut out);
    out
}

fn version() -> BytesMut {
    body(&Payload::Version(VersionInfo {
        protocol_major: p2p::PROTOCOL_MAJOR,
        protocol_minor: 0,
        namespace: Bytes::from_static(NAMESPACE),
        software_version: "adversary".into(),
        channels: vec![PLAIN, ZSTD],
    }))
}

fn counter<S: Signer>(node: &Node<S>, prefix: &str) -> f64 {
    let mut out = String::new();
    encode(&mut out, &node.registry).unwrap();
    out.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Completes a handshake with `target` as `me` and sends the version info.
async fn connect_raw<S: Signer>(
    me: &S,
    target: &Node<S>,
) -> (
    FrameSender<tokio::io::WriteHalf<TcpStream>>,
    p2p::handshake::FrameReceiver<tokio::io::ReadHalf<TcpStream>>,
) {
    let stream = TcpStream::connect(target.oracle.local_addr())
        .await
        .unwrap();
    let cfg = p2p::handshake::Config::local(NAMESPACE.to_vec());
    let conn = p2p::handshake::dial(stream, me, target.key.clone(), &cfg)
        .await
        .expect("the adversary's key is authorized");
    let (_, mut tx, rx) = conn.into_frames();
    tx.send(&version()).await.unwrap();
    (tx, rx)
}

/// 1 KiB round trips from node `a` to node `b` (which echoes), one after another.
async fn round_trips<S: Signer>(a: &mut Node<S>, b_key: &Key<S>, n: usize) -> Vec<Duration> {
    let msg = Bytes::from(vec![7u8; 1024]);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let report = a
            .plain
            .send(Recipients::One(b_key.clone()), msg.clone(), Priority::High)
            .unwrap();
        assert_eq!(report.queued.len(), 1);
        let (from, _) = recv(&mut a.plain_rx, Duration::from_secs(5)).await;
        assert_eq!(&from, b_key);
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// Node 0 and node 1 ping-pong while key 3 (authorized) floods node 0 with `flood` frames,
/// reconnecting each time it is thrown out, and key 4 joins. Returns (quiet p99, flood p99,
/// median time from the first flood frame to the disconnect, disconnects).
async fn flood_run<S: Signer>(
    flood: impl Fn(u64) -> BytesMut + Send + Sync + 'static,
    bound_p99: bool,
) {
    let keys: Vec<Key<S>> = (0..5)
        .map(|i| S::insecure_from_seed(i).public_key())
        .collect();
    let sets = [(0, keys.clone())];
    let mut cfg = config(0, vec![]);
    // The recommended per-address handshake rate (the aggressive preset allows 60,000/min).
    cfg.handshakes_per_ip_per_minute = std::num::NonZeroU32::new(30).unwrap();
    let mut a = start::<S>(cfg, 0, &sets);
    let boot = PeerUrl::new(&a.key, a.oracle.local_addr());
    let b = start::<S>(config(1, vec![boot.clone()]), 1, &sets);
    let b_key = b.key.clone();
    let Node {
        plain: b_tx,
        plain_rx: mut b_rx,
        oracle: b_oracle,
        handle: b_handle,
        ..
    } = b;
    let echo = tokio::spawn(async move {
        while let Some((from, msg)) = b_rx.recv().await {
            let _ = b_tx.send(Recipients::One(from), msg, Priority::High);
        }
    });
    let t = Instant::now();
    while !a.oracle.connected().contains(&b_key) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nodes 0 and 1 connect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = round_trips(&mut a, &b_key, 100).await; // warm up
    let quiet = round_trips(&mut a, &b_key, 500).await;

    // The flooder: key 3, from its own loopback address and its own thread and runtime (so
    // the test's attack code does not run on the node's workers), reconnecting each time it is
    // thrown out, for as long as node 0's per-address handshake limit lets it.
    let target_addr = a.oracle.local_addr();
    let target_key = a.key.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let flooder = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let me = S::insecure_from_seed(3);
            let cfg = p2p::handshake::Config::local(NAMESPACE.to_vec());
            let mut times = Vec::new();
            let mut n = 0u64;
            while !*stop_rx.borrow() {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
                let Ok(stream) = socket.connect(target_addr).await else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let Ok(conn) = p2p::handshake::dial(stream, &me, target_key.clone(), &cfg).await
                else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let (_, mut tx, mut rx) = conn.into_frames();
                if tx.send(&version()).await.is_err() {
                    continue;
                }
                let start = Instant::now();
                let sending = async {
                    loop {
                        n += 1;
                        if tx.send(&flood(n)).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                };
                let closed = async { while rx.recv().await.is_ok() {} };
                let ended = tokio::time::timeout(Duration::from_secs(5), async {
                    tokio::select! {
                        () = sending => {}
                        () = closed => {}
                    }
                })
                .await;
                assert!(ended.is_ok(), "the flooder is disconnected within 5 s");
                times.push(start.elapsed());
            }
            times
        })
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A third node joins during the flood.
    let c = start::<S>(config(4, vec![boot]), 4, &sets);
    let flooded = round_trips(&mut a, &b_key, 500).await;
    let t = Instant::now();
    while !a.oracle.connected().contains(&c.key) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "a third node connects during the flood"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let mut times = flooder.join().unwrap();
    // Quiet again: the larger of the two quiet windows is the quiet p99 (machine noise).
    let after = round_trips(&mut a, &b_key, 500).await;
    let quiet = if p99(&after) > p99(&quiet) {
        after
    } else {
        quiet
    };
    times.sort();
    let median = times[times.len() / 2];
    let floods = counter(
        &a,
        "p2p_disconnects_total{direction=\"Inbound\",reason=\"bit_vec_flood\"}",
    ) + counter(
        &a,
        "p2p_disconnects_total{direction=\"Inbound\",reason=\"peers_flood\"}",
    );
    println!(
        "flood ({}): honest 1 KiB round trip p99 quiet {:?}, under flood {:?}; flooder thrown out \
         {} times, median {:?} (max {:?}) after its first flood frame; flood disconnects counted {}",
        std::any::type_name::<S>(),
        p99(&quiet),
        p99(&flooded),
        times.len(),
        median,
        times.last().unwrap(),
        floods,
    );
    assert!(
        floods >= times.len() as f64 * 0.9,
        "disconnected for flooding"
    );
    assert!(
        // Measured 1.3-2.0x on an idle 2-core machine (debug build); bounded at 3x so the test
        // holds on a loaded CI machine (see the issue note).
        !bound_p99 || p99(&flooded) <= 3 * p99(&quiet),
        "honest p99 {:?} under flood vs {:?} quiet",
        p99(&flooded),
        p99(&quiet)
    );
    echo.abort();
    for node in [&a.oracle, &b_oracle, &c.oracle] {
        node.shutdown();
    }
    let _ = b_handle.await;
    shutdown(vec![a, c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_vector_flood_disconnects_the_flooder_and_spares_honest_peers() {
    let _serial = SERIAL.lock().await;
    flood_run::<ed25519::PrivateKey>(
        |_| {
            body(&Payload::BitVec(BitVec {
                index: 0,
                bits: Bytes::from_static(&[0]),
            }))
        },
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bls_self_signed_record_burst_disconnects_the_flooder() {
    let _serial = SERIAL.lock().await;
    let me = bls12381::PrivateKey::insecure_from_seed(3);
    // Precomputed: signing in the flood loop would measure the flooder's CPU, not the node's.
    let base = p2p::handshake::now_ms();
    let frames: Vec<BytesMut> = (0..256)
        .map(|i| {
            let record = p2p::discovery::sign_record(
                &me,
                NAMESPACE,
                ([127, 0, 0, 1], 9999).into(),
                base + i,
            );
            body(&Payload::Peers(Peers {
                peers: vec![record],
            }))
        })
        .collect();
    // BLS handshakes and record checks cost milliseconds of CPU each on this 2-core machine;
    // the honest p99 under this attack is printed, not bounded (see the issue note).
    flood_run::<bls12381::PrivateKey>(move |n| frames[(n % 256) as usize].clone(), false).await;
}

/// A thousand peer-set rotations on node 0 while node 1 keeps dialing it and sending: once
/// node 1 is out of every tracked set, it is disconnected and stays out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_racing_dials_never_leave_an_unauthorized_key_connected() {
    let _serial = SERIAL.lock().await;
    type K = ed25519::PrivateKey;
    let keys: Vec<Key<K>> = (0..3)
        .map(|i| K::insecure_from_seed(i).public_key())
        .collect();
    let a = start::<K>(config(0, vec![]), 0, &[(0, keys.clone())]);
    let boot = PeerUrl::new(&a.key, a.oracle.local_addr());
    let b = start::<K>(config(1, vec![boot]), 1, &[(0, keys.clone())]);
    let with_b = keys.clone();
    let without_b = vec![keys[0].clone(), keys[2].clone()];
    let sender = b.plain.clone();
    let a_key = a.key.clone();
    let chatter = tokio::spawn(async move {
        loop {
            let _ = sender.send(
                Recipients::One(a_key.clone()),
                Bytes::from_static(b"b"),
                Priority::Low,
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    });
    let mut connected_seen = 0;
    for i in 1..=1000u64 {
        // Three sets are tracked: node 1 flips in and out every three rotations.
        let set = if (i / 3) % 2 == 0 {
            &with_b
        } else {
            &without_b
        };
        a.oracle.register(i, set.clone()).unwrap();
        if a.oracle.connected().contains(&b.key) {
            connected_seen += 1;
        }
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    for i in 1001..=1003 {
        a.oracle.register(i, without_b.clone()).unwrap();
    }
    let t = Instant::now();
    while a.oracle.connected().contains(&b.key) {
        assert!(t.elapsed() < Duration::from_secs(2), "node 1 is evicted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Drain what was delivered before the eviction, then nothing more may arrive.
    let mut a = a;
    tokio::time::sleep(Duration::from_millis(200)).await;
    while a.plain_rx.try_recv().is_some() {}
    let late = tokio::time::timeout(Duration::from_secs(1), a.plain_rx.recv()).await;
    assert!(
        late.is_err(),
        "a message from an unauthorized key was delivered"
    );
    assert!(!a.oracle.connected().contains(&b.key));
    println!("rotations: node 1 seen connected at {connected_seen} of 1000 rotations");
    assert!(
        connected_seen > 0,
        "node 1 connected during the rotations at all"
    );
    chatter.abort();
    shutdown(vec![a, b]).await;
}

/// A peer that completes the handshake, pings, but never reads: after `shutdown()` every task
/// ends, the mux is dropped and the socket is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_peer_that_never_reads_leaves_no_task_and_no_socket() {
    let _serial = SERIAL.lock().await;
    type K = ed25519::PrivateKey;
    let keys: Vec<Key<K>> = (0..2)
        .map(|i| K::insecure_from_seed(i).public_key())
        .collect();
    let mut a = start::<K>(config(0, vec![]), 0, &[(0, keys.clone())]);
    let me = K::insecure_from_seed(1);
    let (mut tx, rx) = connect_raw(&me, &a).await;
    let t = Instant::now();
    while !a.oracle.connected().contains(&keys[1]) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the silent reader is admitted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Pings (within the budget) keep the connection alive; nothing is ever read.
    let pinger = tokio::spawn(async move {
        let ping = body(&Payload::BitVec(BitVec {
            index: 0,
            bits: Bytes::from_static(&[0]),
        }));
        loop {
            if tx.send(&ping).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    // Fill the socket buffers and the queue: the writer blocks in a write.
    let big = Bytes::from(vec![1u8; 1 << 20]);
    for _ in 0..64 {
        let _ = a
            .plain
            .send(Recipients::One(keys[1].clone()), big.clone(), Priority::Low);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    a.oracle.shutdown();
    tokio::time::timeout(Duration::from_secs(5), &mut a.handle)
        .await
        .expect("run ends after shutdown")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    // The mux (held by every connection task) is gone: receivers end.
    let ended = tokio::time::timeout(Duration::from_secs(1), async {
        while a.plain_rx.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the mux outlived shutdown");
    // The socket is closed: reading what is buffered ends with EOF or a reset.
    let (mut reader, _, _) = rx.into_parts();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket outlived shutdown");
    pinger.abort();
    let _ = pinger.await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let t = Instant::now();
    while metrics.num_alive_tasks() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{} tasks alive after shutdown",
            metrics.num_alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("shutdown with a non-reading peer took {took:?}");
}

#[test]
fn frame_sizes_outside_the_allowed_range_are_refused() {
    type K = ed25519::PrivateKey;
    let mut registry = prometheus_client::registry::Registry::default();
    for len in [u32::MAX, p2p::session::MAX_FRAME_LEN + 1, 1024] {
        let mut cfg = config::<K>(0, vec![]);
        cfg.set_max_frame_len(len);
        let err = p2p::Network::new(cfg, &mut registry).unwrap_err();
        assert!(matches!(err, p2p::Error::FrameSize { .. }), "{len}: {err}");
    }
    let mut cfg = config::<K>(0, vec![]);
    cfg.set_max_frame_len(p2p::session::MAX_FRAME_LEN);
    assert!(p2p::Network::new(cfg, &mut registry).is_ok());
}
