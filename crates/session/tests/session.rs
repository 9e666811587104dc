//! The session's rules, one by one, on simulated time (no sockets).

mod common;

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use p2p_identity::Signer;
use p2p_mux::{Priority, Recipients};
use p2p_proto::message::Payload;
use p2p_proto::{BitVec, Chunk, Peer, Peers};
use p2p_session::decode::{DecodeError, Kind, decode, encode};
use p2p_session::{
    BATCH_MINOR, DEFAULT_COALESCE_LIMIT, Error, Event, OPENING_BIT_VECS, OPENING_PEERS,
};

fn bit_vec(n: usize) -> Bytes {
    encode(&Payload::BitVec(BitVec {
        index: 0,
        bits: Bytes::from(vec![0u8; n.div_ceil(8)]),
    }))
}

fn record(key: &K, port: u16, ts: u64) -> Peer {
    p2p_discovery::sign_record(key, NAMESPACE, ([127, 0, 0, 1], port).into(), ts)
}

fn peers(records: Vec<Peer>) -> Bytes {
    encode(&Payload::Peers(Peers { peers: records }))
}

fn chunk(content: &'static [u8]) -> Bytes {
    encode(&Payload::Chunk(Chunk {
        channel: 1,
        part: 0,
        total_parts: 1,
        content: Bytes::from_static(content),
    }))
}

#[test]
fn first_frame_must_be_the_version_info_and_is_classified_before_decoding() {
    let mut node = node(4);
    for body in [bit_vec(4), chunk(b"x"), peers(vec![])] {
        let mut s = node.session(1);
        let err = node.frame(&mut s, body, 0).unwrap_err();
        assert!(matches!(err, Error::FirstFrameNotVersion(_)), "{err}");
        assert_eq!(err.label(), "first_frame_not_version");
    }
    // A frame of 100,000 empty records is refused for its kind, never counted or decoded.
    let body = empty_records(100_000);
    let mut s = node.session(1);
    assert!(matches!(
        node.frame(&mut s, body, 0),
        Err(Error::FirstFrameNotVersion(Kind::Peers))
    ));
}

#[test]
fn the_peer_is_not_admitted_anywhere_before_its_version_passes() {
    let mut node = node(4);
    let peer = node.key(1);
    // Wrong namespace: refused by the session; nothing knows the peer.
    let mut s = node.session(1);
    let err = node
        .frame(&mut s, encode(&Payload::Version(version(b"other"))), 0)
        .unwrap_err();
    assert_eq!(err.label(), "network_mismatch");
    assert!(node.manager.connected().is_empty());
    assert!(!node.mux.is_connected(&peer));
    assert!(!node.manager.with_tracker(|t| t.is_connected(&peer)));
    // Another major version.
    let mut s = node.session(1);
    let mut v = version(NAMESPACE);
    v.protocol_major = 2;
    let err = node
        .frame(&mut s, encode(&Payload::Version(v)), 0)
        .unwrap_err();
    assert_eq!(err.label(), "incompatible_version");
    // Accepted: the session asks for admission, and a frame before it is local misuse.
    let mut s = node.session(1);
    let ev = node
        .frame(&mut s, encode(&Payload::Version(version(NAMESPACE))), 0)
        .unwrap();
    assert!(matches!(ev, Event::Admit));
    assert!(
        node.manager.connected().is_empty(),
        "admission is the driver's next step"
    );
    assert!(matches!(
        node.frame(&mut s, bit_vec(4), 1),
        Err(Error::NotAdmitted)
    ));
}

#[test]
fn the_version_step_has_its_own_deadline() {
    let node = node(4);
    let mut s = node.session(1);
    let deadline = s.poll_timeout();
    assert_eq!(deadline, node.t0 + Duration::from_secs(2));
    assert!(
        s.handle_timeout(node.t0 + Duration::from_millis(1999))
            .is_ok()
    );
    // Bytes arriving (a slow frame) do not extend the version deadline.
    s.handle_bytes_received(node.t0 + Duration::from_millis(1500));
    assert_eq!(s.poll_timeout(), deadline);
    assert!(matches!(
        s.handle_timeout(deadline),
        Err(Error::VersionTimeout)
    ));
}

#[test]
fn software_version_is_escaped_for_logs() {
    let mut node = node(4);
    let mut s = node.session(1);
    let mut v = version(NAMESPACE);
    v.software_version = "evil\n\u{1b}[31m".into();
    let _ = node.frame(&mut s, encode(&Payload::Version(v)), 0).unwrap();
    let software = &s.peer_version().unwrap().software;
    assert!(!software.contains('\n') && !software.contains('\u{1b}'));
    assert_eq!(software, "evil\\n\\u{1b}[31m");
}

#[test]
fn send_order_is_version_then_record_then_bit_vector() {
    let mut node = node(4);
    let mut s = node.session(1);
    let first = s.poll_transmit().unwrap();
    assert!(matches!(
        decode(first, &node.config().limits).unwrap().0,
        Kind::Version
    ));
    assert!(
        s.poll_transmit().is_none(),
        "nothing else before the peer is admitted"
    );
    let _ = node
        .frame(&mut s, encode(&Payload::Version(version(NAMESPACE))), 0)
        .unwrap();
    let admitted = node
        .manager
        .admit(&node.key(1), false, 1, UNIX0, &mut node.rng)
        .unwrap();
    let mut scheduler = None;
    let mux = &node.mux;
    s.handle_admitted(&admitted, |opening| {
        mux.peer_connected_with(node.keys[1].public_key(), opening)
            .map(|h| {
                scheduler = Some(h.scheduler);
                h.inbound
            })
    })
    .unwrap();
    let mut scheduler = scheduler.unwrap();
    // An application message sent at once still goes out after the opening frames.
    node.tx
        .send(
            Recipients::One(node.key(1)),
            Bytes::from_static(b"app"),
            Priority::High,
        )
        .unwrap();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let mut out = bytes::BytesMut::new();
        let _ = scheduler.poll_frame(node.at(0).instant, &mut out);
        kinds.push(decode(out.freeze(), &node.config().limits).unwrap().0);
    }
    assert_eq!(kinds, vec![Kind::Peers, Kind::BitVec, Kind::Chunk]);
}

#[test]
fn budgets_belong_to_the_key_and_survive_reconnects() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    // The opening bit vector is free, then the whole budget (its saved-up burst).
    let burst = node.config().max_bit_vecs.get() * node.config().budget_burst.get();
    for i in 0..OPENING_BIT_VECS + burst {
        let _ = node.frame(&mut s, bit_vec(4), u64::from(i)).unwrap();
    }
    // The flooder reconnects within the same window: its new connection's opening is free,
    // but there is no fresh budget. (Connection ids count admissions: this node's first is 1.)
    assert!(
        node.manager
            .release(&node.key(1), 1, "test", UNIX0, &mut node.rng)
    );
    node.mux.peer_disconnected(&node.key(1));
    let mut again = node.admitted(1, 2);
    for i in 0..OPENING_BIT_VECS {
        let _ = node
            .frame(&mut again, bit_vec(4), 10 + u64::from(i))
            .unwrap();
    }
    let err = node.frame(&mut again, bit_vec(4), 10).unwrap_err();
    assert_eq!(err.label(), "bit_vec_flood");
    // The next window is fresh.
    let interval = node.discovery.ping_interval.as_millis() as u64;
    node.manager
        .release(&node.key(1), 2, "test", UNIX0, &mut node.rng);
    node.mux.peer_disconnected(&node.key(1));
    let mut later = node.admitted(1, 3);
    assert!(node.frame(&mut later, bit_vec(4), 10 + interval).is_ok());
}

/// A reader that paused (backpressure, a rate-limit pause, a descheduled process) reads the
/// pings that piled up meanwhile together: an honest peer's one ping per interval is not a
/// flood, however they bunch up within the saved-up budget (docs/reliability.md, finding 4:
/// with budgets counted in fixed windows, the fifth ping read within one window closed the
/// connection as `bit_vec_flood`). A sustained rate above the budget still closes.
#[test]
fn pings_that_piled_up_behind_a_paused_reader_are_not_a_flood() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    let interval = node.discovery.ping_interval.as_millis() as u64;
    let _ = node.frame(&mut s, bit_vec(4), 0).unwrap();
    // One ping per interval for 8 intervals, all read at the end of the pause, twice over.
    for pause in 1..=2u64 {
        let read_at = pause * 8 * interval;
        for _ in 0..8 {
            let ev = node.frame(&mut s, bit_vec(4), read_at);
            assert!(ev.is_ok(), "pause {pause}: {:?}", ev.err());
            while s.poll_transmit().is_some() {}
        }
    }
    // Twice the budget's rate for long enough: closed.
    let config = node.config();
    let step = interval / u64::from(2 * config.max_bit_vecs.get());
    let mut now = 16 * interval;
    let err = loop {
        now += step;
        assert!(now < 40 * interval, "never closed");
        match node.frame(&mut s, bit_vec(4), now) {
            Ok(_) => while s.poll_transmit().is_some() {},
            Err(e) => break e,
        }
    };
    assert_eq!(err.label(), "bit_vec_flood");
}

/// Budget arithmetic with extreme configured intervals does not panic: an interval of
/// `Duration::MAX` takes a message, then refuses once the refill instant no longer fits
/// (the fixed window panicked adding the interval to the clock); a zero-length one limits nothing, as the fixed windows did (`SessionConfig::new`
/// never builds it: at least 1 ms).
#[test]
fn extreme_budget_intervals_do_not_panic() {
    let node = node(4);
    let t = node.t0;
    let mut config = node.config();
    config.budget_interval = Duration::MAX;
    let spend = || {
        node.manager
            .spend_discovery(&node.key(1), Kind::BitVec, t, &config)
    };
    assert!(spend().is_ok(), "a full bucket takes one message");
    let refused = (0..8).find_map(|_| spend().err());
    assert_eq!(refused.map(|e| e.label()), Some("bit_vec_flood"));
    config.budget_interval = Duration::ZERO;
    for _ in 0..100 {
        node.manager
            .spend_discovery(&node.key(2), Kind::Peers, t, &config)
            .unwrap();
    }
}

/// Every connection opens with the peer's record, a bit vector and the answer to ours; an
/// honest peer that reconnects many times within one ping interval (a restart loop, a block
/// lifted, the connect benchmark) is not a flood. Found by the connect benchmark: reconnects
/// were closed as `bit_vec_flood` and `peers_flood` from the fifth on.
#[test]
fn reconnecting_often_within_one_interval_is_not_a_flood() {
    let mut node = node(4);
    for id in 1..=20u32 {
        let mut s = node.admitted(1, id);
        let id = u64::from(id);
        let own = record(&node.keys[1], 9000, UNIX0 + id);
        let ev = node.frame(&mut s, peers(vec![own]), id).unwrap();
        assert!(matches!(ev, Event::Continue | Event::Ignored(_)), "{ev:?}");
        let ev = node.frame(&mut s, bit_vec(4), id).unwrap();
        assert!(matches!(ev, Event::Continue | Event::Ignored(_)), "{ev:?}");
        let answer = record(&node.keys[2], 9002, UNIX0 + id);
        let ev = node.frame(&mut s, peers(vec![answer]), id).unwrap();
        assert!(matches!(ev, Event::Continue | Event::Ignored(_)), "{ev:?}");
        while s.poll_transmit().is_some() {}
        assert!(
            node.manager
                .release(&node.key(1), id, "test", UNIX0, &mut node.rng)
        );
        node.mux.peer_disconnected(&node.key(1));
    }
}

#[test]
fn a_second_version_info_closes() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    let err = node
        .frame(&mut s, encode(&Payload::Version(version(NAMESPACE))), 1)
        .unwrap_err();
    assert_eq!(err.label(), "second_version");
}

#[test]
fn bit_vector_flood_closes_at_the_budget_and_each_answer_is_bounded() {
    let mut node = node(40);
    // We know 40 addresses (our own and 39 signed records), the flooder claims to know none.
    for i in 1..40 {
        let r = record(&node.keys[i], 8000 + i as u16, UNIX0);
        node.manager
            .handle_peers(&node.key(1), Peers { peers: vec![r] }, UNIX0)
            .unwrap();
    }
    let mut s = node.admitted(1, 1);
    let config = node.config();
    let budget = OPENING_BIT_VECS + config.max_bit_vecs.get() * config.budget_burst.get();
    for i in 0..budget {
        let ev = node.frame(&mut s, bit_vec(40), 10 + u64::from(i)).unwrap();
        assert!(matches!(ev, Event::Continue));
        let answer = s.poll_transmit().expect("a gossip answer");
        let (_, payload) = decode(answer, &node.config().limits).unwrap();
        let Payload::Peers(p) = payload else {
            panic!("not peers")
        };
        assert!(p.peers.len() <= node.discovery.max_gossip_records.get());
    }
    let err = node.frame(&mut s, bit_vec(40), 20).unwrap_err();
    assert_eq!(err.label(), "bit_vec_flood");
    // A new window restores the budget (an honest peer pings once per interval).
    let mut s = node.admitted(2, 2);
    let interval = node.discovery.ping_interval.as_millis() as u64;
    for w in 0..10 {
        let ev = node.frame(&mut s, bit_vec(40), w * interval).unwrap();
        assert!(matches!(ev, Event::Continue));
        while s.poll_transmit().is_some() {}
    }
}

#[test]
fn peers_flood_and_duplicate_keys_close() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    let config = node.config();
    let budget = OPENING_PEERS + config.max_peers_messages.get() * config.budget_burst.get();
    for i in 0..budget {
        // The peer's own record, newer each time: one verification per message.
        let r = record(&node.keys[1], 9000, UNIX0 + 1 + u64::from(i));
        let ev = node.frame(&mut s, peers(vec![r]), u64::from(i)).unwrap();
        assert!(matches!(ev, Event::Continue));
    }
    let r = record(&node.keys[1], 9000, UNIX0 + 100);
    let err = node.frame(&mut s, peers(vec![r]), 30).unwrap_err();
    assert_eq!(err.label(), "peers_flood");

    let mut s = node.admitted(2, 2);
    let twice = vec![
        record(&node.keys[2], 9000, UNIX0 + 1),
        record(&node.keys[2], 9001, UNIX0 + 2),
    ];
    let err = node.frame(&mut s, peers(twice), 0).unwrap_err();
    assert_eq!(err.label(), "duplicate_record");
}

#[test]
fn discovery_errors_are_fatal_or_ignored_as_discovery_says() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    // Unknown index: not fatal.
    let unknown = encode(&Payload::BitVec(BitVec {
        index: 9,
        bits: Bytes::from_static(&[0]),
    }));
    assert!(matches!(
        node.frame(&mut s, unknown, 0),
        Ok(Event::Ignored(_))
    ));
    // A record from the future: dropped, connection kept.
    let future = record(&node.keys[2], 9000, UNIX0 + 3_600_000);
    assert!(matches!(
        node.frame(&mut s, peers(vec![future]), 1),
        Ok(Event::Ignored(_))
    ));
    // A bad signature: fatal.
    let mut forged = record(&node.keys[2], 9000, UNIX0 + 5);
    forged.timestamp += 1;
    let err = node.frame(&mut s, peers(vec![forged]), 2).unwrap_err();
    assert_eq!(err.label(), "bad_record_signature");
    // Wrong bit-vector length: fatal.
    let mut s = node.admitted(2, 2);
    let err = node.frame(&mut s, bit_vec(64), 0).unwrap_err();
    assert_eq!(err.label(), "invalid_bit_vec");
    // Nonzero padding (a set of 4 keys uses the low 4 bits of one byte): fatal, same label.
    let mut s = node.admitted(3, 3);
    let padded = encode(&Payload::BitVec(BitVec {
        index: 0,
        bits: Bytes::from_static(&[0x10]),
    }));
    let err = node.frame(&mut s, padded, 0).unwrap_err();
    assert_eq!(err.label(), "invalid_bit_vec");
}

#[test]
fn fatal_discovery_and_mux_errors_have_one_label_each() {
    use p2p_discovery::Error as D;
    use p2p_framing::chunk::ReassemblyError;
    use p2p_framing::compress::CompressError;
    let label = |e: D| Error::Discovery(e).label();
    assert_eq!(label(D::UnauthorizedSender), "unauthorized_sender");
    assert_eq!(
        label(D::TooManyRecords { got: 65, max: 64 }),
        "too_many_records"
    );
    assert_eq!(label(D::MissingSignature), "invalid_record");
    assert_eq!(
        label(D::MalformedSocket(p2p_discovery::SocketError::Empty)),
        "invalid_record"
    );
    assert_eq!(label(D::BadSignature), "bad_record_signature");
    let mux = |e: p2p_mux::MuxError| Error::Mux(e).label();
    assert_eq!(
        mux(p2p_mux::MuxError::Reassembly(
            ReassemblyError::ZeroTotalParts
        )),
        "reassembly_failed"
    );
    assert_eq!(
        mux(p2p_mux::MuxError::Decompress {
            channel: 1,
            source: CompressError::Malformed,
        }),
        "decompression_failed"
    );
    assert_eq!(mux(p2p_mux::MuxError::DeliveryPending), "mux");
}

#[test]
fn over_quota_pauses_reading_and_a_full_queue_waits_for_room() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    let mut cx = Context::from_waker(Waker::noop());
    // Backlog 2: the third message waits for room.
    for i in 0..2 {
        assert!(matches!(
            node.frame(&mut s, chunk(b"m"), i),
            Ok(Event::Continue)
        ));
    }
    assert!(matches!(
        node.frame(&mut s, chunk(b"m"), 2),
        Ok(Event::WaitForRoom)
    ));
    assert_eq!(s.poll_deliver(&mut cx), Poll::Pending);
    assert!(node.rx.try_recv().is_some());
    assert_eq!(s.poll_deliver(&mut cx), Poll::Ready(()));
    while node.rx.try_recv().is_some() {}
    // Quota 10/s with a burst of 10: past it the reader pauses until a cell is free.
    let mut paused = None;
    for i in 0..12 {
        let _ = node.frame(&mut s, chunk(b"q"), 3).unwrap();
        while node.rx.try_recv().is_some() {}
        if let Some(until) = s.poll_read(node.at(3).instant) {
            paused = Some((i, until));
            break;
        }
    }
    let (_, until) = paused.expect("reading pauses once over quota");
    assert!(until > node.at(3).instant);
    assert_eq!(s.poll_read(until), None, "reading resumes at the instant");
    // Far over the quota (4x): the connection closes.
    let err = (0..64)
        .find_map(|_| {
            let r = node.frame(&mut s, chunk(b"z"), 3);
            while node.rx.try_recv().is_some() {}
            r.err()
        })
        .expect("a gross violation closes");
    assert_eq!(err.label(), "rate_limit_exceeded");
}

#[test]
fn idle_timeout_counts_from_the_last_bytes() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    let _ = node.frame(&mut s, bit_vec(4), 1000).unwrap();
    assert_eq!(s.poll_timeout(), node.at(6000).instant);
    s.handle_bytes_received(node.at(4000).instant);
    assert!(s.handle_timeout(node.at(8999).instant).is_ok());
    assert!(matches!(
        s.handle_timeout(node.at(9000).instant),
        Err(Error::Idle)
    ));
}

#[test]
fn unknown_channels_and_malformed_frames_close_with_their_labels() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    let other = encode(&Payload::Chunk(Chunk {
        channel: 7,
        part: 0,
        total_parts: 1,
        content: Bytes::from_static(b"x"),
    }));
    assert_eq!(
        node.frame(&mut s, other, 0).unwrap_err().label(),
        "unknown_channel"
    );
    let mut s = node.admitted(2, 2);
    let err = node
        .frame(&mut s, Bytes::from_static(&[0x0a, 0x05, 0x01]), 0)
        .unwrap_err();
    assert!(matches!(err, Error::Decode(DecodeError::Malformed(_))));
    assert_eq!(err.label(), "malformed");
}

#[test]
fn application_sends_reach_the_admitted_peer_only() {
    let mut node = node(4);
    let report = node
        .tx
        .send(
            Recipients::One(node.key(1)),
            Bytes::from_static(b"early"),
            Priority::High,
        )
        .unwrap();
    assert!(report.queued.is_empty(), "not admitted: not a recipient");
    let _s = node.admitted(1, 1);
    let report = node
        .tx
        .send(
            Recipients::One(node.key(1)),
            Bytes::from_static(b"now"),
            Priority::High,
        )
        .unwrap();
    assert_eq!(report.queued, vec![node.key(1)]);
}

/// Envelopes back to back: a batch frame's plaintext.
fn batch(envelopes: &[Bytes]) -> Bytes {
    Bytes::from(envelopes.concat())
}

#[test]
fn a_batch_frame_delivers_each_message_in_order_as_separate_frames_would() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    let body = batch(&[chunk(b"one"), chunk(b""), chunk(b"three")]);
    assert!(matches!(node.frame(&mut s, body, 0), Ok(Event::Continue)));
    // The first message is delivered at once, the rest one per `handle_rest`.
    assert_eq!(&node.rx.try_recv().unwrap().1[..], b"one");
    assert!(node.rx.try_recv().is_none());
    assert!(matches!(node.rest(&mut s, 0), Some(Ok(Event::Continue))));
    assert!(matches!(node.rest(&mut s, 0), Some(Ok(Event::Continue))));
    assert!(node.rest(&mut s, 0).is_none(), "the frame is done");
    assert_eq!(&node.rx.try_recv().unwrap().1[..], b"");
    assert_eq!(&node.rx.try_recv().unwrap().1[..], b"three");
    // The next frame is handled as usual.
    assert!(matches!(
        node.frame(&mut s, chunk(b"after"), 1),
        Ok(Event::Continue)
    ));
    assert_eq!(&node.rx.try_recv().unwrap().1[..], b"after");
}

#[test]
fn a_full_queue_inside_a_batch_waits_for_room_and_the_rest_follows() {
    let mut node = node(4);
    let mut s = node.admitted(1, 1);
    let mut cx = Context::from_waker(Waker::noop());
    // Backlog 2: the third message of the batch waits for room.
    let body = batch(&[chunk(b"a"), chunk(b"b"), chunk(b"c"), chunk(b"d")]);
    assert!(matches!(node.frame(&mut s, body, 0), Ok(Event::Continue)));
    assert!(matches!(node.rest(&mut s, 0), Some(Ok(Event::Continue))));
    assert!(matches!(node.rest(&mut s, 0), Some(Ok(Event::WaitForRoom))));
    assert_eq!(s.poll_deliver(&mut cx), Poll::Pending);
    assert_eq!(&node.rx.try_recv().unwrap().1[..], b"a");
    assert_eq!(s.poll_deliver(&mut cx), Poll::Ready(()));
    let mut got: Vec<Bytes> = std::iter::from_fn(|| node.rx.try_recv().map(|(_, m)| m)).collect();
    assert!(matches!(node.rest(&mut s, 0), Some(Ok(Event::Continue))));
    assert!(node.rest(&mut s, 0).is_none());
    got.extend(std::iter::from_fn(|| node.rx.try_recv().map(|(_, m)| m)));
    assert_eq!(got, [&b"b"[..], b"c", b"d"]);
}

#[test]
fn a_batch_holds_only_chunks_and_must_be_drained() {
    let mut node = node(8);
    // A chunk beside a bit vector or a version info: two payloads, not a batch.
    let version = encode(&Payload::Version(version(NAMESPACE)));
    for (i, other) in [bit_vec(8), version].into_iter().enumerate() {
        let mut s = node.admitted(1 + i, 1 + i as u32);
        let err = node
            .frame(&mut s, batch(&[chunk(b"x"), other]), 0)
            .unwrap_err();
        assert!(
            matches!(err, Error::Decode(DecodeError::MultiplePayloads)),
            "{err}"
        );
        assert_eq!(err.label(), "malformed");
    }
    // A chunk beside an unknown field: not a batch either.
    let mut s = node.admitted(3, 3);
    let err = node
        .frame(
            &mut s,
            batch(&[chunk(b"x"), chunk(b"y"), Bytes::from_static(&[0x28, 1])]),
            0,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Decode(DecodeError::MultiplePayloads)));
    // A truncated last envelope: refused before anything is delivered.
    let mut s = node.admitted(4, 4);
    let mut bad = batch(&[chunk(b"x"), chunk(b"y")]).to_vec();
    bad.truncate(bad.len() - 1);
    let err = node.frame(&mut s, Bytes::from(bad), 0).unwrap_err();
    assert!(matches!(err, Error::Decode(DecodeError::Malformed(_))));
    assert!(node.rx.try_recv().is_none());
    // A new frame before the batch is drained: the driver's misuse, refused.
    let mut s = node.admitted(5, 5);
    let _ = node
        .frame(&mut s, batch(&[chunk(b"x"), chunk(b"y")]), 0)
        .unwrap();
    let err = node.frame(&mut s, chunk(b"z"), 0).unwrap_err();
    assert!(matches!(err, Error::BatchNotDrained));
    assert_eq!(err.label(), "batch_not_drained");
}

#[test]
fn batches_go_only_to_a_peer_of_minor_one_or_later() {
    let mut node = node(4);
    for (minor, want) in [
        (0, 0),
        (1, DEFAULT_COALESCE_LIMIT),
        (7, DEFAULT_COALESCE_LIMIT),
    ] {
        let mut s = node.session(1);
        assert_eq!(s.coalesce_limit(), 0, "unknown before the version step");
        let mut theirs = version(NAMESPACE);
        theirs.protocol_minor = minor;
        let event = node.frame(&mut s, encode(&Payload::Version(theirs)), 0);
        assert!(matches!(event, Ok(Event::Admit)));
        assert_eq!(s.coalesce_limit(), want, "minor {minor}");
    }
    assert_eq!(BATCH_MINOR, 1);
}
