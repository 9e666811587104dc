//! The per-peer outbound scheduler: which frame goes next.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Instant,
};

use bytes::BytesMut;

use crate::{
    framing::{Chunker, envelope_len},
    limit::Limiter,
    state::{PRIORITIES, PeerSlot, Shared, Table, lock, write},
};

/// What [`Scheduler::poll_frame`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollFrame {
    /// One control frame's plaintext was appended to `out`.
    Control,
    /// One chunk (an encoded `p2p.v1.Message { chunk }`) was appended to `out`.
    Chunk {
        /// The chunk's channel.
        channel: u32,
        /// Whether this chunk ends its message (the next chunk may belong to another one).
        last: bool,
    },
    /// Several whole messages, each one chunk (an encoded `p2p.v1.Message { chunk }`), were
    /// appended back to back as one frame's plaintext (only after
    /// [`Scheduler::set_coalesce_limit`]; see `docs/protocol.md`, "Batch frames").
    Batch {
        /// How many chunks the frame carries (at least 2).
        chunks: u32,
    },
    /// Nothing is ready; `out` is untouched. Wait until [`Scheduler::poll_ready`] is ready or,
    /// when `retry_at` is set, until that instant (a rate-limited message becomes sendable),
    /// whichever comes first.
    Idle {
        /// When a message held back by an outbound quota may go.
        retry_at: Option<Instant>,
    },
    /// The peer was disconnected; its queues are gone. Stop the writer.
    Closed,
}

/// A message being chunked.
#[derive(Debug)]
struct Current {
    chunker: Chunker,
    channel: u32,
}

/// Sans-IO outbound state machine of one connected peer, owned by that peer's writer task.
///
/// It pulls whole messages from the peer's queues (filled by [`Sender`](crate::Sender)s and the
/// [`ControlSender`](crate::ControlSender)) and emits them one frame at a time:
/// - control frames first, at any frame boundary;
/// - then the rest of the message being sent, if any (chunks of two messages never interleave);
/// - else the next message: high priority before low; within a priority, channels in round
///   robin, one message per turn; a channel whose outbound quota (per recipient) is exhausted
///   is skipped until its quota allows.
///
/// Dropping the scheduler disconnects the peer (as [`Mux::peer_disconnected`](crate::Mux) does)
/// unless a newer connection of the same peer has replaced it.
pub struct Scheduler<P: Clone + Eq + std::hash::Hash> {
    peer: P,
    shared: Arc<Shared<P>>,
    slot: Arc<PeerSlot>,
    table: Arc<Table<P>>,
    max_plaintext: u32,
    /// Outbound limiter per channel index, created at first use.
    limiters: Vec<Option<Limiter>>,
    /// Whether the channel's head message has been counted as rate limited already.
    limited: Vec<bool>,
    /// Round-robin cursor per priority: the channel index to try first.
    cursor: [usize; PRIORITIES],
    current: Option<Current>,
    /// Largest plaintext of a frame that packs several messages (0: one chunk per frame).
    coalesce_limit: usize,
}

/// What one step of [`Scheduler::poll_frame`] produced.
enum Step {
    Frame(PollFrame),
    /// Packing: the next chunk does not fit the room left (or is a control frame); nothing
    /// was appended.
    NoFit,
}

impl<P: Clone + Eq + std::hash::Hash> fmt::Debug for Scheduler<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("current", &self.current)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl<P: Clone + Eq + std::hash::Hash> Scheduler<P> {
    pub(crate) fn new(
        peer: P,
        shared: Arc<Shared<P>>,
        slot: Arc<PeerSlot>,
        table: Arc<Table<P>>,
        max_plaintext: u32,
    ) -> Self {
        let n = table.channels.len();
        Self {
            peer,
            shared,
            slot,
            table,
            max_plaintext,
            limiters: (0..n).map(|_| None).collect(),
            limited: vec![false; n],
            cursor: [0; PRIORITIES],
            current: None,
            coalesce_limit: 0,
        }
    }

    /// Packs whole small messages into one frame, up to `limit` bytes of plaintext (clamped
    /// to the frame's maximum; 0, the default, sends one chunk per frame). Only for a peer
    /// that accepts batch frames (protocol minor 1 or later).
    pub fn set_coalesce_limit(&mut self, limit: usize) {
        self.coalesce_limit = limit.min(self.max_plaintext as usize);
    }

    /// The peer this scheduler sends to.
    pub fn peer(&self) -> &P {
        &self.peer
    }

    /// Whether a message is half sent (the next data frame must be its next chunk).
    pub fn in_message(&self) -> bool {
        self.current.is_some()
    }

    /// Appends the plaintext of at most one frame to `out` and says what it was.
    ///
    /// Call it in a loop (sealing and finishing each frame) until it returns
    /// [`PollFrame::Idle`] or enough bytes are buffered for one write; `now` drives the
    /// outbound rate limits.
    ///
    /// With a coalesce limit ([`Scheduler::set_coalesce_limit`]), a chunk that ends its message
    /// is followed in the same frame by the next messages that fit whole in one chunk within
    /// the limit, in the order they would have gone one per frame
    /// ([`PollFrame::Batch`]); a control frame ends the packing and goes in the next frame.
    pub fn poll_frame(&mut self, now: Instant, out: &mut BytesMut) -> PollFrame {
        let start = out.len();
        let first = match self.step(now, out, None) {
            Step::Frame(f) => f,
            Step::NoFit => return PollFrame::Idle { retry_at: None },
        };
        if self.coalesce_limit == 0 || !matches!(first, PollFrame::Chunk { last: true, .. }) {
            return first;
        }
        let mut chunks = 1u32;
        loop {
            let room = self.coalesce_limit.saturating_sub(out.len() - start);
            if room == 0 {
                break;
            }
            match self.step(now, out, Some(room)) {
                Step::Frame(PollFrame::Chunk { .. }) => chunks += 1,
                Step::Frame(_) | Step::NoFit => break,
            }
        }
        if chunks == 1 {
            first
        } else {
            PollFrame::Batch { chunks }
        }
    }

    /// One chunk or control frame. With `room` (packing after a finished message), only a
    /// chunk that ends its message and whose envelope fits `room` is appended; anything else
    /// is left for the next frame ([`Step::NoFit`]).
    fn step(&mut self, now: Instant, out: &mut BytesMut, room: Option<usize>) -> Step {
        let mut q = lock(&self.slot.queues);
        if q.closed {
            self.current = None;
            return Step::Frame(PollFrame::Closed);
        }
        if !q.control.is_empty() && room.is_some() {
            return Step::NoFit;
        }
        if let Some(frame) = q.control.pop_front() {
            drop(q);
            out.extend_from_slice(&frame);
            return Step::Frame(PollFrame::Control);
        }
        // Wakers of senders waiting for room in the backlog a picked message leaves.
        let mut waiters = Vec::new();
        if self.current.is_none() {
            // Pick the next message under the lock, then chunk it without the lock.
            let mut retry_at: Option<Instant> = None;
            let n = self.table.channels.len();
            'pick: for prio in 0..PRIORITIES {
                let start = self.cursor[prio];
                for k in 0..n {
                    let index = (start + k) % n;
                    if q.data[prio][index].is_empty() {
                        continue;
                    }
                    let channel = &self.table.channels[index];
                    if let Some(room) = room {
                        // Packing: the next message in line goes only if it fits whole; else
                        // it stays queued (still counted in the backlog, no quota cell taken)
                        // and the frame ends, so the order is that of one message per frame.
                        let len = q.data[prio][index].front().map_or(0, |m| m.len() as u64);
                        if envelope_len(channel.id, 0, 1, len) > room as u64 {
                            drop(q);
                            waiters.into_iter().for_each(Waker::wake);
                            return Step::NoFit;
                        }
                    }
                    let limiter = self.limiters[index]
                        .get_or_insert_with(|| Limiter::new(channel.quota, now));
                    match limiter.check(now) {
                        Ok(()) => {
                            let Some(message) = q.data[prio][index].pop_front() else {
                                continue;
                            };
                            q.queued[index] = q.queued[index].saturating_sub(1);
                            waiters.extend(q.take_room_waiters(index));
                            self.cursor[prio] = (index + 1) % n;
                            self.limited[index] = false;
                            let counters = &channel.counters;
                            counters.messages_sent.inc();
                            counters.bytes_sent.inc_by(message.len() as u64);
                            match Chunker::new(channel.id, message, self.max_plaintext) {
                                Ok(chunker) => {
                                    self.current = Some(Current {
                                        chunker,
                                        channel: channel.id,
                                    });
                                    break 'pick;
                                }
                                Err(e) => {
                                    counters.unchunkable.inc();
                                    tracing::warn!(channel = channel.id, error = %e,
                                        "dropping an outbound message that cannot be chunked");
                                }
                            }
                        }
                        Err(at) => {
                            if !self.limited[index] {
                                self.limited[index] = true;
                                channel.counters.limited_out.inc();
                            }
                            retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
                        }
                    }
                }
            }
            if self.current.is_none() {
                q.notified = false;
                drop(q);
                waiters.into_iter().for_each(Waker::wake);
                return Step::Frame(PollFrame::Idle { retry_at });
            }
        }
        drop(q);
        waiters.into_iter().for_each(Waker::wake);
        let Some(current) = self.current.as_mut() else {
            return Step::Frame(PollFrame::Idle { retry_at: None });
        };
        if let Some(room) = room {
            match current.chunker.peek_next() {
                Some((len, true)) if len <= room => {}
                _ => return Step::NoFit,
            }
        }
        let channel = current.channel;
        let wrote = current.chunker.write_next(out);
        let last = current.chunker.is_finished();
        if last {
            self.current = None;
        }
        if wrote {
            Step::Frame(PollFrame::Chunk { channel, last })
        } else {
            // A chunker that had nothing left (cannot happen for a fresh one): try again.
            self.step(now, out, room)
        }
    }

    /// Ready when work was queued (or the peer was disconnected) since
    /// [`poll_frame`](Self::poll_frame) last returned [`PollFrame::Idle`]; otherwise stores
    /// `cx`'s waker, which the next send or control frame for this peer wakes.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = lock(&self.slot.queues);
        if q.notified || q.closed || !q.control.is_empty() {
            return Poll::Ready(());
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits (runtime-agnostic) until [`poll_ready`](Self::poll_ready) is ready.
    pub async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await;
    }
}

impl<P: Clone + Eq + std::hash::Hash> Drop for Scheduler<P> {
    fn drop(&mut self) {
        let mut peers = write(&self.shared.peers);
        if peers
            .get(&self.peer)
            .is_some_and(|s| Arc::ptr_eq(s, &self.slot))
        {
            peers.remove(&self.peer);
        }
        drop(peers);
        let waker = lock(&self.slot.queues).close(&self.table.channels);
        drop(waker);
    }
}
