//! The plaintext of every encrypted frame after the handshake: one encoded `p2p_proto::Message`,
//! whose `payload` oneof holds exactly one of `Chunk`, `BitVec`, `Peers` or `VersionInfo`.
//!
//! ```text
//! +----------------+--------------+---------------------------------------+
//! | key: 1 byte    | len: varint  | the payload message: `len` bytes      |
//! | 0x0A chunk     |              |                                       |
//! | 0x12 bit_vec   |              |                                       |
//! | 0x1A peers     |              |                                       |
//! | 0x22 version   |              |                                       |
//! +----------------+--------------+---------------------------------------+
//! ```
//!
//! Decoding from a [`Bytes`] slices the `bytes` fields out of it instead of copying them. The
//! caller bounds the input (it is one frame, at most the maximum frame size) and validates every
//! field after decoding.

use bytes::{Bytes, BytesMut};
use p2p_proto::{Chunk, Message, message::Payload};
use prost::Message as _;

/// The frame plaintext is not a valid envelope (peer misbehaviour, fatal for the connection).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not a valid protobuf `Message`.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// No payload, or only a payload kind this version does not know (unknown fields are
    /// skipped by protobuf, so both look the same).
    #[error("envelope without a known payload")]
    MissingPayload,
}

/// Decodes one frame's plaintext into its payload.
pub fn decode(frame: Bytes) -> Result<Payload, EnvelopeError> {
    Message::decode(frame)?
        .payload
        .ok_or(EnvelopeError::MissingPayload)
}

/// Appends the envelope of `payload` to `out`.
pub fn encode(payload: &Payload, out: &mut BytesMut) {
    out.reserve(payload.encoded_len());
    payload.encode(out);
}

/// Exact length of [`encode`]'s output for `payload`.
pub fn encoded_len(payload: &Payload) -> usize {
    payload.encoded_len()
}

/// Appends the envelope of a single chunk (any size; use [`crate::chunk::Chunker`] to split a
/// message into frames).
pub fn encode_chunk(chunk: &Chunk, out: &mut BytesMut) {
    let len = chunk.encoded_len();
    out.reserve(1 + prost::encoding::encoded_len_varint(len as u64) + len);
    prost::encoding::message::encode(1, chunk, out);
}
