//! `p2p-node`: the command-line node of the p2p workspace.
//!
//! The binary (`p2p-node`) has these subcommands:
//!
//! - `keygen --scheme ed25519|bls --out FILE` writes a new key file ([`keyfile`]);
//! - `id FILE` prints the public key, peer id and peer URL template of a key file;
//! - `run --config node.toml` runs a long-lived node from a configuration file ([`config`])
//!   with a line-based chat over one channel, a Prometheus endpoint ([`metrics`]) and
//!   structured logs ([`logging`]);
//! - `demo` starts a local cluster in one process, waits for discovery to form the full mesh,
//!   sends traffic and prints a summary;
//! - `soak` runs the reliability soak: N member processes (the hidden `soak-member`) on
//!   loopback with random traffic and restarts, then a full account of every message and of
//!   each member's memory ([`soak`], `docs/reliability.md`; `cargo xtask soak`);
//! - `cluster --nodes N` (Linux, root) starts N `p2p-node run` processes, each in its own
//!   network namespace with its own address on a bridge, waits for the mesh, sends a chat line
//!   and prints a summary (`multihost`, `netns`; `cargo xtask cluster`).
//!
//! This library holds the parts of the binary that are worth testing on their own.
//!
//! # Design
//!
//! The node holds no protocol logic: it turns a configuration file into the facade's `Config`,
//! registers channels, and moves lines between standard input/output and a channel. Plumbing
//! is done with well-kept crates (clap, serde + toml, axum, indicatif, tracing-subscriber).
//!
//! # Security
//!
//! Requires: the key file to be readable only by the node's user (`keygen` creates it with
//! mode 0600; `run` warns when it is readable by others). Provides: a configuration that is
//! checked as a whole before anything binds a socket. Does not provide: authentication or
//! TLS on the metrics endpoint; bind it to a private interface.

pub mod cluster;
pub mod config;
pub mod demo;
pub mod keyfile;
pub mod logging;
pub mod metrics;
#[cfg(target_os = "linux")]
pub mod multihost;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod node;
pub mod shutdown;
#[cfg(unix)]
pub mod soak;
