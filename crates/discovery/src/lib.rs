//! Sans-IO bit-vector peer discovery.
//!
//! This crate will own the tracker: peer sets by index, sorted bit vectors, signed peer records,
//! the choice of records to gossip, and which peers to dial and when.
