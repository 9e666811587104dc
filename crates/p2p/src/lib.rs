//! Authenticated, encrypted peer-to-peer networking for validator networks.
//!
//! Peers are identified by public keys ([`identity`]: ed25519 or BLS12-381), connect over TCP
//! through one signed handshake ([`handshake`]), encrypt every frame with ChaCha20-Poly1305 and a
//! counter nonce ([`cipher`]), find each other through bit-vector discovery over indexed peer
//! sets ([`discovery`]), and exchange messages on channels with rate limits, two priorities,
//! optional zstd and chunking ([`mux`], [`framing`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::num::NonZeroU32;
//! use p2p::identity::{Signer, ed25519};
//! use p2p::{Config, Network, Priority, Quota, Recipients};
//! use prometheus_client::registry::Registry;
//!
//! let signer = ed25519::PrivateKey::insecure_from_seed(0); // insecure: tests only
//! let peers: Vec<_> = (0..4).map(|i| ed25519::PrivateKey::insecure_from_seed(i).public_key()).collect();
//! let listen = "127.0.0.1:0".parse()?;
//! let config = Config::aggressive(signer, b"_MY_NETWORK", listen, listen, vec![]);
//! let mut registry = Registry::default();
//! let (mut network, oracle) = Network::new(config, &mut registry)?;
//! oracle.register(0, peers)?;
//! let quota = Quota::per_second(NonZeroU32::new(1000).unwrap());
//! let (sender, mut receiver) = network.register(1, quota, 1 << 20, 128, Some(3))?;
//! let running = tokio::spawn(network.run());
//! let report = sender.send(Recipients::All, bytes::Bytes::from_static(b"hello"), Priority::High)?;
//! println!("queued for {} peers", report.queued.len());
//! if let Some((from, message)) = receiver.recv().await { println!("{from}: {message:?}"); }
//! oracle.shutdown();
//! running.await??;
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! This crate is the thin facade: it connects the layer crates to tokio sockets, tasks and
//! timers and registers metrics, and holds no protocol logic (no parsing, crypto, scheduling or
//! admission policy). What happens between the layers (the version step, routing, discovery
//! budgets, pauses, admission, the dial plan, pings, evictions) is decided by [`session`]
//! (`p2p-session`), which has no I/O and is tested and fuzzed on its own. Per connection there is one reader task and one writer task; the writer drains the
//! mux scheduler into a buffer, sealing each frame in place, and writes several frames per
//! syscall. See `docs/architecture.md` and `docs/usage.md`.
//!
//! # Security
//!
//! Requires: the application to register the peer sets it trusts ([`Oracle::register`]) and to
//! choose channel quotas and sizes. Provides: only authorized keys connect; one connection per
//! peer (a second one is refused, simultaneous dials resolve to one); per-IP handshake rate
//! limits, bounded concurrent handshakes and inbound connections; every malformed or abusive
//! input closes that peer's connection without harming the others. Does not provide: hiding
//! which keys talk to each other. See `docs/security.md`.

mod config;
mod events;
mod metrics;
mod network;
mod peer;
mod resolve;
mod roles;

pub use config::{Config, LinkFilter, PROTOCOL_MAJOR, PROTOCOL_MINOR};
pub use events::{Events, EventsError};
pub use governor::Quota;
pub use network::{Channel, Error, Network, Oracle};
pub use p2p_discovery::{Address, HostError, HostName};
pub use p2p_discovery::{AddressUpdate, LookupOutcome, Mode as DiscoveryMode};
pub use p2p_mux::WaitForRoom;
pub use p2p_mux::{MuxError, Priority, Receiver, Recipients, Role, SendReport, Sender};
pub use p2p_session::{DialNowError, Direction, PeerEvent, PeerEventKind};
pub use resolve::{Resolve, ResolveFuture, Resolver, SystemResolver};

pub use p2p_cipher as cipher;
pub use p2p_discovery as discovery;
pub use p2p_framing as framing;
pub use p2p_handshake as handshake;
pub use p2p_identity as identity;
pub use p2p_mux as mux;
pub use p2p_session as session;
