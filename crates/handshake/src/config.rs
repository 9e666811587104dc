//! Handshake configuration.

use std::time::Duration;

/// Settings of the handshake and of the connection it yields.
///
/// Fields marked **must match** have to be equal on both peers, or they cannot connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The network (chain id): mixed into every signature and into the key derivation.
    /// **Must match**; a peer on another namespace is refused with
    /// [`HandshakeError::NetworkMismatch`](crate::HandshakeError::NetworkMismatch).
    pub namespace: Vec<u8>,
    /// How far in the past (ms, by the local clock) a peer's handshake timestamp may be.
    /// Local policy, but it must exceed the clock skew between peers plus the network delay.
    pub max_past_ms: u64,
    /// How far in the future (ms, by the local clock) a peer's handshake timestamp may be.
    /// Local policy, but it must exceed the clock skew between peers.
    pub max_future_ms: u64,
    /// Deadline for the whole handshake in the tokio adapter, from connect/accept to an
    /// established connection; a peer that says nothing is dropped when it passes. Local.
    pub deadline: Duration,
    /// Deadline for the dialer's first message, from accept (dialee side of the tokio adapter).
    /// Shorter than `deadline`, so silent connections give their handshake slot back quickly;
    /// an honest dialer sends it right after connecting. Local.
    pub first_message_deadline: Duration,
    /// Largest frame body (ciphertext and tag) accepted after the handshake, checked before
    /// any allocation. **Must match** in practice: a peer that sends larger frames is
    /// disconnected.
    pub max_frame_len: u32,
}

impl Config {
    /// Defaults for production networks: ±5 s timestamp window (past 10 s), 5 s deadline
    /// (1 s for the dialer's first message), 1 MiB frames.
    pub fn recommended(namespace: impl Into<Vec<u8>>) -> Self {
        Self {
            namespace: namespace.into(),
            max_past_ms: 10_000,
            max_future_ms: 5_000,
            deadline: Duration::from_secs(5),
            first_message_deadline: Duration::from_secs(1),
            max_frame_len: 1 << 20,
        }
    }

    /// Settings for tests and local demos on one machine: a short deadline (1 s; 500 ms for
    /// the first message), 64 KiB frames, the recommended timestamp window.
    pub fn local(namespace: impl Into<Vec<u8>>) -> Self {
        Self {
            deadline: Duration::from_secs(1),
            first_message_deadline: Duration::from_millis(500),
            max_frame_len: 64 << 10,
            ..Self::recommended(namespace)
        }
    }
}
