//! Harnesses for the cargo-fuzz targets in `fuzz/` (enabled by the `fuzzing` feature).

use std::{
    collections::VecDeque,
    num::{NonZeroU32, NonZeroUsize},
    time::{Duration, Instant},
};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use governor::Quota;
use p2p_proto::{Message, ProstMessage, message::Payload};

use crate::{ControlRefused, Mux, MuxConfig, PeerHandles, PollFrame, Priority, Recipients, Sender};

const PEERS: u8 = 3;
const CHANNELS: usize = 3;
const BACKLOG: usize = 6;
const MAX_MESSAGE: usize = 3000;
const FRAME: u32 = 200;
/// Peer 2's scheduler packs whole messages into batch frames up to this many bytes.
const COALESCE: usize = 150;
/// The peer whose scheduler packs.
const PACKING_PEER: u8 = 2;

/// A peer's handles, with packing turned on for [`PACKING_PEER`].
fn connect(mux: &Mux<u8>, p: u8) -> PeerHandles<u8> {
    let mut h = mux.peer_connected(p).expect("not connected yet");
    if p == PACKING_PEER {
        h.scheduler.set_coalesce_limit(COALESCE);
    }
    h
}

/// One step of the scheduler harness.
#[derive(Arbitrary, Debug)]
pub enum SchedulerOp {
    /// A send on channel `channel % 3` to the peers in bitmask `peers` (bit 7: all).
    Send {
        /// Channel selector.
        channel: u8,
        /// Recipient bitmask.
        peers: u8,
        /// Payload length selector.
        len: u16,
        /// Priority.
        priority: Priority,
    },
    /// Poll up to `frames` frames of peer `peer % 3`.
    Poll {
        /// Peer selector.
        peer: u8,
        /// How many frames at most.
        frames: u8,
    },
    /// Queue a control frame for a peer.
    Control {
        /// Peer selector.
        peer: u8,
    },
    /// Advance simulated time.
    Advance {
        /// Milliseconds.
        millis: u16,
    },
    /// Disconnect a peer (if connected) or connect it (if not).
    Toggle {
        /// Peer selector.
        peer: u8,
    },
}

/// What the model expects of one peer.
#[derive(Default)]
struct PeerModel {
    /// `queues[priority][channel]`: message ids queued, FIFO.
    queues: [[VecDeque<u64>; CHANNELS]; 2],
    control: VecDeque<u64>,
    /// The message being chunked: (channel, id, next part, total parts, bytes so far).
    current: Option<(u32, u64, u32, u32, Vec<u8>)>,
}

fn payload(id: u64, len: usize) -> Bytes {
    let mut v = id.to_be_bytes().to_vec();
    v.extend((0..len).map(|i| (id as usize).wrapping_add(i) as u8));
    Bytes::from(v)
}

/// Drives a mux with three peers and three channels (two unlimited, one limited to 5
/// messages/s per peer) through `ops`, checking after every step that: send reports are exact
/// (queued iff connected and under the backlog, so queues stay bounded); chunks of two messages
/// never interleave and every message arrives whole and intact; messages of one channel and
/// priority leave in FIFO order; a low-priority message never starts while a high-priority one
/// of an unlimited channel is queued; control frames leave in order.
pub fn scheduler(ops: Vec<SchedulerOp>) {
    let config = MuxConfig {
        max_frame_plaintext: FRAME,
        control_backlog: NonZeroUsize::new(4).expect("4 is not zero"),
        gross_violation_factor: NonZeroU32::new(2).expect("2 is not zero"),
    };
    let mut mux = Mux::<u8>::new(config);
    let unlimited = Quota::per_second(NonZeroU32::new(u32::MAX).expect("not zero"));
    let limited = Quota::per_second(NonZeroU32::new(5).expect("5 is not zero"));
    let senders: Vec<Sender<u8>> = (0..CHANNELS as u32)
        .map(|c| {
            let quota = if c == 2 { limited } else { unlimited };
            let (tx, rx) = mux
                .register(c, quota, MAX_MESSAGE, BACKLOG, None)
                .expect("fresh ids");
            drop(rx);
            tx
        })
        .collect();
    let control = mux.control_sender();
    let mut handles: Vec<Option<PeerHandles<u8>>> =
        (0..PEERS).map(|p| Some(connect(&mux, p))).collect();
    let mut models: Vec<PeerModel> = (0..PEERS).map(|_| PeerModel::default()).collect();
    let mut now = Instant::now();
    let mut next_id = 0u64;
    let mut out = BytesMut::new();

    for op in ops {
        match op {
            SchedulerOp::Send {
                channel,
                peers,
                len,
                priority,
            } => {
                let ch = usize::from(channel) % CHANNELS;
                let id = next_id;
                next_id += 1;
                let len = usize::from(len) % (MAX_MESSAGE - 8);
                let recipients = if peers & 0x80 != 0 {
                    Recipients::All
                } else {
                    Recipients::List((0..PEERS).filter(|p| peers & (1 << p) != 0).collect())
                };
                let wanted: Vec<u8> = match &recipients {
                    Recipients::All => (0..PEERS)
                        .filter(|p| handles[usize::from(*p)].is_some())
                        .collect(),
                    Recipients::List(l) => l.clone(),
                    Recipients::One(p) => vec![*p],
                };
                let report = senders[ch]
                    .send(recipients, payload(id, len), priority)
                    .expect("within the maximum");
                for p in wanted {
                    let m = &mut models[usize::from(p)];
                    let connected = handles[usize::from(p)].is_some();
                    let backlog = m.queues[0][ch].len() + m.queues[1][ch].len();
                    if !connected {
                        assert!(report.not_connected.contains(&p));
                    } else if backlog >= BACKLOG {
                        assert!(report.backlog_full.contains(&p));
                    } else {
                        assert!(report.queued.contains(&p));
                        m.queues[priority.index()][ch].push_back(id);
                    }
                }
            }
            SchedulerOp::Control { peer } => {
                let p = peer % PEERS;
                let id = next_id;
                next_id += 1;
                let m = &mut models[usize::from(p)];
                let r = control.send(&p, Bytes::copy_from_slice(&id.to_be_bytes()));
                if handles[usize::from(p)].is_none() {
                    assert_eq!(r, Err(ControlRefused::NotConnected));
                } else if m.control.len() >= 4 {
                    assert_eq!(r, Err(ControlRefused::Full));
                } else {
                    assert!(r.is_ok());
                    m.control.push_back(id);
                }
            }
            SchedulerOp::Advance { millis } => now += Duration::from_millis(u64::from(millis)),
            SchedulerOp::Toggle { peer } => {
                let p = peer % PEERS;
                let slot = &mut handles[usize::from(p)];
                if slot.is_some() {
                    mux.peer_disconnected(&p);
                    *slot = None;
                    models[usize::from(p)] = PeerModel::default();
                } else {
                    *slot = Some(connect(&mux, p));
                }
            }
            SchedulerOp::Poll { peer, frames } => {
                let p = usize::from(peer % PEERS);
                let Some(h) = handles[p].as_mut() else {
                    continue;
                };
                let m = &mut models[p];
                for _ in 0..frames {
                    out.clear();
                    match h.scheduler.poll_frame(now, &mut out) {
                        PollFrame::Control => {
                            let want = m.control.pop_front().expect("a control frame was queued");
                            assert_eq!(&out[..], &want.to_be_bytes()[..]);
                        }
                        PollFrame::Chunk { channel, last } => check_chunk(m, &out, channel, last),
                        PollFrame::Batch { chunks } => {
                            assert_eq!(p, usize::from(PACKING_PEER), "only peer 2 packs");
                            assert!(chunks >= 2 && out.len() <= COALESCE);
                            // Each envelope ends a message, in the order of separate frames.
                            let mut rest = &out[..];
                            let mut seen = 0;
                            while !rest.is_empty() {
                                let len = envelope_len(rest);
                                let (one, tail) = rest.split_at(len);
                                let Some(Payload::Chunk(c)) =
                                    Message::decode(one).expect("valid envelope").payload
                                else {
                                    panic!("a batch holds only chunks");
                                };
                                check_chunk(m, one, c.channel, true);
                                rest = tail;
                                seen += 1;
                            }
                            assert_eq!(seen, chunks);
                        }
                        PollFrame::Idle { .. } => {
                            assert!(m.control.is_empty() && m.current.is_none());
                            // Unlimited channels never hold a message back.
                            for prio in &m.queues {
                                assert!(prio[0].is_empty() && prio[1].is_empty());
                            }
                            break;
                        }
                        PollFrame::Closed => panic!("connected peer reported closed"),
                    }
                }
            }
        }
    }
}

fn check_chunk(m: &mut PeerModel, frame: &[u8], channel: u32, last: bool) {
    let Some(Payload::Chunk(chunk)) = Message::decode(frame).expect("valid envelope").payload
    else {
        panic!("data frame is not a chunk");
    };
    assert!(frame.len() <= FRAME as usize);
    assert_eq!(chunk.channel, channel);
    if chunk.part == 0 {
        assert!(m.current.is_none(), "a message started inside another one");
        assert!(chunk.content.len() >= 8, "first chunk carries the id");
        let id = u64::from_be_bytes(chunk.content[..8].try_into().expect("8 bytes"));
        let ch = channel as usize;
        let prio = if m.queues[0][ch].front() == Some(&id) {
            0
        } else {
            assert_eq!(m.queues[1][ch].front(), Some(&id), "FIFO per channel");
            // Low priority while an unlimited channel has high-priority work: forbidden.
            assert!(m.queues[0][0].is_empty() && m.queues[0][1].is_empty());
            1
        };
        m.queues[prio][ch].pop_front();
        m.current = Some((channel, id, 0, chunk.total_parts, Vec::new()));
    }
    let (cur_ch, id, next, total, buf) = m.current.as_mut().expect("chunk outside a message");
    assert_eq!(
        (*cur_ch, *next, *total),
        (channel, chunk.part, chunk.total_parts)
    );
    buf.extend_from_slice(&chunk.content);
    *next += 1;
    assert_eq!(last, *next == *total);
    if last {
        let len = buf.len() - 8;
        assert_eq!(&buf[..], &payload(*id, len)[..], "message corrupted");
        m.current = None;
    }
}

/// The length of the first envelope of a batch: the key byte, the length varint and the body.
fn envelope_len(batch: &[u8]) -> usize {
    let mut len = 0usize;
    let mut i = 1;
    for (k, b) in batch[1..].iter().enumerate() {
        len |= usize::from(b & 0x7f) << (7 * k);
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    i + len
}
