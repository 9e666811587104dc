//! Length-prefixed frames, chunking and bounded compression.
//!
//! This crate will own the frame decoder and encoder (u32 big-endian length, checked against a
//! maximum before allocation), the `Chunk` message that splits large messages into full frames,
//! the reassembler with hard limits, and optional per-channel zstd with bounded decompression.
