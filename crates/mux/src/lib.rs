//! Channels, per-channel rate limits, send priorities and backlogs.
//!
//! Everything that decides what is sent when, and what an inbound message may do, without a
//! socket or a runtime: the facade (`p2p`) connects it to its reader and writer tasks.
//!
//! - [`Mux`]: the channel registry and the set of connected peers.
//! - [`Sender`] / [`Receiver`]: the application's handles of one channel.
//! - [`Scheduler`]: per-peer outbound state machine (owned by the peer's writer task).
//! - [`InboundPeer`]: per-peer inbound state machine (owned by the peer's reader task).
//! - [`ControlSender`]: queues already-encoded control frames (version, discovery) for a peer.
//! - [`Metrics`]: prometheus-client families, registered by the facade.
//!
//! # Driver call order
//!
//! Setup, before any peer connects:
//! 1. [`Mux::new`]`(config)`, then [`Mux::register`] once per channel (ids unique), keeping the
//!    [`Sender`]/[`Receiver`] pairs for the application; [`Mux::metrics`]`().`[`register`](
//!    Metrics::register) into the user's registry; [`Mux::control_sender`] for discovery.
//!
//! Per connection, once the handshake is done:
//! 2. [`Mux::peer_connected`]`(peer)` returns [`PeerHandles`]: give `scheduler` to the writer
//!    task and `inbound` to the reader task.
//! 3. Writer task, in a loop:
//!    ```text
//!    loop {
//!        let s = frame::begin(&mut out);
//!        match scheduler.poll_frame(now, &mut out) {
//!            Control | Chunk { .. } => { cipher.seal(&mut out, s.body_offset()); frame::finish(&mut out, s, max)?;
//!                                        if out.len() >= WRITE_BATCH { write_all(out); out.clear(); } }
//!            Idle { retry_at } => { out.truncate(start of s); if !out.is_empty() { write_all(out); out.clear(); }
//!                                   wait for scheduler.ready() or sleep_until(retry_at), whichever first }
//!            Closed => break,
//!        }
//!    }
//!    ```
//! 4. Reader task, for each decoded and opened frame whose `Message` is a `Chunk`, with `now`
//!    the time the frame's bytes were read from the socket:
//!    `match inbound.handle_chunk(chunk, now)?` (an `Err` is fatal: close the connection;
//!    [`MuxError::is_fatal`])
//!    - [`Inbound::Incomplete`] / [`Inbound::Delivered`]: go on;
//!    - [`Inbound::Throttled`]`{ until }`: do not read from the socket before `until` (frames
//!      already read may still be handled);
//!    - [`Inbound::Backpressured`]: `inbound.deliver().await` (returns an optional instant
//!      before which not to read), then go on.
//!
//!    Non-chunk messages (version, bit vectors, peer records) go to the facade's discovery
//!    logic, never to the mux.
//! 5. When the connection ends: [`Mux::peer_disconnected`]`(&peer)` (dropping the scheduler
//!    does the same); drop the [`InboundPeer`]. Queued messages for the peer are freed and
//!    counted (`mux_dropped{reason="QueuedAtDisconnect"}`), as is a complete inbound message
//!    held for a full receiver queue (`HeldAtDisconnect`); later sends report the peer as not
//!    connected.
//!
//! Application: [`Sender::send`] (or [`Sender::send_into`] with a reused report) from any
//! thread; [`Receiver::recv`] / [`Receiver::poll_recv`] from any async runtime.
//!
//! # Design
//!
//! Outbound: a send validates the size, compresses once (if the channel compresses), and pushes
//! one shared [`bytes::Bytes`] into each recipient's bounded per-channel queue (the backlog
//! counts both priorities), reporting per recipient whether it was queued ([`SendReport`]). The
//! scheduler of each peer emits one frame per [`Scheduler::poll_frame`]: control frames first
//! (at any frame boundary: they are not chunks, so chunks of two messages still never
//! interleave), then the remaining chunks of the current message, then the next message: high
//! priority before low, and within a priority one message per channel in round robin, so a busy
//! channel cannot starve another. Outbound rate limits are per recipient and per channel
//! (governor GCRA, the channel's quota): a channel whose quota for this peer is exhausted is
//! skipped (other channels go on) and [`PollFrame::Idle`] says when to retry. Queues are
//! `VecDeque` ring buffers that keep their capacity; the hot path allocates nothing per message
//! beyond the payload.
//!
//! Inbound: one reassembler per peer, the channel lookup, decompression bounded by the channel's
//! maximum message size, and two limiters per peer and channel: the channel's quota (exceeding
//! it pauses reading from that peer only: [`Inbound::Throttled`]; the message is still
//! delivered, never dropped) and the quota scaled by [`MuxConfig::gross_violation_factor`] in
//! both rate and burst (exceeding that is [`MuxError::RateLimitExceeded`], fatal). With `now`
//! being the read time, a peer therefore gets at most the gross rate delivered before it is
//! disconnected, and its reader pauses as soon as it is over the plain quota.
//!
//! Full receiver queue: backpressure, not drop. The complete message is held in the peer's
//! [`InboundPeer`] and the reader of that peer stops until the application makes room
//! ([`Inbound::Backpressured`]). Only peers that send on that channel wait; other channels'
//! receivers and other peers' readers are unaffected (a peer blocked on one channel is blocked
//! on all its channels: its frames arrive in one stream). A message arriving after the channel's
//! [`Receiver`] was dropped is discarded and counted (`mux_dropped{reason="ReceiverClosed"}`),
//! as are the messages that were waiting in its queue when it was dropped.
//!
//! Nothing the mux holds is freed without a count: every message a [`Sender`] queued is either
//! handed to a connection (`mux_messages_sent`) or counted as `QueuedAtDisconnect`. What it
//! cannot count is a message in flight: taken from the queue, with bytes in the writer's
//! buffer, the kernel's socket buffers or the peer's reassembler when the connection ends.
//! Without acknowledgements no layer can know whether those arrived.
//!
//! Channels are fixed once the first peer connects ([`MuxError::RegistryClosed`]), so every
//! per-peer structure is sized once.
//!
//! # Security
//!
//! Requires: channel quotas and maximum sizes chosen for the application (they must match
//! across peers: a peer's outbound limit is our inbound limit); the facade closing the
//! connection on every fatal [`MuxError`] and honouring [`Inbound::Throttled`] and
//! [`Inbound::Backpressured`].
//!
//! Provides: a peer cannot make us buffer more than one channel maximum per connection in
//! reassembly, nor decompress beyond it; cannot use unregistered channels; is slowed when over
//! quota and disconnected when grossly over it; cannot slow other peers except through a
//! channel receiver that the application does not drain. Outbound memory per peer is bounded by
//! the sum of channel backlogs (in messages) plus the control backlog.
//!
//! Does not provide: fairness between peers on the same inbound channel beyond what the quota
//! gives; confidentiality against compression side channels: a channel that compresses secrets
//! together with attacker-influenced data in one message leaks information through the
//! compressed length (CRIME/BREACH); compression is off unless a channel asks for it.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod inbound;
mod limit;
mod metrics;
mod scheduler;
mod send;
mod state;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

/// The pieces of p2p-framing this crate uses.
mod framing {
    pub(crate) use p2p_framing::{
        chunk::{Chunker, Reassembler, ReassemblyError, envelope_len},
        compress::{self, CompressError},
    };
}

use std::{
    collections::hash_map::Entry,
    fmt,
    hash::Hash,
    num::{NonZeroU32, NonZeroUsize},
    sync::{Arc, OnceLock, RwLock},
};

use governor::Quota;

pub use crate::{
    error::MuxError,
    inbound::{Inbound, InboundPeer, Receiver},
    metrics::{ChannelLabel, Direction, DropReason, DroppedLabel, Metrics, RateLimitedLabel},
    scheduler::{PollFrame, Scheduler},
    send::{ControlRefused, ControlSender, Priority, Recipients, SendReport, Sender, WaitForRoom},
};
use crate::{
    inbound::Inbox,
    state::{Channel, PeerQueues, PeerSlot, Shared, Table, lock, write},
};

/// Mux configuration. None of these fields has to match across peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MuxConfig {
    /// Largest plaintext of one frame (the frame body minus the AEAD tag); every chunk but the
    /// last of a message fills it exactly.
    pub max_frame_plaintext: u32,
    /// Control frames (version, discovery) queued per peer before [`ControlRefused::Full`].
    pub control_backlog: NonZeroUsize,
    /// A peer sending on a channel faster than this many times its quota (in rate and burst)
    /// is disconnected ([`MuxError::RateLimitExceeded`]); below that it is only slowed down.
    pub gross_violation_factor: NonZeroU32,
}

impl MuxConfig {
    /// Defaults for the mux on its own: 64 KiB frames, 32 control frames, disconnect at 4x the
    /// quota. The `p2p` facade's presets replace `max_frame_plaintext` with the handshake's
    /// `max_frame_len` minus the tag (1 MiB - 16), which is what goes on the wire.
    pub const fn recommended() -> Self {
        Self {
            max_frame_plaintext: 64 * 1024 - 16,
            control_backlog: NonZeroUsize::new(32).expect("32 is not zero"),
            gross_violation_factor: NonZeroU32::new(4).expect("4 is not zero"),
        }
    }
}

impl Default for MuxConfig {
    fn default() -> Self {
        Self::recommended()
    }
}

/// What a connected peer is to this node (decided by the session manager at admission).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Role {
    /// A member of a tracked peer set (or a bootstrapper): every channel.
    #[default]
    Validator,
    /// A registered observer: every channel but the validators-only ones.
    Observer,
}

/// What the facade gets for one connected peer.
#[derive(Debug)]
pub struct PeerHandles<P: Clone + Eq + Hash> {
    /// Outbound state machine, for the peer's writer task.
    pub scheduler: Scheduler<P>,
    /// Inbound state machine, for the peer's reader task.
    pub inbound: InboundPeer<P>,
}

/// The channel registry and the set of connected peers.
///
/// Generic over the peer key type `P` (the facade uses an identity public key).
pub struct Mux<P> {
    config: MuxConfig,
    metrics: Metrics,
    shared: Arc<Shared<P>>,
    channels: Vec<Arc<Channel<P>>>,
    table: OnceLock<Arc<Table<P>>>,
}

impl<P> fmt::Debug for Mux<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mux")
            .field("config", &self.config)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl<P> Mux<P>
where
    P: Clone + Eq + Hash + Ord + fmt::Debug + Send + Sync + 'static,
{
    /// A mux with no channels and no peers.
    pub fn new(config: MuxConfig) -> Self {
        Self {
            config,
            metrics: Metrics::default(),
            shared: Arc::new(Shared {
                peers: RwLock::new(Default::default()),
                parked: std::sync::Mutex::new(Default::default()),
            }),
            channels: Vec::new(),
            table: OnceLock::new(),
        }
    }

    /// The metric families (register them with [`Metrics::register`]).
    pub const fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The configuration.
    pub const fn config(&self) -> &MuxConfig {
        &self.config
    }

    /// Like [`Mux::register`], for a channel that only validators use: a peer connected as an
    /// observer ([`Role::Observer`]) is no recipient of [`Recipients::All`] on it, a send
    /// naming it reports it in [`SendReport::restricted`], and a message it sends on the
    /// channel is dropped (after its rate limits are applied) and reported as
    /// [`Inbound::Refused`]; both counted in `mux_dropped{reason="ValidatorsOnly"}`. Local
    /// policy: peers need not agree on it.
    pub fn register_validators_only(
        &mut self,
        channel: u32,
        quota: Quota,
        max_message_size: usize,
        backlog: usize,
        compression: Option<i32>,
    ) -> Result<(Sender<P>, Receiver<P>), MuxError> {
        self.register_channel(channel, quota, max_message_size, backlog, compression, true)
    }

    /// Registers channel `channel`: its quota (per peer, each direction), maximum message size
    /// (in bytes, after compression on the wire and after decompression in memory), backlog (per
    /// peer: outbound messages queued for one recipient, and the shared receiver queue) and
    /// optional zstd level.
    ///
    /// Fails with [`MuxError::DuplicateChannel`], [`MuxError::InvalidChannel`] (zero backlog or
    /// zero maximum size) or [`MuxError::RegistryClosed`] (a peer already connected).
    pub fn register(
        &mut self,
        channel: u32,
        quota: Quota,
        max_message_size: usize,
        backlog: usize,
        compression: Option<i32>,
    ) -> Result<(Sender<P>, Receiver<P>), MuxError> {
        self.register_channel(
            channel,
            quota,
            max_message_size,
            backlog,
            compression,
            false,
        )
    }

    fn register_channel(
        &mut self,
        channel: u32,
        quota: Quota,
        max_message_size: usize,
        backlog: usize,
        compression: Option<i32>,
        validators_only: bool,
    ) -> Result<(Sender<P>, Receiver<P>), MuxError> {
        if self.table.get().is_some() {
            return Err(MuxError::RegistryClosed);
        }
        if self.channels.iter().any(|c| c.id == channel) {
            return Err(MuxError::DuplicateChannel(channel));
        }
        if backlog == 0 {
            return Err(MuxError::InvalidChannel {
                channel,
                reason: "backlog must be at least 1",
            });
        }
        if max_message_size == 0 {
            return Err(MuxError::InvalidChannel {
                channel,
                reason: "maximum message size must be at least 1",
            });
        }
        let counters = self.metrics.channel(channel);
        let inbox = Arc::new(Inbox::new(backlog, counters.receiver_closed.clone()));
        let info = Arc::new(Channel {
            id: channel,
            index: self.channels.len(),
            quota,
            max_message_size,
            backlog,
            compression,
            validators_only,
            inbox: Arc::clone(&inbox),
            counters,
        });
        self.channels.push(Arc::clone(&info));
        Ok((
            Sender {
                shared: Arc::clone(&self.shared),
                channel: info,
            },
            Receiver { inbox, channel },
        ))
    }

    /// The registered channel ids, in registration order (for the version exchange).
    pub fn channel_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.channels.iter().map(|c| c.id)
    }

    /// A handle to queue control frames for connected peers.
    pub fn control_sender(&self) -> ControlSender<P> {
        ControlSender {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Adds a connected peer and returns its scheduler and inbound handle. Closes the channel
    /// registry. Fails with [`MuxError::AlreadyConnected`] if the peer is connected.
    pub fn peer_connected(&self, peer: P) -> Result<PeerHandles<P>, MuxError> {
        self.peer_connected_with(peer, Vec::new())
    }

    /// Like [`Mux::peer_connected`], with `opening` control frames already queued when the peer
    /// becomes visible to senders: they go out first, before any message or later control
    /// frame (they count against no backlog).
    pub fn peer_connected_with(
        &self,
        peer: P,
        opening: Vec<bytes::Bytes>,
    ) -> Result<PeerHandles<P>, MuxError> {
        self.peer_connected_as(peer, opening, Role::Validator)
    }

    /// Like [`Mux::peer_connected_with`], for a peer of the given [`Role`] (an observer is
    /// kept off validators-only channels, see [`Mux::register_validators_only`]).
    pub fn peer_connected_as(
        &self,
        peer: P,
        opening: Vec<bytes::Bytes>,
        role: Role,
    ) -> Result<PeerHandles<P>, MuxError> {
        let table = Arc::clone(
            self.table
                .get_or_init(|| Arc::new(Table::new(self.channels.clone()))),
        );
        let mut queues = PeerQueues::new(table.channels.len(), self.config.control_backlog.get());
        if !opening.is_empty() {
            queues.control.extend(opening);
            queues.notified = true;
        }
        let slot = Arc::new(PeerSlot {
            queues: std::sync::Mutex::new(queues),
            role,
        });
        match write(&self.shared.peers).entry(peer.clone()) {
            Entry::Occupied(_) => return Err(MuxError::AlreadyConnected),
            Entry::Vacant(v) => {
                v.insert(Arc::clone(&slot));
            }
        }
        Ok(PeerHandles {
            scheduler: Scheduler::new(
                peer.clone(),
                Arc::clone(&self.shared),
                slot,
                Arc::clone(&table),
                self.config.max_frame_plaintext,
            ),
            inbound: InboundPeer::new(
                peer,
                table,
                self.config.max_frame_plaintext,
                self.config.gross_violation_factor,
                Arc::clone(&self.shared),
            )
            .with_role(role),
        })
    }

    /// Removes a peer: its queues are freed, its scheduler reports [`PollFrame::Closed`], and
    /// later sends report it as not connected. Does nothing for an unknown peer.
    pub fn peer_disconnected(&self, peer: &P) {
        let slot = write(&self.shared.peers).remove(peer);
        if let Some(slot) = slot {
            let waker = lock(&slot.queues).close(&self.channels);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Whether `peer` is connected.
    pub fn is_connected(&self, peer: &P) -> bool {
        state::read(&self.shared.peers).contains_key(peer)
    }
}

impl<P> Drop for Mux<P> {
    fn drop(&mut self) {
        for c in &self.channels {
            c.inbox.close();
        }
    }
}
