//! Metrics of the facade itself (connections, handshakes, discovery gauges); the per-channel
//! message metrics belong to `p2p-mux` and are registered next to these.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Direction of a connection.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub(crate) enum ConnDirection {
    /// We dialed.
    Outbound,
    /// They dialed.
    Inbound,
}

/// Label: connection direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DirectionLabel {
    pub(crate) direction: ConnDirection,
}

/// Label: why something happened (a short, stable reason string).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) direction: ConnDirection,
    pub(crate) reason: String,
}

/// Label: a tracked peer-set index.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct IndexLabel {
    pub(crate) index: u64,
}

/// The facade's metric families.
#[derive(Clone, Default)]
pub(crate) struct Metrics {
    /// Established connections right now.
    pub(crate) connections: Family<DirectionLabel, Gauge>,
    /// Handshakes by direction and outcome ("ok" or the refusal reason).
    pub(crate) handshakes: Family<ReasonLabel, Counter>,
    /// Connections closed, by reason.
    pub(crate) disconnects: Family<ReasonLabel, Counter>,
    /// Inbound TCP connections refused before any handshake (cap, rate limit), by reason.
    pub(crate) refused: Family<ReasonLabel, Counter>,
    /// Peers with a known address, per tracked index.
    pub(crate) known_peers: Family<IndexLabel, Gauge>,
    /// Connected peers, per tracked index.
    pub(crate) connected_peers: Family<IndexLabel, Gauge>,
    /// Bytes written to sockets (frames, including headers and tags).
    pub(crate) wire_bytes_sent: Counter,
    /// Bytes read from sockets.
    pub(crate) wire_bytes_received: Counter,
    /// Write syscalls (batches of frames).
    pub(crate) write_batches: Counter,
    /// Sealed frames written after the version step.
    pub(crate) frames_sent: Counter,
    /// Messages sent packed with others in one batch frame.
    pub(crate) batched_messages: Counter,
    /// Connection events published to subscribers.
    pub(crate) events: Counter,
    /// Events lagging subscribers missed (summed over subscribers).
    pub(crate) events_missed: Counter,
    /// Keys blocked right now.
    pub(crate) blocked_peers: Gauge,
    /// Peer-id bootstrappers no tracked key matches.
    pub(crate) unresolved_bootstrappers: Gauge,
    /// Observers connected right now.
    pub(crate) observers_connected: Gauge,
    /// Peer records dropped whole without a check (lookup mode, or sent by an observer).
    pub(crate) records_ignored: Family<IgnoredLabel, Counter>,
    /// Host-name resolutions at dial time, by outcome.
    pub(crate) resolutions: Family<crate::resolve::ResolutionLabel, Counter>,
}

/// Label: why records were ignored (`lookup_mode`, `observer`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct IgnoredLabel {
    pub(crate) reason: &'static str,
}

impl Metrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections",
            "Established connections",
            self.connections.clone(),
        );
        registry.register(
            "handshakes",
            "Handshakes by direction and outcome",
            self.handshakes.clone(),
        );
        registry.register(
            "disconnects",
            "Connections closed, by reason",
            self.disconnects.clone(),
        );
        registry.register(
            "refused_connections",
            "Inbound TCP connections refused before the handshake, by reason",
            self.refused.clone(),
        );
        registry.register(
            "known_peers",
            "Peers with a known address, per tracked peer-set index",
            self.known_peers.clone(),
        );
        registry.register(
            "connected_peers",
            "Connected peers, per tracked peer-set index",
            self.connected_peers.clone(),
        );
        registry.register(
            "wire_bytes_sent",
            "Bytes written to sockets (headers, ciphertext and tags)",
            self.wire_bytes_sent.clone(),
        );
        registry.register(
            "wire_bytes_received",
            "Bytes read from sockets",
            self.wire_bytes_received.clone(),
        );
        registry.register(
            "write_batches",
            "Write syscalls, each carrying one or more frames",
            self.write_batches.clone(),
        );
        registry.register(
            "frames_sent",
            "Sealed frames written after the version step (each one AEAD call)",
            self.frames_sent.clone(),
        );
        registry.register(
            "batched_messages",
            "Messages sent packed with others in one batch frame",
            self.batched_messages.clone(),
        );
        registry.register(
            "peer_events",
            "Connection events (connected, disconnected) published to subscribers",
            self.events.clone(),
        );
        registry.register(
            "peer_events_missed",
            "Connection events lagging subscribers missed, summed over subscribers",
            self.events_missed.clone(),
        );
        registry.register(
            "blocked_peers",
            "Keys blocked right now (expired blocks excluded)",
            self.blocked_peers.clone(),
        );
        registry.register(
            "observers_connected",
            "Observers (registered keys outside every tracked peer set) connected right now",
            self.observers_connected.clone(),
        );
        registry.register(
            "records_ignored",
            "Peer records dropped whole without a check, by reason (lookup_mode, observer)",
            self.records_ignored.clone(),
        );
        registry.register(
            "unresolved_bootstrappers",
            "Bootstrappers given by peer id that no key of the tracked sets matches",
            self.unresolved_bootstrappers.clone(),
        );
        registry.register(
            "resolutions",
            "Host-name resolutions at dial time, by result (ok, failed, timeout, refused)",
            self.resolutions.clone(),
        );
    }
}
