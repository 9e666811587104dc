//! The application's controls for lookup mode and observers (see `p2p_discovery`'s
//! `Tracker::handle_peer_set_with_addresses`, `Tracker::update_address` and
//! `Tracker::handle_observers` for the rules).

use std::net::SocketAddr;

use p2p_discovery::{AddressUpdate, LookupOutcome, RecordVerifier};
use p2p_identity::Verifier;

use super::{Manager, take_evictions};

impl<V: Verifier, H: Clone, C: RecordVerifier<V> + Clone> Manager<V, H, C> {
    /// Registers peer set `index` with the application's addresses (lookup mode); returns
    /// what became of the addresses and the connections to close (their keys left every
    /// tracked set). Poll dials at once afterwards.
    ///
    /// Errors: as `Tracker::handle_peer_set_with_addresses` (nothing changes).
    pub fn handle_peer_set_with_addresses(
        &self,
        index: u64,
        peers: Vec<(V, SocketAddr)>,
    ) -> Result<(LookupOutcome<V>, Vec<H>), p2p_discovery::Error> {
        let mut inner = self.lock();
        let outcome = inner.tracker.handle_peer_set_with_addresses(index, peers)?;
        inner.id_boots_dirty = true;
        for b in &mut inner.id_boots {
            b.reported = false;
        }
        Ok((outcome, take_evictions(&mut inner)))
    }

    /// The application moved `key` to `addr` (lookup mode, or an observer). A live
    /// connection is kept ([`AddressUpdate::Connected`]); otherwise the key is due for a dial
    /// at once: poll dials.
    ///
    /// Errors: as `Tracker::update_address` ([`p2p_discovery::Error::UnknownKey`] for a key
    /// that is neither tracked nor an observer).
    pub fn update_address(
        &self,
        key: &V,
        addr: SocketAddr,
    ) -> Result<AddressUpdate, p2p_discovery::Error> {
        self.lock().tracker.update_address(key, addr)
    }

    /// Replaces the registered observers (each with an optional address to dial it at);
    /// returns what became of the addresses and the connections to close (observers that
    /// were removed). Poll dials at once afterwards.
    ///
    /// Errors: as `Tracker::handle_observers` (nothing changes).
    pub fn handle_observers(
        &self,
        observers: Vec<(V, Option<SocketAddr>)>,
    ) -> Result<(LookupOutcome<V>, Vec<H>), p2p_discovery::Error> {
        let mut inner = self.lock();
        let outcome = inner.tracker.handle_observers(observers)?;
        Ok((outcome, take_evictions(&mut inner)))
    }

    /// Whether `key` is an observer (registered as one and in no tracked set).
    pub fn is_observer(&self, key: &V) -> bool {
        self.lock().tracker.is_observer(key)
    }
}
