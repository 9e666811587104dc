//! Lookup mode: peer addresses given by the application instead of gossiped records.
//!
//! In [`Mode::Lookup`] the application registers peer sets together with their addresses
//! ([`Tracker::handle_peer_set_with_addresses`]) and moves a peer with
//! [`Tracker::update_address`]. The tracker then dials those addresses with the usual backoff
//! (an application-supplied address is never marked stale), sends no record
//! ([`Tracker::opening_record`] is `None`), drops every received `Peers` message whole
//! ([`Error::LookupModeRecords`], not fatal) and answers no bit vector: the vectors it sends
//! and receives are only the keep-alive ping. Bit `i` of its vectors says that the application
//! gave an address for the `i`-th key.

use std::net::SocketAddr;

use p2p_identity::Verifier;
use p2p_proto::Peer;

use super::{ADDR, CONNECTED, DIALING, REDIAL, STALE, SUSPECT, Tracker};
use crate::config::Mode;
use crate::record::RecordVerifier;
use crate::{AddressRefusal, Error};

/// What [`Tracker::handle_peer_set_with_addresses`] did with the addresses of a set it
/// registered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LookupOutcome<V> {
    /// Keys whose address was stored.
    pub stored: usize,
    /// Keys registered without an address, and why: the configured address policy refused it
    /// ([`Error::AddressRefused`]) or the key came twice with different addresses
    /// ([`Error::DuplicateKey`]; the first address is kept). The keys are authorized anyway
    /// (they may dial us, and a later [`Tracker::update_address`] makes them dialable).
    pub rejected: Vec<(V, Error)>,
}

/// What [`Tracker::update_address`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressUpdate {
    /// The key already had this address; nothing changed (its backoff is kept).
    Unchanged,
    /// The address was replaced and the key is due for a dial at once, with a fresh failure
    /// count (a dial in progress to the old address does not count if it fails).
    Dial,
    /// The address was replaced, but the key is connected: the live, authenticated connection
    /// is kept; the new address is dialed when it closes (at once, with a fresh backoff).
    Connected,
}

impl<V: Verifier, C: RecordVerifier<V>> Tracker<V, C> {
    /// Registers the peer set `index` with the application's address of each key
    /// ([`Mode::Lookup`] only). The set is registered as by [`Tracker::handle_peer_set`]
    /// (same errors, checked first; on error nothing changes). Each address is then checked
    /// against the configured address policy (addresses published by third parties, on chain
    /// for example, must not point us at loopback or multicast services) and stored; a new or
    /// changed address makes its key due for a dial at once with a fresh backoff. An address
    /// given for our own key is ignored.
    ///
    /// Errors: [`Error::NotLookupMode`], and those of [`Tracker::handle_peer_set`].
    pub fn handle_peer_set_with_addresses(
        &mut self,
        index: u64,
        peers: Vec<(V, SocketAddr)>,
    ) -> Result<LookupOutcome<V>, Error> {
        if self.config.mode != Mode::Lookup {
            return Err(Error::NotLookupMode);
        }
        let max = self.config.max_peer_set_size.get();
        if peers.len() > max.saturating_mul(2) {
            // Bounded before any copy; duplicates aside, the set check below applies.
            return Err(Error::PeerSetTooLarge {
                got: peers.len(),
                max,
            });
        }
        let mut peers = peers;
        // Stable: of two entries of one key, the first given stays first.
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<V> = peers.iter().map(|(k, _)| k.clone()).collect();
        self.handle_peer_set(index, keys)?;
        let mut outcome = LookupOutcome {
            stored: 0,
            rejected: Vec::new(),
        };
        let mut previous: Option<(V, SocketAddr)> = None;
        for (key, addr) in peers {
            if key == self.me {
                continue;
            }
            if let Some((k, first)) = &previous
                && *k == key
            {
                if *first != addr {
                    outcome.rejected.push((key, Error::DuplicateKey));
                }
                continue;
            }
            previous = Some((key.clone(), addr));
            match self.set_address(&key, addr) {
                Ok(_) => outcome.stored += 1,
                Err(e) => outcome.rejected.push((key, e)),
            }
        }
        Ok(outcome)
    }

    /// The application moved `key` to `addr` (a tracked key in [`Mode::Lookup`], or an
    /// observer in either mode). See [`AddressUpdate`] for what happens to its dials and its
    /// connection.
    ///
    /// Errors: [`Error::UnknownKey`] (not tracked, not an observer, or our own key),
    /// [`Error::NotLookupMode`] (a tracked key in gossip mode: its address comes from its
    /// records), [`Error::AddressRefused`] (the address policy refuses `addr`; nothing
    /// changes).
    pub fn update_address(&mut self, key: &V, addr: SocketAddr) -> Result<AddressUpdate, Error> {
        if *key == self.me {
            return Err(Error::UnknownKey);
        }
        let tracked = self.union.binary_search(key).is_ok();
        if !tracked {
            return match self.observer_pos(key) {
                Some(_) => {
                    self.check_address(addr)?;
                    Ok(self.update_observer_address(key, addr))
                }
                None => Err(Error::UnknownKey),
            };
        }
        if self.config.mode != Mode::Lookup {
            return Err(Error::NotLookupMode);
        }
        let update = self.set_address(key, addr)?;
        // A key that is also an observer is dialed as a validator; keep both addresses equal.
        if self.observer_pos(key).is_some() {
            self.update_observer_address(key, addr);
        }
        Ok(update)
    }

    /// The record to send right after a handshake: ours, except in [`Mode::Lookup`] (`None`:
    /// no record is ever sent).
    pub fn opening_record(&self) -> Option<Peer> {
        match self.config.mode {
            Mode::Gossip => Some(self.my_record()),
            Mode::Lookup => None,
        }
    }

    /// The application-supplied address of `key`, if any.
    pub fn address(&self, key: &V) -> Option<SocketAddr> {
        self.addresses
            .get(key)
            .copied()
            .or_else(|| self.observer_pos(key).and_then(|o| self.observers[o].addr))
    }

    /// Checks an application-supplied address against the configured policy.
    pub(super) fn check_address(&self, addr: SocketAddr) -> Result<(), Error> {
        self.config
            .address_policy
            .check(&addr)
            .map_err(|reason: AddressRefusal| Error::AddressRefused {
                socket: addr,
                reason,
            })
    }

    /// Stores the address of the tracked key `key` (policy checked first).
    fn set_address(&mut self, key: &V, addr: SocketAddr) -> Result<AddressUpdate, Error> {
        self.check_address(addr)?;
        let Ok(u) = self.union.binary_search(key) else {
            return Err(Error::UnknownKey);
        };
        let old = self.addresses.insert(key.clone(), addr);
        let slot = &mut self.slots[u];
        slot.flags = (slot.flags | ADDR) & !STALE;
        if old == Some(addr) {
            self.touch(u);
            return Ok(AddressUpdate::Unchanged);
        }
        // A new address: not suspect, due at once with a fresh failure count.
        slot.flags &= !SUSPECT;
        slot.failures = 0;
        slot.next_dial_ms = 0;
        if slot.flags & DIALING != 0 {
            slot.flags |= REDIAL;
        }
        let connected = slot.flags & CONNECTED != 0;
        self.touch(u);
        self.dial_scan_ms = 0;
        Ok(if connected {
            AddressUpdate::Connected
        } else {
            AddressUpdate::Dial
        })
    }

    /// After the union changed: forgets the addresses of keys that left it and marks the
    /// slots of the others.
    pub(super) fn reapply_addresses(&mut self) {
        if self.addresses.is_empty() {
            return;
        }
        let union = &self.union;
        self.addresses.retain(|k, _| union.binary_search(k).is_ok());
        for key in self.addresses.keys() {
            if let Ok(u) = self.union.binary_search(key) {
                self.slots[u].flags |= ADDR;
            }
        }
    }
}
