//! Criterion benches of the p2p workspace; see `benches/` and `cargo xtask bench-report`.
//!
//! Each throughput group measures the raw primitive (plain AEAD, plain TCP, memcpy) in the same
//! run as the layer, so ratios can be quoted from one run.

pub mod e2e;
