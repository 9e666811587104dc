//! prometheus-client metric families of the mux, labelled by channel.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// Label set of the per-channel counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    /// The channel id.
    pub channel: u32,
}

/// Direction of a rate-limited event.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Direction {
    /// A message to a peer waited for that peer's outbound quota.
    Outbound,
    /// A peer exceeded its inbound quota and its reader was paused.
    Inbound,
}

/// Why a message was not queued or not delivered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum DropReason {
    /// The recipient's backlog for the channel was full.
    BacklogFull,
    /// The recipient was not connected.
    NotConnected,
    /// An inbound message arrived after the channel's receiver was dropped.
    ReceiverClosed,
    /// An outbound message could not be chunked (local configuration problem).
    Unchunkable,
    /// An outbound message was still queued for a peer when its connection closed (the queue
    /// is freed). A message whose first chunk was already handed to the connection is not
    /// counted here: it is in flight, and neither side can tell whether it arrives.
    QueuedAtDisconnect,
    /// An inbound message was complete but held for room in its channel's full receiver queue
    /// when the connection closed (at most one per connection).
    HeldAtDisconnect,
    /// The channel is validators-only ([`crate::Mux::register_validators_only`]) and the peer is
    /// an observer ([`crate::Role::Observer`]): a message it sent on the channel, or a message
    /// sent to it by name.
    ValidatorsOnly,
}

/// Labels of [`Metrics::rate_limited`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitedLabel {
    /// The channel id.
    pub channel: u32,
    /// Inbound or outbound.
    pub direction: Direction,
}

/// Labels of [`Metrics::dropped`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DroppedLabel {
    /// The channel id.
    pub channel: u32,
    /// Why.
    pub reason: DropReason,
}

/// The mux's metric families. Cloning shares the same counters; the facade registers them in
/// the user's registry with [`Metrics::register`].
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Messages handed to a connection (one per recipient), by channel.
    pub messages_sent: Family<ChannelLabel, Counter>,
    /// Payload bytes (after compression) handed to a connection, by channel.
    pub bytes_sent: Family<ChannelLabel, Counter>,
    /// Messages received and delivered (or dropped because the receiver is gone), by channel.
    pub messages_received: Family<ChannelLabel, Counter>,
    /// Payload bytes (after decompression) received, by channel.
    pub bytes_received: Family<ChannelLabel, Counter>,
    /// Rate-limited events, by channel and direction (outbound: counted once per message that
    /// had to wait; inbound: once per pause of a peer's reader).
    pub rate_limited: Family<RateLimitedLabel, Counter>,
    /// Messages not queued, not sent or not delivered, by channel and reason (one per
    /// recipient).
    pub dropped: Family<DroppedLabel, Counter>,
}

impl Metrics {
    /// Registers every family in `registry` (names get the registry's prefix, if any).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mux_messages_sent",
            "Messages handed to a connection, per recipient",
            self.messages_sent.clone(),
        );
        registry.register(
            "mux_bytes_sent",
            "Payload bytes handed to a connection, per recipient",
            self.bytes_sent.clone(),
        );
        registry.register(
            "mux_messages_received",
            "Messages received from peers",
            self.messages_received.clone(),
        );
        registry.register(
            "mux_bytes_received",
            "Payload bytes received from peers (after decompression)",
            self.bytes_received.clone(),
        );
        registry.register(
            "mux_rate_limited",
            "Rate-limited events",
            self.rate_limited.clone(),
        );
        registry.register(
            "mux_dropped",
            "Messages not queued, not sent or not delivered",
            self.dropped.clone(),
        );
    }

    /// Resolves the counters of one channel once, so the hot path only does atomic adds.
    pub(crate) fn channel(&self, channel: u32) -> ChannelCounters {
        let c = ChannelLabel { channel };
        let dropped = |reason| {
            self.dropped
                .get_or_create(&DroppedLabel { channel, reason })
                .clone()
        };
        let limited = |direction| {
            self.rate_limited
                .get_or_create(&RateLimitedLabel { channel, direction })
                .clone()
        };
        ChannelCounters {
            messages_sent: self.messages_sent.get_or_create(&c).clone(),
            bytes_sent: self.bytes_sent.get_or_create(&c).clone(),
            messages_received: self.messages_received.get_or_create(&c).clone(),
            bytes_received: self.bytes_received.get_or_create(&c).clone(),
            limited_out: limited(Direction::Outbound),
            limited_in: limited(Direction::Inbound),
            backlog_full: dropped(DropReason::BacklogFull),
            not_connected: dropped(DropReason::NotConnected),
            receiver_closed: dropped(DropReason::ReceiverClosed),
            unchunkable: dropped(DropReason::Unchunkable),
            queued_at_disconnect: dropped(DropReason::QueuedAtDisconnect),
            held_at_disconnect: dropped(DropReason::HeldAtDisconnect),
            validators_only: dropped(DropReason::ValidatorsOnly),
        }
    }
}

/// Pre-resolved counters of one channel.
#[derive(Clone, Debug)]
pub(crate) struct ChannelCounters {
    pub(crate) messages_sent: Counter,
    pub(crate) bytes_sent: Counter,
    pub(crate) messages_received: Counter,
    pub(crate) bytes_received: Counter,
    pub(crate) limited_out: Counter,
    pub(crate) limited_in: Counter,
    pub(crate) backlog_full: Counter,
    pub(crate) not_connected: Counter,
    pub(crate) receiver_closed: Counter,
    pub(crate) unchunkable: Counter,
    pub(crate) queued_at_disconnect: Counter,
    pub(crate) held_at_disconnect: Counter,
    pub(crate) validators_only: Counter,
}
