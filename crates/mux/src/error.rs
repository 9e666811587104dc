//! The error type of the crate.

use crate::framing::{CompressError, ReassemblyError};

/// Everything that can go wrong in the mux.
///
/// Variants fall in three groups, see [`MuxError::is_fatal`]:
/// - local misuse or configuration (registration, sends): returned to the caller, the
///   connection is not affected;
/// - peer misbehaviour on inbound traffic ([`UnknownChannel`](Self::UnknownChannel),
///   [`Reassembly`](Self::Reassembly), [`Decompress`](Self::Decompress),
///   [`RateLimitExceeded`](Self::RateLimitExceeded)): fatal, the facade closes the connection to
///   that peer (and only that one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// A channel with this id is already registered (local misuse).
    #[error("channel {0} is already registered")]
    DuplicateChannel(u32),
    /// A channel was registered after the first peer connected (local misuse): the channel set
    /// is fixed once peers exist, so every peer agrees on it.
    #[error("channels can only be registered before the first peer connects")]
    RegistryClosed,
    /// A channel parameter is unusable (local misuse), e.g. a zero backlog.
    #[error("invalid configuration for channel {channel}: {reason}")]
    InvalidChannel {
        /// The channel id.
        channel: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// [`Mux::peer_connected`](crate::Mux::peer_connected) for a peer that is already connected
    /// (local misuse; the facade resolves duplicate connections before calling it).
    #[error("peer is already connected")]
    AlreadyConnected,
    /// A message is larger than the channel's maximum message size (local, not sent to anyone).
    #[error("message of {len} bytes exceeds the channel maximum of {max} bytes")]
    MessageTooLarge {
        /// Size of the message (after compression when `compressed`).
        len: usize,
        /// The channel's maximum message size.
        max: usize,
        /// Whether `len` is the compressed size (zstd expanded an incompressible message).
        compressed: bool,
    },
    /// The peer is not connected (local: returned by
    /// [`Sender::wait_for_room`](crate::Sender::wait_for_room) when the peer is gone).
    #[error("peer is not connected")]
    NotConnected,
    /// Compressing an outbound message failed (local, not sent to anyone).
    #[error("compression failed: {0}")]
    Compress(#[source] CompressError),
    /// [`InboundPeer::handle_chunk`](crate::InboundPeer::handle_chunk) was called while a
    /// delivered message still waits for room in its channel (local misuse: call
    /// [`InboundPeer::poll_deliver`](crate::InboundPeer::poll_deliver) until ready first).
    #[error("a message is still waiting for room in its receiver queue")]
    DeliveryPending,
    /// The peer sent a chunk on a channel we have not registered (fatal).
    #[error("peer used unknown channel {channel}")]
    UnknownChannel {
        /// The channel id the peer sent.
        channel: u32,
    },
    /// The peer's chunks do not reassemble (bad part order, interleaving, too large; fatal).
    #[error("reassembly failed: {0}")]
    Reassembly(#[source] ReassemblyError),
    /// The peer's compressed message does not decompress within the channel's maximum (fatal).
    #[error("decompression failed on channel {channel}: {source}")]
    Decompress {
        /// The channel id.
        channel: u32,
        /// Why.
        #[source]
        source: CompressError,
    },
    /// The peer exceeded the channel's inbound quota by more than the configured factor
    /// ([`MuxConfig::gross_violation_factor`](crate::MuxConfig::gross_violation_factor); fatal).
    #[error("peer grossly exceeded the rate limit of channel {channel}")]
    RateLimitExceeded {
        /// The channel id.
        channel: u32,
    },
}

impl MuxError {
    /// Whether the error is the peer's fault and the facade must close the connection to it.
    pub const fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::UnknownChannel { .. }
                | Self::Reassembly(_)
                | Self::Decompress { .. }
                | Self::RateLimitExceeded { .. }
        )
    }
}
