//! Sans-IO authenticated key exchange between two peers identified by public keys.
//!
//! This crate will own the dialer and dialee state machines of the three-message handshake
//! (signed x25519 ephemeral exchange, transcript-bound dialee answer, key confirmation), the
//! timestamp window and the key derivation that yields the directional frame ciphers. A small
//! tokio adapter behind the `tokio` feature will run it over any `AsyncRead + AsyncWrite`.
//!
//! See `docs/protocol.md` for the wire format.
