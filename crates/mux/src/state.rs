//! State shared between senders, schedulers and inbound handles.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
    task::Waker,
};

use std::time::Instant;

use bytes::Bytes;
use governor::Quota;

use crate::{inbound::Inbox, limit::Limiter, metrics::ChannelCounters};

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves its data
/// consistent before anything that could panic, so a poisoned lock holds valid data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}

/// One registered channel.
#[derive(Debug)]
pub(crate) struct Channel<P> {
    pub(crate) id: u32,
    /// Position in registration order; indexes every per-channel vector.
    pub(crate) index: usize,
    pub(crate) quota: Quota,
    pub(crate) max_message_size: usize,
    pub(crate) backlog: usize,
    pub(crate) compression: Option<i32>,
    /// Observers may neither send nor receive on it.
    pub(crate) validators_only: bool,
    pub(crate) inbox: Arc<Inbox<P>>,
    pub(crate) counters: ChannelCounters,
}

/// The frozen channel table (fixed when the first peer connects).
#[derive(Debug)]
pub(crate) struct Table<P> {
    pub(crate) channels: Vec<Arc<Channel<P>>>,
    /// `(id, index)` sorted by id, for the inbound lookup.
    pub(crate) by_id: Vec<(u32, usize)>,
}

impl<P> Table<P> {
    pub(crate) fn new(channels: Vec<Arc<Channel<P>>>) -> Self {
        let mut by_id: Vec<(u32, usize)> = channels.iter().map(|c| (c.id, c.index)).collect();
        by_id.sort_unstable();
        Self { channels, by_id }
    }

    pub(crate) fn lookup(&self, id: u32) -> Option<&Arc<Channel<P>>> {
        let pos = self.by_id.binary_search_by_key(&id, |e| e.0).ok()?;
        self.channels.get(self.by_id[pos].1)
    }
}

/// Everything shared by the handles of one mux.
#[derive(Debug)]
pub(crate) struct Shared<P> {
    pub(crate) peers: RwLock<HashMap<P, Arc<PeerSlot>>>,
    /// Inbound limiters of peers that disconnected recently, by key, so that reconnecting does
    /// not refill a quota (see [`Parked`]).
    pub(crate) parked: Mutex<HashMap<P, Parked>>,
}

/// The inbound limiters of a disconnected peer, kept until they have fully refilled (after
/// which fresh ones are equivalent).
#[derive(Debug)]
pub(crate) struct Parked {
    /// Per channel index, as in `InboundPeer`.
    pub(crate) limiters: Vec<Option<(Limiter, Limiter)>>,
    /// When the limiters are full again.
    pub(crate) until: Instant,
}

/// The outbound queues of one connected peer, shared between the senders (producers) and the
/// peer's scheduler (consumer).
#[derive(Debug)]
pub(crate) struct PeerSlot {
    pub(crate) queues: Mutex<PeerQueues>,
    /// What the peer is to us (fixed for the connection).
    pub(crate) role: crate::Role,
}

/// Number of priorities.
pub(crate) const PRIORITIES: usize = 2;

#[derive(Debug)]
pub(crate) struct PeerQueues {
    /// `data[priority][channel index]`: FIFO of whole (already compressed) messages.
    pub(crate) data: [Vec<VecDeque<Bytes>>; PRIORITIES],
    /// Messages queued per channel, both priorities together (bounded by the channel backlog).
    pub(crate) queued: Vec<usize>,
    /// Already-encoded control frames (discovery, version), FIFO.
    pub(crate) control: VecDeque<Bytes>,
    pub(crate) control_cap: usize,
    /// Set when work was queued since the scheduler last reported idle.
    pub(crate) notified: bool,
    pub(crate) waker: Option<Waker>,
    pub(crate) closed: bool,
    /// Tasks waiting for room in one channel's backlog ([`crate::Sender::wait_for_room`]):
    /// one entry per pending future, removed when it is woken or dropped.
    pub(crate) room_waiters: Vec<RoomWaiter>,
    /// Id of the next room waiter.
    pub(crate) next_waiter: u64,
}

/// A pending [`crate::WaitForRoom`] future.
#[derive(Debug)]
pub(crate) struct RoomWaiter {
    pub(crate) id: u64,
    /// The channel index it waits on.
    pub(crate) channel: usize,
    pub(crate) waker: Waker,
}

impl PeerQueues {
    pub(crate) fn new(channels: usize, control_cap: usize) -> Self {
        let empty = || (0..channels).map(|_| VecDeque::new()).collect::<Vec<_>>();
        Self {
            data: [empty(), empty()],
            queued: vec![0; channels],
            control: VecDeque::new(),
            control_cap,
            notified: false,
            waker: None,
            closed: false,
            room_waiters: Vec::new(),
            next_waiter: 0,
        }
    }

    /// Marks new work and returns the waker to wake once the lock is released.
    pub(crate) fn notify(&mut self) -> Option<Waker> {
        self.notified = true;
        self.waker.take()
    }

    /// Takes the wakers of the tasks waiting for room on channel `index` (call after a message
    /// of that channel left the queue), to wake once the lock is released.
    pub(crate) fn take_room_waiters(&mut self, index: usize) -> Vec<Waker> {
        if self.room_waiters.is_empty() {
            return Vec::new();
        }
        let mut woken = Vec::new();
        self.room_waiters.retain(|w| {
            if w.channel == index {
                woken.push(w.waker.clone());
                false
            } else {
                true
            }
        });
        woken
    }

    /// Frees every queue (peer disconnected), counting each message still queued as
    /// `QueuedAtDisconnect` on its channel (`channels` in index order, as the queues), and
    /// returns the waker to wake. Closing again counts nothing: the queues are empty.
    pub(crate) fn close<P>(&mut self, channels: &[Arc<Channel<P>>]) -> Option<Waker> {
        self.closed = true;
        for prio in &mut self.data {
            for (index, q) in prio.iter_mut().enumerate() {
                if !q.is_empty()
                    && let Some(channel) = channels.get(index)
                {
                    channel.counters.queued_at_disconnect.inc_by(q.len() as u64);
                }
                *q = VecDeque::new();
            }
        }
        self.queued.iter_mut().for_each(|n| *n = 0);
        self.control = VecDeque::new();
        // Waiters for room learn that the peer is gone (each future then reports it).
        for w in std::mem::take(&mut self.room_waiters) {
            w.waker.wake();
        }
        self.notify()
    }
}
