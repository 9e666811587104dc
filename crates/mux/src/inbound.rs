//! Inbound traffic: per-peer reassembly and rate limits, per-channel receiver queues.

use std::{
    collections::VecDeque,
    fmt,
    hash::Hash,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Instant,
};

use bytes::Bytes;
use p2p_proto::Chunk;
use prometheus_client::metrics::counter::Counter;

use crate::{
    MuxError,
    framing::{Reassembler, compress},
    limit::{Limiter, scaled},
    state::{Channel, Parked, Shared, Table, lock},
};

/// What [`InboundPeer::handle_chunk`] did with a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the reader must honour Throttled and Backpressured"]
pub enum Inbound {
    /// The chunk was buffered; the message needs more parts.
    Incomplete,
    /// A whole message was delivered to its channel's receiver queue.
    Delivered,
    /// A whole message was delivered, but the peer is over the channel's inbound quota: do not
    /// read more from this peer before `until`.
    Throttled {
        /// When reading may resume.
        until: Instant,
    },
    /// A whole message is complete but its channel's receiver queue is full: it is held here.
    /// Do not read more from this peer until [`InboundPeer::poll_deliver`] is ready.
    Backpressured,
    /// A whole message arrived from an observer on a validators-only channel
    /// ([`crate::Mux::register_validators_only`]): it was dropped (counted in
    /// `mux_dropped{reason="ValidatorsOnly"}`), after the channel's rate limits were applied
    /// to it as to any message (a flood is still throttled and, grossly over the quota,
    /// fatal). The connection stays open.
    Refused {
        /// The channel id.
        channel: u32,
        /// When the peer is also over the channel's quota: do not read before this.
        until: Option<Instant>,
    },
}

/// The channel receiver queue (bounded by the channel's backlog).
#[derive(Debug)]
pub(crate) struct Inbox<P> {
    state: Mutex<InboxState<P>>,
    /// The channel's `ReceiverClosed` counter: messages still queued when the receiver is
    /// dropped are counted there.
    receiver_closed: Counter,
}

#[derive(Debug)]
struct InboxState<P> {
    queue: VecDeque<(P, Bytes)>,
    cap: usize,
    /// The receiver's waker.
    waker: Option<Waker>,
    /// Readers waiting for room.
    blocked: Vec<Waker>,
    receiver_alive: bool,
    closed: bool,
}

enum Push<P> {
    Done,
    ReceiverGone,
    Full(P, Bytes),
}

impl<P> Inbox<P> {
    pub(crate) fn new(cap: usize, receiver_closed: Counter) -> Self {
        Self {
            receiver_closed,
            state: Mutex::new(InboxState {
                queue: VecDeque::new(),
                cap,
                waker: None,
                blocked: Vec::new(),
                receiver_alive: true,
                closed: false,
            }),
        }
    }

    /// Pushes if there is room; when full and `cx` is given, registers its waker for room.
    fn push(&self, peer: P, message: Bytes, cx: Option<&Context<'_>>) -> Push<P> {
        let mut s = lock(&self.state);
        if !s.receiver_alive || s.closed {
            return Push::ReceiverGone;
        }
        if s.queue.len() >= s.cap {
            if let Some(cx) = cx
                && !s.blocked.iter().any(|w| w.will_wake(cx.waker()))
            {
                s.blocked.push(cx.waker().clone());
            }
            return Push::Full(peer, message);
        }
        s.queue.push_back((peer, message));
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        Push::Done
    }

    /// Marks the mux gone: the receiver ends once drained.
    pub(crate) fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        let waker = s.waker.take();
        let blocked = std::mem::take(&mut s.blocked);
        drop(s);
        waker.into_iter().chain(blocked).for_each(Waker::wake);
    }
}

/// The inbound state of one connected peer, owned by that peer's reader task.
pub struct InboundPeer<P: Clone + Eq + Hash> {
    peer: P,
    table: Arc<Table<P>>,
    reassembler: Reassembler,
    /// Per channel index: (quota limiter, gross-violation limiter), created at first use.
    limiters: Vec<Option<(Limiter, Limiter)>>,
    gross_factor: NonZeroU32,
    /// A complete message waiting for room in its channel's queue.
    pending: Option<(Arc<Channel<P>>, Bytes)>,
    /// Throttle deadline to report once the pending message is delivered.
    resume_at: Option<Instant>,
    /// Where the limiters are parked when this handle is dropped.
    shared: Arc<Shared<P>>,
    /// The latest `now` handed to [`InboundPeer::handle_chunk`].
    last_now: Option<Instant>,
    max_plaintext: u32,
    role: crate::Role,
}

impl<P: Clone + Eq + Hash + fmt::Debug> fmt::Debug for InboundPeer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundPeer")
            .field("peer", &self.peer)
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<P: Clone + Eq + Hash> InboundPeer<P> {
    pub(crate) fn new(
        peer: P,
        table: Arc<Table<P>>,
        max_plaintext: u32,
        gross_factor: NonZeroU32,
        shared: Arc<Shared<P>>,
    ) -> Self {
        let n = table.channels.len();
        // A peer that reconnects finds its quotas as it left them.
        let limiters = lock(&shared.parked)
            .remove(&peer)
            .map(|p| p.limiters)
            .filter(|l| l.len() == n)
            .unwrap_or_else(|| (0..n).map(|_| None).collect());
        Self {
            peer,
            table,
            reassembler: Reassembler::new(max_plaintext),
            limiters,
            gross_factor,
            pending: None,
            resume_at: None,
            shared,
            last_now: None,
            max_plaintext,
            role: crate::Role::Validator,
        }
    }

    pub(crate) fn with_role(mut self, role: crate::Role) -> Self {
        self.role = role;
        self
    }

    /// The peer this handle reads from.
    pub fn peer(&self) -> &P {
        &self.peer
    }

    /// Handles one chunk received from the peer at `now`.
    ///
    /// In order: channel lookup ([`MuxError::UnknownChannel`]), reassembly bounded by the
    /// channel's maximum message size ([`MuxError::Reassembly`]), decompression bounded by the
    /// same maximum ([`MuxError::Decompress`]), the peer's inbound quota for the channel (one
    /// cell per message; [`Inbound::Throttled`] when over it, [`MuxError::RateLimitExceeded`]
    /// when over `gross_violation_factor` times it), then delivery to the channel's receiver
    /// queue ([`Inbound::Backpressured`] when it is full). Every error is fatal for the
    /// connection. A message is never dropped because of a rate limit.
    pub fn handle_chunk(&mut self, chunk: Chunk, now: Instant) -> Result<Inbound, MuxError> {
        if self.pending.is_some() {
            return Err(MuxError::DeliveryPending);
        }
        let channel = match self.table.lookup(chunk.channel) {
            Some(c) => Arc::clone(c),
            None => {
                return Err(MuxError::UnknownChannel {
                    channel: chunk.channel,
                });
            }
        };
        let Some((_, message)) = self
            .reassembler
            .handle_chunk(chunk, Some(channel.max_message_size))
            .map_err(MuxError::Reassembly)?
        else {
            return Ok(Inbound::Incomplete);
        };
        let refused = channel.validators_only && self.role == crate::Role::Observer;
        let message = match channel.compression {
            // Never decompressed: it is dropped below.
            _ if refused => message,
            Some(_) => {
                compress::decompress(&message, channel.max_message_size).map_err(|source| {
                    MuxError::Decompress {
                        channel: channel.id,
                        source,
                    }
                })?
            }
            // A single-part message is a slice of the frame it arrived in, which is a slice of
            // the connection's read buffer: keeping a small one would keep that whole buffer.
            None if message.len() <= copy_below(self.max_plaintext) => {
                Bytes::copy_from_slice(&message)
            }
            None => message,
        };
        self.last_now = Some(self.last_now.map_or(now, |t| t.max(now)));
        let (quota, gross) = self.limiters[channel.index].get_or_insert_with(|| {
            (
                Limiter::new(channel.quota, now),
                Limiter::new(scaled(channel.quota, self.gross_factor), now),
            )
        });
        if gross.check(now).is_err() {
            return Err(MuxError::RateLimitExceeded {
                channel: channel.id,
            });
        }
        let throttle = quota.check(now).err();
        if throttle.is_some() {
            channel.counters.limited_in.inc();
        }
        if refused {
            channel.counters.validators_only.inc();
            return Ok(Inbound::Refused {
                channel: channel.id,
                until: throttle,
            });
        }
        channel.counters.messages_received.inc();
        channel.counters.bytes_received.inc_by(message.len() as u64);
        match channel.inbox.push(self.peer.clone(), message, None) {
            Push::Done => {}
            Push::ReceiverGone => {
                channel.counters.receiver_closed.inc();
            }
            Push::Full(_, message) => {
                self.pending = Some((channel, message));
                self.resume_at = throttle;
                return Ok(Inbound::Backpressured);
            }
        }
        Ok(match throttle {
            Some(until) => Inbound::Throttled { until },
            None => Inbound::Delivered,
        })
    }

    /// Delivers the message held after [`Inbound::Backpressured`]. Ready (with the instant
    /// before which the reader must still not read, if the message was also over quota) once it
    /// is in its receiver queue, or dropped because the receiver is gone; ready at once when
    /// nothing is held.
    pub fn poll_deliver(&mut self, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        let Some((channel, message)) = self.pending.take() else {
            return Poll::Ready(self.resume_at.take());
        };
        match channel.inbox.push(self.peer.clone(), message, Some(cx)) {
            Push::Done => Poll::Ready(self.resume_at.take()),
            Push::ReceiverGone => {
                channel.counters.receiver_closed.inc();
                Poll::Ready(self.resume_at.take())
            }
            Push::Full(_, message) => {
                self.pending = Some((channel, message));
                Poll::Pending
            }
        }
    }

    /// Waits (runtime-agnostic) until [`poll_deliver`](Self::poll_deliver) is ready.
    pub async fn deliver(&mut self) -> Option<Instant> {
        std::future::poll_fn(|cx| self.poll_deliver(cx)).await
    }

    /// Whether a message is held for lack of room in its receiver queue.
    pub fn is_backpressured(&self) -> bool {
        self.pending.is_some()
    }
}

/// Messages up to this many bytes are copied out of their frame (an eighth of the frame, at
/// least 4 KiB): the copy costs less than the buffer it would otherwise pin.
fn copy_below(max_plaintext: u32) -> usize {
    (max_plaintext as usize / 8).max(4096)
}

impl<P: Clone + Eq + Hash> Drop for InboundPeer<P> {
    fn drop(&mut self) {
        if let Some((channel, _)) = self.pending.take() {
            channel.counters.held_at_disconnect.inc();
        }
        let Some(now) = self.last_now else {
            return;
        };
        let limiters = std::mem::take(&mut self.limiters);
        if limiters.iter().all(Option::is_none) {
            return;
        }
        // Full again after one burst's worth of replenish intervals (the gross limiter has
        // `factor` times the burst at `factor` times the rate: the same time).
        let refill = self
            .table
            .channels
            .iter()
            .map(|c| c.quota.replenish_interval() * c.quota.burst_size().get())
            .max()
            .unwrap_or_default();
        let mut parked = lock(&self.shared.parked);
        parked.retain(|_, p| p.until > now);
        parked.insert(
            self.peer.clone(),
            Parked {
                limiters,
                until: now + refill,
            },
        );
    }
}

/// Receives the messages of one channel from every peer. Usable from any async runtime.
pub struct Receiver<P> {
    pub(crate) inbox: Arc<Inbox<P>>,
    pub(crate) channel: u32,
}

impl<P> fmt::Debug for Receiver<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl<P> Receiver<P> {
    /// The channel id.
    pub const fn channel(&self) -> u32 {
        self.channel
    }

    /// The next message and its sender; `Ready(None)` once the mux is dropped and the queue is
    /// drained.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<(P, Bytes)>> {
        let mut s = lock(&self.inbox.state);
        if let Some(item) = s.queue.pop_front() {
            let blocked = std::mem::take(&mut s.blocked);
            drop(s);
            blocked.into_iter().for_each(Waker::wake);
            return Poll::Ready(Some(item));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next message without waiting, if any.
    pub fn try_recv(&mut self) -> Option<(P, Bytes)> {
        let mut s = lock(&self.inbox.state);
        let item = s.queue.pop_front()?;
        let blocked = std::mem::take(&mut s.blocked);
        drop(s);
        blocked.into_iter().for_each(Waker::wake);
        Some(item)
    }

    /// Waits for the next message (see [`poll_recv`](Self::poll_recv)).
    pub async fn recv(&mut self) -> Option<(P, Bytes)> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<P> Drop for Receiver<P> {
    fn drop(&mut self) {
        let mut s = lock(&self.inbox.state);
        s.receiver_alive = false;
        if !s.queue.is_empty() {
            self.inbox.receiver_closed.inc_by(s.queue.len() as u64);
        }
        s.queue = VecDeque::new();
        let blocked = std::mem::take(&mut s.blocked);
        drop(s);
        blocked.into_iter().for_each(Waker::wake);
    }
}
