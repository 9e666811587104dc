//! Observers: registered keys that may connect without being in any peer set.
//!
//! Full nodes, indexers and relays connect to validators without being validators. The
//! application registers them with [`Tracker::handle_observers`] (the whole list each time,
//! each with an optional address). An observer is authorized (it passes the handshake's
//! authorizer and admission) and is dialed when it has an address, but it is in no peer set:
//! it never has a bit in a vector, its records are never stored or gossiped (a `Peers`
//! message from it is dropped whole, [`Error::ObserverRecords`]), and its bit vectors are
//! answered with nothing. A key that is both in a tracked set (or a bootstrapper) and an
//! observer is a validator: [`Tracker::is_observer`] is `false` for it.

use std::net::SocketAddr;

use p2p_identity::Verifier;

use super::{CONNECTED, Tracker, backoff};
use crate::Error;
use crate::host::Address;
use crate::record::RecordVerifier;
use crate::tracker::lookup::{AddressUpdate, LookupOutcome};

/// The dial state of one observer.
#[derive(Clone, Debug)]
pub(super) struct Observer<V> {
    pub(super) key: V,
    pub(super) addr: Option<SocketAddr>,
    next_dial_ms: u64,
    failures: u32,
    pub(super) connected: bool,
    dialing: bool,
    /// The address changed while a dial was in progress.
    redial: bool,
}

impl<V: Verifier, C: RecordVerifier<V>> Tracker<V, C> {
    /// Replaces the set of observers. Our own key is dropped; of two entries of one key the
    /// first is kept (a different address in the second is reported as
    /// [`Error::DuplicateKey`]); an address the configured policy refuses is reported
    /// ([`Error::AddressRefused`]) and the observer registered without one. An observer that
    /// stays keeps its connection state and backoff (reset if its address changed). Connected
    /// observers that are no longer registered (and are not validators) are queued for
    /// [`Tracker::take_evictions`].
    ///
    /// Errors: [`Error::PeerSetTooLarge`] for more than `max_peer_set_size` entries (nothing
    /// changes).
    pub fn handle_observers(
        &mut self,
        observers: Vec<(V, Option<SocketAddr>)>,
    ) -> Result<LookupOutcome<V>, Error> {
        let max = self.config.max_peer_set_size.get();
        if observers.len() > max {
            return Err(Error::PeerSetTooLarge {
                got: observers.len(),
                max,
            });
        }
        let mut observers = observers;
        observers.retain(|(k, _)| *k != self.me);
        // Stable: of two entries of one key, the first given stays first.
        observers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut outcome = LookupOutcome {
            stored: 0,
            rejected: Vec::new(),
        };
        let mut next: Vec<Observer<V>> = Vec::with_capacity(observers.len());
        for (key, addr) in observers {
            if let Some(last) = next.last()
                && last.key == key
            {
                if addr.is_some() && last.addr != addr {
                    outcome.rejected.push((key, Error::DuplicateKey));
                }
                continue;
            }
            let addr = match addr.map(|a| self.check_address(a).map(|()| a)) {
                Some(Ok(a)) => {
                    outcome.stored += 1;
                    Some(a)
                }
                Some(Err(e)) => {
                    outcome.rejected.push((key.clone(), e));
                    None
                }
                None => None,
            };
            let entry = match self.observer_pos(&key) {
                Some(o) => {
                    let mut old = self.observers[o].clone();
                    if old.addr != addr {
                        old.addr = addr;
                        old.failures = 0;
                        old.next_dial_ms = 0;
                        old.redial = old.dialing;
                    }
                    old
                }
                None => Observer {
                    connected: self.is_connected(&key),
                    key,
                    addr,
                    next_dial_ms: 0,
                    failures: 0,
                    dialing: false,
                    redial: false,
                },
            };
            next.push(entry);
        }
        for old in &self.observers {
            let kept = next.binary_search_by(|o| o.key.cmp(&old.key)).is_ok();
            if !kept && old.connected && !self.is_validator(&old.key) {
                self.evictions.push(old.key.clone());
            }
        }
        self.observers = next;
        self.sync_observers();
        Ok(outcome)
    }

    /// Whether `key` is an observer and not a validator (in no tracked set, not a
    /// bootstrapper).
    pub fn is_observer(&self, key: &V) -> bool {
        self.observer_pos(key).is_some() && !self.is_validator(key)
    }

    /// The registered observers (validators among them included) and their addresses.
    pub fn observers(&self) -> impl Iterator<Item = (&V, Option<SocketAddr>)> + '_ {
        self.observers.iter().map(|o| (&o.key, o.addr))
    }

    /// Observers (not validators) we are connected to.
    pub fn observers_connected(&self) -> usize {
        self.observers
            .iter()
            .filter(|o| o.connected && !self.is_validator(&o.key))
            .count()
    }

    /// In a tracked set or a bootstrapper.
    fn is_validator(&self, key: &V) -> bool {
        let (slot, boot) = self.locate(key);
        slot.is_some() || boot.is_some()
    }

    pub(super) fn observer_pos(&self, key: &V) -> Option<usize> {
        self.observers.binary_search_by(|o| o.key.cmp(key)).ok()
    }

    /// The observer whose canonical encoding is `bytes` (keys order as their bytes).
    pub(super) fn observer_key(&self, bytes: &[u8]) -> Option<&V> {
        self.observers
            .binary_search_by(|o| o.key.as_bytes().cmp(bytes))
            .ok()
            .map(|o| &self.observers[o].key)
    }

    pub(super) fn observer_connected(&mut self, key: &V, connected: bool) -> bool {
        let Some(o) = self.observer_pos(key) else {
            return false;
        };
        let o = &mut self.observers[o];
        o.connected = connected;
        o.dialing = false;
        o.redial = false;
        o.failures = 0;
        true
    }

    pub(super) fn observer_disconnected(&mut self, key: &V, next_dial_ms: u64) -> bool {
        let Some(o) = self.observer_pos(key) else {
            return false;
        };
        let o = &mut self.observers[o];
        o.connected = false;
        o.dialing = false;
        o.redial = false;
        o.next_dial_ms = next_dial_ms;
        true
    }

    pub(super) fn observer_dial_failed(&mut self, key: &V, now_ms: u64, jitter: u64) -> bool {
        let Some(o) = self.observer_pos(key) else {
            return false;
        };
        let config = &self.config;
        let o = &mut self.observers[o];
        if !o.dialing {
            // Not a dial of this entry (the key was dialed as a validator).
            return true;
        }
        o.dialing = false;
        if o.redial {
            o.redial = false;
            o.failures = 0;
            o.next_dial_ms = 0;
        } else if !o.connected {
            o.failures = o.failures.saturating_add(1);
            o.next_dial_ms = now_ms
                .saturating_add(backoff(config, o.failures))
                .saturating_add(jitter);
        }
        true
    }

    pub(super) fn observer_dial_now(&mut self, key: &V) -> bool {
        let Some(o) = self.observer_pos(key) else {
            return false;
        };
        let o = &mut self.observers[o];
        o.failures = 0;
        o.next_dial_ms = 0;
        true
    }

    pub(super) fn update_observer_address(&mut self, key: &V, addr: SocketAddr) -> AddressUpdate {
        let Some(o) = self.observer_pos(key) else {
            return AddressUpdate::Unchanged;
        };
        let o = &mut self.observers[o];
        if o.addr == Some(addr) {
            return AddressUpdate::Unchanged;
        }
        o.addr = Some(addr);
        o.failures = 0;
        o.next_dial_ms = 0;
        o.redial = o.dialing;
        if o.connected {
            AddressUpdate::Connected
        } else {
            AddressUpdate::Dial
        }
    }

    /// Due dials of observers (not validators) with an address, after the validators' ones.
    pub(super) fn poll_observer_dials(
        &mut self,
        now_ms: u64,
        max: usize,
        out: &mut Vec<(V, Address)>,
    ) {
        let union = &self.union;
        let boots = &self.boots;
        for o in &mut self.observers {
            if out.len() >= max {
                return;
            }
            let Some(addr) = o.addr else { continue };
            if o.connected || o.dialing || o.next_dial_ms > now_ms {
                continue;
            }
            if union.binary_search(&o.key).is_ok() || boots.iter().any(|b| b.key == o.key) {
                continue;
            }
            o.dialing = true;
            out.push((o.key.clone(), Address::from(addr)));
        }
    }

    /// After the union changed: a connected observer that became a validator keeps its
    /// connection, so its new slot is marked connected (it is not dialed again).
    pub(super) fn sync_observers(&mut self) {
        for o in &self.observers {
            if o.connected
                && let Ok(u) = self.union.binary_search(&o.key)
            {
                self.slots[u].flags |= CONNECTED;
            }
        }
    }
}
