//! One bad peer harms no one: the adversarial test peer (`common::adversary`) against a running
//! network. Each test asserts that the victim closes only the offending connection with the
//! right reason (or drops the offending input), and still serves honest peers: a ping-pong with
//! a connected peer and a new peer's handshake. The case-to-test table is in docs/security.md.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::adversary::*;
use common::{PLAIN, ZSTD};
use p2p::discovery::record::sign_record;
use p2p::identity::{Signer, Verifier};
use p2p::{Priority, Recipients};
use p2p_proto::message::Payload;
use p2p_proto::{BitVec, Peers};
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Live networks with timing: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const HANDSHAKES: &str = "p2p_handshakes_total";
const DISCONNECTS: &str = "p2p_disconnects_total";
const REFUSED: &str = "p2p_refused_connections_total";

fn unix_ms() -> u64 {
    p2p::handshake::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_handshakes_are_closed_with_their_reason() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);

    // A frame of random bytes where the hello should be.
    let mut s = adversary.tcp(arena.addr()).await.unwrap();
    let junk: Vec<u8> = (0..120).map(|_| rng.random()).collect();
    s.write_all(&raw_frame(&junk)).await.unwrap();
    assert!(stream_closed_within(&mut s, Duration::from_secs(3)).await);
    arena.expect(HANDSHAKES, "malformed_handshake", 1.0).await;

    // A length prefix far above any handshake message.
    let mut s = adversary.tcp(arena.addr()).await.unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(stream_closed_within(&mut s, Duration::from_secs(3)).await);
    arena.expect(HANDSHAKES, "oversized_frame", 1.0).await;

    // Truncated: a prefix of 200 bytes, then 50 bytes, then silence; the first-message deadline
    // (1 s) closes it, long before the handshake deadline.
    let mut s = adversary.tcp(arena.addr()).await.unwrap();
    let t = Instant::now();
    let mut partial = 200u32.to_be_bytes().to_vec();
    partial.extend_from_slice(&junk[..50]);
    s.write_all(&partial).await.unwrap();
    assert!(stream_closed_within(&mut s, Duration::from_secs(3)).await);
    assert!(
        t.elapsed() < Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    arena.expect(HANDSHAKES, "first_message_timeout", 1.0).await;

    arena.assert_serving("after garbage handshakes").await;
    arena.end().await;
}

/// Silent connections from 60 loopback addresses of one /24 take at most that prefix's share
/// of the handshake slots (`max_handshakes_per_prefix`, recommended 8 of 64); an honest peer from
/// another prefix completes its handshake while they are held, and they are closed by the
/// first-message deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_many_addresses_cannot_hold_the_handshake_slots() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|cfg| {
        // The recommended admission limits (the aggressive preset lifts the per-prefix ones).
        cfg.handshakes_per_ip_per_minute = std::num::NonZeroU32::new(30).unwrap();
        cfg.handshakes_per_prefix_per_minute = std::num::NonZeroU32::new(120).unwrap();
        cfg.max_handshakes_per_prefix = std::num::NonZeroUsize::new(8).unwrap();
    })
    .await;
    let mut silent = Vec::new();
    for host in 1..=60u8 {
        let adversary = Adversary::new(3, [127, 0, 5, host].into());
        silent.push(adversary.tcp(arena.addr()).await.unwrap());
    }
    arena.expect(REFUSED, "prefix_handshakes_full", 52.0).await;
    let (_, admitted) = arena.assert_serving("while 60 sockets are silent").await;
    let mut closed = 0;
    for s in &mut silent {
        if stream_closed_within(s, Duration::from_secs(3)).await {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 60,
        "refused at once or closed by the first-message deadline"
    );
    arena.expect(HANDSHAKES, "first_message_timeout", 8.0).await;
    println!("silent sockets: honest newcomer admitted in {admitted:?}");
    arena.end().await;
}

/// 200 handshakes from unauthorized keys, from one address, while an authorized peer connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorized_handshake_flood_does_not_delay_an_authorized_peer() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let addr = arena.addr();
    let victim = arena.victim.key.clone();
    let flood = tokio::spawn(async move {
        let mut refused = 0;
        for seed in 1000..1200u64 {
            let adversary = Adversary::new(seed, [127, 0, 6, 1].into());
            let Ok(stream) = adversary.tcp(addr).await else {
                continue;
            };
            let cfg = p2p::handshake::Config::local(common::NAMESPACE.to_vec());
            if p2p::handshake::dial(stream, &adversary.signer, victim.clone(), &cfg)
                .await
                .is_err()
            {
                refused += 1;
            }
        }
        refused
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, admitted) = arena.assert_serving("during an unauthorized flood").await;
    let refused = flood.await.unwrap();
    assert_eq!(refused, 200, "no unauthorized handshake completes");
    arena.expect(HANDSHAKES, "not_authorized", 200.0).await;
    println!("unauthorized flood: authorized newcomer admitted in {admitted:?}");
    arena.end().await;
}

/// A frame of exactly the largest size is accepted; a length prefix one byte above it closes
/// the connection before anything is allocated for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_prefixes_at_and_above_the_maximum() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let mut link = adversary.connect(&arena).await.unwrap();
    let max_plaintext = link.tx.max_body_len() as u32;
    let capacity = p2p::framing::chunk::chunk_capacity(max_plaintext, PLAIN, 0, 1).unwrap();
    let content = vec![9u8; capacity as usize];
    link.send(&chunk(PLAIN, 0, 1, &content)).await.unwrap();
    let (from, msg) = common::recv(&mut arena.victim.plain_rx, Duration::from_secs(5)).await;
    assert_eq!(from, adversary.signer.public_key());
    assert_eq!(
        msg.len(),
        content.len(),
        "a frame of the maximum size is delivered"
    );

    let max_frame = 64 * 1024u32;
    let mut link = link.write_raw(&(max_frame + 1).to_be_bytes()).await;
    assert!(link.closed_within(Duration::from_secs(3)).await);
    arena.expect(DISCONNECTS, "oversized_frame", 1.0).await;
    arena.assert_serving("after an oversized frame").await;
    arena.end().await;
}

/// Chunking attacks, each on a fresh connection of the same key: a non-final chunk smaller than
/// its capacity (tiny chunks), a part out of order, two messages interleaved, a chunk on an
/// unknown channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_out_of_order_interleaved_and_unknown_channel_chunks_close() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let key = adversary.signer.public_key();
    let cases: [(&str, Vec<Payload>, &str); 4] = [
        (
            "tiny chunks",
            vec![chunk(PLAIN, 0, 1000, &[1]), chunk(PLAIN, 1, 1000, &[2])],
            "reassembly_failed",
        ),
        (
            "out of order",
            vec![chunk(PLAIN, 1, 2, &[1; 10])],
            "reassembly_failed",
        ),
        (
            "interleaved",
            {
                let cap = p2p::framing::chunk::chunk_capacity(64 * 1024 - 16, PLAIN, 0, 2).unwrap();
                let first = vec![1u8; cap as usize];
                vec![chunk(PLAIN, 0, 2, &first), chunk(ZSTD, 0, 2, &first)]
            },
            "reassembly_failed",
        ),
        (
            "unknown channel",
            vec![chunk(99, 0, 1, b"who listens here?")],
            "unknown_channel",
        ),
    ];
    for (n, (what, payloads, reason)) in cases.into_iter().enumerate() {
        arena.wait_gone(&key).await;
        let mut link = adversary.connect(&arena).await.unwrap();
        for p in &payloads {
            let _ = link.send(p).await;
        }
        assert!(link.closed_within(Duration::from_secs(3)).await, "{what}");
        let before = if reason == "reassembly_failed" { n } else { 0 };
        arena.expect(DISCONNECTS, reason, before as f64 + 1.0).await;
    }
    arena.assert_serving("after chunking attacks").await;
    arena.end().await;
}

/// Batch frames (protocol minor 1): a peer's batch of chunks is delivered message by message
/// in order; a batch that mixes a chunk with anything else closes the connection; and the
/// victim never sends a batch to a peer that announced minor 0, as the adversary does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_frames_in_order_refused_when_mixed_and_never_sent_to_minor_zero() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let key = adversary.signer.public_key();
    let mut link = adversary.connect(&arena).await.unwrap();
    arena
        .wait("the adversary is admitted", Duration::from_secs(5), |a| {
            a.victim.oracle.connected().contains(&key)
        })
        .await;
    let mut batch = bytes::BytesMut::new();
    for m in [&b"one"[..], b"two", b"three"] {
        p2p::framing::envelope::encode(&chunk(PLAIN, 0, 1, m), &mut batch);
    }
    link.send_plaintext(&batch).await.unwrap();
    for want in [&b"one"[..], b"two", b"three"] {
        let (from, msg) = common::recv(&mut arena.victim.plain_rx, Duration::from_secs(5)).await;
        assert_eq!((from, &msg[..]), (key.clone(), want));
    }
    // 64 small messages queued at once for a minor-0 peer: one envelope per frame.
    for i in 0..64u8 {
        let r = arena
            .victim
            .plain
            .send(
                Recipients::One(key.clone()),
                Bytes::from(vec![i; 100]),
                Priority::High,
            )
            .unwrap();
        assert!(r.is_complete());
    }
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while got.len() < 64 {
            let frame = link
                .rx
                .recv()
                .await
                .expect("the victim keeps the connection");
            // Exactly one payload field (a batch would be `MultiplePayloads`).
            let (kind, inner) = p2p::session::decode::peek(&frame).expect("one envelope");
            let inner = inner.len();
            if kind == p2p::session::decode::Kind::Chunk {
                let Payload::Chunk(c) = p2p::framing::envelope::decode(frame.freeze()).unwrap()
                else {
                    unreachable!("peeked as a chunk")
                };
                assert!(inner < 120);
                got.push(c.content[0]);
            }
        }
    })
    .await
    .expect("64 messages within 5 s");
    assert_eq!(got, (0..64).collect::<Vec<u8>>());
    // A chunk and a bit vector in one frame: refused as malformed.
    let mut mixed = bytes::BytesMut::new();
    p2p::framing::envelope::encode(&chunk(PLAIN, 0, 1, b"x"), &mut mixed);
    p2p::framing::envelope::encode(&Payload::BitVec(BitVec::default()), &mut mixed);
    link.send_plaintext(&mixed).await.unwrap();
    assert!(link.closed_within(Duration::from_secs(3)).await);
    arena.expect(DISCONNECTS, "malformed", 1.0).await;
    arena.assert_serving("after batch frames").await;
    arena.end().await;
}

/// A compression bomb (64 MiB of zeros in a few KiB, above the channel's 32 MiB maximum) and a
/// frame of the legacy zstd v0.7 format, on the compressing channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compression_bomb_and_a_legacy_zstd_frame_close() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let key = adversary.signer.public_key();
    let bomb = p2p::framing::compress::compress(&vec![0u8; 64 << 20], 3).unwrap();
    assert!(bomb.len() < 16 * 1024, "{} bytes", bomb.len());
    // v0.7 magic, single-segment header with a 1-byte content size (5), one raw block
    // "hello", the end block: a decoder built with legacy support decodes it.
    let legacy: &[u8] = &[
        0x27, 0xb5, 0x2f, 0xfd, 0x20, 0x05, 0x40, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o', 0xc0,
        0x00, 0x00,
    ];
    for (n, frame) in [&bomb[..], legacy].into_iter().enumerate() {
        arena
            .wait(
                "the previous connection is gone",
                Duration::from_secs(5),
                |a| !a.victim.oracle.connected().contains(&key),
            )
            .await;
        let mut link = adversary.connect(&arena).await.unwrap();
        link.send(&chunk(ZSTD, 0, 1, frame)).await.unwrap();
        assert!(link.closed_within(Duration::from_secs(3)).await);
        arena
            .expect(DISCONNECTS, "decompression_failed", n as f64 + 1.0)
            .await;
    }
    arena.assert_serving("after a compression bomb").await;
    arena.end().await;
}

/// A flood past a channel's quota (6 per minute, burst 6): the reader pauses past the quota, and
/// frames already read past the gross limit (4 times the quota in rate and burst) close the
/// connection, so at most 24 messages are delivered. Reconnecting at once does not refill either
/// limiter: both connections together deliver at most those 24 (plus one replenished), where
/// limiters per connection gave the second one a fresh burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_flood_is_limited_and_reconnecting_does_not_refill_the_quota() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let key = adversary.signer.public_key();
    let mut delivered = 0;
    let mut per_round = Vec::new();
    for round in 0..2 {
        arena
            .wait(
                "the previous connection is gone",
                Duration::from_secs(5),
                |a| !a.victim.oracle.connected().contains(&key),
            )
            .await;
        let mut link = adversary.connect(&arena).await.unwrap();
        for i in 0..200u32 {
            if link
                .send(&chunk(LIMITED, 0, 1, &i.to_be_bytes()))
                .await
                .is_err()
            {
                break;
            }
        }
        // Count what the victim delivers for a while, then leave.
        let until = Instant::now() + Duration::from_millis(700);
        while let Ok(Some((from, _))) =
            tokio::time::timeout_at(until.into(), arena.limited_rx.recv()).await
        {
            assert_eq!(from, key);
            delivered += 1;
        }
        println!("flood round {round}: delivered so far {delivered}");
        per_round.push(delivered);
        drop(link);
    }
    // The gross burst of 24, plus at most one message the gross limiter (one per 2.5 s)
    // replenishes in the test's time.
    assert!(
        delivered <= 25,
        "delivered {per_round:?}: the reconnect got fresh quotas"
    );
    assert!(
        delivered >= 6,
        "delivered {delivered}: the burst is honoured"
    );
    arena.assert_serving("after a rate flood").await;
    arena.end().await;
}

/// Bit vectors of the wrong length close the connection; an unknown index is dropped and the
/// connection stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_vectors_of_the_wrong_length_close_and_unknown_indexes_are_dropped() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let key = adversary.signer.public_key();
    let mut link = adversary.connect(&arena).await.unwrap();
    let unknown = Payload::BitVec(BitVec {
        index: 77,
        bits: Bytes::from_static(&[0xff]),
    });
    link.send(&unknown).await.unwrap();
    link.send(&chunk(PLAIN, 0, 1, b"still here")).await.unwrap();
    let (from, msg) = common::recv(&mut arena.victim.plain_rx, Duration::from_secs(5)).await;
    assert_eq!((from, &msg[..]), (key.clone(), &b"still here"[..]));
    // Set 0 has 8 keys: one byte. Three bytes is the wrong length.
    let wrong = Payload::BitVec(BitVec {
        index: 0,
        bits: Bytes::from_static(&[0xff, 0, 0]),
    });
    link.send(&wrong).await.unwrap();
    assert!(link.closed_within(Duration::from_secs(3)).await);
    arena.expect(DISCONNECTS, "invalid_bit_vec", 1.0).await;
    arena.assert_serving("after bad bit vectors").await;
    arena.end().await;
}

/// A listener that counts the connections it accepts (each is closed at once): where records
/// point the victim.
async fn counting_listener() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    (addr, count)
}

/// Peer records from an insider (keys 3..=7 are authorized and the adversary holds them): a
/// record of key 4 signed by key 3 (forged) closes the connection; a future-dated record of key
/// 5 is dropped (never dialed); of two records of key 6, the replayed older one never replaces
/// the newer (only the newer address is dialed); a valid record of key 7 is dialed (the
/// control: the victim does dial what it accepts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_future_dated_and_replayed_records() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let ns = common::NAMESPACE;
    let now = unix_ms();
    let k = |seed| K::insecure_from_seed(seed);
    let (future_addr, future_hits) = counting_listener().await;
    let (old_addr, old_hits) = counting_listener().await;
    let (new_addr, new_hits) = counting_listener().await;
    let (valid_addr, valid_hits) = counting_listener().await;

    let mut link = adversary.connect(&arena).await.unwrap();
    let records = vec![
        sign_record(&k(5), ns, future_addr, now + 3_600_000),
        sign_record(&k(6), ns, new_addr, now),
        sign_record(&k(7), ns, valid_addr, now),
    ];
    link.send(&Payload::Peers(Peers { peers: records }))
        .await
        .unwrap();
    // The replay of key 6's older record, in its own message.
    let replay = vec![sign_record(&k(6), ns, old_addr, now - 60_000)];
    link.send(&Payload::Peers(Peers { peers: replay }))
        .await
        .unwrap();
    arena
        .wait(
            "the valid records are dialed",
            Duration::from_secs(5),
            |_| {
                valid_hits.load(std::sync::atomic::Ordering::SeqCst) > 0
                    && new_hits.load(std::sync::atomic::Ordering::SeqCst) > 0
            },
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(future_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(old_hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    // Forged: key 4's record with key 3's signature over it.
    let mut forged = sign_record(&k(4), ns, valid_addr, now);
    let by_3 = sign_record(&k(3), ns, valid_addr, now);
    forged.signature.as_mut().unwrap().signature = by_3.signature.unwrap().signature;
    link.send(&Payload::Peers(Peers {
        peers: vec![forged],
    }))
    .await
    .unwrap();
    assert!(link.closed_within(Duration::from_secs(3)).await);
    arena.expect(DISCONNECTS, "bad_record_signature", 1.0).await;
    arena.assert_serving("after bad records").await;
    arena.end().await;
}

/// An insider points the victim at a third party's address with its own records (key 4's
/// record names a listener that is not key 4), refreshed every 50 ms with newer timestamps and
/// the same address. The victim's dials there follow the backoff (a newer record for the same
/// address keeps it): a handful in 3 s, not one per record. The victim gossips the record to the
/// honest node, which dials it too: two dialers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_pointing_at_a_third_party_are_dialed_at_the_backoff_rate() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let (third_party, hits) = counting_listener().await;
    let mut link = adversary.connect(&arena).await.unwrap();
    let k4 = K::insecure_from_seed(4);
    let t = Instant::now();
    let mut sent = 0;
    while t.elapsed() < Duration::from_secs(3) {
        let record = sign_record(&k4, common::NAMESPACE, third_party, unix_ms() + sent);
        // Slowly enough to stay within the Peers budget (8 per ping interval).
        if link
            .send(&Payload::Peers(Peers {
                peers: vec![record],
            }))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dials = hits.load(std::sync::atomic::Ordering::SeqCst);
    println!("third party: {sent} records, {dials} dials in 3 s");
    assert!(dials >= 1, "the record was accepted and dialed");
    // The local preset's backoff, 50 ms doubling to 1 s, allows about 7 dials in 3 s per dialer.
    assert!(
        dials <= 16,
        "{dials} dials for {sent} records: the backoff was reset"
    );
    assert!(!link.closed_within(Duration::from_millis(10)).await);
    arena.assert_serving("after third-party records").await;
    arena.end().await;
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

/// A peer killed in the middle of a two-part message: the victim discards the partial message
/// (nothing is delivered from it), and the peer's next connection delivers its next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_mid_message_loses_only_that_message() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let key = adversary.signer.public_key();
    let mut link = adversary.connect(&arena).await.unwrap();
    let cap =
        p2p::framing::chunk::chunk_capacity(link.tx.max_body_len() as u32, PLAIN, 0, 2).unwrap();
    link.send(&chunk(PLAIN, 0, 2, &vec![1u8; cap as usize]))
        .await
        .unwrap();
    // Killed: the socket goes away with the message half sent.
    drop(link);
    arena
        .wait(
            "the killed connection is gone",
            Duration::from_secs(5),
            |a| !a.victim.oracle.connected().contains(&key),
        )
        .await;
    let mut link = adversary.connect(&arena).await.unwrap();
    link.send(&chunk(PLAIN, 0, 1, b"after the restart"))
        .await
        .unwrap();
    let (from, msg) = common::recv(&mut arena.victim.plain_rx, Duration::from_secs(5)).await;
    assert_eq!(from, key);
    assert_eq!(
        &msg[..],
        b"after the restart",
        "the partial message was discarded"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), arena.victim.plain_rx.recv())
            .await
            .is_err(),
        "nothing else is delivered"
    );
    arena.assert_serving("after a killed peer").await;
    arena.end().await;
}

/// A node whose clock is skewed: inside the handshake window (past 10 s, future 5 s, both ways:
/// each side checks the other's timestamp) it connects; outside it is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_clock_inside_the_window_connects_and_outside_is_refused() {
    let _serial = SERIAL.lock().await;
    let mut arena = Arena::new(|_| {}).await;
    let adversary = Adversary::new(3, [127, 0, 0, 3].into());
    let key = adversary.signer.public_key();
    for skew in [-4_000i64, 4_000] {
        let link = adversary
            .connect_skewed(&arena, skew)
            .await
            .unwrap_or_else(|e| panic!("skew {skew} ms: {e}"));
        arena
            .wait("the skewed peer is admitted", Duration::from_secs(5), |a| {
                a.victim.oracle.connected().contains(&key)
            })
            .await;
        drop(link);
        arena.wait_gone(&key).await;
    }
    for (skew, reason) in [
        (-12_000i64, "timestamp_too_old"),
        (12_000, "timestamp_too_new"),
    ] {
        assert!(adversary.connect_skewed(&arena, skew).await.is_err());
        arena.expect(HANDSHAKES, reason, 1.0).await;
    }
    arena.assert_serving("after skewed clocks").await;
    arena.end().await;
}

/// Polls `check` every 20 ms until it is `Ok`, and returns how long that took; panics with its
/// last error after `within`.
async fn until<E: std::fmt::Display>(
    within: Duration,
    check: impl Fn() -> Result<(), E>,
) -> Duration {
    let t = Instant::now();
    loop {
        match check() {
            Ok(()) => return t.elapsed(),
            Err(e) => assert!(t.elapsed() < within, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A partition that heals: a 6-node network splits into halves {0, 1, 2} and {3, 4, 5} (the
/// facade's fault-injection hook cuts every link across), each half keeps its own mesh, and
/// when the links come back the full mesh forms again, with traffic across.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_between_two_halves_heals() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let _serial = SERIAL.lock().await;
    let keys: Vec<PK> = (0..6)
        .map(|i| K::insecure_from_seed(i).public_key())
        .collect();
    let half = |i: usize| i / 3;
    let cut = Arc::new(AtomicBool::new(false));
    let filter = |me: usize| {
        let cut = Arc::clone(&cut);
        let same_half: Vec<Vec<u8>> = (0..6)
            .filter(|&j| half(j) == half(me))
            .map(|j| keys[j].as_bytes().to_vec())
            .collect();
        p2p::LinkFilter::new(move |key| {
            !cut.load(Ordering::SeqCst) || same_half.iter().any(|k| k == key)
        })
    };
    let sets = [(0, keys.clone())];
    let mut cfg = common::config::<K>(0, vec![]);
    cfg.insecure_link_filter_for_testing = Some(filter(0));
    let first = common::start::<K>(cfg, 0, &sets);
    let boot = p2p::identity::PeerUrl::new(&first.key, first.oracle.local_addr());
    let mut nodes = vec![first];
    for i in 1..6u64 {
        let mut cfg = common::config::<K>(i, vec![boot.clone()]);
        cfg.insecure_link_filter_for_testing = Some(filter(i as usize));
        nodes.push(common::start::<K>(cfg, i, &sets));
    }
    common::full_mesh(&nodes, Duration::from_secs(20)).await;

    cut.store(true, Ordering::SeqCst);
    let split_after = until(Duration::from_secs(10), || {
        let split = nodes.iter().enumerate().all(|(i, n)| {
            let c = n.oracle.connected();
            c.len() == 2 && (0..6).all(|j| c.contains(&keys[j]) == (j != i && half(j) == half(i)))
        });
        split
            .then_some(())
            .ok_or("the halves never lost each other")
    })
    .await;
    // Held long enough for every address across to go stale (3 failed dials, 50 ms doubling):
    // node 0 (in the first half) is the others' bootstrapper and never stale, so the first half
    // knows 3 addresses (its own included) and the second half 4. Without the stale retry this
    // partition never healed: records are signed once per start, so no newer one revives them.
    let known = |node: &common::Node<K>| {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &node.registry).unwrap();
        out.lines()
            .find(|l| l.starts_with("p2p_known_peers{"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    };
    let stale_after = until(Duration::from_secs(15), || {
        let counts: Vec<_> = nodes.iter().map(known).collect();
        let stale = (0..6).all(|i| counts[i] == Some(if half(i) == 0 { 3 } else { 4 }));
        stale.then_some(()).ok_or(format!(
            "addresses across never went stale: known {counts:?}"
        ))
    })
    .await;
    // Inside a half, traffic goes on.
    let report = nodes[0]
        .plain
        .send(Recipients::All, Bytes::from_static(b"half"), Priority::High)
        .unwrap();
    assert_eq!(report.queued.len(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;

    cut.store(false, Ordering::SeqCst);
    let t = Instant::now();
    common::full_mesh(&nodes, Duration::from_secs(20)).await;
    let healed_after = t.elapsed();
    let report = nodes[5]
        .plain
        .send(
            Recipients::One(keys[0].clone()),
            Bytes::from_static(b"across"),
            Priority::High,
        )
        .unwrap();
    assert_eq!(report.queued.len(), 1);
    loop {
        let (from, msg) = common::recv(&mut nodes[0].plain_rx, Duration::from_secs(5)).await;
        if &msg[..] == b"across" {
            assert_eq!(from, keys[5]);
            break;
        }
    }
    println!(
        "partition: split seen after {split_after:?}, stale after {stale_after:?} more, full mesh \
         again after {healed_after:?}"
    );
    common::shutdown(nodes).await;
}
