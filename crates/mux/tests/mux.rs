//! Sans-IO tests of the mux: scheduling, priorities, fairness, rate limits, backlogs, inbound.

use std::{
    future::Future,
    num::{NonZeroU32, NonZeroUsize},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use governor::Quota;
use p2p_mux::{
    ChannelLabel, ControlRefused, DropReason, DroppedLabel, Inbound, Mux, MuxConfig, MuxError,
    PeerHandles, PollFrame, Priority, Recipients, Sender,
};
use p2p_proto::{Chunk, Message, ProstMessage, message::Payload};

const FRAME: u32 = 256;

fn config() -> MuxConfig {
    MuxConfig {
        max_frame_plaintext: FRAME,
        control_backlog: NonZeroUsize::new(4).unwrap(),
        gross_violation_factor: NonZeroU32::new(2).unwrap(),
    }
}

fn fast() -> Quota {
    Quota::per_second(NonZeroU32::new(1_000_000).unwrap())
}

fn per_second(n: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(n).unwrap())
}

/// A message whose bytes name it, `len` bytes long.
fn msg(tag: u8, len: usize) -> Bytes {
    Bytes::from(vec![tag; len])
}

fn decode(frame: &[u8]) -> Payload {
    Message::decode(frame).unwrap().payload.unwrap()
}

/// Polls one frame; returns its chunk if it was a chunk.
fn poll_chunk(s: &mut p2p_mux::Scheduler<u8>, now: Instant) -> (PollFrame, Option<Chunk>) {
    let mut out = BytesMut::new();
    let r = s.poll_frame(now, &mut out);
    match r {
        PollFrame::Chunk { .. } => match decode(&out) {
            Payload::Chunk(c) => (r, Some(c)),
            other => panic!("chunk frame decoded as {other:?}"),
        },
        _ => (r, None),
    }
}

/// Polls until idle; returns the (channel, first content byte, part, total) of every chunk.
fn drain(s: &mut p2p_mux::Scheduler<u8>, now: Instant) -> Vec<(u32, u8, u32, u32)> {
    let mut seen = Vec::new();
    loop {
        match poll_chunk(s, now) {
            (PollFrame::Chunk { .. }, Some(c)) => {
                seen.push((c.channel, c.content[0], c.part, c.total_parts))
            }
            (PollFrame::Idle { .. }, _) => return seen,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Message tags in emission order (one per message, from its first chunk).
fn messages(chunks: &[(u32, u8, u32, u32)]) -> Vec<u8> {
    chunks.iter().filter(|c| c.2 == 0).map(|c| c.1).collect()
}

#[test]
fn priority_overtakes_at_a_message_boundary_but_not_mid_message() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(1, fast(), 10_000, 16, None).unwrap();
    let PeerHandles { mut scheduler, .. } = mux.peer_connected(7).unwrap();
    let now = Instant::now();
    // Two multi-chunk low-priority messages.
    tx.send(Recipients::One(7), msg(b'a', 1000), Priority::Low)
        .unwrap();
    tx.send(Recipients::One(7), msg(b'b', 1000), Priority::Low)
        .unwrap();
    let (r, first) = poll_chunk(&mut scheduler, now);
    assert_eq!(
        r,
        PollFrame::Chunk {
            channel: 1,
            last: false
        }
    );
    let first = first.unwrap();
    assert_eq!((first.content[0], first.part), (b'a', 0));
    assert!(first.total_parts > 2);
    assert!(scheduler.in_message());
    // A high-priority message arrives mid-message.
    tx.send(Recipients::One(7), msg(b'H', 10), Priority::High)
        .unwrap();
    let rest = drain(&mut scheduler, now);
    // All remaining parts of `a` first, in order, then H, then b.
    let a_parts: Vec<u32> = rest
        .iter()
        .take_while(|c| c.1 == b'a')
        .map(|c| c.2)
        .collect();
    assert_eq!(a_parts, (1..first.total_parts).collect::<Vec<_>>());
    assert_eq!(messages(&rest), vec![b'H', b'b']);
    // No interleaving: parts of each message are contiguous.
    let mut current = Some(b'a');
    for c in &rest {
        if c.2 > 0 {
            assert_eq!(current, Some(c.1), "chunk of another message interleaved");
        }
        current = Some(c.1);
    }
}

#[test]
fn high_priority_goes_before_queued_low_priority() {
    let mut mux = Mux::<u8>::new(config());
    let (tx1, _r1) = mux.register(1, fast(), 1000, 16, None).unwrap();
    let (tx2, _r2) = mux.register(2, fast(), 1000, 16, None).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    for i in 0..3 {
        tx1.send(Recipients::One(1), msg(b'l' + i, 10), Priority::Low)
            .unwrap();
    }
    tx2.send(Recipients::One(1), msg(b'H', 10), Priority::High)
        .unwrap();
    tx1.send(Recipients::One(1), msg(b'I', 10), Priority::High)
        .unwrap();
    let out = drain(&mut h.scheduler, Instant::now());
    let order = messages(&out);
    // Both high first (in channel round-robin order), then the low ones in FIFO order.
    let mut high = order[..2].to_vec();
    high.sort();
    assert_eq!(high, b"HI".to_vec(), "both high first: {order:?}");
    assert_eq!(&order[2..], b"lmn".as_slice());
}

#[test]
fn busy_channel_cannot_starve_another_of_the_same_priority() {
    let mut mux = Mux::<u8>::new(config());
    let (busy, _r1) = mux.register(1, fast(), 1000, 1000, None).unwrap();
    let (quiet, _r2) = mux.register(2, fast(), 1000, 1000, None).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    for _ in 0..500 {
        busy.send(Recipients::One(1), msg(b'x', 10), Priority::Low)
            .unwrap();
    }
    for _ in 0..3 {
        quiet
            .send(Recipients::One(1), msg(b'q', 10), Priority::Low)
            .unwrap();
    }
    let now = Instant::now();
    let mut first = Vec::new();
    for _ in 0..6 {
        let (_, c) = poll_chunk(&mut h.scheduler, now);
        first.push(c.unwrap().channel);
    }
    // Round robin per message: the quiet channel's 3 messages go within the first 6.
    assert_eq!(first.iter().filter(|c| **c == 2).count(), 3, "{first:?}");
    assert_eq!(first, vec![1, 2, 1, 2, 1, 2]);
}

#[test]
fn outbound_limit_is_per_recipient_and_holds_only_that_channel() {
    let mut mux = Mux::<u8>::new(config());
    let (limited, _r1) = mux.register(1, per_second(2), 1000, 16, None).unwrap();
    let (free, _r2) = mux.register(2, fast(), 1000, 16, None).unwrap();
    let mut a = mux.peer_connected(1).unwrap();
    let mut b = mux.peer_connected(2).unwrap();
    for i in 0..4 {
        let r = limited
            .send(
                Recipients::List(vec![1, 2]),
                msg(b'0' + i, 10),
                Priority::High,
            )
            .unwrap();
        assert_eq!(r.queued, vec![1, 2]);
    }
    free.send(Recipients::One(1), msg(b'f', 10), Priority::Low)
        .unwrap();
    let t0 = Instant::now();
    // Peer 1: the burst of 2, then the free channel's low-priority message goes although
    // high-priority messages are queued (they are held by their quota), then idle.
    let out = drain(&mut a.scheduler, t0);
    assert_eq!(messages(&out), b"01f".to_vec());
    let mut sink = BytesMut::new();
    let idle = a.scheduler.poll_frame(t0, &mut sink);
    assert_eq!(
        idle,
        PollFrame::Idle {
            retry_at: Some(t0 + Duration::from_millis(500))
        }
    );
    assert!(sink.is_empty());
    // Peer 2 has its own quota: its burst is untouched by peer 1's sends.
    assert_eq!(messages(&drain(&mut b.scheduler, t0)), b"01".to_vec());
    // Just before the retry time nothing goes; at it, exactly one message.
    let early = t0 + Duration::from_millis(499);
    assert!(drain(&mut a.scheduler, early).is_empty());
    let at = t0 + Duration::from_millis(500);
    assert_eq!(messages(&drain(&mut a.scheduler, at)), b"2".to_vec());
    let later = t0 + Duration::from_millis(1000);
    assert_eq!(messages(&drain(&mut a.scheduler, later)), b"3".to_vec());
    let label = p2p_mux::RateLimitedLabel {
        channel: 1,
        direction: p2p_mux::Direction::Outbound,
    };
    assert!(mux.metrics().rate_limited.get_or_create(&label).get() >= 2);
}

#[test]
fn backlog_full_and_not_connected_are_reported_and_counted() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(3, fast(), 1000, 2, None).unwrap();
    let _a = mux.peer_connected(1).unwrap();
    let _b = mux.peer_connected(2).unwrap();
    for _ in 0..2 {
        let r = tx
            .send(Recipients::One(1), msg(1, 10), Priority::Low)
            .unwrap();
        assert_eq!(r.queued, vec![1]);
        assert!(r.is_complete());
    }
    let r = tx
        .send(
            Recipients::List(vec![2, 1, 9, 2]),
            msg(1, 10),
            Priority::High,
        )
        .unwrap();
    assert_eq!(r.queued, vec![2]);
    assert_eq!(r.backlog_full, vec![1]);
    assert_eq!(r.not_connected, vec![9]);
    assert!(!r.is_complete());
    let mut all = tx.send(Recipients::All, msg(1, 10), Priority::Low).unwrap();
    all.queued.sort();
    assert_eq!(all.queued, vec![2]);
    assert_eq!(all.backlog_full, vec![1]);
    let dropped = |reason| {
        mux.metrics()
            .dropped
            .get_or_create(&DroppedLabel { channel: 3, reason })
            .get()
    };
    assert_eq!(dropped(DropReason::BacklogFull), 2);
    assert_eq!(dropped(DropReason::NotConnected), 1);
}

#[test]
fn disconnect_frees_queues_and_later_sends_report_not_connected() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(1, fast(), 1000, 4, None).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    tx.send(Recipients::One(1), msg(1, 10), Priority::Low)
        .unwrap();
    mux.peer_disconnected(&1);
    assert!(!mux.is_connected(&1));
    let mut out = BytesMut::new();
    assert_eq!(
        h.scheduler.poll_frame(Instant::now(), &mut out),
        PollFrame::Closed
    );
    let r = tx
        .send(Recipients::One(1), msg(1, 10), Priority::Low)
        .unwrap();
    assert_eq!(r.not_connected, vec![1]);
    // The peer can connect again; dropping the old scheduler does not disconnect the new one.
    let fresh = mux.peer_connected(1).unwrap();
    drop(h);
    assert!(mux.is_connected(&1));
    drop(fresh);
    assert!(!mux.is_connected(&1), "dropping the scheduler disconnects");
}

#[test]
fn registry_errors() {
    let mut mux = Mux::<u8>::new(config());
    mux.register(1, fast(), 1000, 4, None).unwrap();
    assert!(matches!(
        mux.register(1, fast(), 1000, 4, None),
        Err(MuxError::DuplicateChannel(1))
    ));
    assert!(matches!(
        mux.register(2, fast(), 1000, 0, None),
        Err(MuxError::InvalidChannel { channel: 2, .. })
    ));
    let _h = mux.peer_connected(1).unwrap();
    assert!(matches!(
        mux.peer_connected(1),
        Err(MuxError::AlreadyConnected)
    ));
    assert!(matches!(
        mux.register(3, fast(), 1000, 4, None),
        Err(MuxError::RegistryClosed)
    ));
}

#[test]
fn oversized_messages_are_refused_before_queueing() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(1, fast(), 100, 4, None).unwrap();
    let (ztx, _zrx) = mux.register(2, fast(), 100, 4, Some(3)).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    assert!(matches!(
        tx.send(Recipients::One(1), msg(1, 101), Priority::Low),
        Err(MuxError::MessageTooLarge {
            len: 101,
            max: 100,
            compressed: false
        })
    ));
    // Incompressible data that zstd expands beyond the maximum.
    let noise: Vec<u8> = (0..100u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(matches!(
        ztx.send(Recipients::One(1), Bytes::from(noise), Priority::Low),
        Err(MuxError::MessageTooLarge {
            compressed: true,
            ..
        })
    ));
    assert!(drain(&mut h.scheduler, Instant::now()).is_empty());
}

#[test]
fn control_frames_go_between_chunks_without_breaking_them() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(1, fast(), 10_000, 4, None).unwrap();
    let control = mux.control_sender();
    let mut h = mux.peer_connected(1).unwrap();
    let now = Instant::now();
    tx.send(Recipients::One(1), msg(b'a', 1000), Priority::Low)
        .unwrap();
    let (_, c) = poll_chunk(&mut h.scheduler, now);
    assert_eq!(c.unwrap().part, 0);
    let ping = Message {
        payload: Some(Payload::BitVec(p2p_proto::BitVec {
            index: 5,
            bits: Bytes::from_static(&[1]),
        })),
    }
    .encode_to_vec();
    control.send(&1, Bytes::from(ping.clone())).unwrap();
    let mut out = BytesMut::new();
    assert_eq!(h.scheduler.poll_frame(now, &mut out), PollFrame::Control);
    assert_eq!(&out[..], &ping[..]);
    let (_, c) = poll_chunk(&mut h.scheduler, now);
    assert_eq!(c.unwrap().part, 1, "the message resumes where it stopped");
    for _ in 0..4 {
        control.send(&1, Bytes::from_static(b"x")).unwrap();
    }
    assert_eq!(
        control.send(&1, Bytes::from_static(b"x")),
        Err(ControlRefused::Full)
    );
    assert_eq!(
        control.send(&9, Bytes::from_static(b"x")),
        Err(ControlRefused::NotConnected)
    );
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_send_wakes_the_idle_writer() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(1, fast(), 1000, 4, None).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    assert_eq!(h.scheduler.poll_ready(&mut cx), Poll::Pending);
    tx.send(Recipients::One(1), msg(1, 10), Priority::Low)
        .unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(h.scheduler.poll_ready(&mut cx), Poll::Ready(()));
    assert_eq!(drain(&mut h.scheduler, Instant::now()).len(), 1);
    // After reporting idle, the writer sleeps again.
    assert_eq!(h.scheduler.poll_ready(&mut cx), Poll::Pending);
    mux.peer_disconnected(&1);
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        2,
        "disconnect wakes the writer"
    );
}

/// Polls a wait-for-room future once with `cx`.
fn poll_room(wait: &mut p2p_mux::WaitForRoom, cx: &mut Context<'_>) -> Poll<Result<(), MuxError>> {
    std::pin::Pin::new(wait).poll(cx)
}

#[test]
fn waiting_for_room_on_a_slow_peer_does_not_hold_sends_to_another() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(3, fast(), 1000, 1, None).unwrap();
    let mut slow = mux.peer_connected(1).unwrap();
    let _other = mux.peer_connected(2).unwrap();
    let r = tx
        .send(Recipients::One(1), msg(1, 10), Priority::Low)
        .unwrap();
    assert_eq!(r.queued, vec![1]);
    let r = tx
        .send(Recipients::One(1), msg(1, 10), Priority::Low)
        .unwrap();
    assert_eq!(r.backlog_full, vec![1]);
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    let mut wait = tx.wait_for_room(&1);
    assert!(poll_room(&mut wait, &mut cx).is_pending());
    // Polling again re-registers, it does not add a second waiter.
    assert!(poll_room(&mut wait, &mut cx).is_pending());
    // While the wait on peer 1 is pending, peer 2 is sent to and has room.
    let r = tx
        .send(Recipients::One(2), msg(2, 10), Priority::Low)
        .unwrap();
    assert_eq!(r.queued, vec![2]);
    let mut other_wait = tx.wait_for_room(&2);
    assert!(
        poll_room(&mut other_wait, &mut cx).is_pending(),
        "peer 2 is full now too"
    );
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    // Peer 1's writer takes its message: exactly its waiter is woken, and it resolves.
    assert_eq!(drain(&mut slow.scheduler, Instant::now()).len(), 1);
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll_room(&mut wait, &mut cx), Poll::Ready(Ok(()))));
    let r = tx
        .send(Recipients::One(1), msg(1, 10), Priority::Low)
        .unwrap();
    assert_eq!(r.queued, vec![1]);
    // Peer 2's wait is still pending (its writer took nothing).
    assert!(poll_room(&mut other_wait, &mut cx).is_pending());
}

#[test]
fn a_cancelled_wait_for_room_leaves_nothing_and_a_disconnect_ends_waits() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(3, fast(), 1000, 1, None).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    tx.send(Recipients::One(1), msg(1, 10), Priority::Low)
        .unwrap();
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    // Cancelled: dropped while pending. Its writer taking a message wakes nobody.
    let mut cancelled = tx.wait_for_room(&1);
    assert!(poll_room(&mut cancelled, &mut cx).is_pending());
    drop(cancelled);
    assert_eq!(drain(&mut h.scheduler, Instant::now()).len(), 1);
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "a dropped wait is unregistered"
    );
    // Full again; a pending wait ends with NotConnected when the peer disconnects.
    tx.send(Recipients::One(1), msg(1, 10), Priority::Low)
        .unwrap();
    let mut wait = tx.wait_for_room(&1);
    assert!(poll_room(&mut wait, &mut cx).is_pending());
    mux.peer_disconnected(&1);
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        poll_room(&mut wait, &mut cx),
        Poll::Ready(Err(MuxError::NotConnected))
    ));
    // A peer that is not connected at all: NotConnected at once.
    let mut unknown = tx.wait_for_room(&9);
    assert!(matches!(
        poll_room(&mut unknown, &mut cx),
        Poll::Ready(Err(MuxError::NotConnected))
    ));
}

/// Encodes one single-part chunk on `channel`.
fn single(channel: u32, content: Bytes) -> Chunk {
    Chunk {
        channel,
        part: 0,
        total_parts: 1,
        content,
    }
}

#[test]
fn unknown_channel_from_a_peer_is_a_typed_fatal_error() {
    let mut mux = Mux::<u8>::new(config());
    let _ch = mux.register(1, fast(), 1000, 4, None).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    let err = h
        .inbound
        .handle_chunk(single(99, msg(1, 3)), Instant::now())
        .unwrap_err();
    assert!(matches!(err, MuxError::UnknownChannel { channel: 99 }));
    assert!(err.is_fatal());
}

#[test]
fn oversized_or_malformed_inbound_is_a_typed_fatal_error() {
    let mut mux = Mux::<u8>::new(config());
    let _c1 = mux.register(1, fast(), 100, 4, None).unwrap();
    let _c2 = mux.register(2, fast(), 100, 4, Some(1)).unwrap();
    let now = Instant::now();
    let mut h = mux.peer_connected(1).unwrap();
    let err = h
        .inbound
        .handle_chunk(single(1, msg(1, 101)), now)
        .unwrap_err();
    assert!(matches!(err, MuxError::Reassembly(_)), "{err:?}");
    // A zstd bomb: 10 KB of zeros compressed, on a channel capped at 100 bytes.
    let bomb = zstd::bulk::compress(&[0u8; 10_000], 3).unwrap();
    let mut h2 = mux.peer_connected(2).unwrap();
    let err = h2
        .inbound
        .handle_chunk(single(2, Bytes::from(bomb)), now)
        .unwrap_err();
    assert!(
        matches!(err, MuxError::Decompress { channel: 2, .. }),
        "{err:?}"
    );
    assert!(err.is_fatal());
}

#[test]
fn inbound_limit_slows_exactly_the_offending_peer() {
    let mut mux = Mux::<u8>::new(config());
    // 10 messages per second, burst 10: one cell every 100 ms.
    let (_tx, mut rx) = mux.register(1, per_second(10), 1000, 1000, None).unwrap();
    let mut fast_peer = mux.peer_connected(1).unwrap();
    let mut honest = mux.peer_connected(2).unwrap();
    let t0 = Instant::now();
    // Both peers spend their burst at t0.
    for _ in 0..10 {
        let r = fast_peer
            .inbound
            .handle_chunk(single(1, msg(1, 5)), t0)
            .unwrap();
        assert_eq!(r, Inbound::Delivered);
        let r = honest
            .inbound
            .handle_chunk(single(1, msg(2, 5)), t0)
            .unwrap();
        assert_eq!(r, Inbound::Delivered);
    }
    // The offending peer sends one more: delivered, but its reader must pause 100 ms.
    let r = fast_peer
        .inbound
        .handle_chunk(single(1, msg(1, 5)), t0)
        .unwrap();
    assert_eq!(
        r,
        Inbound::Throttled {
            until: t0 + Duration::from_millis(100)
        }
    );
    // The honest peer keeps full speed (its quota rate) over simulated time, unaffected.
    for i in 1..=20u64 {
        let t = t0 + Duration::from_millis(100 * i);
        let r = honest
            .inbound
            .handle_chunk(single(1, msg(2, 5)), t)
            .unwrap();
        assert_eq!(r, Inbound::Delivered, "honest peer at step {i}");
    }
    // Nothing was dropped: 11 + 30 messages reached the receiver.
    let mut count = [0usize; 3];
    while let Some((peer, _)) = rx.try_recv() {
        count[peer as usize] += 1;
    }
    assert_eq!(count, [0, 11, 30]);
    let label = p2p_mux::RateLimitedLabel {
        channel: 1,
        direction: p2p_mux::Direction::Inbound,
    };
    assert_eq!(mux.metrics().rate_limited.get_or_create(&label).get(), 1);
    // Once the pause is over the offending peer is served again.
    let r = fast_peer
        .inbound
        .handle_chunk(single(1, msg(1, 5)), t0 + Duration::from_millis(100))
        .unwrap();
    assert_eq!(r, Inbound::Delivered);
}

#[test]
fn grossly_exceeding_the_inbound_limit_is_fatal() {
    let mut mux = Mux::<u8>::new(config());
    let (_tx, _rx) = mux.register(1, per_second(10), 1000, 1000, None).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    let t0 = Instant::now();
    // Factor 2: the gross limiter has a burst of 20; frames read at the same instant.
    let mut throttled = 0;
    for _ in 0..20 {
        match h.inbound.handle_chunk(single(1, msg(1, 5)), t0).unwrap() {
            Inbound::Delivered => {}
            Inbound::Throttled { .. } => throttled += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(throttled, 10);
    let err = h
        .inbound
        .handle_chunk(single(1, msg(1, 5)), t0)
        .unwrap_err();
    assert!(matches!(err, MuxError::RateLimitExceeded { channel: 1 }));
    assert!(err.is_fatal());
}

#[test]
fn full_receiver_backpressures_the_reader_without_dropping() {
    let mut mux = Mux::<u8>::new(config());
    let (_t1, mut rx1) = mux.register(1, fast(), 1000, 1, None).unwrap();
    let (_t2, mut rx2) = mux.register(2, fast(), 1000, 4, None).unwrap();
    let mut a = mux.peer_connected(1).unwrap();
    let mut b = mux.peer_connected(2).unwrap();
    let now = Instant::now();
    assert_eq!(
        a.inbound.handle_chunk(single(1, msg(1, 5)), now).unwrap(),
        Inbound::Delivered
    );
    assert_eq!(
        a.inbound.handle_chunk(single(1, msg(2, 5)), now).unwrap(),
        Inbound::Backpressured
    );
    assert!(a.inbound.is_backpressured());
    assert!(matches!(
        a.inbound.handle_chunk(single(1, msg(3, 5)), now),
        Err(MuxError::DeliveryPending)
    ));
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    assert_eq!(a.inbound.poll_deliver(&mut cx), Poll::Pending);
    // Another peer on another channel is unaffected.
    assert_eq!(
        b.inbound.handle_chunk(single(2, msg(9, 5)), now).unwrap(),
        Inbound::Delivered
    );
    assert_eq!(rx2.try_recv().unwrap().0, 2);
    // The application drains: the blocked reader is woken and delivers, in order.
    assert_eq!(rx1.try_recv().unwrap().1, msg(1, 5));
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(a.inbound.poll_deliver(&mut cx), Poll::Ready(None));
    assert_eq!(rx1.try_recv().unwrap().1, msg(2, 5));
}

#[test]
fn dropped_receiver_discards_and_counts() {
    let mut mux = Mux::<u8>::new(config());
    let (_tx, rx) = mux.register(1, fast(), 1000, 1, None).unwrap();
    let mut a = mux.peer_connected(1).unwrap();
    drop(rx);
    for _ in 0..3 {
        assert_eq!(
            a.inbound
                .handle_chunk(single(1, msg(1, 5)), Instant::now())
                .unwrap(),
            Inbound::Delivered
        );
    }
    let label = DroppedLabel {
        channel: 1,
        reason: DropReason::ReceiverClosed,
    };
    assert_eq!(mux.metrics().dropped.get_or_create(&label).get(), 3);
}

fn dropped_count(mux: &Mux<u8>, channel: u32, reason: DropReason) -> u64 {
    mux.metrics()
        .dropped
        .get_or_create(&DroppedLabel { channel, reason })
        .get()
}

#[test]
fn messages_queued_at_disconnect_are_counted_once() {
    let mut mux = Mux::<u8>::new(config());
    let (tx1, _rx1) = mux.register(1, fast(), 1000, 8, None).unwrap();
    let (tx2, _rx2) = mux.register(2, fast(), 1000, 8, None).unwrap();
    let mut a = mux.peer_connected(1).unwrap();
    let _b = mux.peer_connected(2).unwrap();
    for (tx, priority) in [
        (&tx1, Priority::Low),
        (&tx1, Priority::High),
        (&tx2, Priority::Low),
    ] {
        let r = tx
            .send(Recipients::List(vec![1, 2]), msg(1, 10), priority)
            .unwrap();
        assert_eq!(r.queued, vec![1, 2]);
    }
    // One message to peer 1 leaves the queue (handed to the connection): not counted.
    let (first, _) = poll_chunk(&mut a.scheduler, Instant::now());
    assert!(matches!(
        first,
        PollFrame::Chunk {
            channel: 1,
            last: true
        }
    ));
    mux.peer_disconnected(&1);
    assert_eq!(dropped_count(&mux, 1, DropReason::QueuedAtDisconnect), 1);
    assert_eq!(dropped_count(&mux, 2, DropReason::QueuedAtDisconnect), 1);
    // The scheduler's own close (its drop) finds the queues empty and counts nothing more.
    drop(a);
    assert_eq!(dropped_count(&mux, 1, DropReason::QueuedAtDisconnect), 1);
    // Peer 2's connection ends by dropping its scheduler: its three messages are counted.
    drop(_b);
    assert_eq!(dropped_count(&mux, 1, DropReason::QueuedAtDisconnect), 3);
    assert_eq!(dropped_count(&mux, 2, DropReason::QueuedAtDisconnect), 2);
    // Every message queued is either handed to a connection or counted.
    let sent = mux
        .metrics()
        .messages_sent
        .get_or_create(&ChannelLabel { channel: 1 })
        .get();
    assert_eq!(
        sent + dropped_count(&mux, 1, DropReason::QueuedAtDisconnect),
        4
    );
}

#[test]
fn a_held_message_is_counted_when_the_connection_closes() {
    let mut mux = Mux::<u8>::new(config());
    let (_tx, mut rx) = mux.register(1, fast(), 1000, 1, None).unwrap();
    let mut a = mux.peer_connected(1).unwrap();
    let now = Instant::now();
    assert_eq!(
        a.inbound.handle_chunk(single(1, msg(1, 5)), now).unwrap(),
        Inbound::Delivered
    );
    assert_eq!(
        a.inbound.handle_chunk(single(1, msg(2, 5)), now).unwrap(),
        Inbound::Backpressured
    );
    drop(a);
    assert_eq!(dropped_count(&mux, 1, DropReason::HeldAtDisconnect), 1);
    assert_eq!(rx.try_recv().unwrap().1, msg(1, 5));
    assert!(rx.try_recv().is_none());
}

#[test]
fn dropping_a_receiver_counts_the_messages_it_still_held() {
    let mut mux = Mux::<u8>::new(config());
    let (_tx, rx) = mux.register(1, fast(), 1000, 4, None).unwrap();
    let mut a = mux.peer_connected(1).unwrap();
    for tag in 0..2 {
        assert_eq!(
            a.inbound
                .handle_chunk(single(1, msg(tag, 5)), Instant::now())
                .unwrap(),
            Inbound::Delivered
        );
    }
    drop(rx);
    assert_eq!(dropped_count(&mux, 1, DropReason::ReceiverClosed), 2);
}

/// Carries every frame of `from`'s scheduler into `to`'s inbound handle.
fn pump(from: &mut p2p_mux::Scheduler<u8>, to: &mut p2p_mux::InboundPeer<u8>, now: Instant) {
    let mut out = BytesMut::new();
    loop {
        out.clear();
        match from.poll_frame(now, &mut out) {
            PollFrame::Chunk { .. } => {
                let Payload::Chunk(c) = decode(&out) else {
                    panic!("not a chunk")
                };
                let r = to.handle_chunk(c, now).unwrap();
                assert!(
                    matches!(r, Inbound::Incomplete | Inbound::Delivered),
                    "{r:?}"
                );
            }
            PollFrame::Idle { .. } => return,
            other => panic!("{other:?}"),
        }
    }
}

fn pair(compression: Option<i32>) -> (Sender<u8>, p2p_mux::Receiver<u8>, Mux<u8>, Mux<u8>) {
    let mut alice = Mux::<u8>::new(config());
    let mut bob = Mux::<u8>::new(config());
    let (tx, _) = alice.register(5, fast(), 100_000, 8, compression).unwrap();
    let (_, rx) = bob.register(5, fast(), 100_000, 8, compression).unwrap();
    (tx, rx, alice, bob)
}

#[test]
fn messages_round_trip_between_two_muxes() {
    for compression in [None, Some(3)] {
        let (tx, mut rx, alice, bob) = pair(compression);
        let mut to_bob = alice.peer_connected(b'B').unwrap();
        let mut from_alice = bob.peer_connected(b'A').unwrap();
        let big: Bytes = (0..50_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        for m in [msg(7, 0), msg(8, 1), big.clone(), msg(9, 300)] {
            tx.send(Recipients::One(b'B'), m, Priority::Low).unwrap();
        }
        pump(
            &mut to_bob.scheduler,
            &mut from_alice.inbound,
            Instant::now(),
        );
        let got: Vec<Bytes> = std::iter::from_fn(|| {
            rx.try_recv().map(|(p, m)| {
                assert_eq!(p, b'A');
                m
            })
        })
        .collect();
        assert_eq!(got, vec![msg(7, 0), msg(8, 1), big, msg(9, 300)]);
        let sent = alice
            .metrics()
            .messages_sent
            .get_or_create(&ChannelLabel { channel: 5 })
            .get();
        assert_eq!(sent, 4);
    }
}

#[test]
fn receiver_works_from_async_code_and_ends_with_the_mux() {
    let mut mux = Mux::<u8>::new(config());
    let (_tx, mut rx) = mux.register(1, fast(), 1000, 4, None).unwrap();
    let mut h = mux.peer_connected(3).unwrap();
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    let _ = h
        .inbound
        .handle_chunk(single(1, msg(4, 2)), Instant::now())
        .unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    {
        let mut fut = std::pin::pin!(rx.recv());
        assert_eq!(
            fut.as_mut().poll(&mut cx),
            Poll::Ready(Some((3, msg(4, 2))))
        );
    }
    drop(h);
    drop(mux);
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
}

#[test]
fn handles_can_move_to_other_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Sender<u8>>();
    send_sync::<p2p_mux::ControlSender<u8>>();
    send_sync::<Mux<u8>>();
    send::<p2p_mux::Receiver<u8>>();
    send::<p2p_mux::Scheduler<u8>>();
    send::<p2p_mux::InboundPeer<u8>>();
    send_sync::<std::sync::Mutex<p2p_mux::Scheduler<u8>>>();
    // A sender used from another thread reaches the scheduler.
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(1, fast(), 1000, 4, None).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    std::thread::spawn(move || tx.send(Recipients::All, msg(3, 3), Priority::Low).unwrap())
        .join()
        .unwrap();
    assert_eq!(messages(&drain(&mut h.scheduler, Instant::now())), vec![3]);
}

#[test]
fn reconnecting_does_not_refill_the_inbound_quota() {
    let mut mux = Mux::<u8>::new(config());
    let (_tx, mut rx) = mux.register(1, per_second(10), 1000, 1000, None).unwrap();
    let t0 = Instant::now();
    let mut h = mux.peer_connected(1).unwrap();
    for _ in 0..10 {
        assert_eq!(
            h.inbound.handle_chunk(single(1, msg(1, 5)), t0).unwrap(),
            Inbound::Delivered
        );
    }
    drop(h);
    mux.peer_disconnected(&1);
    // The same key, a new connection, the same instant: still over quota.
    let mut again = mux.peer_connected(1).unwrap();
    assert_eq!(
        again
            .inbound
            .handle_chunk(single(1, msg(1, 5)), t0)
            .unwrap(),
        Inbound::Throttled {
            until: t0 + Duration::from_millis(100)
        }
    );
    // Another key is unaffected, and once refilled the key starts fresh.
    let mut other = mux.peer_connected(2).unwrap();
    assert_eq!(
        other
            .inbound
            .handle_chunk(single(1, msg(2, 5)), t0)
            .unwrap(),
        Inbound::Delivered
    );
    drop(again);
    mux.peer_disconnected(&1);
    let later = t0 + Duration::from_secs(2);
    let mut fresh = mux.peer_connected(1).unwrap();
    for _ in 0..10 {
        assert_eq!(
            fresh
                .inbound
                .handle_chunk(single(1, msg(1, 5)), later)
                .unwrap(),
            Inbound::Delivered
        );
    }
    while rx.try_recv().is_some() {}
}

#[test]
fn a_small_message_does_not_keep_its_frame_buffer_alive() {
    let mut mux = Mux::<u8>::new(MuxConfig {
        max_frame_plaintext: 64 * 1024,
        ..config()
    });
    let (_tx, mut rx) = mux.register(1, fast(), 1 << 20, 16, None).unwrap();
    let mut h = mux.peer_connected(1).unwrap();
    // The frame's buffer: 64 KiB, of which the message is 1 byte.
    let buffer = Bytes::from(vec![9u8; 64 * 1024]);
    let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
    let tiny = buffer.slice(100..101);
    let _ = h
        .inbound
        .handle_chunk(single(1, tiny), Instant::now())
        .unwrap();
    let (_, got) = rx.try_recv().unwrap();
    assert_eq!(&got[..], &[9]);
    assert!(
        !range.contains(&(got.as_ptr() as usize)),
        "the delivered message still points into its 64 KiB frame buffer"
    );
    // A large message stays a slice (no copy on the hot path for bulk data).
    let big = buffer.slice(0..40 * 1024);
    let _ = h
        .inbound
        .handle_chunk(single(1, big), Instant::now())
        .unwrap();
    let (_, got) = rx.try_recv().unwrap();
    assert!(range.contains(&(got.as_ptr() as usize)));
}

/// Splits a batch frame into its chunks (each envelope is `0A len chunk`).
fn split_batch(mut frame: &[u8]) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    while !frame.is_empty() {
        assert_eq!(frame[0], 0x0a, "a batch holds only chunks");
        let mut len = 0usize;
        let mut i = 1;
        loop {
            let b = frame[i];
            len |= usize::from(b & 0x7f) << (7 * (i - 1));
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let (one, rest) = frame.split_at(i + len);
        match decode(one) {
            Payload::Chunk(c) => chunks.push(c),
            other => panic!("batch envelope decoded as {other:?}"),
        }
        frame = rest;
    }
    chunks
}

#[test]
fn packing_puts_queued_whole_messages_in_one_frame_within_the_limit() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(1, fast(), 10_000, 64, None).unwrap();
    let (tx2, _rx2) = mux.register(2, fast(), 10_000, 64, None).unwrap();
    let control = mux.control_sender();
    let PeerHandles { mut scheduler, .. } = mux.peer_connected(7).unwrap();
    let now = Instant::now();
    // Off by default: one chunk per frame.
    for tag in [b'a', b'b'] {
        tx.send(Recipients::One(7), msg(tag, 10), Priority::High)
            .unwrap();
    }
    assert_eq!(
        messages(&drain(&mut scheduler, now)),
        [b'a', b'b'],
        "one message per frame"
    );
    // With a 100-byte limit: 10-byte messages take 18-byte envelopes, so five fit.
    scheduler.set_coalesce_limit(100);
    for tag in b'c'..=b'j' {
        tx.send(Recipients::One(7), msg(tag, 10), Priority::High)
            .unwrap();
    }
    let mut out = BytesMut::new();
    assert_eq!(
        scheduler.poll_frame(now, &mut out),
        PollFrame::Batch { chunks: 5 }
    );
    assert_eq!(out.len(), 90);
    let tags: Vec<u8> = split_batch(&out).iter().map(|c| c.content[0]).collect();
    assert_eq!(tags, b"cdefg");
    // The rest: three more in the next frame, then idle.
    out.clear();
    assert_eq!(
        scheduler.poll_frame(now, &mut out),
        PollFrame::Batch { chunks: 3 }
    );
    out.clear();
    assert!(matches!(
        scheduler.poll_frame(now, &mut out),
        PollFrame::Idle { .. }
    ));
    // A message too large to fit ends the batch and goes whole in the next frames; a control
    // frame is never packed; channels keep their round robin.
    tx.send(Recipients::One(7), msg(b'k', 10), Priority::High)
        .unwrap();
    tx2.send(Recipients::One(7), msg(b'L', 600), Priority::High)
        .unwrap();
    tx.send(Recipients::One(7), msg(b'm', 10), Priority::High)
        .unwrap();
    let mut chunks = Vec::new();
    let mut controls = 0;
    loop {
        out.clear();
        match scheduler.poll_frame(now, &mut out) {
            PollFrame::Chunk { .. } => {
                let Payload::Chunk(c) = decode(&out) else {
                    panic!("not a chunk")
                };
                // A full part of the large message fills its frame alone.
                if c.part + 1 < c.total_parts {
                    assert_eq!(out.len(), FRAME as usize);
                }
                chunks.push(c);
            }
            PollFrame::Batch { .. } => chunks.extend(split_batch(&out)),
            PollFrame::Control => {
                assert_eq!(&out[..], b"ctl");
                controls += 1;
            }
            PollFrame::Idle { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
        if chunks.len() == 1 && controls == 0 {
            control.send(&7, Bytes::from_static(b"ctl")).unwrap();
        }
    }
    assert_eq!(controls, 1);
    let order: Vec<(u8, u32)> = chunks.iter().map(|c| (c.content[0], c.part)).collect();
    let large: Vec<u32> = order
        .iter()
        .filter(|(t, _)| *t == b'L')
        .map(|(_, p)| *p)
        .collect();
    assert_eq!(large, [0, 1, 2], "the large message whole, in order");
    let small: Vec<u8> = order
        .iter()
        .filter(|(t, _)| *t != b'L')
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(small, b"km", "FIFO within the channel");
    let first_l = order.iter().position(|(t, _)| *t == b'L').unwrap();
    assert!(
        order[first_l..first_l + 3].iter().all(|(t, _)| *t == b'L'),
        "nothing between the parts of a message: {order:?}"
    );
}

#[test]
fn packing_stops_at_a_control_frame() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(1, fast(), 10_000, 64, None).unwrap();
    let control = mux.control_sender();
    let PeerHandles { mut scheduler, .. } = mux.peer_connected(7).unwrap();
    scheduler.set_coalesce_limit(usize::MAX);
    let now = Instant::now();
    tx.send(Recipients::One(7), msg(b'a', 10), Priority::High)
        .unwrap();
    let mut out = BytesMut::new();
    // Only one message queued: a plain chunk.
    assert!(matches!(
        scheduler.poll_frame(now, &mut out),
        PollFrame::Chunk { last: true, .. }
    ));
    for tag in [b'b', b'c'] {
        tx.send(Recipients::One(7), msg(tag, 10), Priority::High)
            .unwrap();
    }
    control.send(&7, Bytes::from_static(b"ctl")).unwrap();
    // The control frame goes first, alone; then the two messages together.
    out.clear();
    assert_eq!(scheduler.poll_frame(now, &mut out), PollFrame::Control);
    assert_eq!(&out[..], b"ctl");
    out.clear();
    assert_eq!(
        scheduler.poll_frame(now, &mut out),
        PollFrame::Batch { chunks: 2 }
    );
    // The limit is clamped to the frame's plaintext.
    for tag in 0..40u8 {
        tx.send(Recipients::One(7), msg(tag, 10), Priority::High)
            .unwrap();
    }
    out.clear();
    assert!(matches!(
        scheduler.poll_frame(now, &mut out),
        PollFrame::Batch { .. }
    ));
    assert!(out.len() <= FRAME as usize);
}

/// A message that does not fit the rest of a batch stays queued: it still counts in the
/// backlog, takes no quota cell, and leads the next frame. (Found by the `mux_scheduler` fuzz
/// target: packing used to pick it out of the queue and hold it, so the backlog admitted one
/// message more than it should.)
#[test]
fn a_message_that_does_not_fit_a_batch_stays_queued_and_counted() {
    let mut mux = Mux::<u8>::new(config());
    let (tx, _rx) = mux.register(1, fast(), 10_000, 2, None).unwrap();
    let PeerHandles { mut scheduler, .. } = mux.peer_connected(7).unwrap();
    scheduler.set_coalesce_limit(100);
    let now = Instant::now();
    for m in [msg(b'a', 10), msg(b'L', 600)] {
        let r = tx.send(Recipients::One(7), m, Priority::High).unwrap();
        assert_eq!(r.queued, vec![7]);
    }
    let mut out = BytesMut::new();
    assert_eq!(
        scheduler.poll_frame(now, &mut out),
        PollFrame::Chunk {
            channel: 1,
            last: true
        }
    );
    // `L` is still queued: one more message fits the backlog of 2, the next does not.
    let r = tx
        .send(Recipients::One(7), msg(b'b', 10), Priority::High)
        .unwrap();
    assert_eq!(r.queued, vec![7]);
    let r = tx
        .send(Recipients::One(7), msg(b'c', 10), Priority::High)
        .unwrap();
    assert_eq!(r.backlog_full, vec![7], "the backlog holds L and b");
    // And `L` leads the next frame.
    let (_, first) = poll_chunk(&mut scheduler, now);
    let first = first.expect("a chunk");
    assert_eq!((first.content[0], first.part), (b'L', 0));
}
