//! The tracker: peer sets, known records, gossip answers, dial planning.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use p2p_identity::{KeyError, Signer, Verifier};
use p2p_proto::{BitVec, Peer, Peers};
use rand::Rng;

use crate::config::{Mode, ms};
use crate::host::{Address, decode_address};
use crate::record::{DirectVerifier, RecordVerifier, VerifiedRecord, sign_record_for};
use crate::{Config, Error};

const CONNECTED: u16 = 1;
const DIALING: u16 = 2;
const STALE: u16 = 4;
const BOOT: u16 = 8;
/// `unknown_after_failed_dials` consecutive dials of the record's address failed: the bit is 0
/// in the next ping we send (so peers send us any newer record), then 1 again (see
/// `Tracker::suspects`); the record is still gossiped and the address redialed at the normal
/// backoff.
const SUSPECT: u16 = 16;
/// The slot is set in the sets' bit vectors (see `Tracker::touch`).
const IN_BITS: u16 = 32;
/// The slot is set in the sets' `conn_bits` and counted as connected.
const IN_CONN: u16 = 64;
/// The slot is set in the sets' `have_bits` and counted as known.
const IN_HAVE: u16 = 128;
/// The application gave an address for this key ([`Mode::Lookup`]; kept in `addresses`).
const ADDR: u16 = 256;
/// The address changed while a dial was in progress: that dial's failure does not count.
const REDIAL: u16 = 512;

mod lookup;
mod observers;

pub use lookup::{AddressUpdate, LookupOutcome};
use observers::Observer;

/// Per-key state of a key in the union of the tracked sets (kept small: a node tracks every
/// peer of every tracked set).
#[derive(Clone, Debug, Default)]
struct Slot {
    record: Option<Arc<VerifiedRecord>>,
    next_dial_ms: u64,
    failures: u32,
    flags: u16,
}

impl Slot {
    /// We hold a record whose address is not stale: it is gossiped.
    fn known(&self) -> bool {
        (self.record.is_some() || self.flags & ADDR != 0) && self.flags & STALE == 0
    }

    /// Known and not suspect: its bit is 1 in the vectors we send.
    fn advertised(&self) -> bool {
        self.known() && self.flags & SUSPECT == 0
    }

    /// The `IN_*` flags this slot's state calls for (`is_self`: our own slot, which counts as
    /// connected for the preference of gossip answers but not in the counts).
    fn in_flags(&self) -> u16 {
        let mut f = 0;
        if self.advertised() {
            f |= IN_BITS;
        }
        if self.known() {
            f |= IN_HAVE;
        }
        if self.flags & CONNECTED != 0 {
            f |= IN_CONN;
        }
        f
    }
}

/// A bootstrapper: always authorized, always dialed while not connected.
#[derive(Clone, Debug)]
struct Boot<V> {
    key: V,
    addr: Address,
    next_dial_ms: u64,
    failures: u32,
    connected: bool,
    dialing: bool,
}

/// One registered peer set.
#[derive(Clone, Debug)]
struct PeerSet<V> {
    keys: Arc<[V]>,
    /// Position in the set -> position in the union; `None` when the set *is* the union.
    to_union: Option<Vec<u32>>,
    /// The bit vector we send (advertised keys), kept up to date as slots change (see
    /// `Tracker::touch`).
    bits: Vec<u8>,
    /// Like `bits`, for the keys whose records we gossip (known, suspect or not).
    have_bits: Vec<u8>,
    /// Like `bits`, for the keys we are connected to and ourselves (whose records gossip
    /// answers prefer).
    conn_bits: Vec<u8>,
    /// Keys of the set whose address we know (set in `have_bits`).
    known: usize,
    /// Keys of the set we are connected to.
    connected: usize,
}

impl<V> PeerSet<V> {
    fn union_pos(&self, pos: usize) -> usize {
        match &self.to_union {
            None => pos,
            // Built with one entry per key of the set.
            Some(map) => map[pos] as usize,
        }
    }
}

/// Which of two connections between the same two peers to keep (see [`resolve_duplicate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepConnection {
    /// Keep the connection that was established first; close the new one.
    Existing,
    /// Keep the new connection; close the existing one.
    New,
}

/// The simultaneous-dial rule: which of two connections between `me` and `peer` survives.
///
/// When the two connections were dialed in opposite directions, the one **dialed by the smaller
/// key** (in the keys' canonical byte order) is kept. Both peers compute the same answer, since
/// from the other side `me` and `peer` swap and so do both directions. When both connections were
/// dialed by the same side, the existing one is kept (a new connection never displaces a live
/// one; a dead one is detected by the missing pings and the next dial succeeds).
pub fn resolve_duplicate<V: Ord>(
    me: &V,
    peer: &V,
    existing_dialed_by_me: bool,
    new_dialed_by_me: bool,
) -> KeepConnection {
    if existing_dialed_by_me == new_dialed_by_me {
        return KeepConnection::Existing;
    }
    let smaller_is_me = me < peer;
    if new_dialed_by_me == smaller_is_me {
        KeepConnection::New
    } else {
        KeepConnection::Existing
    }
}

/// What [`Tracker::handle_peers`] did with the records of one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeersOutcome {
    /// Records that were new or newer than the stored ones, verified and stored.
    pub accepted: usize,
    /// Records not newer than the stored ones, our own, or of bootstrap-only keys (no
    /// signature check was spent on them).
    pub ignored: usize,
    /// Records dropped for a non-fatal reason ([`Error::UnauthorizedSigner`],
    /// [`Error::AddressRefused`], [`Error::FutureTimestamp`]).
    pub dropped: Vec<Error>,
}

/// A record that passed every check but its signature ([`Tracker::plan_peers`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordCandidate<V> {
    /// The key the record claims to be signed by (a tracked key).
    pub key: V,
    /// The advertised address (a socket or a host name).
    pub address: Address,
    /// The record's timestamp (ms since the Unix epoch).
    pub timestamp: u64,
    /// The signature bytes as received.
    pub signature: Bytes,
    /// Where the key was in the tracked union when planned (checked again at commit).
    slot: usize,
}

impl<V: Verifier> RecordCandidate<V> {
    /// Verifies the signature in `namespace` (no lock needed: touches nothing shared).
    ///
    /// Errors: [`Error::MalformedSignature`], [`Error::BadSignature`] (both fatal).
    pub fn verify(&self, namespace: &[u8]) -> Result<Arc<VerifiedRecord>, Error> {
        DirectVerifier.verify(
            namespace,
            &self.key,
            &self.address,
            self.timestamp,
            &self.signature,
        )
    }
}

/// What [`Tracker::plan_peers`] found in one `Peers` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeersPlan<V> {
    /// Records newer than the stored ones, still to verify and commit.
    pub candidates: Vec<RecordCandidate<V>>,
    /// Records not newer than the stored ones, our own, or of bootstrap-only keys.
    pub ignored: usize,
    /// Records dropped for a non-fatal reason.
    pub dropped: Vec<Error>,
}

/// Counts of one tracked peer set, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetStats {
    /// The peer-set index.
    pub index: u64,
    /// Keys in the set.
    pub peers: usize,
    /// Keys with a known, not stale address (including ourselves if we are in the set).
    pub known: usize,
    /// Keys we are connected to.
    pub connected: usize,
}

/// The sans-IO discovery tracker (see the crate docs for the order of calls).
///
/// `V` is the identity scheme's public key; `C` decides how records are verified
/// ([`DirectVerifier`] everywhere but in simulations).
#[derive(Debug)]
pub struct Tracker<V: Verifier, C: RecordVerifier<V> = DirectVerifier> {
    config: Config,
    me: V,
    my_record: Arc<VerifiedRecord>,
    verifier: C,
    sets: BTreeMap<u64, PeerSet<V>>,
    /// Sorted union of the keys of all tracked sets.
    union: Arc<[V]>,
    /// One slot per key of `union`.
    slots: Vec<Slot>,
    self_slot: Option<usize>,
    boots: Vec<Boot<V>>,
    evictions: Vec<V>,
    next_ping_ms: u64,
    /// No slot can be due for a dial before this time (see [`Tracker::poll_dials_at_most`]);
    /// lowered by every change that can make a slot dialable sooner.
    dial_scan_ms: u64,
    /// Slots marked [`SUSPECT`] since the last ping: the mark lasts for one ping, so that a
    /// peer we cannot reach costs one answer round per failed dial, not every answer until it
    /// connects.
    suspects: Vec<u32>,
    /// Application-supplied addresses of keys of `union` ([`Mode::Lookup`]).
    addresses: BTreeMap<V, SocketAddr>,
    /// Registered observers, sorted by key (see [`Tracker::handle_observers`]).
    observers: Vec<Observer<V>>,
}

impl<V: Verifier> Tracker<V> {
    /// A tracker for `me`, whose signed record is `my_record` (see [`crate::sign_record`]),
    /// with its bootstrappers (ourselves and duplicates are dropped from that list). A
    /// bootstrapper's address may be a host name: it is handed to the driver at each dial as
    /// it is, to be resolved then.
    ///
    /// Errors: [`Error::NotMyKey`] if the record is not signed by `me`, or any record
    /// validation error of [`Tracker::handle_peers`] for a malformed own record.
    pub fn new(
        config: Config,
        me: V,
        my_record: Peer,
        bootstrappers: Vec<(V, Address)>,
    ) -> Result<Self, Error> {
        Self::with_verifier(config, me, my_record, bootstrappers, DirectVerifier)
    }

    /// Signs our record for `address` (a socket or a host name) at `now_ms` and builds the
    /// tracker (see [`Tracker::new`]).
    pub fn with_signer<S: Signer<PublicKey = V>>(
        config: Config,
        signer: &S,
        address: impl Into<Address>,
        now_ms: u64,
        bootstrappers: Vec<(V, Address)>,
    ) -> Result<Self, Error> {
        let record = sign_record_for(signer, &config.namespace, &address.into(), now_ms);
        Self::new(config, signer.public_key(), record, bootstrappers)
    }
}

impl<V: Verifier, C: RecordVerifier<V>> Tracker<V, C> {
    /// Like [`Tracker::new`], verifying records through `verifier`.
    pub fn with_verifier(
        config: Config,
        me: V,
        my_record: Peer,
        bootstrappers: Vec<(V, Address)>,
        mut verifier: C,
    ) -> Result<Self, Error> {
        let sig = my_record.signature.ok_or(Error::MissingSignature)?;
        if &sig.public_key[..] != me.as_bytes() {
            return Err(Error::NotMyKey);
        }
        let address = decode_address(&my_record.socket).map_err(Error::MalformedSocket)?;
        let my_record = verifier.verify(
            &config.namespace,
            &me,
            &address,
            my_record.timestamp,
            &sig.signature,
        )?;
        let mut boots: Vec<Boot<V>> = Vec::with_capacity(bootstrappers.len());
        for (key, addr) in bootstrappers {
            if key != me && !boots.iter().any(|b| b.key == key) {
                boots.push(Boot {
                    key,
                    addr,
                    next_dial_ms: 0,
                    failures: 0,
                    connected: false,
                    dialing: false,
                });
            }
        }
        Ok(Self {
            config,
            me,
            my_record,
            verifier,
            sets: BTreeMap::new(),
            union: Arc::from(Vec::new()),
            slots: Vec::new(),
            self_slot: None,
            boots,
            evictions: Vec::new(),
            next_ping_ms: 0,
            dial_scan_ms: 0,
            suspects: Vec::new(),
            addresses: BTreeMap::new(),
            observers: Vec::new(),
        })
    }

    /// Our public key.
    pub fn me(&self) -> &V {
        &self.me
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The record verifier (e.g. to read a cache's counters).
    pub fn verifier(&self) -> &C {
        &self.verifier
    }

    // ------------------------------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------------------------------

    /// Registers the peer set `index` (keys are sorted and de-duplicated here).
    ///
    /// Keeps the `tracked_indexes` most recent (largest) indexes; older sets are forgotten, and
    /// connected peers that are in no remaining set and are not bootstrappers are queued for
    /// [`Tracker::take_evictions`].
    ///
    /// Errors: [`Error::PeerSetTooLarge`], [`Error::PeerSetExists`], [`Error::PeerSetTooOld`].
    pub fn handle_peer_set(&mut self, index: u64, mut keys: Vec<V>) -> Result<(), Error> {
        keys.sort_unstable();
        keys.dedup();
        self.insert_set(index, Arc::from(keys))
    }

    /// Like [`Tracker::handle_peer_set`] for a set shared with other trackers (no copy of the
    /// keys when it is already strictly sorted; sorted into a new allocation otherwise).
    pub fn handle_peer_set_shared(&mut self, index: u64, keys: Arc<[V]>) -> Result<(), Error> {
        if keys.windows(2).all(|w| w[0] < w[1]) {
            self.insert_set(index, keys)
        } else {
            self.handle_peer_set(index, keys.to_vec())
        }
    }

    fn insert_set(&mut self, index: u64, keys: Arc<[V]>) -> Result<(), Error> {
        let max = self.config.max_peer_set_size.get();
        if keys.len() > max {
            return Err(Error::PeerSetTooLarge {
                got: keys.len(),
                max,
            });
        }
        if self.sets.contains_key(&index) {
            return Err(Error::PeerSetExists { index });
        }
        if self.sets.len() >= self.config.tracked_indexes.get()
            && let Some((&oldest, _)) = self.sets.first_key_value()
            && index < oldest
        {
            return Err(Error::PeerSetTooOld { index, oldest });
        }
        self.sets.insert(
            index,
            PeerSet {
                keys,
                to_union: None,
                bits: Vec::new(),
                have_bits: Vec::new(),
                conn_bits: Vec::new(),
                known: 0,
                connected: 0,
            },
        );
        while self.sets.len() > self.config.tracked_indexes.get() {
            self.sets.pop_first();
        }
        self.rebuild_union();
        Ok(())
    }

    fn rebuild_union(&mut self) {
        let union: Arc<[V]> = if self.sets.len() == 1 {
            // One set: share it.
            self.sets
                .values()
                .next()
                .map(|s| s.keys.clone())
                .unwrap_or_else(|| Arc::from(Vec::new()))
        } else {
            let mut all: Vec<V> = self
                .sets
                .values()
                .flat_map(|s| s.keys.iter().cloned())
                .collect();
            all.sort_unstable();
            all.dedup();
            Arc::from(all)
        };
        for set in self.sets.values_mut() {
            set.to_union = if Arc::ptr_eq(&set.keys, &union) {
                None
            } else {
                // Every key of a set is in the union, so the search always succeeds.
                Some(
                    set.keys
                        .iter()
                        .map(|k| union.binary_search(k).unwrap_or(0) as u32)
                        .collect(),
                )
            };
        }
        // Carry the state of keys that stay; evict connected keys that leave.
        let mut slots = vec![Slot::default(); union.len()];
        let (mut i, mut j) = (0, 0);
        while i < self.union.len() {
            let old = &self.union[i];
            while j < union.len() && union[j] < *old {
                j += 1;
            }
            if j < union.len() && union[j] == *old {
                slots[j] = std::mem::take(&mut self.slots[i]);
                slots[j].flags &= !BOOT;
            } else if self.slots[i].flags & CONNECTED != 0
                && !self.boots.iter().any(|b| &b.key == old)
            {
                self.evictions.push(old.clone());
            }
            i += 1;
        }
        self.self_slot = union.binary_search(&self.me).ok();
        if let Some(s) = self.self_slot {
            slots[s].record = Some(self.my_record.clone());
            slots[s].flags = 0;
        }
        for b in &self.boots {
            if let Ok(pos) = union.binary_search(&b.key) {
                slots[pos].flags |= BOOT;
                if b.connected {
                    slots[pos].flags |= CONNECTED;
                }
            }
        }
        self.union = union;
        self.slots = slots;
        self.reapply_addresses();
        self.sync_observers();
        self.suspects = (0..self.slots.len() as u32)
            .filter(|&u| self.slots[u as usize].flags & SUSPECT != 0)
            .collect();
        self.rebuild_bits();
        self.dial_scan_ms = 0;
    }

    /// The facade completed a handshake with `peer` and keeps the connection (after applying
    /// [`resolve_duplicate`]). Call at most once per kept connection. A connection we dialed
    /// proves the record's address: a stale mark on it is cleared.
    ///
    /// Errors: [`Error::NotAuthorized`] if `peer` is not authorized (the facade must not keep
    /// such a connection).
    pub fn handle_connected(&mut self, peer: &V, dialed_by_me: bool) -> Result<(), Error> {
        let (slot, boot) = self.locate(peer);
        let observer = self.observer_connected(peer, true);
        if slot.is_none() && boot.is_none() && !observer {
            return Err(Error::NotAuthorized);
        }
        if let Some(s) = slot {
            let slot = &mut self.slots[s];
            slot.flags = (slot.flags | CONNECTED) & !(DIALING | REDIAL);
            slot.failures = 0;
            // We reached the record's address: it is not stale any more (a bootstrapper slot
            // is dialed at the configured address, which proves nothing about the record's).
            if dialed_by_me && slot.flags & (STALE | BOOT) == STALE {
                slot.flags &= !STALE;
            }
            // A connected peer sends its current record right after the handshake, so there
            // is nothing newer to ask other peers for: the suspect mark goes, whoever dialed.
            slot.flags &= !SUSPECT;
            self.touch(s);
        }
        if let Some(b) = boot {
            let boot = &mut self.boots[b];
            boot.connected = true;
            boot.dialing = false;
            boot.failures = 0;
        }
        Ok(())
    }

    /// The kept connection with `peer` closed. The peer is redialed after the base backoff plus
    /// jitter (if we know its address).
    ///
    /// Errors: [`Error::NotAuthorized`] if `peer` is no longer authorized (nothing to do then).
    pub fn handle_disconnected<R: Rng + ?Sized>(
        &mut self,
        peer: &V,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<(), Error> {
        let next = now_ms
            .saturating_add(ms(self.config.dial_backoff_base))
            .saturating_add(self.jitter(rng));
        let (slot, boot) = self.locate(peer);
        let observer = self.observer_disconnected(peer, next);
        if slot.is_none() && boot.is_none() && !observer {
            return Err(Error::NotAuthorized);
        }
        if let Some(s) = slot {
            let slot = &mut self.slots[s];
            slot.flags &= !(CONNECTED | DIALING | REDIAL);
            slot.next_dial_ms = next;
            self.touch(s);
        }
        self.dial_scan_ms = self.dial_scan_ms.min(next);
        if let Some(b) = boot {
            let boot = &mut self.boots[b];
            boot.connected = false;
            boot.dialing = false;
            boot.next_dial_ms = next;
        }
        Ok(())
    }

    /// A dial returned by [`Tracker::poll_dials`] failed (connect error, handshake error or
    /// timeout, or the peer answered with another key).
    ///
    /// The redial delay doubles with every consecutive failure (from `dial_backoff_base` up to
    /// `dial_backoff_max`, plus a random part of up to half of it, at least up to
    /// `dial_jitter`). After `max_failed_dials` consecutive failures of one
    /// record's address, that address is stale (bit 0, not gossiped) until a newer record
    /// arrives or a retry, once per `stale_redial_interval`, connects.
    /// Ignored (`Ok`) if the peer is connected meanwhile.
    ///
    /// Errors: [`Error::NotAuthorized`] if `peer` is no longer authorized.
    pub fn handle_dial_failed<R: Rng + ?Sized>(
        &mut self,
        peer: &V,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<(), Error> {
        // One draw places this retry within its spread (see `retry_delay`).
        let spread: u32 = rng.random();
        let jitter = ((u128::from(ms(self.config.dial_jitter)) * u128::from(spread)) >> 32) as u64;
        let (slot, boot) = self.locate(peer);
        let observer = self.observer_dial_failed(peer, now_ms, jitter);
        if slot.is_none() && boot.is_none() && !observer {
            return Err(Error::NotAuthorized);
        }
        if let Some(b) = boot {
            // Connected to nobody: only a bootstrapper can bring us in, so do not back off far.
            let cap = if self.isolated() {
                ms(self.config.isolated_backoff_max)
            } else {
                u64::MAX
            };
            let boot = &mut self.boots[b];
            boot.dialing = false;
            if !boot.connected {
                boot.failures = boot.failures.saturating_add(1);
                let delay = retry_delay_capped(&self.config, boot.failures, spread, cap);
                boot.next_dial_ms = now_ms.saturating_add(delay);
            }
        }
        if let Some(s) = slot {
            let max_failed = self.config.max_failed_dials.get();
            let unknown_after = self.config.unknown_after_failed_dials.get();
            let slot = &mut self.slots[s];
            if slot.flags & REDIAL != 0 {
                // The dial went to the address the application replaced meanwhile: the new
                // one is due at once, with a fresh failure count.
                slot.flags &= !(DIALING | REDIAL);
                slot.failures = 0;
                slot.next_dial_ms = 0;
                self.dial_scan_ms = 0;
                return Ok(());
            }
            slot.flags &= !DIALING;
            if slot.flags & (CONNECTED | BOOT) == 0 {
                slot.failures = slot.failures.saturating_add(1);
                slot.next_dial_ms =
                    now_ms.saturating_add(retry_delay(&self.config, slot.failures, spread));
                // An application-supplied address is never suspect or stale: no newer record
                // can come, so there is nothing to ask peers for.
                if slot.flags & ADDR == 0 {
                    if slot.failures >= unknown_after.min(max_failed) && slot.flags & SUSPECT == 0 {
                        slot.flags |= SUSPECT;
                        self.suspects.push(s as u32);
                    }
                    if slot.failures >= max_failed {
                        slot.flags |= STALE;
                    }
                }
                let next = slot.next_dial_ms;
                self.dial_scan_ms = self.dial_scan_ms.min(next);
            }
            self.touch(s);
        }
        Ok(())
    }

    /// The application lifted a block of `peer` (or otherwise wants it dialed at once): its
    /// backoff and failure count are reset, so the next [`Tracker::poll_dials`] returns it if
    /// its address is known. A stale address gets that one dial too, but the mark stays until
    /// a dial connects (after a failure it waits its backoff plus `stale_redial_interval`
    /// again). Blocked dials
    /// are reported as failures, so without this a peer unblocked after a long block would
    /// wait out the whole backoff its block accumulated.
    ///
    /// Errors: [`Error::NotAuthorized`] if `peer` is neither tracked nor a bootstrapper.
    pub fn handle_dial_now(&mut self, peer: &V) -> Result<(), Error> {
        let (slot, boot) = self.locate(peer);
        let observer = self.observer_dial_now(peer);
        if slot.is_none() && boot.is_none() && !observer {
            return Err(Error::NotAuthorized);
        }
        if let Some(s) = slot {
            let slot = &mut self.slots[s];
            slot.failures = 0;
            slot.next_dial_ms = 0;
            self.dial_scan_ms = 0;
        }
        if let Some(b) = boot {
            let boot = &mut self.boots[b];
            boot.failures = 0;
            boot.next_dial_ms = 0;
        }
        Ok(())
    }

    /// Adds `key` at `addr` as a bootstrapper (always authorized, dialed while not connected),
    /// as if it had been given to [`Tracker::new`]. Returns `false` (and changes nothing) for
    /// our own key or a key that is already a bootstrapper; the list therefore never holds a
    /// key twice.
    pub fn add_bootstrapper(&mut self, key: V, addr: impl Into<Address>) -> bool {
        let addr = addr.into();
        if key == self.me || self.boots.iter().any(|b| b.key == key) {
            return false;
        }
        // A tracked key's slot hands its dialing over to the bootstrapper entry (as
        // `insert_set` does), carrying over whether it is connected or being dialed.
        let (mut connected, mut dialing) = (false, false);
        if let Ok(u) = self.union.binary_search(&key) {
            let slot = &mut self.slots[u];
            slot.flags |= BOOT;
            connected = slot.flags & CONNECTED != 0;
            dialing = slot.flags & DIALING != 0;
        }
        self.boots.push(Boot {
            key,
            addr,
            next_dial_ms: 0,
            failures: 0,
            connected,
            dialing,
        });
        true
    }

    /// A bit vector arrived from the connected peer `from`. Returns the gossip answer to send
    /// back, if any: up to `max_gossip_records` random records that we know and `from` lacks,
    /// records of peers we are connected to (whose addresses are proven) first. `None` means
    /// the sender knows everything we know; its vector was just a ping.
    ///
    /// Errors: [`Error::UnauthorizedSender`], [`Error::UnknownIndex`] (not fatal),
    /// [`Error::WrongBitLength`], [`Error::NonzeroPadding`].
    pub fn handle_bit_vec<R: Rng + ?Sized>(
        &mut self,
        from: &V,
        bit_vec: &BitVec,
        rng: &mut R,
    ) -> Result<Option<Peers>, Error> {
        let index = bit_vec.index;
        // The sender is authorized if it is in the set the vector names (the common case, one
        // search) or anywhere else.
        let sender = self
            .sets
            .get(&index)
            .and_then(|set| find_key(&set.keys, from.as_bytes()));
        if sender.is_none() && !self.is_authorized(from) {
            return Err(Error::UnauthorizedSender);
        }
        let set = self.sets.get(&index).ok_or(Error::UnknownIndex { index })?;
        let n = set.keys.len();
        let expected = n.div_ceil(8);
        let theirs = &bit_vec.bits[..];
        if theirs.len() != expected {
            return Err(Error::WrongBitLength {
                index,
                expected,
                got: theirs.len(),
            });
        }
        if n % 8 != 0 {
            let mask = !((1u8 << (n % 8)) - 1);
            if theirs.last().is_some_and(|last| last & mask != 0) {
                return Err(Error::NonzeroPadding { index });
            }
        }
        // Lookup mode gossips nothing, and observers are never sent records: the vector was
        // a keep-alive ping.
        if self.config.mode == Mode::Lookup || self.is_observer(from) {
            return Ok(None);
        }
        // Candidates: known to us, missing from theirs, not the sender; those we are connected
        // to (their addresses are proven) or ourselves first. Counted a word at a time, then
        // a random sample of each kind is picked by rank, so an answer costs a pass over the
        // vectors and the sample, not a list of every candidate.
        let max = self.config.max_gossip_records.get();
        let candidates = |w: usize| {
            let mut missing = word(&set.have_bits, w) & !word(theirs, w);
            if let Some(p) = sender.filter(|p| p / 64 == w) {
                missing &= !(1u64 << (p % 64));
            }
            let conn = word(&set.conn_bits, w);
            (missing & conn, missing & !conn)
        };
        let words = n.div_ceil(64);
        let (mut preferred, mut others) = (0usize, 0usize);
        for w in 0..words {
            let (p, o) = candidates(w);
            preferred += p.count_ones() as usize;
            others += o.count_ones() as usize;
        }
        if preferred == 0 && others == 0 {
            return Ok(None);
        }
        let take_preferred = preferred.min(max);
        let take_others = others.min(max - take_preferred);
        let mut pick_preferred = sample_ranks(rng, preferred, take_preferred).into_iter();
        let mut pick_others = sample_ranks(rng, others, take_others).into_iter();
        let mut next_preferred = pick_preferred.next();
        let mut next_others = pick_others.next();
        let mut peers = Vec::with_capacity(take_preferred + take_others);
        let (mut seen_preferred, mut seen_others) = (0usize, 0usize);
        for w in 0..words {
            if next_preferred.is_none() && next_others.is_none() {
                break;
            }
            let (p, o) = candidates(w);
            for (mask, seen, next, picks) in [
                (
                    p,
                    &mut seen_preferred,
                    &mut next_preferred,
                    &mut pick_preferred,
                ),
                (o, &mut seen_others, &mut next_others, &mut pick_others),
            ] {
                let count = mask.count_ones() as usize;
                while let Some(rank) = *next {
                    if rank >= *seen + count {
                        break;
                    }
                    let pos = w * 64 + nth_set_bit(mask, rank - *seen);
                    if let Some(r) = &self.slots[set.union_pos(pos)].record {
                        peers.push(r.to_peer());
                    }
                    *next = picks.next();
                }
                *seen += count;
            }
        }
        Ok(Some(Peers { peers }))
    }

    /// Records arrived from the connected peer `from` (its own record right after the
    /// handshake, or a gossip answer).
    ///
    /// Each record is checked, cheapest first: signature field present, key well-formed and
    /// authorized, socket well-formed, address accepted by the configured
    /// [`crate::AddressPolicy`] (else dropped), timestamp not beyond `max_clock_skew` after
    /// `now_ms`, newer than the stored record (equal or older ones are ignored without a
    /// signature check), and only then the signature. An accepted record replaces the stored
    /// one and clears the stale mark; a changed address also clears the failure count and the
    /// redial delay, the same address keeps them.
    ///
    /// Errors (the whole message, processing stops; records before the bad one stay applied):
    /// [`Error::UnauthorizedSender`], [`Error::TooManyRecords`] (checked before any record),
    /// and the fatal record errors [`Error::MissingSignature`], [`Error::MalformedKey`],
    /// [`Error::MalformedSocket`], [`Error::MalformedSignature`], [`Error::BadSignature`].
    /// Non-fatal record errors drop only that record and are listed in
    /// [`PeersOutcome::dropped`].
    pub fn handle_peers(
        &mut self,
        from: &V,
        peers: Peers,
        now_ms: u64,
    ) -> Result<PeersOutcome, Error> {
        self.check_peers_message(from, &peers)?;
        let mut outcome = PeersOutcome::default();
        for peer in peers.peers {
            match self.apply_record(peer, now_ms) {
                Ok(true) => outcome.accepted += 1,
                Ok(false) => outcome.ignored += 1,
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => outcome.dropped.push(e),
            }
        }
        Ok(outcome)
    }

    /// The first half of [`Tracker::handle_peers`] for callers that verify signatures outside
    /// the lock that guards the tracker: every cheap check of every record, without verifying
    /// any signature and without changing anything.
    ///
    /// Returns the records that are new or newer than the stored ones (to verify with
    /// [`RecordCandidate::verify`], then store with [`Tracker::commit_record`]), and counts the
    /// others. Errors: as [`Tracker::handle_peers`], except signature errors (found by
    /// [`RecordCandidate::verify`]); on a fatal error nothing of the message applies.
    pub fn plan_peers(&self, from: &V, peers: Peers, now_ms: u64) -> Result<PeersPlan<V>, Error> {
        self.check_peers_message(from, &peers)?;
        let mut plan = PeersPlan {
            candidates: Vec::new(),
            ignored: 0,
            dropped: Vec::new(),
        };
        for peer in peers.peers {
            match self.check_record(peer, now_ms) {
                Ok(Some((_, candidate))) => plan.candidates.push(candidate),
                Ok(None) => plan.ignored += 1,
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => plan.dropped.push(e),
            }
        }
        Ok(plan)
    }

    /// The second half of [`Tracker::plan_peers`]: stores a record verified outside the lock,
    /// if it is still newer than the stored one (another connection may have stored a newer
    /// one meanwhile) and its key is still tracked. Returns whether it was stored.
    pub fn commit_record(&mut self, key: &V, record: Arc<VerifiedRecord>) -> bool {
        match find_key(&self.union, key.as_bytes()) {
            Some(u) => self.commit_at(u, record),
            None => false,
        }
    }

    /// [`Tracker::commit_record`] for the candidate's key: where the plan found it, unless
    /// the tracked sets changed meanwhile and it is no longer there.
    pub fn commit_candidate(
        &mut self,
        candidate: &RecordCandidate<V>,
        record: Arc<VerifiedRecord>,
    ) -> bool {
        if self.union.get(candidate.slot) == Some(&candidate.key) {
            self.commit_at(candidate.slot, record)
        } else {
            self.commit_record(&candidate.key, record)
        }
    }

    /// Stores the verified `record` at union position `u` if it is newer.
    fn commit_at(&mut self, u: usize, record: Arc<VerifiedRecord>) -> bool {
        if Some(u) == self.self_slot {
            return false;
        }
        if let Some(old) = &self.slots[u].record
            && old.timestamp() >= record.timestamp()
        {
            return false;
        }
        self.store_record(u, record);
        true
    }

    /// The checks of a whole `Peers` message, before any record: an authorized sender, at most
    /// `max_records_per_message` records.
    fn check_peers_message(&self, from: &V, peers: &Peers) -> Result<(), Error> {
        if !self.is_authorized(from) {
            return Err(Error::UnauthorizedSender);
        }
        let max = self.config.max_records_per_message.get();
        if peers.peers.len() > max {
            return Err(Error::TooManyRecords {
                got: peers.peers.len(),
                max,
            });
        }
        // Dropped whole, before any record is looked at (not fatal).
        let records = peers.peers.len();
        if self.config.mode == Mode::Lookup {
            return Err(Error::LookupModeRecords { records });
        }
        if self.is_observer(from) {
            return Err(Error::ObserverRecords { records });
        }
        Ok(())
    }

    /// Every check of one record but the signature. `Ok(None)` when it is to be ignored.
    fn check_record(
        &self,
        peer: Peer,
        now_ms: u64,
    ) -> Result<Option<(usize, RecordCandidate<V>)>, Error> {
        let sig = peer.signature.ok_or(Error::MissingSignature)?;
        let key_bytes = &sig.public_key[..];
        if key_bytes.len() != V::LEN {
            return Err(Error::MalformedKey(KeyError::WrongLength {
                expected: V::LEN,
                got: key_bytes.len(),
            }));
        }
        let slot = find_key(&self.union, key_bytes);
        let Some(u) = slot else {
            if self.boots.iter().any(|b| b.key.as_bytes() == key_bytes) {
                return Ok(None);
            }
            return Err(Error::UnauthorizedSigner);
        };
        let address = decode_address(&peer.socket).map_err(Error::MalformedSocket)?;
        // A host name's addresses are known only when it is resolved: the driver checks them
        // against the same policy at each dial (`crate::host::select_targets`).
        if Some(u) != self.self_slot
            && let Address::Socket(socket) = address
        {
            self.config
                .address_policy
                .check(&socket)
                .map_err(|reason| Error::AddressRefused { socket, reason })?;
        }
        let max_skew_ms = ms(self.config.max_clock_skew);
        if peer.timestamp > now_ms.saturating_add(max_skew_ms) {
            return Err(Error::FutureTimestamp {
                timestamp: peer.timestamp,
                now: now_ms,
                max_skew_ms,
            });
        }
        if Some(u) == self.self_slot {
            return Ok(None);
        }
        if let Some(old) = &self.slots[u].record
            && old.timestamp() >= peer.timestamp
        {
            return Ok(None);
        }
        Ok(Some((
            u,
            RecordCandidate {
                key: self.union[u].clone(),
                address,
                timestamp: peer.timestamp,
                signature: sig.signature,
                slot: u,
            },
        )))
    }

    /// Stores a newer record. A new address is dialed at once with a fresh failure count; the
    /// same address keeps its failure count and redial time (only the stale mark is cleared),
    /// so that re-signing a record never resets the backoff of an address that keeps failing.
    fn store_record(&mut self, u: usize, record: Arc<VerifiedRecord>) {
        let slot = &mut self.slots[u];
        let same_address = slot
            .record
            .as_ref()
            .is_some_and(|old| old.address() == record.address());
        slot.record = Some(record);
        slot.flags &= !(STALE | SUSPECT);
        if !same_address {
            slot.failures = 0;
            slot.next_dial_ms = 0;
        }
        // A slot that had no record may be due at once.
        self.dial_scan_ms = 0;
        self.touch(u);
    }

    /// Validates one record and stores it if newer. `Ok(true)` if stored.
    fn apply_record(&mut self, peer: Peer, now_ms: u64) -> Result<bool, Error> {
        let Some((u, c)) = self.check_record(peer, now_ms)? else {
            return Ok(false);
        };
        let record = self.verifier.verify(
            &self.config.namespace,
            &c.key,
            &c.address,
            c.timestamp,
            &c.signature,
        )?;
        self.store_record(u, record);
        Ok(true)
    }

    /// Our address changed: signs a new record (timestamp `now_ms`, or one more than the
    /// previous record's if the clock went back) and returns it for the facade to send to
    /// connected peers. It is also what [`Tracker::my_record`] returns from now on.
    ///
    /// Errors: [`Error::NotMyKey`] if `signer` is not our key.
    pub fn update_my_address<S: Signer<PublicKey = V>>(
        &mut self,
        signer: &S,
        address: impl Into<Address>,
        now_ms: u64,
    ) -> Result<Peer, Error> {
        if signer.public_key() != self.me {
            return Err(Error::NotMyKey);
        }
        let address = address.into();
        let timestamp = now_ms.max(self.my_record.timestamp().saturating_add(1));
        let peer = sign_record_for(signer, &self.config.namespace, &address, timestamp);
        let signature = peer
            .signature
            .as_ref()
            .map(|s| s.signature.clone())
            .unwrap_or_default();
        self.my_record = DirectVerifier.verify(
            &self.config.namespace,
            &self.me,
            &address,
            timestamp,
            &signature,
        )?;
        if let Some(s) = self.self_slot {
            self.slots[s].record = Some(self.my_record.clone());
        }
        Ok(peer)
    }

    // ------------------------------------------------------------------------------------------
    // Outputs
    // ------------------------------------------------------------------------------------------

    /// Who to dial now: authorized, not connected, not being dialed peers whose address we
    /// know and whose backoff has expired (for a stale address: its backoff plus
    /// `stale_redial_interval`), then bootstrappers (at the address of
    /// their newest known record, else the configured one). Each returned peer counts as being
    /// dialed until [`Tracker::handle_connected`] or [`Tracker::handle_dial_failed`].
    ///
    /// An address may be a host name ([`Address::Host`]): the driver resolves it for this
    /// dial, checks what it resolves to against the address policy
    /// ([`crate::host::select_targets`]), and reports a name that does not resolve, resolves
    /// too slowly or only to refused addresses as a failed dial.
    pub fn poll_dials(&mut self, now_ms: u64) -> Vec<(V, Address)> {
        self.poll_dials_at_most(now_ms, usize::MAX)
    }

    /// Like [`Tracker::poll_dials`], returning at most `max` dials (the others stay due and
    /// come in a later call).
    pub fn poll_dials_at_most(&mut self, now_ms: u64, max: usize) -> Vec<(V, Address)> {
        let stale_ms = ms(self.config.stale_redial_interval);
        let mut out = Vec::new();
        // The walk over every slot is skipped while no slot can be due: a node in a large,
        // settled network then pays nothing per dial tick.
        if now_ms >= self.dial_scan_ms {
            let mut earliest = u64::MAX;
            for (u, slot) in self.slots.iter_mut().enumerate() {
                let Some(due) = dial_due(slot, Some(u) == self.self_slot, stale_ms) else {
                    continue;
                };
                if due > now_ms {
                    earliest = earliest.min(due);
                    continue;
                }
                if out.len() >= max {
                    // Due, but over the limit: the next call must walk again.
                    earliest = now_ms;
                    break;
                }
                let addr = match &slot.record {
                    Some(record) => Some(record.address().clone()),
                    None => self
                        .addresses
                        .get(&self.union[u])
                        .map(|a| Address::from(*a)),
                };
                if let Some(addr) = addr {
                    slot.flags |= DIALING;
                    out.push((self.union[u].clone(), addr));
                }
            }
            self.dial_scan_ms = earliest;
        }
        for boot in &mut self.boots {
            if out.len() >= max {
                break;
            }
            if boot.connected || boot.dialing || boot.next_dial_ms > now_ms {
                continue;
            }
            boot.dialing = true;
            let addr = self
                .union
                .binary_search(&boot.key)
                .ok()
                .and_then(|u| {
                    let slot = &self.slots[u];
                    // Prefer a signed record over the configured address, unless it failed
                    // often enough to be stale.
                    slot.record
                        .as_ref()
                        .filter(|_| slot.flags & STALE == 0 && boot.failures % 2 == 0)
                        .map(|r| r.address().clone())
                })
                .unwrap_or_else(|| boot.addr.clone());
            out.push((boot.key.clone(), addr));
        }
        self.poll_observer_dials(now_ms, max, &mut out);
        out
    }

    /// The ping of a driver that pings all its connections at once: a bit vector of a
    /// randomly chosen tracked index, at most once per `ping_interval` (see
    /// [`Tracker::ping_vector`]; the session manager instead pings each connection on its own
    /// phase). Keys whose dial failed since the last ping have their bit at 0 in it (peers
    /// then send any newer record) and at 1 again afterwards. `None` when no interval has
    /// passed or no set is tracked.
    pub fn poll_ping<R: Rng + ?Sized>(&mut self, now_ms: u64, rng: &mut R) -> Option<BitVec> {
        if self.sets.is_empty() || now_ms < self.next_ping_ms {
            return None;
        }
        self.next_ping_ms = now_ms.saturating_add(ms(self.config.ping_interval));
        self.ping_vector(rng)
    }

    /// The vector of a ping about to be sent (to some connected peers; a driver that pings
    /// each connection on its own phase calls this once per batch of due connections): a
    /// [`Tracker::random_bit_vec`], after which the keys made suspect by failed dials are
    /// known again (this ping asked for their newer records; the next ones do not). `None` if
    /// no set is tracked.
    pub fn ping_vector<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<BitVec> {
        let ping = self.random_bit_vec(rng);
        for u in std::mem::take(&mut self.suspects) {
            let u = u as usize;
            if let Some(slot) = self.slots.get_mut(u) {
                slot.flags &= !SUSPECT;
                self.touch(u);
            }
        }
        ping
    }

    /// A bit vector of a randomly chosen tracked index (what the facade sends right after a
    /// handshake, after our record). `None` if no set is tracked.
    pub fn random_bit_vec<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<BitVec> {
        if self.sets.is_empty() {
            return None;
        }
        let k = rng.random_range(0..self.sets.len());
        let index = self.sets.keys().nth(k).copied()?;
        self.bit_vec(index)
    }

    /// Our bit vector for `index` (bit i = we know an address of the i-th key of the sorted set
    /// that is neither stale nor suspect, least significant bit of byte 0 first; we count as
    /// known to ourselves).
    pub fn bit_vec(&mut self, index: u64) -> Option<BitVec> {
        let set = self.sets.get(&index)?;
        Some(BitVec {
            index,
            bits: Bytes::copy_from_slice(&set.bits),
        })
    }

    /// Like [`Tracker::bit_vec`], but always built from the per-peer state instead of the
    /// cached copy (for benches and cross-checks).
    pub fn bit_vec_uncached(&self, index: u64) -> Option<BitVec> {
        let set = self.sets.get(&index)?;
        let mut bits = Vec::new();
        fill_bits(set, &self.slots, &mut bits);
        Some(BitVec {
            index,
            bits: Bytes::from(bits),
        })
    }

    /// Connected peers that left every tracked set (and are not bootstrappers) since the last
    /// call: the facade disconnects them.
    pub fn take_evictions(&mut self) -> Vec<V> {
        std::mem::take(&mut self.evictions)
    }

    // ------------------------------------------------------------------------------------------
    // Queries
    // ------------------------------------------------------------------------------------------

    /// Our own record in wire form (sent right after every handshake).
    pub fn my_record(&self) -> Peer {
        self.my_record.to_peer()
    }

    /// Whether `key` may connect: in a tracked set, a bootstrapper or an observer (never
    /// ourselves).
    pub fn is_authorized(&self, key: &V) -> bool {
        let (slot, boot) = self.locate(key);
        slot.is_some() || boot.is_some() || self.observer_pos(key).is_some()
    }

    /// The authorized key (see [`Tracker::is_authorized`]) whose canonical encoding is `bytes`,
    /// found by comparing bytes, without parsing them: the handshake's authorizer looks up a
    /// dialer's claimed key with it before spending any curve arithmetic on it.
    pub fn authorized_key(&self, bytes: &[u8]) -> Option<&V> {
        if bytes == self.me.as_bytes() {
            return None;
        }
        self.union
            .binary_search_by(|k| k.as_bytes().cmp(bytes))
            .ok()
            .map(|u| &self.union[u])
            .or_else(|| {
                self.boots
                    .iter()
                    .find(|b| b.key.as_bytes() == bytes)
                    .map(|b| &b.key)
            })
            .or_else(|| self.observer_key(bytes))
    }

    /// Whether we consider `key` connected.
    pub fn is_connected(&self, key: &V) -> bool {
        let (slot, boot) = self.locate(key);
        slot.is_some_and(|s| self.slots[s].flags & CONNECTED != 0)
            || boot.is_some_and(|b| self.boots[b].connected)
            || self
                .observer_pos(key)
                .is_some_and(|o| self.observers[o].connected)
    }

    /// The stored, not stale record of `key`.
    pub fn record(&self, key: &V) -> Option<&VerifiedRecord> {
        let u = find_key(&self.union, key.as_bytes())?;
        let slot = &self.slots[u];
        if slot.known() {
            slot.record.as_deref()
        } else {
            None
        }
    }

    /// Every key of the tracked sets in order, with its stored, not stale record (ours
    /// included).
    pub fn records(&self) -> impl Iterator<Item = (&V, Option<&VerifiedRecord>)> + '_ {
        self.union.iter().zip(self.slots.iter()).map(|(k, s)| {
            let rec = if s.known() { s.record.as_deref() } else { None };
            (k, rec)
        })
    }

    /// The tracked indexes, oldest first.
    pub fn tracked_indexes(&self) -> impl Iterator<Item = u64> + '_ {
        self.sets.keys().copied()
    }

    /// Counts per tracked set, for metrics.
    pub fn stats(&self) -> Vec<SetStats> {
        self.sets
            .iter()
            .map(|(&index, set)| SetStats {
                index,
                peers: set.keys.len(),
                known: set.known,
                connected: set.connected,
            })
            .collect()
    }

    /// The counts of the tracked set `index` (what [`Tracker::stats`] lists), without
    /// allocating.
    pub fn set_stats(&self, index: u64) -> Option<SetStats> {
        self.sets.get(&index).map(|set| SetStats {
            index,
            peers: set.keys.len(),
            known: set.known,
            connected: set.connected,
        })
    }

    /// Like [`Tracker::stats`], but counted from the per-peer state instead of the counts kept
    /// up to date as it changes (for cross-checks).
    pub fn stats_uncached(&self) -> Vec<SetStats> {
        self.sets
            .iter()
            .map(|(&index, set)| {
                let mut known = 0;
                let mut connected = 0;
                for pos in 0..set.keys.len() {
                    let slot = &self.slots[set.union_pos(pos)];
                    known += usize::from(slot.known());
                    connected += usize::from(slot.flags & CONNECTED != 0);
                }
                SetStats {
                    index,
                    peers: set.keys.len(),
                    known,
                    connected,
                }
            })
            .collect()
    }

    /// The tracked keys due for a dial at `now_ms`, found by walking every slot (without the
    /// hint that lets [`Tracker::poll_dials`] skip the walk; for cross-checks).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn due_dials_uncached(&self, now_ms: u64) -> Vec<V> {
        let stale_ms = ms(self.config.stale_redial_interval);
        self.slots
            .iter()
            .enumerate()
            .filter(|(u, slot)| {
                dial_due(slot, Some(*u) == self.self_slot, stale_ms).is_some_and(|d| d <= now_ms)
                    && (slot.record.is_some() || self.addresses.contains_key(&self.union[*u]))
            })
            .map(|(u, _)| self.union[u].clone())
            .collect()
    }

    /// Heap bytes owned by this tracker, counted from the capacities of its allocations and
    /// the sizes of their elements (shared key sets and records counted in full, as if this
    /// tracker were their only owner). See docs/discovery.md.
    pub fn memory_estimate(&self) -> usize {
        use std::mem::size_of;
        let record = size_of::<VerifiedRecord>()
            + 2 * size_of::<usize>()
            + <V::Signature as p2p_identity::Signature>::LEN;
        let mut total = self.slots.capacity() * size_of::<Slot>();
        total += self.slots.iter().filter(|s| s.record.is_some()).count() * record;
        let mut set_keys = 0;
        for set in self.sets.values() {
            set_keys += set.keys.len();
            total += set.bits.capacity() + set.have_bits.capacity() + set.conn_bits.capacity();
            total += set.to_union.as_ref().map_or(0, |m| m.capacity() * 4);
            total += size_of::<PeerSet<V>>() + 4 * size_of::<usize>();
        }
        let union_shared = self
            .sets
            .values()
            .any(|s| Arc::ptr_eq(&s.keys, &self.union));
        let union_keys = if union_shared { 0 } else { self.union.len() };
        total += (set_keys + union_keys) * size_of::<V>();
        total += self.boots.capacity() * size_of::<Boot<V>>();
        total += self.evictions.capacity() * size_of::<V>();
        total += self.addresses.len() * (size_of::<V>() + size_of::<SocketAddr>() + 16);
        total += self.observers.capacity() * size_of::<Observer<V>>();
        total
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    /// Connected to no key of any set and to no bootstrapper.
    fn isolated(&self) -> bool {
        self.sets.values().all(|s| s.connected == 0) && self.boots.iter().all(|b| !b.connected)
    }

    /// Position in the union and in the bootstrapper list (ourselves: neither).
    fn locate(&self, key: &V) -> (Option<usize>, Option<usize>) {
        if *key == self.me {
            return (None, None);
        }
        (
            find_key(&self.union, key.as_bytes()),
            self.boots.iter().position(|b| b.key == *key),
        )
    }

    fn jitter<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let j = ms(self.config.dial_jitter);
        if j == 0 { 0 } else { rng.random_range(0..j) }
    }

    /// Brings the bit vectors and counts of every set up to date with slot `u` (call after
    /// any change of its record, stale or suspect mark or connected flag). Costs one search
    /// per tracked set that is not the union, nothing when the slot's state did not change.
    fn touch(&mut self, u: usize) {
        let slot = &mut self.slots[u];
        let now = slot.in_flags();
        let changed = (slot.flags & (IN_BITS | IN_HAVE | IN_CONN)) ^ now;
        if changed == 0 {
            return;
        }
        slot.flags ^= changed;
        let key = &self.union[u];
        let is_self = Some(u) == self.self_slot;
        for set in self.sets.values_mut() {
            let pos = match &set.to_union {
                None => u,
                Some(_) => match find_key(&set.keys, key.as_bytes()) {
                    Some(pos) => pos,
                    None => continue,
                },
            };
            let (byte, bit) = (pos / 8, 1u8 << (pos % 8));
            if changed & IN_BITS != 0
                && let Some(b) = set.bits.get_mut(byte)
            {
                *b ^= bit;
            }
            if changed & IN_HAVE != 0 {
                if let Some(b) = set.have_bits.get_mut(byte) {
                    *b ^= bit;
                }
                set.known = if now & IN_HAVE != 0 {
                    set.known + 1
                } else {
                    set.known - 1
                };
            }
            if changed & IN_CONN != 0 {
                // Our own slot stays set in `conn_bits` (it is never connected).
                if !is_self && let Some(b) = set.conn_bits.get_mut(byte) {
                    *b ^= bit;
                }
                set.connected = if now & IN_CONN != 0 {
                    set.connected + 1
                } else {
                    set.connected - 1
                };
            }
        }
    }

    /// Rebuilds every set's bit vectors and counts from the slots (after the union changed).
    fn rebuild_bits(&mut self) {
        for slot in &mut self.slots {
            slot.flags = (slot.flags & !(IN_BITS | IN_HAVE | IN_CONN)) | slot.in_flags();
        }
        for set in self.sets.values_mut() {
            let len = set.keys.len().div_ceil(8);
            for v in [&mut set.bits, &mut set.have_bits, &mut set.conn_bits] {
                v.clear();
                v.resize(len, 0);
            }
            set.known = 0;
            set.connected = 0;
            for pos in 0..set.keys.len() {
                let u = set.union_pos(pos);
                let flags = self.slots[u].flags;
                let (byte, bit) = (pos / 8, 1u8 << (pos % 8));
                if flags & IN_BITS != 0 {
                    set.bits[byte] |= bit;
                }
                if flags & IN_HAVE != 0 {
                    set.have_bits[byte] |= bit;
                    set.known += 1;
                }
                if flags & IN_CONN != 0 {
                    set.connected += 1;
                }
                if flags & IN_CONN != 0 || Some(u) == self.self_slot {
                    set.conn_bits[byte] |= bit;
                }
            }
        }
    }
}

/// When the slot is next due for a dial (`None`: not a dial candidate: ourselves, connected,
/// being dialed, a bootstrapper's, or no address known). A stale address is retried once per
/// `stale_redial_interval` (`stale_ms`) after its backoff.
fn dial_due(slot: &Slot, is_self: bool, stale_ms: u64) -> Option<u64> {
    if is_self
        || slot.flags & (CONNECTED | DIALING | BOOT) != 0
        || (slot.record.is_none() && slot.flags & ADDR == 0)
    {
        return None;
    }
    Some(if slot.flags & STALE == 0 {
        slot.next_dial_ms
    } else {
        slot.next_dial_ms.saturating_add(stale_ms)
    })
}

/// The position of the key whose canonical bytes are `bytes` in `keys` (sorted by those
/// bytes, which is the keys' order), if present.
///
/// Keys are public keys, close to uniformly distributed, so a few interpolation steps on
/// their first eight bytes narrow a large set to a short range before a binary search, instead
/// of the 14 comparisons (each a likely cache miss) of a binary search over 10,000 keys. A
/// skewed set only falls back to the binary search; the result is the same either way.
fn find_key<V: Verifier>(keys: &[V], bytes: &[u8]) -> Option<usize> {
    /// Ranges at most this long are binary-searched.
    const SHORT: usize = 32;
    /// At most this many interpolation probes.
    const PROBES: usize = 4;
    let prefix = |b: &[u8]| {
        let mut p = [0u8; 8];
        let n = b.len().min(8);
        p[..n].copy_from_slice(&b[..n]);
        u64::from_be_bytes(p)
    };
    let target = prefix(bytes);
    let (mut lo, mut hi) = (0usize, keys.len());
    for _ in 0..PROBES {
        if hi - lo <= SHORT {
            break;
        }
        let a = prefix(keys[lo].as_bytes());
        let b = prefix(keys[hi - 1].as_bytes());
        if target < a || target > b {
            return None;
        }
        // lo <= guess < hi, since (target - a) <= (b - a).
        let span = (hi - 1 - lo) as u128;
        let guess = lo + (u128::from(target - a) * span / u128::from((b - a).max(1))) as usize;
        match keys[guess].as_bytes().cmp(bytes) {
            std::cmp::Ordering::Equal => return Some(guess),
            std::cmp::Ordering::Less => lo = guess + 1,
            std::cmp::Ordering::Greater => hi = guess,
        }
    }
    keys[lo..hi]
        .binary_search_by(|k| k.as_bytes().cmp(bytes))
        .ok()
        .map(|i| lo + i)
}

/// Writes the bit vector of `set` into `out` (bit i = slot of key i advertised, LSB first).
fn fill_bits<V>(set: &PeerSet<V>, slots: &[Slot], out: &mut Vec<u8>) {
    let n = set.keys.len();
    out.clear();
    out.resize(n.div_ceil(8), 0);
    for pos in 0..n {
        if slots[set.union_pos(pos)].advertised() {
            out[pos / 8] |= 1 << (pos % 8);
        }
    }
}

/// The redial delay after `failures` consecutive failed dials: the doubling [`backoff`] plus a
/// random part of up to half of it (at least up to `dial_jitter`), placed by `spread` (a
/// uniform random `u32`).
///
/// The random part grows with the backoff so that nodes refused together (a thousand nodes
/// starting at once against one bootstrapper's 64 handshake slots) spread their retries over
/// the whole window instead of coming back together, `dial_jitter` apart at most, at every
/// doubling: with a fixed jitter each round admits about as many as the first did, and the
/// rest wait out ever longer backoffs.
fn retry_delay(config: &Config, failures: u32, spread: u32) -> u64 {
    retry_delay_capped(config, failures, spread, u64::MAX)
}

/// [`retry_delay`] with the backoff (before jitter) capped at `cap_ms`.
fn retry_delay_capped(config: &Config, failures: u32, spread: u32, cap_ms: u64) -> u64 {
    let base = backoff(config, failures).min(cap_ms);
    let range = ms(config.dial_jitter).max(base / 2);
    base.saturating_add(((u128::from(range) * u128::from(spread)) >> 32) as u64)
}

/// Redial delay after `failures` consecutive failures (before jitter).
fn backoff(config: &Config, failures: u32) -> u64 {
    let base = ms(config.dial_backoff_base);
    let shift = failures.saturating_sub(1).min(32);
    base.saturating_mul(1u64 << shift)
        .min(ms(config.dial_backoff_max))
}

/// Word `w` of a bit vector (bytes in order, least significant bit first), zero past its end.
fn word(bits: &[u8], w: usize) -> u64 {
    let whole = w
        .checked_mul(8)
        .and_then(|s| bits.get(s..s.checked_add(8)?));
    if let Some(Ok(b)) = whole.map(<[u8; 8]>::try_from) {
        return u64::from_le_bytes(b);
    }
    let start = (w * 8).min(bits.len());
    let end = (start + 8).min(bits.len());
    let mut buf = [0u8; 8];
    buf[..end - start].copy_from_slice(&bits[start..end]);
    u64::from_le_bytes(buf)
}

/// The position of the `n`-th (from 0) set bit of `mask`, which has more than `n` set bits.
fn nth_set_bit(mut mask: u64, n: usize) -> usize {
    for _ in 0..n {
        mask &= mask - 1;
    }
    mask.trailing_zeros() as usize
}

/// `amount` distinct ranks in `0..count`, sorted (`amount` <= `count`).
fn sample_ranks<R: Rng + ?Sized>(rng: &mut R, count: usize, amount: usize) -> Vec<usize> {
    if amount >= count {
        return (0..count).collect();
    }
    let mut ranks = rand::seq::index::sample(rng, count, amount).into_vec();
    ranks.sort_unstable();
    ranks
}

#[cfg(test)]
mod tests {
    use p2p_identity::{Signer as _, Verifier as _, ed25519};

    use super::find_key;

    fn keys(n: u64, seed: u64) -> Vec<ed25519::PublicKey> {
        (0..n)
            .map(|i| ed25519::PrivateKey::insecure_from_seed(seed * 1_000_000 + i).public_key())
            .collect()
    }

    /// `find_key` agrees with a binary search, for members and non-members, on a uniform set
    /// and on a skewed one (most keys crowded under a small first byte, a few far above), where
    /// the interpolation guesses badly and the binary search finishes.
    #[test]
    fn find_key_agrees_with_binary_search_on_uniform_and_skewed_sets() {
        let mut uniform = keys(3_000, 1);
        uniform.sort();
        let mut skewed: Vec<_> = keys(20_000, 2)
            .into_iter()
            .filter(|k| k.as_bytes()[0] < 2 || k.as_bytes()[0] == 0xff)
            .collect();
        skewed.sort();
        assert!(skewed.len() > 100);
        let outsiders = keys(500, 3);
        for set in [&uniform, &skewed, &uniform[..5].to_vec(), &Vec::new()] {
            for (i, k) in set.iter().enumerate() {
                assert_eq!(find_key(set, k.as_bytes()), Some(i));
            }
            for k in &outsiders {
                assert_eq!(
                    find_key(set, k.as_bytes()),
                    set.binary_search(k).ok(),
                    "{k:?}"
                );
            }
        }
    }
}
