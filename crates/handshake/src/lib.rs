//! Sans-IO authenticated key exchange between two peers identified by public keys.
//!
//! Three messages, no negotiation (details byte by byte in `docs/protocol.md`):
//!
//! 1. **hello** (dialer → dialee): the dialee's key, a fresh x25519 ephemeral key, a timestamp,
//!    and the dialer's key and signature over those;
//! 2. **answer** (dialee → dialer): the same fields for the dialee, whose signature also covers
//!    the SHA-256 of the exact hello bytes (the transcript), so an answer cannot be replayed
//!    into another session;
//! 3. **confirmation** (dialer → dialee): the dialer's first encrypted frame, with the fixed
//!    plaintext [`_P2P_HANDSHAKE_CONFIRM`]. The dialee counts the peer as connected only after
//!    it opens.
//!
//! Each handshake message body is `namespace tag (8 bytes) || p2p_proto::Handshake`, carried in
//! one u32-length-prefixed frame of at most [`MAX_MESSAGE_LEN`] bytes.
//!
//! A driver calls, in order:
//!
//! - dialer: [`Dialer::new`] → send the hello → receive the answer →
//!   [`Dialer::handle_answer`] → send the confirmation frame → [`Established`];
//! - dialee: receive the hello → [`Dialee::handle_hello`] (with an authorizer) → send the answer
//!   → receive one frame → [`AwaitingConfirmation::handle_confirmation`] → [`Established`].
//!
//! With the `tokio` feature (on by default), [`dial`] and [`accept`] do exactly that over any
//! `AsyncRead + AsyncWrite`, bounded by [`Config::deadline`].
//!
//! # Design
//!
//! - Consuming states (rustls/snow style): [`Dialer`] expects an answer,
//!   [`AwaitingConfirmation`] expects the confirmation; each `handle_*` consumes the state, so
//!   a state cannot be reused. The only way to obtain a [`p2p_cipher::SendCipher`] and
//!   [`p2p_cipher::RecvCipher`] keyed for a connection is to finish the handshake. This is why
//!   the crate depends on `p2p-cipher` (DESIGN.md's table lists only identity): the cipher
//!   halves are its output.
//! - Time (`now_ms`, milliseconds since the Unix epoch) and randomness (the ephemeral key) are
//!   arguments, so every test is deterministic.
//! - The dialee runs the cheap checks first, in this order: message size and every field's
//!   length; recipient is me; namespace tag; dialer is not me; timestamp window; the
//!   authorizer (authorized, not blocked, not already connected) on the dialer's **raw key
//!   bytes**. Only then does it parse the dialer's key (for BLS: point decompression and
//!   subgroup check), parse and verify the signature and compute x25519, so a stranger's key
//!   costs no curve arithmetic. The dialer checks the answer in the same order, with "sender
//!   is the key I dialed" (a byte comparison) in place of the authorizer.
//! - **Namespace mismatch.** The namespace is mixed into every signature (and the
//!   transcript), so a peer on another network could only fail with a bad signature. To give a
//!   distinct [`HandshakeError::NetworkMismatch`] cheaply, each message starts with an 8-byte
//!   namespace tag, `SHA-256(lp(_P2P_HANDSHAKE_NAMESPACE_TAG) || lp(namespace))[..8]`. The tag
//!   is only a diagnostic: it reveals nothing secret (namespaces are public chain ids) and
//!   security does not rest on it, since the signatures cover the namespace itself.
//! - Signatures cover explicit length-delimited bytes (never protobuf); keys come from
//!   HKDF-SHA-256 with the transcript hash as salt and the x25519 output as input key
//!   material, one key per direction; an all-zero x25519 output is refused.
//!
//! # Security
//!
//! Requires: a secure RNG for the ephemeral keys (the adapter uses `rand::rng()`); loosely
//! synchronized clocks (within the timestamp window); an authorizer that refuses keys that
//! are already connected, so that a replayed hello cannot even reach key confirmation while
//! the real session lives.
//!
//! Provides: mutual authentication of the two long-term keys; the dialer reaches exactly the
//! key it expected; forward secrecy (ephemeral x25519 per connection); key confirmation before
//! the dialee reports a peer, so a recorded hello replayed within the timestamp window never
//! yields a connection; no replay of a dialee answer into another session (its signature
//! binds the hello); rejection of low-order ephemeral keys; namespace separation.
//!
//! Does not provide: identity hiding (keys travel in clear); protection of the dialee against
//! spending one signature verification and one x25519 per authorized-looking hello within the
//! window (rate-limit accepts in the facade); confidentiality of the namespace tag.

mod config;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(feature = "tokio")]
mod net;
mod state;
pub mod version;
mod wire;

pub use config::Config;
pub use error::{HandshakeError, Malformed, Refusal};
#[cfg(feature = "tokio")]
pub use net::{Connection, Error, FrameReceiver, FrameSender, accept, dial, now_ms};
pub use state::{AwaitingConfirmation, Dialee, Dialer, Established};
pub use wire::{
    _P2P_HANDSHAKE_ANSWER, _P2P_HANDSHAKE_CONFIRM, _P2P_HANDSHAKE_HELLO, _P2P_HANDSHAKE_KEY_DIALEE,
    _P2P_HANDSHAKE_KEY_DIALER, _P2P_HANDSHAKE_NAMESPACE_TAG, _P2P_HANDSHAKE_TRANSCRIPT,
    CONFIRMATION_LEN, EPHEMERAL_LEN, MAX_MESSAGE_LEN, NAMESPACE_TAG_LEN,
};

#[cfg(test)]
mod tests;
