//! One established connection: the version step, the send order, routing, budgets, pauses.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_discovery::RecordVerifier;
use p2p_handshake::version::{self, MAX_CHANNELS, MAX_SOFTWARE_VERSION_LEN};
use p2p_identity::Verifier;
use p2p_mux::{Inbound, InboundPeer};
use p2p_proto::message::Payload;
use p2p_proto::{Peer, Peers, VersionInfo};
use rand::Rng;

use crate::Error;
use crate::decode::{self, Kind, Limits};
use crate::manager::{Admitted, Manager};

/// Settings of every session of a node. None has to match across peers, but the budgets must
/// leave room for what honest peers send (see `docs/protocol.md`, "Session rules").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long after the handshake the peer's version info may take.
    pub version_timeout: Duration,
    /// A connection that receives nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The budget interval (the discovery ping interval).
    pub budget_interval: Duration,
    /// Most `BitVec` messages accepted per budget interval (an honest peer sends one per its
    /// ping interval, plus one right after connecting).
    pub max_bit_vecs: NonZeroU32,
    /// Most `Peers` messages accepted per budget interval (an honest peer sends its record
    /// once and answers each of our bit vectors at most once).
    pub max_peers_messages: NonZeroU32,
    /// How many intervals' worth of unused budget a peer keeps (the budgets are token buckets
    /// refilled at `max_bit_vecs` and `max_peers_messages` per interval, holding at most this
    /// many intervals' worth). When our reader pauses (backpressure, a rate-limit pause, a
    /// descheduled process), the pings that piled up meanwhile are read together; a budget
    /// counted in fixed windows took them for a flood. A flooder gains one burst of this
    /// size, then the rate.
    pub budget_burst: NonZeroU32,
    /// Counts and lengths checked before decoding.
    pub limits: Limits,
    /// Largest plaintext of a batch frame this node sends to a peer that accepts them
    /// ([`Session::coalesce_limit`]); 0 sends one chunk per frame. Receiving batches does not
    /// depend on it.
    pub coalesce_limit: usize,
}

/// The protocol minor version from which a peer accepts batch frames (several whole messages'
/// chunks in one frame; `docs/protocol.md`, "Batch frames").
pub const BATCH_MINOR: u32 = 1;

/// The protocol minor version from which a peer accepts peer records whose address is a host
/// name (`Peer.socket` tag `0x48`; `docs/protocol.md`, "Host-name records"). An older peer
/// treats such a record as malformed and closes the connection, so none is ever sent to it:
/// [`Session::handle_admitted`] leaves out our own record if it is one, and gossip answers to
/// it leave them out too.
pub const HOST_MINOR: u32 = 2;

/// The default [`SessionConfig::coalesce_limit`]: 16 KiB of plaintext per batch frame.
pub const DEFAULT_COALESCE_LIMIT: usize = 16 * 1024;

impl SessionConfig {
    /// Settings derived from the discovery configuration: budgets of 4 bit vectors and 8 peers
    /// messages per ping interval, of which up to 4 intervals' worth accumulate, record and
    /// bit-vector limits from discovery's.
    pub fn new(
        discovery: &p2p_discovery::Config,
        version_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            version_timeout,
            idle_timeout,
            budget_interval: discovery.ping_interval.max(Duration::from_millis(1)),
            max_bit_vecs: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
            max_peers_messages: NonZeroU32::new(8).unwrap_or(NonZeroU32::MIN),
            budget_burst: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
            limits: Limits {
                max_records: discovery.max_records_per_message.get(),
                max_channels: MAX_CHANNELS,
                max_software_version: MAX_SOFTWARE_VERSION_LEN,
                max_bit_vec_bytes: discovery.max_peer_set_size.get().div_ceil(8),
            },
            coalesce_limit: DEFAULT_COALESCE_LIMIT,
        }
    }
}

/// The two clocks a session reads: a monotonic instant for its timers and the Unix time in
/// milliseconds for discovery's record timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub instant: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// What the driver does after [`Session::handle_frame`].
#[derive(Debug)]
#[must_use = "the driver must act on the event"]
pub enum Event {
    /// Go on: drain [`Session::poll_transmit`], respect [`Session::poll_read`], read on.
    Continue,
    /// The version info was accepted: admit the peer ([`Manager::admit`]) and hand the result
    /// to [`Session::handle_admitted`] before the next frame.
    Admit,
    /// A delivered message waits for room in its channel's queue: wait for
    /// [`Session::poll_deliver`] before the next frame.
    WaitForRoom,
    /// The frame was dropped without closing the connection (the error says why, for logs).
    Ignored(p2p_discovery::Error),
}

/// The peer's version info, sanitized for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerVersion {
    /// Protocol major version.
    pub major: u32,
    /// Protocol minor version.
    pub minor: u32,
    /// The software version, with control and non-ASCII characters escaped.
    pub software: String,
    /// The channel ids the peer registered.
    pub channels: Vec<u32>,
}

enum Phase<V: Verifier> {
    /// Waiting for the version info until the deadline.
    Version { deadline: Instant },
    /// Version accepted, waiting for [`Session::handle_admitted`].
    Accepted,
    /// Admitted: frames are routed.
    Admitted { inbound: Box<InboundPeer<V>> },
}

/// The session of one established connection (see the crate docs for the driver's order).
pub struct Session<V: Verifier> {
    peer: V,
    dialed_by_me: bool,
    config: SessionConfig,
    ours: VersionInfo,
    phase: Phase<V>,
    last_received: Instant,
    paused_until: Option<Instant>,
    outbox: VecDeque<Bytes>,
    version: Option<PeerVersion>,
    /// Discovery messages of this connection's opening not charged to the key's budget (see
    /// [`OPENING_BIT_VECS`], [`OPENING_PEERS`]).
    opening: Opening,
    /// The envelopes of a batch frame not handled yet ([`Session::handle_rest`]).
    batch: Bytes,
}

/// `BitVec` messages per connection that the key's discovery budget does not count: the one
/// every peer sends right after admission. Without it an honest peer that reconnects a few
/// times within one ping interval is closed as a flood; the allowance is bounded by the
/// handshake rate limits, since each one costs the sender a full handshake.
pub const OPENING_BIT_VECS: u32 = 1;
/// `Peers` messages per connection that the key's discovery budget does not count: the
/// peer's own record, sent right after admission, and its answer to our opening bit vector.
pub const OPENING_PEERS: u32 = 2;

impl<V: Verifier> std::fmt::Debug for Session<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("dialed_by_me", &self.dialed_by_me)
            .field("admitted", &matches!(self.phase, Phase::Admitted { .. }))
            .finish_non_exhaustive()
    }
}

impl<V: Verifier> Session<V> {
    /// A session with `peer` (authenticated by the handshake) that just completed at `now`.
    /// Its first output ([`Session::poll_transmit`]) is our version info `ours`.
    pub fn new(
        peer: V,
        dialed_by_me: bool,
        ours: VersionInfo,
        config: SessionConfig,
        now: Instant,
    ) -> Self {
        let mut outbox = VecDeque::with_capacity(3);
        outbox.push_back(decode::encode(&Payload::Version(ours.clone())));
        Self {
            peer,
            dialed_by_me,
            phase: Phase::Version {
                deadline: now + config.version_timeout,
            },
            config,
            ours,
            last_received: now,
            paused_until: None,
            outbox,
            version: None,
            opening: Opening::NEW,
            batch: Bytes::new(),
        }
    }

    /// The peer's key.
    pub fn peer(&self) -> &V {
        &self.peer
    }

    /// Whether we dialed the peer.
    pub fn dialed_by_me(&self) -> bool {
        self.dialed_by_me
    }

    /// The peer's version info, once accepted.
    pub fn peer_version(&self) -> Option<&PeerVersion> {
        self.version.as_ref()
    }

    /// How many bytes of plaintext a batch frame to this peer may hold: the configured
    /// [`SessionConfig::coalesce_limit`] if the peer's version info announced protocol minor
    /// [`BATCH_MINOR`] or later, else 0 (one chunk per frame). Give it to the peer's
    /// scheduler (`p2p_mux::Scheduler::set_coalesce_limit`) after admission.
    pub fn coalesce_limit(&self) -> usize {
        match &self.version {
            Some(v) if v.minor >= BATCH_MINOR => self.config.coalesce_limit,
            _ => 0,
        }
    }

    /// Whether the peer's version info announced protocol minor [`HOST_MINOR`] or later, so
    /// that host-name records may be sent to it.
    pub fn accepts_host_records(&self) -> bool {
        self.version.as_ref().is_some_and(|v| v.minor >= HOST_MINOR)
    }

    /// Whether the peer is admitted (frames are routed to the mux and discovery).
    pub fn is_admitted(&self) -> bool {
        matches!(self.phase, Phase::Admitted { .. })
    }

    /// The next control frame plaintext to send: our version info first (before admission);
    /// after admission, gossip answers (our record and bit vector go out with the registration,
    /// see [`Session::handle_admitted`]).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.outbox.pop_front()
    }

    /// When the driver must call [`Session::handle_timeout`] next: the version deadline until
    /// the version arrives, then the idle deadline.
    pub fn poll_timeout(&self) -> Instant {
        let idle = self.last_received + self.config.idle_timeout;
        match self.phase {
            Phase::Version { deadline } => deadline.min(idle),
            _ => idle,
        }
    }

    /// The timer of [`Session::poll_timeout`] fired at `now`.
    ///
    /// Errors: [`Error::VersionTimeout`], [`Error::Idle`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if let Phase::Version { deadline } = self.phase
            && now >= deadline
        {
            return Err(Error::VersionTimeout);
        }
        if now >= self.last_received + self.config.idle_timeout {
            return Err(Error::Idle);
        }
        Ok(())
    }

    /// Whether the driver may read from the socket at `now`: `None` if so, else the instant
    /// before which it must not (the peer is over a channel's inbound quota). Frames already
    /// read may still be handled.
    pub fn poll_read(&mut self, now: Instant) -> Option<Instant> {
        match self.paused_until {
            Some(until) if until > now => Some(until),
            _ => {
                self.paused_until = None;
                None
            }
        }
    }

    /// Bytes arrived from the socket at `now` (resets the idle timer even before a frame is
    /// complete, so a large frame's transfer does not count as silence).
    pub fn handle_bytes_received(&mut self, now: Instant) {
        self.last_received = self.last_received.max(now);
    }

    /// Handles one opened frame plaintext received at `now`.
    ///
    /// Before admission only the version info is accepted: the first frame must be it (its kind
    /// is read before anything is decoded), and it is checked against ours. After admission:
    /// chunks go to the mux, bit vectors and records to discovery through `manager` within the
    /// per-interval budgets, a second version info closes the connection.
    ///
    /// Errors: every [`Error`] but [`Error::VersionTimeout`] and [`Error::Idle`]; all close the
    /// connection.
    pub fn handle_frame<H: Clone, C: RecordVerifier<V> + Clone, R: Rng + ?Sized>(
        &mut self,
        body: Bytes,
        now: Now,
        manager: &Manager<V, H, C>,
        rng: &mut R,
    ) -> Result<Event, Error> {
        self.handle_bytes_received(now.instant);
        match &mut self.phase {
            Phase::Version { .. } => {
                let (kind, _) = decode::peek(&body)?;
                if kind != Kind::Version {
                    return Err(Error::FirstFrameNotVersion(kind));
                }
                let (_, payload) = decode::decode(body, &self.config.limits)?;
                let Payload::Version(theirs) = payload else {
                    return Err(Error::FirstFrameNotVersion(kind));
                };
                version::check(&self.ours, &theirs)?;
                self.version = Some(PeerVersion {
                    major: theirs.protocol_major,
                    minor: theirs.protocol_minor,
                    software: theirs.software_version.escape_default().collect(),
                    channels: theirs.channels,
                });
                self.phase = Phase::Accepted;
                Ok(Event::Admit)
            }
            Phase::Accepted => Err(Error::NotAdmitted),
            Phase::Admitted { .. } => {
                if !self.batch.is_empty() {
                    return Err(Error::BatchNotDrained);
                }
                match decode::decode(body.clone(), &self.config.limits) {
                    Err(decode::DecodeError::MultiplePayloads) if decode::is_batch(&body)? => {
                        self.batch = body;
                        self.handle_rest(now, manager, rng)
                            .unwrap_or(Ok(Event::Continue))
                    }
                    decoded => {
                        let (kind, payload) = decoded?;
                        self.route(kind, payload, now, manager, rng)
                    }
                }
            }
        }
    }

    /// Handles the next envelope of a batch frame, after [`Session::handle_frame`] (and after
    /// acting on its event, as for a frame of its own); `None` once the frame is done. Call
    /// it until `None` before the next frame: each envelope of a batch is handled exactly as
    /// if it had come in a frame of its own, in order.
    ///
    /// Errors: as [`Session::handle_frame`].
    pub fn handle_rest<H: Clone, C: RecordVerifier<V> + Clone, R: Rng + ?Sized>(
        &mut self,
        now: Now,
        manager: &Manager<V, H, C>,
        rng: &mut R,
    ) -> Option<Result<Event, Error>> {
        let envelope = match decode::split_batch(&mut self.batch)? {
            Ok(e) => e,
            Err(e) => return Some(Err(e.into())),
        };
        Some(
            decode::decode(envelope, &self.config.limits)
                .map_err(Error::from)
                .and_then(|(kind, payload)| self.route(kind, payload, now, manager, rng)),
        )
    }

    /// Routes one decoded payload of an admitted peer.
    fn route<H: Clone, C: RecordVerifier<V> + Clone, R: Rng + ?Sized>(
        &mut self,
        kind: Kind,
        payload: Payload,
        now: Now,
        manager: &Manager<V, H, C>,
        rng: &mut R,
    ) -> Result<Event, Error> {
        let Phase::Admitted { inbound } = &mut self.phase else {
            return Err(Error::NotAdmitted);
        };
        match payload {
            Payload::Version(_) => Err(Error::SecondVersion),
            Payload::Chunk(chunk) => {
                match inbound
                    .handle_chunk(chunk, now.instant)
                    .map_err(Error::Mux)?
                {
                    Inbound::Incomplete | Inbound::Delivered => Ok(Event::Continue),
                    Inbound::Throttled { until } => {
                        self.pause(until);
                        Ok(Event::Continue)
                    }
                    Inbound::Backpressured => Ok(Event::WaitForRoom),
                    // Dropped and counted by the mux; the connection stays.
                    Inbound::Refused { until, .. } => {
                        if let Some(until) = until {
                            self.pause(until);
                        }
                        Ok(Event::Continue)
                    }
                }
            }
            Payload::BitVec(_) | Payload::Peers(_) => {
                let routed = route_discovery(
                    &self.peer,
                    &mut self.opening,
                    kind,
                    payload,
                    now,
                    &self.config,
                    manager,
                    rng,
                );
                match routed? {
                    Routed::Answer(mut answer) => {
                        if !self.accepts_host_records() {
                            answer.peers.retain(|p| !is_host_record(p));
                        }
                        if !answer.peers.is_empty() {
                            self.outbox
                                .push_back(decode::encode(&Payload::Peers(answer)));
                        }
                        Ok(Event::Continue)
                    }
                    Routed::Done => Ok(Event::Continue),
                    Routed::Ignored(e) => Ok(Event::Ignored(e)),
                }
            }
        }
    }

    /// Whether handling `body` may take long enough to block a thread (an admitted peer's
    /// `Peers` message: up to one signature verification per record). A driver on an async
    /// runtime hands such frames to a thread that may block; the rules are the same.
    pub fn is_costly(&self, body: &[u8]) -> bool {
        self.is_admitted() && matches!(decode::peek(body), Ok((Kind::Peers, _)))
    }

    /// The manager admitted the peer (after [`Event::Admit`]): builds the opening control
    /// frames (our record, then a bit vector) and hands them to `register`, which registers the
    /// peer with the mux with those frames already queued (so no ping or message can precede
    /// them) and returns its inbound half. Frames are routed from then on. A host-name record
    /// of ours is left out for a peer older than [`HOST_MINOR`].
    pub fn handle_admitted<H, E>(
        &mut self,
        admitted: &Admitted<H>,
        register: impl FnOnce(Vec<Bytes>) -> Result<InboundPeer<V>, E>,
    ) -> Result<(), E> {
        let mut opening = Vec::with_capacity(2);
        if let Some(record) = &admitted.record
            && (self.accepts_host_records() || !is_host_record(record))
        {
            opening.push(decode::encode(&Payload::Peers(Peers {
                peers: vec![record.clone()],
            })));
        }
        if let Some(bv) = &admitted.bit_vec {
            opening.push(decode::encode(&Payload::BitVec(bv.clone())));
        }
        let inbound = register(opening)?;
        self.phase = Phase::Admitted {
            inbound: Box::new(inbound),
        };
        Ok(())
    }

    /// After [`Event::WaitForRoom`]: ready once the held message is in its channel's queue
    /// (or dropped because the receiver is gone). Runtime-agnostic.
    pub fn poll_deliver(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Phase::Admitted { inbound } = &mut self.phase else {
            return Poll::Ready(());
        };
        match inbound.poll_deliver(cx) {
            Poll::Ready(until) => {
                if let Some(until) = until {
                    self.pause(until);
                }
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn pause(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }
}

/// The discovery messages of a connection's opening that the key's budget does not count yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opening {
    pub(crate) bit_vecs: u32,
    pub(crate) peers: u32,
}

impl Opening {
    /// A new connection's allowance ([`OPENING_BIT_VECS`], [`OPENING_PEERS`]).
    pub(crate) const NEW: Self = Self {
        bit_vecs: OPENING_BIT_VECS,
        peers: OPENING_PEERS,
    };
}

/// What [`route_discovery`] did with one discovery message.
#[derive(Debug)]
pub(crate) enum Routed {
    /// A gossip answer to send back.
    Answer(Peers),
    /// Handled; nothing to send.
    Done,
    /// Dropped without closing (not fatal).
    Ignored(p2p_discovery::Error),
}

/// The routing of one discovery message (`BitVec` or `Peers`) from the admitted `peer`: the
/// opening allowance, then the key's budget, then the tracker through `manager`; fatal
/// discovery errors are `Err` (close the connection). Shared by [`Session::handle_frame`] and
/// the simulation, so both apply the same rules.
#[allow(clippy::too_many_arguments, reason = "the inputs of one session step")]
pub(crate) fn route_discovery<
    V: Verifier,
    H: Clone,
    C: RecordVerifier<V> + Clone,
    R: Rng + ?Sized,
>(
    peer: &V,
    opening: &mut Opening,
    kind: Kind,
    payload: Payload,
    now: Now,
    config: &SessionConfig,
    manager: &Manager<V, H, C>,
    rng: &mut R,
) -> Result<Routed, Error> {
    match payload {
        Payload::BitVec(bit_vec) => {
            if opening.bit_vecs > 0 {
                opening.bit_vecs -= 1;
            } else {
                manager.spend_discovery(peer, kind, now.instant, config)?;
            }
            match manager.handle_bit_vec(peer, &bit_vec, rng) {
                Ok(Some(answer)) => Ok(Routed::Answer(answer)),
                Ok(None) => Ok(Routed::Done),
                Err(e) if e.is_fatal() => Err(Error::Discovery(e)),
                Err(e) => Ok(Routed::Ignored(e)),
            }
        }
        Payload::Peers(peers) => {
            if opening.peers > 0 {
                opening.peers -= 1;
            } else {
                manager.spend_discovery(peer, kind, now.instant, config)?;
            }
            check_distinct_keys(&peers)?;
            match manager.handle_peers(peer, peers, now.unix_ms) {
                Ok(outcome) => Ok(outcome
                    .dropped
                    .into_iter()
                    .next()
                    .map_or(Routed::Done, Routed::Ignored)),
                Err(e) if e.is_fatal() => Err(Error::Discovery(e)),
                Err(e) => Ok(Routed::Ignored(e)),
            }
        }
        // Only discovery payloads are routed here.
        Payload::Version(_) => Err(Error::SecondVersion),
        Payload::Chunk(_) => Ok(Routed::Done),
    }
}

/// Whether `peer`'s address is a host name (`Peer.socket` tag `0x48`), which peers older than
/// [`HOST_MINOR`] cannot decode.
pub(crate) fn is_host_record(peer: &Peer) -> bool {
    peer.socket.first() == Some(&p2p_discovery::host::SOCKET_TAG_HOST)
}

/// At most one record per key per message (the count is bounded by the pre-decoding limit).
fn check_distinct_keys(peers: &Peers) -> Result<(), Error> {
    let mut keys: Vec<&[u8]> = peers
        .peers
        .iter()
        .filter_map(|p| p.signature.as_ref().map(|s| &s.public_key[..]))
        .collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::DuplicateRecord);
    }
    Ok(())
}
