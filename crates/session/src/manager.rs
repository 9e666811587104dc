//! The peer manager: admission, the connection table, the tracker, the dial plan, pings and
//! evictions, behind one short-held lock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_discovery::{
    Address, DirectVerifier, KeepConnection, PeersOutcome, RecordVerifier, SetStats, Tracker,
    resolve_duplicate,
};
use p2p_handshake::Refusal;
use p2p_identity::{PeerId, Verifier};
use p2p_mux::Role;
use p2p_proto::message::Payload;
use p2p_proto::{BitVec, Peer, Peers};
use rand::Rng;

use crate::decode::{Kind, encode};
use crate::{Error, Refused, SessionConfig};

mod roles;

/// Limits of the [`Manager`]. None has to match across peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerConfig {
    /// Inbound connections (handshaking, in the version step or established) at once.
    pub max_inbound: NonZeroUsize,
    /// Inbound handshakes in progress at once.
    pub max_inbound_handshakes: NonZeroUsize,
    /// Outbound dials (connect and handshake) in progress at once.
    pub max_dials: NonZeroUsize,
    /// Inbound handshakes accepted per source address per minute (burst: the same number).
    pub handshakes_per_ip_per_minute: NonZeroU32,
    /// Inbound handshakes accepted per source prefix ([`source_prefix`]: /24 for IPv4, /64 for
    /// IPv6) per minute (burst: the same number). One host usually owns a whole IPv6 /64, so
    /// the per-address limit alone would give it unlimited fresh quotas.
    pub handshakes_per_prefix_per_minute: NonZeroU32,
    /// Inbound handshakes in progress at once from one source prefix (at most
    /// `max_inbound_handshakes`): silent connections from one network cannot take every slot.
    pub max_handshakes_per_prefix: NonZeroUsize,
    /// Most source addresses the rate limiter remembers at once (and, separately, most
    /// prefixes).
    pub max_tracked_ips: NonZeroUsize,
    /// How long [`Manager::block`] refuses a key; after it the key may connect again (and is
    /// dialable at once). Measured on the Unix-millisecond clock passed as `now_ms`.
    pub block_duration: Duration,
    /// Inbound connections of observers (keys registered with [`Manager::handle_observers`]
    /// that are in no tracked set) at once, counted apart from `max_inbound`: observers
    /// cannot take validators' places, nor validators theirs. 0 refuses inbound observers
    /// (they may still be dialed).
    pub max_observer_inbound: usize,
}

/// Most connection events [`Manager`] keeps for [`Manager::poll_event`]; past it the oldest is
/// dropped (and counted in [`Manager::events_dropped`]). The facade drains after every call
/// that can add one, so this bound is only reached by a driver that never polls.
pub const MAX_PENDING_EVENTS: usize = 4096;

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

impl Direction {
    /// The direction of a connection that `dialed_by_me` or not.
    pub const fn of(dialed_by_me: bool) -> Self {
        if dialed_by_me {
            Self::Outbound
        } else {
            Self::Inbound
        }
    }
}

/// What happened to a peer's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerEventKind {
    /// The connection was admitted and registered with the mux: sends to the peer are queued
    /// from now on.
    Connected,
    /// The connection ended. `reason` is a short, stable label: one of the manager's own
    /// ([`CLOSE_BLOCKED`], [`CLOSE_REQUESTED`], [`CLOSE_EVICTED`], [`CLOSE_REPLACED`]) when the
    /// manager asked for the close, else the driver's (for the facade: the labels of
    /// `p2p_disconnects_total`).
    Disconnected {
        /// Why.
        reason: &'static str,
    },
}

/// One connection event ([`Manager::poll_event`]). For one key, every `Connected` is followed
/// by exactly one `Disconnected` before the next `Connected`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerEvent<V> {
    /// The peer.
    pub peer: V,
    /// Who opened the connection.
    pub direction: Direction,
    /// What happened.
    pub kind: PeerEventKind,
}

/// Close reason: the key was blocked ([`Manager::block`]).
pub const CLOSE_BLOCKED: &str = "blocked";
/// Close reason: the application asked ([`Manager::disconnect`]).
pub const CLOSE_REQUESTED: &str = "disconnect_requested";
/// Close reason: the key left every tracked set.
pub const CLOSE_EVICTED: &str = "evicted";
/// Close reason: a newer connection to the key replaced this one (simultaneous dials).
pub const CLOSE_REPLACED: &str = "replaced";

/// A bootstrapper given by peer id whose id matches no key of the tracked sets (reported by
/// [`Housekeeping::unresolved`]): it is not dialed until a registered set has a key with that
/// id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bootstrapper {id}@{addr}: no key of the tracked peer sets has this peer id")]
pub struct UnknownPeerId {
    /// The id from the URL.
    pub id: PeerId,
    /// The address from the URL (a socket or a host name).
    pub addr: Address,
}

/// Why [`Manager::dial_now`] did not schedule a dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialNowError {
    /// The key is ours.
    #[error("cannot dial ourselves")]
    SelfDial,
    /// The key is in no tracked set and is not a bootstrapper.
    #[error("peer not authorized")]
    NotAuthorized,
    /// The key is blocked.
    #[error("peer blocked")]
    Blocked,
    /// The key is connected already.
    #[error("peer already connected")]
    AlreadyConnected,
}

/// The source prefix an address is counted under: the /24 of an IPv4 address, the /64 of an
/// IPv6 one. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener reports
/// for IPv4 clients) counts as the IPv4 address it carries; otherwise every IPv4 client would
/// share one /64.
pub fn source_prefix(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::from(std::net::Ipv6Addr::from(bits))
        }
    }
}

/// One planned dial. Holding it holds one of the [`ManagerConfig::max_dials`] slots; report
/// the outcome with [`Manager::admit`] (after the handshake and the version step) or
/// [`Manager::handle_dial_failed`].
#[derive(Debug)]
pub struct Dial<V: Verifier, H, C: RecordVerifier<V> = DirectVerifier> {
    /// The key to dial (the handshake must end with it).
    pub key: V,
    /// Where to dial it: a socket, or a host name that the driver resolves for this dial
    /// (checking the resolved addresses with `p2p_discovery::host::select_targets`); a name
    /// that does not resolve in time or resolves only to refused addresses is reported with
    /// [`Manager::handle_dial_failed`] like any failed dial.
    pub addr: Address,
    /// The dial slot; dropping it frees the slot.
    pub permit: DialPermit<V, H, C>,
}

/// A connection the manager admitted ([`Manager::admit`]).
#[derive(Debug)]
pub struct Admitted<H> {
    /// The connection's id (pass it to [`Manager::release`]).
    pub id: u64,
    /// The connection this one replaced under the simultaneous-dial rule: close it.
    pub replaced: Option<H>,
    /// Our signed record, to send after the version info (`None` in lookup mode: no record
    /// is ever sent).
    pub record: Option<Peer>,
    /// A bit vector of a random tracked set, to send after the record.
    pub bit_vec: Option<BitVec>,
    /// What the peer is to us: register it with the mux as such
    /// (`p2p_mux::Mux::peer_connected_as`).
    pub role: Role,
}

/// The discovery ping interval in ms (at least 1).
fn ping_interval_ms<V: Verifier, C: RecordVerifier<V>>(tracker: &Tracker<V, C>) -> u64 {
    u64::try_from(tracker.config().ping_interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What [`Manager::poll_housekeeping`] asks the driver to do.
#[derive(Debug)]
pub struct Housekeeping<V, H> {
    /// The ping (an encoded `BitVec` frame) and the connected peers to send it to.
    pub ping: Option<(Bytes, Vec<V>)>,
    /// Connections to close: their keys left every tracked set.
    pub evict: Vec<H>,
    /// Counts per tracked set, for metrics.
    pub stats: Vec<SetStats>,
    /// Keys blocked right now (expired blocks are forgotten first).
    pub blocked: usize,
    /// Blocks that expired in this call: those keys are dialable now, so the driver should
    /// poll dials at once when it is not zero.
    pub unblocked: usize,
    /// Peer-id bootstrappers found to match no tracked key since the last call (each reported
    /// once per change of the tracked sets).
    pub unresolved: Vec<UnknownPeerId>,
    /// Admitted connections of observers (either direction).
    pub observers: usize,
}

/// What [`Manager::handle_accept`] grants: a handshake slot and a place under the inbound cap.
pub type InboundPermits<V, H, C = DirectVerifier> =
    (HandshakePermit<V, H, C>, InboundPermit<V, H, C>);

/// One admitted connection.
#[derive(Debug)]
struct Entry<H> {
    id: u64,
    dialed_by_me: bool,
    handle: H,
    /// Whether `Connected` was reported (then `Disconnected` is reported when it ends).
    announced: bool,
    /// Why the manager asked the driver to close it, if it did.
    cause: Option<&'static str>,
    /// What the peer was when admitted.
    role: Role,
    /// When (Unix ms) the peer's next housekeeping ping is due. Each connection keeps its own
    /// phase, drawn at admission, so a node's pings are spread over the interval.
    next_ping_ms: u64,
}

/// A bootstrapper named by peer id, not yet matched to a tracked key.
#[derive(Debug)]
struct IdBoot {
    id: PeerId,
    addr: Address,
    /// Whether its failure to match was already reported for the current sets.
    reported: bool,
}

/// Everything under the lock.
#[derive(Debug)]
struct Inner<V: Verifier, H, C: RecordVerifier<V>> {
    tracker: Tracker<V, C>,
    peers: HashMap<V, Entry<H>>,
    /// Blocked keys and when their block ends (Unix ms; `None`: never).
    blocked: HashMap<V, Option<u64>>,
    events: VecDeque<PeerEvent<V>>,
    events_dropped: u64,
    id_boots: Vec<IdBoot>,
    /// Whether the tracked sets changed since the peer-id bootstrappers were last matched.
    id_boots_dirty: bool,
    next_id: u64,
    inbound: usize,
    /// Inbound observer connections admitted; each was moved here from `inbound` at admission
    /// and moves back when it leaves the table (its inbound permit then frees the place).
    observer_inbound: usize,
    handshakes: usize,
    /// Handshakes in progress per source prefix (entries removed at zero, so at most
    /// `max_inbound_handshakes` of them).
    handshakes_by_prefix: HashMap<IpAddr, usize>,
    dials: usize,
    limiter: AddressLimiter,
    prefix_limiter: AddressLimiter,
    /// Discovery budgets per key (not per connection, so reconnecting does not refill them).
    budgets: HashMap<V, Budget>,
}

/// A key's discovery budgets: one token bucket per kind, kept as the instant at which the
/// bucket will be full again (at or before now: full).
#[derive(Clone, Copy, Debug)]
struct Budget {
    bit_vecs_full_at: Instant,
    peers_full_at: Instant,
}

/// The set of connections of one node and the policy that governs them (see the crate docs).
///
/// `H` is the driver's handle of one connection (the facade: a close signal). The manager keeps
/// one per admitted connection and hands clones back when a connection must close (replaced,
/// evicted, blocked). Every method takes the lock for a bounded amount of work; no signature is
/// verified under it.
///
/// `C` verifies peer records: [`DirectVerifier`] (every record, for real) except in simulations,
/// which share one `p2p_discovery::SharedRecordCache` between all their nodes. It is cloned out
/// of the tracker under the lock and used without it.
#[derive(Debug)]
pub struct Manager<V: Verifier, H, C: RecordVerifier<V> = DirectVerifier> {
    me: V,
    namespace: Bytes,
    config: ManagerConfig,
    inner: Mutex<Inner<V, H, C>>,
}

impl<V: Verifier, H: Clone, C: RecordVerifier<V> + Clone> Manager<V, H, C> {
    /// A manager around `tracker` (built with our record and bootstrappers), at `now`.
    pub fn new(config: ManagerConfig, tracker: Tracker<V, C>, now: Instant) -> Self {
        let per_minute = config.handshakes_per_ip_per_minute;
        let per_prefix = config.handshakes_per_prefix_per_minute;
        let max_ips = config.max_tracked_ips.get();
        Self {
            me: tracker.me().clone(),
            namespace: tracker.config().namespace.clone(),
            config,
            inner: Mutex::new(Inner {
                tracker,
                peers: HashMap::new(),
                blocked: HashMap::new(),
                events: VecDeque::new(),
                events_dropped: 0,
                id_boots: Vec::new(),
                id_boots_dirty: false,
                next_id: 0,
                inbound: 0,
                observer_inbound: 0,
                handshakes: 0,
                handshakes_by_prefix: HashMap::new(),
                dials: 0,
                limiter: AddressLimiter::new(per_minute, max_ips, now),
                prefix_limiter: AddressLimiter::new(per_prefix, max_ips, now),
                budgets: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V, H, C>> {
        // Every critical section leaves the state consistent between statements, so the data
        // of a poisoned lock is still valid.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Our key.
    pub fn me(&self) -> &V {
        &self.me
    }

    /// The network namespace (records are verified in it).
    pub fn namespace(&self) -> &Bytes {
        &self.namespace
    }

    /// The limits.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    // ------------------------------------------------------------------------------------------
    // Before the handshake
    // ------------------------------------------------------------------------------------------

    /// An inbound TCP connection from `ip` arrived at `now`. In order: the rate limits of the
    /// address and of its prefix ([`source_prefix`]), a free handshake slot overall and for the
    /// prefix, the inbound cap. On success the returned permits hold
    /// the slot and the inbound place; drop the handshake permit when the handshake ends and the
    /// inbound permit when the connection ends.
    pub fn handle_accept(
        self: &Arc<Self>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<InboundPermits<V, H, C>, Refused> {
        let ip = ip.to_canonical();
        let prefix = source_prefix(ip);
        let mut inner = self.lock();
        // Every attempt that passes a rate limit spends from it, even if refused later (for a
        // full slot table): retrying against full slots is itself limited.
        let at_ip = inner.limiter.check(ip, now)?;
        inner.limiter.commit(ip, at_ip);
        let at_prefix = inner
            .prefix_limiter
            .check(prefix, now)
            .map_err(Refused::for_prefix)?;
        inner.prefix_limiter.commit(prefix, at_prefix);
        if inner.handshakes >= self.config.max_inbound_handshakes.get() {
            return Err(Refused::HandshakeSlotsFull);
        }
        let in_prefix = inner
            .handshakes_by_prefix
            .get(&prefix)
            .copied()
            .unwrap_or(0);
        if in_prefix >= self.config.max_handshakes_per_prefix.get() {
            return Err(Refused::PrefixHandshakesFull);
        }
        if inner.inbound >= self.config.max_inbound.get() {
            return Err(Refused::InboundCap);
        }
        inner.handshakes += 1;
        *inner.handshakes_by_prefix.entry(prefix).or_insert(0) += 1;
        inner.inbound += 1;
        Ok((
            HandshakePermit {
                manager: Arc::clone(self),
                prefix,
            },
            InboundPermit {
                manager: Arc::clone(self),
            },
        ))
    }

    /// The handshake's authorizer: the cheap checks before the dialer's key is parsed or any
    /// signature verified. `key` is the dialer's claimed key as raw bytes (see
    /// `p2p_handshake::Dialee::handle_hello`): it is looked up by its bytes among the
    /// authorized keys (in a tracked set or a bootstrapper), so a stranger's key is refused
    /// without any curve arithmetic. In order: our own key (`Other`), in no tracked set and
    /// not a bootstrapper (`NotAuthorized`), blocked at `now_ms` (`Blocked`), already admitted
    /// (`AlreadyConnected`).
    pub fn authorize(&self, key: &[u8], now_ms: u64) -> Result<(), Refusal> {
        if key == self.me.as_bytes() {
            return Err(Refusal::Other("self connection"));
        }
        let inner = self.lock();
        let Some(key) = inner.tracker.authorized_key(key) else {
            return Err(Refusal::NotAuthorized);
        };
        if inner.is_blocked(key, now_ms) {
            return Err(Refusal::Blocked);
        }
        if inner.peers.contains_key(key) {
            return Err(Refusal::AlreadyConnected);
        }
        if inner.tracker.is_observer(key)
            && inner.observer_inbound >= self.config.max_observer_inbound
        {
            return Err(Refusal::ObserverCap);
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Admission
    // ------------------------------------------------------------------------------------------

    /// Admits a connection whose handshake and version step succeeded, atomically: under one
    /// lock the key is checked (not ourselves, not blocked at `now_ms`, authorized), the simultaneous-dial
    /// rule applied, the connection inserted and the tracker told. A peer-set rotation either
    /// happens before (and the key is refused) or after (and evicts it).
    ///
    /// A refused connection that we dialed is reported to discovery as a failed dial.
    pub fn admit<R: Rng + ?Sized>(
        &self,
        key: &V,
        dialed_by_me: bool,
        handle: H,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<Admitted<H>, Refused> {
        let mut inner = self.lock();
        let refused = if *key == self.me {
            Some(Refused::SelfConnection)
        } else if inner.is_blocked(key, now_ms) {
            Some(Refused::Blocked)
        } else if !inner.tracker.is_authorized(key) {
            Some(Refused::NotAuthorized)
        } else if !dialed_by_me
            && inner.tracker.is_observer(key)
            && inner.observer_inbound >= self.config.max_observer_inbound
            && !inner
                .peers
                .get(key)
                .is_some_and(|e| e.counted_as_observer())
        {
            // (A connection replacing an inbound observer's takes its place.)
            Some(Refused::ObserverCap)
        } else {
            None
        };
        if let Some(reason) = refused {
            if dialed_by_me {
                let _ = inner.tracker.handle_dial_failed(key, now_ms, rng);
            }
            return Err(reason);
        }
        let mut replaced = None;
        if let Some(existing) = inner.peers.get(key) {
            match resolve_duplicate(&self.me, key, existing.dialed_by_me, dialed_by_me) {
                KeepConnection::Existing => {
                    if dialed_by_me {
                        // The dial's answer: the peer is connected (ignored by the tracker).
                        let _ = inner.tracker.handle_dial_failed(key, now_ms, rng);
                    }
                    return Err(Refused::Duplicate);
                }
                KeepConnection::New => {
                    replaced = Some(existing.handle.clone());
                    if existing.announced {
                        let event = PeerEvent {
                            peer: key.clone(),
                            direction: Direction::of(existing.dialed_by_me),
                            kind: PeerEventKind::Disconnected {
                                reason: CLOSE_REPLACED,
                            },
                        };
                        inner.push_event(event);
                    }
                }
            }
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let role = if inner.tracker.is_observer(key) {
            Role::Observer
        } else {
            Role::Validator
        };
        // The admission vector below is the first; the first periodic ping comes at a random
        // point of the next interval.
        let ping_ms = ping_interval_ms(&inner.tracker);
        let entry = Entry {
            id,
            dialed_by_me,
            handle,
            announced: false,
            cause: None,
            role,
            next_ping_ms: now_ms.saturating_add(rng.random_range(1..=ping_ms)),
        };
        if entry.counted_as_observer() {
            // Its inbound place moves from the validators' cap to the observers'.
            inner.inbound = inner.inbound.saturating_sub(1);
            inner.observer_inbound += 1;
        }
        if let Some(old) = inner.peers.insert(key.clone(), entry) {
            inner.forget_entry(&old);
        }
        // Authorized above, under this same lock, so the tracker accepts it.
        let _ = inner.tracker.handle_connected(key, dialed_by_me);
        let record = inner.tracker.opening_record();
        let bit_vec = inner.tracker.random_bit_vec(rng);
        Ok(Admitted {
            id,
            replaced,
            record,
            bit_vec,
            role,
        })
    }

    /// A connection to `key` ended before it was admitted (handshake done, version step
    /// failed). A dial is reported to discovery as failed.
    pub fn handle_not_admitted<R: Rng + ?Sized>(
        &self,
        key: &V,
        dialed_by_me: bool,
        now_ms: u64,
        rng: &mut R,
    ) {
        if dialed_by_me {
            let _ = self.lock().tracker.handle_dial_failed(key, now_ms, rng);
        }
    }

    /// Admitted connection `id` of `key` is ready for traffic (the driver registered it with
    /// the mux): queues its [`PeerEventKind::Connected`] event. Does nothing if `id` is no
    /// longer the current connection of `key`.
    pub fn handle_established(&self, key: &V, id: u64) {
        let mut inner = self.lock();
        let Some(entry) = inner.peers.get_mut(key).filter(|e| e.id == id) else {
            return;
        };
        entry.announced = true;
        let event = PeerEvent {
            peer: key.clone(),
            direction: Direction::of(entry.dialed_by_me),
            kind: PeerEventKind::Connected,
        };
        inner.push_event(event);
    }

    /// Admitted connection `id` of `key` ended, for `reason` (the driver's label; replaced by
    /// the manager's own when the manager asked for the close). Returns whether it was the
    /// current connection of `key` (then the driver also removes it from the mux); only then
    /// is a [`PeerEventKind::Disconnected`] event queued (if `Connected` was).
    pub fn release<R: Rng + ?Sized>(
        &self,
        key: &V,
        id: u64,
        reason: &'static str,
        now_ms: u64,
        rng: &mut R,
    ) -> bool {
        let mut inner = self.lock();
        let current = inner.peers.get(key).is_some_and(|e| e.id == id);
        if current && let Some(entry) = inner.peers.remove(key) {
            inner.forget_entry(&entry);
            let _ = inner.tracker.handle_disconnected(key, now_ms, rng);
            if entry.announced {
                let event = PeerEvent {
                    peer: key.clone(),
                    direction: Direction::of(entry.dialed_by_me),
                    kind: PeerEventKind::Disconnected {
                        reason: entry.cause.unwrap_or(reason),
                    },
                };
                inner.push_event(event);
            }
        }
        current
    }

    /// The oldest connection event not yet taken, if any (see [`PeerEvent`]). The facade
    /// drains it after every call that may add one, in order, under its own lock.
    pub fn poll_event(&self) -> Option<PeerEvent<V>> {
        self.lock().events.pop_front()
    }

    /// Events dropped because more than [`MAX_PENDING_EVENTS`] waited (zero while the driver
    /// drains them).
    pub fn events_dropped(&self) -> u64 {
        self.lock().events_dropped
    }

    // ------------------------------------------------------------------------------------------
    // The application's controls
    // ------------------------------------------------------------------------------------------

    /// Registers peer set `index`; returns the connections to close (their keys left every
    /// tracked set).
    pub fn handle_peer_set(
        &self,
        index: u64,
        keys: Vec<V>,
    ) -> Result<Vec<H>, p2p_discovery::Error> {
        let mut inner = self.lock();
        inner.tracker.handle_peer_set(index, keys)?;
        inner.id_boots_dirty = true;
        for b in &mut inner.id_boots {
            b.reported = false;
        }
        Ok(take_evictions(&mut inner))
    }

    /// Adds a bootstrapper named only by its peer id (`<peer-id>@host:port`). It is matched
    /// against the keys of the tracked sets when dials are planned ([`Manager::poll_dials`]):
    /// once a tracked key has that id, the key becomes a bootstrapper at `addr` (always
    /// authorized, as a bootstrapper given by key); until then it is not dialed and
    /// [`Housekeeping::unresolved`] reports it. Returns `false` for an id already added.
    pub fn add_id_bootstrapper(&self, id: PeerId, addr: impl Into<Address>) -> bool {
        let addr = addr.into();
        let mut inner = self.lock();
        if inner.id_boots.iter().any(|b| b.id == id) {
            return false;
        }
        inner.id_boots.push(IdBoot {
            id,
            addr,
            reported: false,
        });
        inner.id_boots_dirty = true;
        true
    }

    /// Peer-id bootstrappers not matched to a tracked key yet.
    pub fn unresolved_bootstrappers(&self) -> usize {
        self.lock().id_boots.len()
    }

    /// Blocks `key` for the configured [`ManagerConfig::block_duration`] from `now_ms` (see
    /// [`Manager::block_for`]); returns its connection to close, if any.
    pub fn block(&self, key: V, now_ms: u64) -> Option<H> {
        self.block_for(key, Some(self.config.block_duration), now_ms)
    }

    /// Blocks `key` for `duration` from `now_ms` (`None`: until [`Manager::unblock`]). A block
    /// replaces any earlier one of the key. While it lasts the key's handshakes, admissions and
    /// dials are refused; when it ends the key may connect again and is dialable at once.
    /// Returns the key's connection to close, if any (its `Disconnected` event says
    /// [`CLOSE_BLOCKED`]).
    pub fn block_for(&self, key: V, duration: Option<Duration>, now_ms: u64) -> Option<H> {
        let until = duration.map(|d| {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            now_ms.saturating_add(ms)
        });
        let mut inner = self.lock();
        let handle = inner.peers.get_mut(&key).map(|e| {
            e.cause = Some(CLOSE_BLOCKED);
            e.handle.clone()
        });
        inner.blocked.insert(key, until);
        handle
    }

    /// Lifts a block; the key is dialable at once (its backoff, grown by the refused dials
    /// while blocked, is reset), so the driver should poll dials now.
    pub fn unblock(&self, key: &V) {
        let mut inner = self.lock();
        if inner.blocked.remove(key).is_some() {
            let _ = inner.tracker.handle_dial_now(key);
        }
    }

    /// Whether `key` is blocked at `now_ms`.
    pub fn is_blocked(&self, key: &V, now_ms: u64) -> bool {
        self.lock().is_blocked(key, now_ms)
    }

    /// Asks for `key`'s connection to close without blocking it; returns the handle to close,
    /// if it is connected. Its `Disconnected` event says [`CLOSE_REQUESTED`]. The key stays
    /// authorized, so it may reconnect (and is redialed after the usual backoff).
    pub fn disconnect(&self, key: &V) -> Option<H> {
        let mut inner = self.lock();
        inner.peers.get_mut(key).map(|e| {
            e.cause = Some(CLOSE_REQUESTED);
            e.handle.clone()
        })
    }

    /// Makes `key` due for a dial now (its backoff reset); the driver should poll dials at
    /// once. A dial in progress is not duplicated, and an address the tracker does not know
    /// stays undialable.
    ///
    /// Errors: [`DialNowError`]: ourselves, not authorized, blocked at `now_ms`, connected.
    pub fn dial_now(&self, key: &V, now_ms: u64) -> Result<(), DialNowError> {
        if *key == self.me {
            return Err(DialNowError::SelfDial);
        }
        let mut inner = self.lock();
        if inner.is_blocked(key, now_ms) {
            return Err(DialNowError::Blocked);
        }
        if inner.peers.contains_key(key) {
            return Err(DialNowError::AlreadyConnected);
        }
        inner
            .tracker
            .handle_dial_now(key)
            .map_err(|_| DialNowError::NotAuthorized)
    }

    /// The handle of `key`'s connection, if it is connected.
    pub fn connection(&self, key: &V) -> Option<H> {
        self.lock().peers.get(key).map(|e| e.handle.clone())
    }

    /// The admitted peers.
    pub fn connected(&self) -> Vec<V> {
        self.lock().peers.keys().cloned().collect()
    }

    /// Whether `key` may connect now (in a tracked set or a bootstrapper).
    pub fn is_authorized(&self, key: &V) -> bool {
        self.lock().tracker.is_authorized(key)
    }

    /// Every admitted peer that is no longer authorized (for checks: always empty once the
    /// handles returned by [`Manager::handle_peer_set`] are closed and released).
    pub fn unauthorized_connected(&self) -> Vec<V> {
        let inner = self.lock();
        inner
            .peers
            .keys()
            .filter(|k| !inner.tracker.is_authorized(k))
            .cloned()
            .collect()
    }

    // ------------------------------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------------------------------

    /// Whom to dial now: due dials from discovery, at most as many as free dial slots, blocked
    /// keys reported as failed instead. Peer-id bootstrappers are first matched against the
    /// tracked keys ([`Manager::add_id_bootstrapper`]).
    pub fn poll_dials<R: Rng + ?Sized>(
        self: &Arc<Self>,
        now_ms: u64,
        rng: &mut R,
    ) -> Vec<Dial<V, H, C>> {
        let mut inner = self.lock();
        inner.resolve_id_boots();
        let free = self.config.max_dials.get().saturating_sub(inner.dials);
        if free == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        while out.len() < free {
            let planned = inner.tracker.poll_dials_at_most(now_ms, free - out.len());
            if planned.is_empty() {
                break;
            }
            for (key, addr) in planned {
                if inner.is_blocked(&key, now_ms) {
                    // Backed off by the failure, so it is not planned again at once.
                    let _ = inner.tracker.handle_dial_failed(&key, now_ms, rng);
                    continue;
                }
                inner.dials += 1;
                out.push(Dial {
                    key,
                    addr,
                    permit: DialPermit {
                        manager: Arc::clone(self),
                    },
                });
            }
        }
        out
    }

    /// A dial failed (connect error, handshake error or timeout).
    pub fn handle_dial_failed<R: Rng + ?Sized>(&self, key: &V, now_ms: u64, rng: &mut R) {
        let _ = self.lock().tracker.handle_dial_failed(key, now_ms, rng);
    }

    /// The periodic work: the ping (at most once per discovery ping interval), evictions, set
    /// counts, and forgetting idle limiter entries.
    pub fn poll_housekeeping<R: Rng + ?Sized>(
        &self,
        now_ms: u64,
        now: Instant,
        rng: &mut R,
    ) -> Housekeeping<V, H> {
        let mut inner = self.lock();
        let ping_ms = ping_interval_ms(&inner.tracker);
        let mut due = Vec::new();
        for (key, e) in inner.peers.iter_mut() {
            if e.next_ping_ms <= now_ms {
                e.next_ping_ms = now_ms.saturating_add(ping_ms);
                due.push(key.clone());
            }
        }
        // One vector for this tick's peers, built now: what the answers of the peers pinged
        // at earlier ticks taught us is in it, so they are not sent to us again.
        let ping = if due.is_empty() {
            None
        } else {
            inner
                .tracker
                .ping_vector(rng)
                .map(|bv| (encode(&Payload::BitVec(bv)), due))
        };
        let evict = take_evictions(&mut inner);
        let stats = inner.tracker.stats();
        // Expired blocks: forgotten, and the key is dialable at once (as after `unblock`).
        let mut expired = Vec::new();
        inner.blocked.retain(|k, until| {
            let live = until.is_none_or(|t| t > now_ms);
            if !live {
                expired.push(k.clone());
            }
            live
        });
        for k in &expired {
            let _ = inner.tracker.handle_dial_now(k);
        }
        let mut unresolved = Vec::new();
        if !inner.id_boots_dirty {
            for b in inner.id_boots.iter_mut().filter(|b| !b.reported) {
                b.reported = true;
                unresolved.push(UnknownPeerId {
                    id: b.id,
                    addr: b.addr.clone(),
                });
            }
        }
        inner.limiter.forget_idle(now);
        inner.prefix_limiter.forget_idle(now);
        // A full bucket counts like no bucket at all.
        inner
            .budgets
            .retain(|_, b| b.bit_vecs_full_at.max(b.peers_full_at) > now);
        Housekeeping {
            ping,
            evict,
            stats,
            blocked: inner.blocked.len(),
            unblocked: expired.len(),
            unresolved,
            observers: inner
                .peers
                .values()
                .filter(|e| e.role == Role::Observer)
                .count(),
        }
    }

    // ------------------------------------------------------------------------------------------
    // Discovery, for sessions
    // ------------------------------------------------------------------------------------------

    /// A bit vector from the admitted peer `from`: the gossip answer, if any.
    pub fn handle_bit_vec<R: Rng + ?Sized>(
        &self,
        from: &V,
        bit_vec: &BitVec,
        rng: &mut R,
    ) -> Result<Option<Peers>, p2p_discovery::Error> {
        self.lock().tracker.handle_bit_vec(from, bit_vec, rng)
    }

    /// Records from the admitted peer `from`: checked under the lock, verified without it,
    /// stored under it if still newer. A flood of records costs only the caller's time.
    ///
    /// Errors: as [`Tracker::handle_peers`]; the records verified before a bad signature are
    /// stored.
    pub fn handle_peers(
        &self,
        from: &V,
        peers: Peers,
        now_ms: u64,
    ) -> Result<PeersOutcome, p2p_discovery::Error> {
        let (plan, mut verifier) = {
            let inner = self.lock();
            let plan = inner.tracker.plan_peers(from, peers, now_ms)?;
            (plan, inner.tracker.verifier().clone())
        };
        let mut outcome = PeersOutcome {
            accepted: 0,
            ignored: plan.ignored,
            dropped: plan.dropped,
        };
        let mut verified = Vec::with_capacity(plan.candidates.len());
        let mut failure = None;
        for candidate in &plan.candidates {
            match verifier.verify(
                &self.namespace,
                &candidate.key,
                &candidate.address,
                candidate.timestamp,
                &candidate.signature,
            ) {
                Ok(record) => verified.push(record),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !verified.is_empty() {
            let mut inner = self.lock();
            for (candidate, record) in plan.candidates.iter().zip(verified) {
                if inner.tracker.commit_candidate(candidate, record) {
                    outcome.accepted += 1;
                } else {
                    outcome.ignored += 1;
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }

    /// Counts one discovery message of `kind` (`BitVec` or `Peers`) from the admitted `peer`
    /// at `now` against the peer's budget: a token bucket refilled at the kind's maximum per
    /// `config.budget_interval` and holding `config.budget_burst` intervals' worth, so
    /// messages that piled up while our reader paused pass, and a sustained rate above the
    /// maximum does not. The budget belongs to the key, so reconnecting does not refill it.
    ///
    /// Errors: [`Error::DiscoveryFlood`] past the budget (close the connection).
    pub fn spend_discovery(
        &self,
        peer: &V,
        kind: Kind,
        now: Instant,
        config: &SessionConfig,
    ) -> Result<(), Error> {
        let mut inner = self.lock();
        let full = Budget {
            bit_vecs_full_at: now,
            peers_full_at: now,
        };
        let b = inner.budgets.entry(peer.clone()).or_insert(full);
        let (full_at, max) = match kind {
            Kind::BitVec => (&mut b.bit_vecs_full_at, config.max_bit_vecs.get()),
            _ => (&mut b.peers_full_at, config.max_peers_messages.get()),
        };
        // One message costs interval / max of refill time; the bucket holds burst intervals.
        // (Checked: a configured interval near `Duration::MAX` must not panic; past the
        // instants the platform can hold, the bucket counts as empty.)
        let cost = config.budget_interval / max;
        let capacity = config
            .budget_interval
            .checked_mul(config.budget_burst.get())
            .unwrap_or(Duration::MAX);
        match (*full_at).max(now).checked_add(cost) {
            Some(spent) if spent.saturating_duration_since(now) <= capacity => {
                *full_at = spent;
                Ok(())
            }
            _ => Err(Error::DiscoveryFlood { kind, max }),
        }
    }

    /// Reads the tracker (for metrics, tests and tools).
    pub fn with_tracker<T>(&self, f: impl FnOnce(&Tracker<V, C>) -> T) -> T {
        f(&self.lock().tracker)
    }
}

/// Handles of the connected keys the tracker evicted.
fn take_evictions<V: Verifier, H: Clone, C: RecordVerifier<V>>(
    inner: &mut Inner<V, H, C>,
) -> Vec<H> {
    let keys = inner.tracker.take_evictions();
    keys.iter()
        .filter_map(|k| {
            inner.peers.get_mut(k).map(|e| {
                e.cause = Some(CLOSE_EVICTED);
                e.handle.clone()
            })
        })
        .collect()
}

impl<H> Entry<H> {
    /// Whether this connection holds a place under the observers' inbound cap.
    fn counted_as_observer(&self) -> bool {
        self.role == Role::Observer && !self.dialed_by_me
    }
}

impl<V: Verifier, H, C: RecordVerifier<V>> Inner<V, H, C> {
    /// An entry left the table: an inbound observer's place goes back to `inbound`, where its
    /// inbound permit frees it.
    fn forget_entry(&mut self, entry: &Entry<H>) {
        if entry.counted_as_observer() {
            self.observer_inbound = self.observer_inbound.saturating_sub(1);
            self.inbound += 1;
        }
    }

    fn is_blocked(&self, key: &V, now_ms: u64) -> bool {
        match self.blocked.get(key) {
            None => false,
            Some(None) => true,
            Some(Some(until)) => *until > now_ms,
        }
    }

    fn push_event(&mut self, event: PeerEvent<V>) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
            self.events_dropped = self.events_dropped.saturating_add(1);
        }
        self.events.push_back(event);
    }

    /// Matches the peer-id bootstrappers against the tracked keys once per change of the
    /// sets: a match becomes a bootstrapper of the tracker (and leaves the list); the rest
    /// stay, to be reported by housekeeping.
    fn resolve_id_boots(&mut self) {
        if !self.id_boots_dirty {
            return;
        }
        self.id_boots_dirty = false;
        if self.id_boots.is_empty() {
            return;
        }
        let mut found = Vec::new();
        for (key, _) in self.tracker.records() {
            if *key == *self.tracker.me() {
                continue;
            }
            let id = key.peer_id();
            if let Some(pos) = self.id_boots.iter().position(|b| b.id == id) {
                found.push((key.clone(), self.id_boots.swap_remove(pos).addr));
                if self.id_boots.is_empty() {
                    break;
                }
            }
        }
        for (key, addr) in found {
            self.tracker.add_bootstrapper(key, addr);
        }
    }
}

macro_rules! permit {
    ($name:ident, $field:ident, $doc:literal) => {
        #[doc = $doc]
        pub struct $name<V: Verifier, H, C: RecordVerifier<V> = DirectVerifier> {
            manager: Arc<Manager<V, H, C>>,
        }

        impl<V: Verifier, H, C: RecordVerifier<V>> Drop for $name<V, H, C> {
            fn drop(&mut self) {
                let mut inner = self
                    .manager
                    .inner
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                inner.$field = inner.$field.saturating_sub(1);
            }
        }

        impl<V: Verifier, H, C: RecordVerifier<V>> std::fmt::Debug for $name<V, H, C> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

/// One inbound handshake slot (overall and for its source prefix); dropping it frees both.
pub struct HandshakePermit<V: Verifier, H, C: RecordVerifier<V> = DirectVerifier> {
    manager: Arc<Manager<V, H, C>>,
    prefix: IpAddr,
}

impl<V: Verifier, H, C: RecordVerifier<V>> Drop for HandshakePermit<V, H, C> {
    fn drop(&mut self) {
        let mut inner = self
            .manager
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.handshakes = inner.handshakes.saturating_sub(1);
        if let Some(n) = inner.handshakes_by_prefix.get_mut(&self.prefix) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.handshakes_by_prefix.remove(&self.prefix);
            }
        }
    }
}

impl<V: Verifier, H, C: RecordVerifier<V>> std::fmt::Debug for HandshakePermit<V, H, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakePermit")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

permit!(
    InboundPermit,
    inbound,
    "One place under the inbound cap; dropping it frees the place."
);
permit!(
    DialPermit,
    dials,
    "One outbound dial slot; dropping it frees the slot."
);

/// A per-address handshake rate limit (GCRA with a burst of one minute's quota), with a table
/// bounded in size.
#[derive(Debug)]
struct AddressLimiter {
    base: Instant,
    /// Time between two handshakes at the sustained rate.
    interval: Duration,
    /// How far the theoretical arrival time may run ahead of now.
    tolerance: Duration,
    /// Per address: the theoretical arrival time, as an offset from `base`.
    table: HashMap<IpAddr, Duration>,
    max: usize,
}

impl AddressLimiter {
    fn new(per_minute: NonZeroU32, max: usize, now: Instant) -> Self {
        let interval = Duration::from_secs(60) / per_minute.get();
        Self {
            base: now,
            interval,
            tolerance: interval * (per_minute.get() - 1),
            table: HashMap::new(),
            max,
        }
    }

    /// Whether `ip` may handshake at `now`; on success, the entry to [`Self::commit`] when the
    /// handshake is granted (nothing changes before that).
    fn check(&mut self, ip: IpAddr, now: Instant) -> Result<Duration, Refused> {
        let now = now.saturating_duration_since(self.base);
        if !self.table.contains_key(&ip) && self.table.len() >= self.max {
            self.table.retain(|_, tat| *tat > now);
            if self.table.len() >= self.max {
                return Err(Refused::AddressTableFull);
            }
        }
        let tat = self.table.get(&ip).copied().unwrap_or(now).max(now);
        if tat - now > self.tolerance {
            return Err(Refused::AddressRateLimited);
        }
        Ok(tat + self.interval)
    }

    fn commit(&mut self, ip: IpAddr, tat: Duration) {
        self.table.insert(ip, tat);
    }

    /// Forgets addresses whose quota is full again (they behave exactly as unknown ones).
    fn forget_idle(&mut self, now: Instant) {
        let now = now.saturating_duration_since(self.base);
        self.table.retain(|_, tat| *tat > now);
        if self.table.capacity() > 4 * self.table.len().max(16) {
            self.table.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_limiter_bursts_then_refills() {
        let t0 = Instant::now();
        let mut l = AddressLimiter::new(NonZeroU32::new(3).unwrap(), 2, t0);
        let a: IpAddr = [127, 0, 0, 1].into();
        let check = |l: &mut AddressLimiter, ip, at| l.check(ip, at).map(|tat| l.commit(ip, tat));
        for _ in 0..3 {
            assert_eq!(check(&mut l, a, t0), Ok(()));
        }
        assert_eq!(check(&mut l, a, t0), Err(Refused::AddressRateLimited));
        // One handshake per 20 s comes back.
        assert_eq!(check(&mut l, a, t0 + Duration::from_secs(20)), Ok(()));
        assert_eq!(
            check(&mut l, a, t0 + Duration::from_secs(20)),
            Err(Refused::AddressRateLimited)
        );
        // The table is bounded: a third address is refused while both entries are busy.
        let b: IpAddr = [127, 0, 0, 2].into();
        let c: IpAddr = [127, 0, 0, 3].into();
        assert_eq!(check(&mut l, b, t0 + Duration::from_secs(20)), Ok(()));
        assert_eq!(
            check(&mut l, c, t0 + Duration::from_secs(20)),
            Err(Refused::AddressTableFull)
        );
        // Once idle, entries are forgotten and room comes back.
        l.forget_idle(t0 + Duration::from_secs(600));
        assert!(l.table.is_empty());
        assert_eq!(check(&mut l, c, t0 + Duration::from_secs(600)), Ok(()));
    }
}
