//! Length-prefixed frames, chunking and bounded compression.
//!
//! - [`frame`]: a frame is a `u32` big-endian length followed by that many bytes (after the
//!   handshake: ciphertext and tag); the length is checked against a configured maximum before
//!   any buffer grows.
//! - [`envelope`]: the plaintext of every frame is one encoded `p2p_proto::Message`.
//! - [`chunk`]: a message larger than one frame is split into `Chunk { channel, part,
//!   total_parts, content }`s whose content fills the frame, and reassembled under hard limits.
//! - [`compress`]: optional per-channel zstd, applied to a whole message before chunking, with
//!   decompression bounded by the channel's maximum message size.
//!
//! The byte layouts, the exact overhead per frame and per chunk, and test vectors are in
//! `docs/protocol.md`.
//!
//! # Design
//!
//! Pure functions and small state machines over byte buffers ([`bytes::BytesMut`],
//! [`bytes::Bytes`]); no I/O, no async. A driver uses them in this order:
//!
//! Sending one application message on a channel:
//! 1. if the channel compresses, [`compress::compress`] the message;
//! 2. [`chunk::Chunker::new`] with the frame's maximum plaintext length (maximum frame length
//!    minus the AEAD tag);
//! 3. for each part: [`frame::begin`], [`chunk::Chunker::write_next`] (appends the plaintext
//!    envelope), seal the plaintext in place from [`frame::FrameStart::body_offset`], then
//!    [`frame::finish`]. Several frames can sit in one buffer and go out in one write. All parts
//!    of a message go out before any other chunk (the no-interleaving rule).
//!
//! Receiving: append what the socket read to one buffer, call [`frame::decode`] until it returns
//! `Ok(None)`; open each frame body in place, freeze it, [`envelope::decode`] it; hand every
//! `Chunk` to the connection's [`chunk::Reassembler::handle_chunk`] with the channel's maximum
//! (compressed) message size; when it returns a message on a compressing channel,
//! [`compress::decompress`] it with the channel's maximum message size.
//!
//! Copies: on the send side the message is sliced (reference-counted), each chunk's content is
//! copied once, into the output buffer where it is sealed; on the receive side the frame body is
//! opened in place, the envelope is decoded by slicing, a single-part message is returned as that
//! slice, and a multi-part message is copied once into its reassembly buffer.
//!
//! "A full chunk": protobuf varints make the envelope's size depend on `channel`, `part`,
//! `total_parts` and the content length, so both sides compute a part's content capacity with
//! the same function, [`chunk::chunk_capacity`], and every non-final part must carry exactly that.
//!
//! # Security
//!
//! Requires: a maximum frame length the caller is willing to buffer per connection; for each
//! channel, a maximum message size (compressed and uncompressed) it is willing to buffer; the
//! same maximum plaintext length and channel set on both sides; a fresh [`chunk::Reassembler`]
//! per connection, dropped with the connection on any error.
//!
//! Provides: a peer can never make the frame decoder reserve more than the maximum frame length
//! plus the header, the reassembler buffer more than the channel's maximum message size (and it
//! refuses an oversized `total_parts` on the first part, before buffering anything), or the
//! decompressor allocate more than the declared and allowed size. Every violation is a distinct
//! typed error; none panics. Every non-final chunk is full, so a message of `n` bytes costs its
//! sender at least `n` bytes on the wire, and a flood of tiny chunks is refused at the first one.
//!
//! Does not provide: integrity or confidentiality of frame bodies (that is `p2p-cipher`'s job), or
//! any hiding of message lengths. Frame count and sizes reveal message sizes to an observer.
//!
//! Compression leaks. Compressed size depends on content: when one compressed message mixes a
//! secret with data an attacker can influence, the attacker can learn the secret byte by byte
//! from the ciphertext lengths (the CRIME and BREACH attacks on TLS and HTTP compression). Enable
//! compression only on channels whose messages never combine secrets with attacker-controlled or
//! attacker-observable-and-guessable data (for example public blocks or transactions), and never
//! on channels carrying keys, shares, private votes before reveal, or anything else secret.
//! Compression is off by default; the level is per channel. Decompression adds CPU cost that the
//! sender chooses (up to the channel's maximum message size per message), so rate limits must
//! count messages, not only bytes.

pub mod chunk;
pub mod compress;
pub mod envelope;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use chunk::{ChunkError, Chunker, Reassembler, ReassemblyError};
pub use compress::CompressError;
pub use envelope::EnvelopeError;
pub use frame::FrameError;

/// Any error of this crate, for callers that want one type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`FrameError`].
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// See [`EnvelopeError`].
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// See [`ChunkError`].
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// See [`ReassemblyError`].
    #[error(transparent)]
    Reassembly(#[from] ReassemblyError),
    /// See [`CompressError`].
    #[error(transparent)]
    Compress(#[from] CompressError),
}
