//! Authenticated, encrypted peer-to-peer networking for validator networks.
//!
//! This facade will wire the layer crates to tokio sockets and tasks: `Config` presets,
//! `Network` and `Oracle`, one reader and one writer task per peer, and metrics registration.
//! It holds no protocol logic; every decision lives in a layer crate.

pub use p2p_identity as identity;
