//! Counter-nonce ChaCha20-Poly1305 for the frames of one connection.
//!
//! This crate will own the 12-byte nonce layout (dialer bit, u16 iterator, u64 sequence),
//! seal and open of one frame in place, and the typed exhaustion error after 2^80 frames.
