//! Validators-only channels and observer peers.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use governor::Quota;
use p2p_mux::{
    DropReason, DroppedLabel, Inbound, Mux, MuxConfig, PollFrame, Priority, Recipients, Role,
};
use p2p_proto::Chunk;

fn config() -> MuxConfig {
    MuxConfig {
        max_frame_plaintext: 256,
        control_backlog: NonZeroUsize::new(4).unwrap(),
        gross_violation_factor: NonZeroU32::new(2).unwrap(),
    }
}

fn per_second(n: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(n).unwrap())
}

fn single(channel: u32, content: &'static [u8]) -> Chunk {
    Chunk {
        channel,
        part: 0,
        total_parts: 1,
        content: Bytes::from_static(content),
    }
}

fn dropped(mux: &Mux<u8>, channel: u32) -> u64 {
    mux.metrics()
        .dropped
        .get_or_create(&DroppedLabel {
            channel,
            reason: DropReason::ValidatorsOnly,
        })
        .get()
}

#[test]
fn observers_are_no_recipients_on_a_validators_only_channel() {
    let mut mux = Mux::<u8>::new(config());
    let (open, _rx1) = mux.register(1, per_second(1000), 100, 8, None).unwrap();
    let (closed, _rx2) = mux
        .register_validators_only(2, per_second(1000), 100, 8, None)
        .unwrap();
    let mut validator = mux.peer_connected_as(1, vec![], Role::Validator).unwrap();
    let mut observer = mux.peer_connected_as(2, vec![], Role::Observer).unwrap();
    // An open channel reaches both with `All`.
    let r = open
        .send(Recipients::All, Bytes::from_static(b"x"), Priority::High)
        .unwrap();
    let mut queued = r.queued;
    queued.sort();
    assert_eq!(queued, vec![1, 2]);
    // A validators-only channel: `All` skips the observer, naming it reports it.
    let r = closed
        .send(Recipients::All, Bytes::from_static(b"y"), Priority::High)
        .unwrap();
    assert_eq!(r.queued, vec![1]);
    assert!(r.is_complete());
    let r = closed
        .send(
            Recipients::List(vec![1, 2]),
            Bytes::from_static(b"z"),
            Priority::High,
        )
        .unwrap();
    assert_eq!((&r.queued[..], &r.restricted[..]), (&[1][..], &[2][..]));
    assert!(!r.is_complete());
    assert_eq!(dropped(&mux, 2), 1);
    // The observer's scheduler emits only the open channel's message.
    let now = Instant::now();
    let mut out = BytesMut::new();
    assert!(matches!(
        observer.scheduler.poll_frame(now, &mut out),
        PollFrame::Chunk { .. }
    ));
    out.clear();
    assert!(matches!(
        observer.scheduler.poll_frame(now, &mut out),
        PollFrame::Idle { .. }
    ));
    let mut frames = 0;
    while !matches!(
        validator.scheduler.poll_frame(now, &mut out),
        PollFrame::Idle { .. }
    ) {
        frames += 1;
    }
    assert_eq!(frames, 3);
}

#[test]
fn an_observers_message_on_a_validators_only_channel_is_refused_and_counted() {
    let mut mux = Mux::<u8>::new(config());
    let (_open, mut rx1) = mux.register(1, per_second(1000), 100, 8, None).unwrap();
    // 2 messages per second: one cell every 500 ms, gross limit twice that.
    let (_closed, mut rx2) = mux
        .register_validators_only(2, per_second(2), 100, 8, Some(3))
        .unwrap();
    let mut validator = mux.peer_connected_as(1, vec![], Role::Validator).unwrap();
    let mut observer = mux.peer_connected_as(2, vec![], Role::Observer).unwrap();
    let now = Instant::now();
    // Not even decompressed: garbage content is refused, not a decompression error.
    let r = observer
        .inbound
        .handle_chunk(single(2, b"junk"), now)
        .unwrap();
    assert_eq!(
        r,
        Inbound::Refused {
            channel: 2,
            until: None
        }
    );
    assert!(rx2.try_recv().is_none());
    assert_eq!(dropped(&mux, 2), 1);
    // The open channel still works for the observer.
    assert_eq!(
        observer
            .inbound
            .handle_chunk(single(1, b"ok"), now)
            .unwrap(),
        Inbound::Delivered
    );
    assert_eq!(rx1.try_recv().unwrap(), (2, Bytes::from_static(b"ok")));
    // Refused messages spend the quota: over it the reader pauses, grossly over it closes.
    let r = observer
        .inbound
        .handle_chunk(single(2, b"junk"), now)
        .unwrap();
    assert!(matches!(r, Inbound::Refused { until: None, .. }), "{r:?}");
    let r = observer
        .inbound
        .handle_chunk(single(2, b"junk"), now)
        .unwrap();
    assert!(
        matches!(r, Inbound::Refused { until: Some(_), .. }),
        "{r:?}"
    );
    let mut fatal = None;
    for _ in 0..4 {
        if let Err(e) = observer.inbound.handle_chunk(single(2, b"junk"), now) {
            fatal = Some(e);
            break;
        }
    }
    assert!(fatal.expect("gross violation").is_fatal());
    // A validator delivers on the channel (compressed, as the channel says).
    let packed = p2p_framing::compress::compress(b"v", 3).unwrap();
    let chunk = Chunk {
        channel: 2,
        part: 0,
        total_parts: 1,
        content: packed,
    };
    assert_eq!(
        validator.inbound.handle_chunk(chunk, now).unwrap(),
        Inbound::Delivered
    );
    assert_eq!(rx2.try_recv().unwrap(), (1, Bytes::from_static(b"v")));
}
