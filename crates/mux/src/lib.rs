//! Channels, per-channel rate limits, send priorities and backlogs.
//!
//! This crate will own the channel registry, recipients, per-peer rate limits, bounded
//! backlogs, two send priorities and the sans-IO scheduler that never interleaves the chunks of
//! two messages.
