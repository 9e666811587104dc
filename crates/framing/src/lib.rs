//! Length-prefixed frames, chunking and bounded compression.
//!
//! This crate owns the frame codec ([`frame`]): a frame is a `u32` big-endian length followed
//! by that many bytes, and the length is checked against a configured maximum before any
//! buffer grows. It will also own the `Chunk` message that splits large messages into full
//! frames, the reassembler with hard limits, and optional per-channel zstd with bounded
//! decompression.
//!
//! # Design
//!
//! Pure functions over byte buffers ([`bytes::BytesMut`]); no I/O. The driver appends whatever
//! it read to one buffer and calls [`frame::decode`] until it returns `Ok(None)`.
//!
//! # Security
//!
//! Requires: a maximum frame length that the caller is willing to buffer per connection.
//! Provides: a peer can never make the decoder reserve more than that maximum plus the header.
//! Does not provide: integrity or confidentiality of frame bodies (that is `p2p-cipher`'s job).

pub mod frame;
