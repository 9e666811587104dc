//! The oracle's controls for lookup mode (addresses from the application) and observers.
//! Every rule is the session manager's and discovery's; this module wires them to the
//! dialer and closes the connections they return.

use std::net::SocketAddr;

use p2p_discovery::{AddressUpdate, LookupOutcome};
use p2p_identity::Signer;
use tracing::{info, warn};

use crate::network::{Key, Oracle, close};

impl<S: Signer> Oracle<S> {
    /// Lookup mode (`config.discovery.mode = DiscoveryMode::Lookup`): authorizes the peer set
    /// `index` as [`Oracle::register`] does, with the address of each key (published on
    /// chain, for example). Those addresses are dialed with the usual backoff; no record is
    /// sent or accepted. An address the discovery address policy refuses (loopback in the
    /// `recommended` preset, multicast, port 0, ...) or a second, different address of one
    /// key is reported in [`LookupOutcome::rejected`] (and logged); its key is authorized
    /// without an address.
    ///
    /// Errors: [`p2p_discovery::Error::NotLookupMode`] in gossip mode, and those of
    /// [`Oracle::register`]; nothing changes then.
    pub fn register_with_addresses(
        &self,
        index: u64,
        peers: Vec<(Key<S>, SocketAddr)>,
    ) -> Result<LookupOutcome<Key<S>>, p2p_discovery::Error> {
        let (outcome, evicted) = self
            .shared
            .manager
            .handle_peer_set_with_addresses(index, peers)?;
        for handle in &evicted {
            info!("peer left every tracked set; disconnecting");
            close(handle);
        }
        for (key, error) in &outcome.rejected {
            warn!(%key, %error, index, "address refused; the key is authorized without one");
        }
        self.shared.dial_now.notify_one();
        Ok(outcome)
    }

    /// Moves `key` to `addr`: a tracked key in lookup mode, or an observer. If the key is not
    /// connected it is dialed at the new address at once, with a fresh backoff (a dial to the
    /// old address that is under way does not count against it). A live connection is kept
    /// ([`AddressUpdate::Connected`]): it is authenticated, so it is the right peer wherever
    /// it is; the new address is dialed when it closes.
    ///
    /// Errors: [`p2p_discovery::Error::UnknownKey`] (neither tracked nor an observer),
    /// [`p2p_discovery::Error::NotLookupMode`] (a tracked key in gossip mode),
    /// [`p2p_discovery::Error::AddressRefused`] (the address policy refuses `addr`).
    pub fn update_address(
        &self,
        key: &Key<S>,
        addr: SocketAddr,
    ) -> Result<AddressUpdate, p2p_discovery::Error> {
        let update = self.shared.manager.update_address(key, addr)?;
        if update == AddressUpdate::Dial {
            self.shared.dial_now.notify_one();
        }
        Ok(update)
    }

    /// Replaces the set of observers: keys that may connect without being in a tracked peer
    /// set (full nodes, indexers, relays), each dialed if an address is given. Observers
    /// receive [`crate::Recipients::All`] sends except on validators-only channels
    /// ([`crate::Network::register_validators_only`]), are never put in a bit vector or
    /// gossiped, and have their own inbound cap ([`crate::Config::max_observer_connections`]).
    /// A key that is also in a tracked set is a validator. Observers left out of the new list
    /// are disconnected. Rejected addresses are reported as by
    /// [`Oracle::register_with_addresses`] (in either discovery mode).
    ///
    /// Errors: [`p2p_discovery::Error::PeerSetTooLarge`] for more observers than
    /// `discovery.max_peer_set_size` (nothing changes).
    pub fn register_observers(
        &self,
        observers: Vec<(Key<S>, Option<SocketAddr>)>,
    ) -> Result<LookupOutcome<Key<S>>, p2p_discovery::Error> {
        let (outcome, evicted) = self.shared.manager.handle_observers(observers)?;
        for handle in &evicted {
            info!("observer removed; disconnecting");
            close(handle);
        }
        for (key, error) in &outcome.rejected {
            warn!(%key, %error, "observer address refused; it is authorized without one");
        }
        self.shared.dial_now.notify_one();
        Ok(outcome)
    }

    /// Whether `key` is an observer: registered with
    /// [`Oracle::register_observers`] and in no tracked set.
    pub fn is_observer(&self, key: &Key<S>) -> bool {
        self.shared.manager.is_observer(key)
    }
}
