//! The application's side of outbound traffic: channel senders and control frames.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;

use crate::{
    MuxError,
    framing::compress,
    state::{Channel, PeerSlot, RoomWaiter, Shared, lock, read},
};

/// Send priority of a message.
///
/// A [`High`](Self::High) message goes before every queued [`Low`](Self::Low) message of the
/// same peer, but never between the chunks of a message already being sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum Priority {
    /// Goes first.
    High,
    /// Goes when no high-priority message is ready.
    Low,
}

impl Priority {
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::High => 0,
            Self::Low => 1,
        }
    }
}

/// Who a message is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipients<P> {
    /// Every peer connected at the time of the send.
    All,
    /// These peers (duplicates are sent to once).
    List(Vec<P>),
    /// One peer.
    One(P),
}

/// What became of one send, per recipient. Nothing is dropped silently: every recipient is in
/// exactly one of the four lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport<P> {
    /// Peers the message was queued for.
    pub queued: Vec<P>,
    /// Peers that are not connected (counted in `mux_dropped{reason="not_connected"}`).
    pub not_connected: Vec<P>,
    /// Peers whose backlog for the channel was full (counted in
    /// `mux_dropped{reason="backlog_full"}`).
    pub backlog_full: Vec<P>,
    /// Observers named as recipients on a validators-only channel (counted in
    /// `mux_dropped{reason="ValidatorsOnly"}`). [`Recipients::All`] never lists them: they are
    /// not recipients of such a channel.
    pub restricted: Vec<P>,
}

impl<P> SendReport<P> {
    /// An empty report (reuse it with [`Sender::send_into`] to avoid allocating per send).
    pub const fn new() -> Self {
        Self {
            queued: Vec::new(),
            not_connected: Vec::new(),
            backlog_full: Vec::new(),
            restricted: Vec::new(),
        }
    }

    /// Empties the lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.queued.clear();
        self.not_connected.clear();
        self.backlog_full.clear();
        self.restricted.clear();
    }

    /// Whether every recipient got the message queued.
    pub fn is_complete(&self) -> bool {
        self.not_connected.is_empty() && self.backlog_full.is_empty() && self.restricted.is_empty()
    }
}

impl<P> Default for SendReport<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// Sends messages on one channel. Cheap to clone, `Send + Sync`, no runtime needed: a send only
/// queues and wakes the recipients' writers.
pub struct Sender<P> {
    pub(crate) shared: Arc<Shared<P>>,
    pub(crate) channel: Arc<Channel<P>>,
}

impl<P> Clone for Sender<P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            channel: Arc::clone(&self.channel),
        }
    }
}

impl<P> fmt::Debug for Sender<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("channel", &self.channel.id)
            .finish_non_exhaustive()
    }
}

impl<P: Clone + Eq + std::hash::Hash + Ord> Sender<P> {
    /// The channel id.
    pub fn channel(&self) -> u32 {
        self.channel.id
    }

    /// Queues `message` for `recipients` with `priority` and reports, per recipient, whether it
    /// was queued. See [`send_into`](Self::send_into).
    pub fn send(
        &self,
        recipients: Recipients<P>,
        message: Bytes,
        priority: Priority,
    ) -> Result<SendReport<P>, MuxError> {
        let mut report = SendReport::new();
        self.send_into(recipients, message, priority, &mut report)?;
        Ok(report)
    }

    /// Like [`send`](Self::send), but fills a caller-owned report (cleared first), so a hot
    /// loop allocates nothing per message beyond the payload.
    ///
    /// The message is compressed once when the channel compresses, and refused with
    /// [`MuxError::MessageTooLarge`] (queued for nobody) when it exceeds the channel's maximum
    /// message size before or after compression. All recipients share the same [`Bytes`].
    pub fn send_into(
        &self,
        recipients: Recipients<P>,
        message: Bytes,
        priority: Priority,
        report: &mut SendReport<P>,
    ) -> Result<(), MuxError> {
        report.clear();
        let payload = self.prepare(message)?;
        let peers = read(&self.shared.peers);
        match recipients {
            Recipients::All => {
                let restricted = self.channel.validators_only;
                for (peer, slot) in peers.iter() {
                    if restricted && slot.role == crate::Role::Observer {
                        continue;
                    }
                    self.enqueue(peer, Some(slot), &payload, priority, report);
                }
            }
            Recipients::One(peer) => {
                self.enqueue(&peer, peers.get(&peer), &payload, priority, report);
            }
            Recipients::List(mut list) => {
                list.sort_unstable();
                list.dedup();
                for peer in &list {
                    self.enqueue(peer, peers.get(peer), &payload, priority, report);
                }
            }
        }
        Ok(())
    }

    /// A future that resolves once `peer`'s backlog on this channel has room for one message
    /// (at once if it has room now), or with [`MuxError::NotConnected`] when the peer is not
    /// connected or disconnects while waiting.
    ///
    /// Only this recipient is waited for: sends to other peers, and other waits, go on
    /// meanwhile. Room is a hint, not a reservation: another sender may take it first, so send
    /// again and wait again on `backlog_full`. Cancel the wait by dropping the future (for
    /// example in a `select!` or a timeout); that leaves nothing behind. A reconnect of the
    /// peer ends the wait with `NotConnected` (the new connection has fresh, empty queues).
    pub fn wait_for_room(&self, peer: &P) -> WaitForRoom {
        let slot = read(&self.shared.peers).get(peer).cloned();
        WaitForRoom {
            slot,
            channel: self.channel.index,
            backlog: self.channel.backlog,
            waiter: None,
        }
    }

    fn prepare(&self, message: Bytes) -> Result<Bytes, MuxError> {
        let max = self.channel.max_message_size;
        if message.len() > max {
            return Err(MuxError::MessageTooLarge {
                len: message.len(),
                max,
                compressed: false,
            });
        }
        let Some(level) = self.channel.compression else {
            return Ok(message);
        };
        let packed = compress::compress(&message, level).map_err(MuxError::Compress)?;
        if packed.len() > max {
            return Err(MuxError::MessageTooLarge {
                len: packed.len(),
                max,
                compressed: true,
            });
        }
        Ok(packed)
    }

    fn enqueue(
        &self,
        peer: &P,
        slot: Option<&Arc<PeerSlot>>,
        payload: &Bytes,
        priority: Priority,
        report: &mut SendReport<P>,
    ) {
        let counters = &self.channel.counters;
        let Some(slot) = slot else {
            counters.not_connected.inc();
            report.not_connected.push(peer.clone());
            return;
        };
        if self.channel.validators_only && slot.role == crate::Role::Observer {
            counters.validators_only.inc();
            report.restricted.push(peer.clone());
            return;
        }
        let index = self.channel.index;
        let mut q = lock(&slot.queues);
        if q.closed {
            drop(q);
            counters.not_connected.inc();
            report.not_connected.push(peer.clone());
            return;
        }
        // Channels cannot be added once a peer exists, so `index` is in range; treat a miss as
        // not connected rather than panic.
        let Some(queued) = q.queued.get_mut(index) else {
            drop(q);
            counters.not_connected.inc();
            report.not_connected.push(peer.clone());
            return;
        };
        if *queued >= self.channel.backlog {
            drop(q);
            counters.backlog_full.inc();
            report.backlog_full.push(peer.clone());
            return;
        }
        *queued += 1;
        q.data[priority.index()][index].push_back(payload.clone());
        let waker = q.notify();
        drop(q);
        if let Some(w) = waker {
            w.wake();
        }
        report.queued.push(peer.clone());
    }
}

/// The future of [`Sender::wait_for_room`]. Holds no lock between polls; dropping it
/// unregisters it.
#[must_use = "futures do nothing unless polled"]
pub struct WaitForRoom {
    slot: Option<Arc<PeerSlot>>,
    channel: usize,
    backlog: usize,
    /// Its entry among the peer's room waiters, while registered.
    waiter: Option<u64>,
}

impl fmt::Debug for WaitForRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitForRoom")
            .field("channel_index", &self.channel)
            .field("registered", &self.waiter.is_some())
            .finish_non_exhaustive()
    }
}

impl Future for WaitForRoom {
    type Output = Result<(), MuxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(slot) = &this.slot else {
            return Poll::Ready(Err(MuxError::NotConnected));
        };
        let mut q = lock(&slot.queues);
        let registered = this.waiter.take();
        // Whatever happens below, the old entry (if still there) is replaced or removed.
        if let Some(id) = registered {
            q.room_waiters.retain(|w| w.id != id);
        }
        if q.closed {
            return Poll::Ready(Err(MuxError::NotConnected));
        }
        // Channels cannot be added once a peer exists, so the index is in range; treat a miss
        // as not connected rather than panic.
        let Some(&queued) = q.queued.get(this.channel) else {
            return Poll::Ready(Err(MuxError::NotConnected));
        };
        if queued < this.backlog {
            return Poll::Ready(Ok(()));
        }
        let id = q.next_waiter;
        q.next_waiter = q.next_waiter.wrapping_add(1);
        q.room_waiters.push(RoomWaiter {
            id,
            channel: this.channel,
            waker: cx.waker().clone(),
        });
        this.waiter = Some(id);
        Poll::Pending
    }
}

impl Drop for WaitForRoom {
    fn drop(&mut self) {
        if let (Some(id), Some(slot)) = (self.waiter, &self.slot) {
            lock(&slot.queues).room_waiters.retain(|w| w.id != id);
        }
    }
}

/// Why a control frame was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlRefused {
    /// The peer is not connected.
    #[error("peer is not connected")]
    NotConnected,
    /// The peer's control queue is full.
    #[error("control queue is full")]
    Full,
}

/// Queues already-encoded control frames (version info, discovery bit vectors and records) for
/// one peer. Cheap to clone, `Send + Sync`.
///
/// A control frame is one whole frame plaintext (an encoded `p2p.v1.Message` that is not a
/// `Chunk`). The scheduler emits it at the next frame boundary, even between two chunks of a
/// data message: it is not a chunk, so the rule that chunks of two messages never interleave
/// still holds (the receiver's reassembler only sees chunks).
pub struct ControlSender<P> {
    pub(crate) shared: Arc<Shared<P>>,
}

impl<P> Clone for ControlSender<P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<P> fmt::Debug for ControlSender<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlSender").finish_non_exhaustive()
    }
}

impl<P: Eq + std::hash::Hash> ControlSender<P> {
    /// Queues `frame` for `peer`.
    pub fn send(&self, peer: &P, frame: Bytes) -> Result<(), ControlRefused> {
        let peers = read(&self.shared.peers);
        let slot = peers.get(peer).ok_or(ControlRefused::NotConnected)?;
        let mut q = lock(&slot.queues);
        if q.closed {
            return Err(ControlRefused::NotConnected);
        }
        if q.control.len() >= q.control_cap {
            return Err(ControlRefused::Full);
        }
        q.control.push_back(frame);
        let waker = q.notify();
        drop(q);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}
