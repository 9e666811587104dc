//! Connection events for the application ([`crate::Oracle::subscribe`]).

use p2p_session::PeerEvent;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::broadcast;

/// Why [`Events::recv`] returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventsError {
    /// This subscriber fell more than [`crate::Config::event_capacity`] events behind; the
    /// oldest `missed` events were dropped for it (the next `recv` returns the oldest one
    /// still held). Other subscribers are not affected. Reconcile with
    /// [`crate::Oracle::connected`] if the exact state matters.
    #[error("subscriber lagged: {missed} events missed")]
    Lagged {
        /// How many events this subscriber missed.
        missed: u64,
    },
    /// The network was dropped: no more events will come.
    #[error("the network is gone")]
    Closed,
}

/// A subscription to connection events: each peer connecting or disconnecting (with its
/// direction and the reason), in the order the node saw them. Bounded: a subscriber that does
/// not keep up loses the oldest events and is told how many ([`EventsError::Lagged`]); it
/// never slows the network down.
#[derive(Debug)]
pub struct Events<K> {
    pub(crate) rx: broadcast::Receiver<PeerEvent<K>>,
    pub(crate) missed: Counter,
}

impl<K: Clone> Events<K> {
    /// The next event. Cancel-safe: dropping the future loses no event.
    pub async fn recv(&mut self) -> Result<PeerEvent<K>, EventsError> {
        match self.rx.recv().await {
            Ok(event) => Ok(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                self.missed.inc_by(missed);
                Err(EventsError::Lagged { missed })
            }
            Err(broadcast::error::RecvError::Closed) => Err(EventsError::Closed),
        }
    }

    /// The next event if one is waiting, without waiting (`Ok(None)`: none yet).
    pub fn try_recv(&mut self) -> Result<Option<PeerEvent<K>>, EventsError> {
        match self.rx.try_recv() {
            Ok(event) => Ok(Some(event)),
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                self.missed.inc_by(missed);
                Err(EventsError::Lagged { missed })
            }
            Err(broadcast::error::TryRecvError::Closed) => Err(EventsError::Closed),
        }
    }
}
