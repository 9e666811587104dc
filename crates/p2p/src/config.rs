//! Network configuration and its presets.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use p2p_identity::{PeerUrl, Signer};

/// Protocol major version spoken by this crate; peers with another major are refused.
pub const PROTOCOL_MAJOR: u32 = 1;
/// Protocol minor version. Minor 1 adds batch frames (several whole small messages in one
/// sealed frame, `docs/protocol.md`, "Batch frames"): a node sends them only to peers that
/// announced minor [`p2p_session::BATCH_MINOR`] or later, and accepts them from anyone.
/// Minor 2 adds peer records whose address is a host name (`docs/protocol.md`, "Host-name
/// records"): a node sends such records only to peers that announced minor
/// [`p2p_session::HOST_MINOR`] or later (older ones would close the connection).
pub const PROTOCOL_MINOR: u32 = p2p_session::HOST_MINOR;

/// Configuration of a [`crate::Network`].
///
/// Build one with [`Config::recommended`] (production) or [`Config::aggressive`] (local clusters
/// and tests), then adjust public fields. Fields marked **must match** have to be equal on every
/// peer of a network, or peers cannot talk. The layer configurations are embedded as they are;
/// [`crate::Network::new`] checks that they agree with each other (namespace, frame size).
#[derive(Debug)]
#[non_exhaustive]
pub struct Config<S: Signer> {
    /// This node's identity.
    pub signer: S,
    /// Address to listen on; port 0 picks a free port (see [`crate::Oracle::local_addr`]).
    pub listen: SocketAddr,
    /// Address other peers should dial (advertised in this node's signed record). A port of 0
    /// means "the port the listener actually bound".
    pub dialable: SocketAddr,
    /// A DNS name to advertise instead of `dialable`'s IP: the signed record then says
    /// `<dialable_host>:<dialable's port>` (the bound port if 0), and peers resolve the name
    /// at each dial, so the node stays reachable when its IP changes. Peers of protocol minor
    /// 1 or older cannot decode such a record and are not sent it (they learn no address for
    /// this node from it; they can still be dialed by it, and dial it as a bootstrapper).
    /// `None` in every preset.
    pub dialable_host: Option<p2p_discovery::HostName>,
    /// Peers to dial first (`<key-hex>@<host>:<port>`), authorized even outside tracked peer
    /// sets. A URL may name the peer id instead of the key (`<peer-id-hex>@<host>:<port>`):
    /// it is matched against the keys of the tracked sets when dials are planned, and is
    /// not dialed (a warning and `p2p_unresolved_bootstrappers` say so) while no tracked key
    /// has that id. A DNS name is kept as a name and resolved at every dial of that
    /// bootstrapper (see `resolver`); [`crate::Network::new`] only checks its syntax.
    pub bootstrappers: Vec<PeerUrl>,
    /// Handshake settings: namespace (**must match**), timestamp window, deadline, and the
    /// largest frame (**must match**).
    pub handshake: p2p_handshake::Config,
    /// Discovery settings: namespace (**must match**), tracked peer sets, gossip sizes, ping
    /// interval, clock skew, dial backoff, and the address policy for peer records
    /// (`address_policy`: [`Config::recommended`] refuses loopback addresses and accepts
    /// private ones, [`Config::aggressive`] accepts both).
    pub discovery: p2p_discovery::Config,
    /// Mux settings: the largest frame plaintext (derived from the handshake's frame size by the
    /// presets), control backlog, disconnect threshold for rate-limit violations.
    pub mux: p2p_mux::MuxConfig,
    /// Inbound handshakes in progress at once.
    pub max_concurrent_handshakes: NonZeroUsize,
    /// Outbound dials (connect, handshake) in progress at once; separate from the inbound
    /// handshake slots, so inbound connections can never starve our own dials.
    pub max_concurrent_dials: NonZeroUsize,
    /// Inbound handshakes accepted per source IP per minute (burst: the same number).
    pub handshakes_per_ip_per_minute: NonZeroU32,
    /// Inbound handshakes accepted per source prefix (/24 for IPv4, /64 for IPv6) per minute
    /// (burst: the same number); see [`p2p_session::source_prefix`].
    pub handshakes_per_prefix_per_minute: NonZeroU32,
    /// Inbound handshakes in progress at once from one source prefix (/24, /64); keep it a
    /// fraction of `max_concurrent_handshakes` so one network cannot hold every slot.
    pub max_handshakes_per_prefix: NonZeroUsize,
    /// Most source addresses (and, separately, prefixes) the per-IP limiter remembers at once (bounds its memory; new
    /// addresses are refused while it is full of recently active ones).
    pub max_tracked_ips: NonZeroUsize,
    /// How long after the handshake the peer's version info may take (the version step);
    /// the peer is not admitted before it passes.
    pub version_timeout: Duration,
    /// A batch write to a peer's socket (at most `write_batch_bytes` plus one frame) that does
    /// not complete within this long closes the connection (a peer that does not read cannot
    /// hold its writer, socket and queues).
    pub write_timeout: Duration,
    /// Inbound connections (handshaking or established) at once. Established connections of
    /// observers are counted under `max_observer_connections` instead.
    pub max_inbound_connections: NonZeroUsize,
    /// Established inbound connections of observers (keys registered with
    /// [`crate::Oracle::register_observers`] that are in no tracked peer set) at once, apart
    /// from `max_inbound_connections`: observers cannot take validators' places, nor
    /// validators theirs. Past it an observer is refused (`observer_cap`). 0 refuses inbound
    /// observers (they may still be dialed). Local policy.
    pub max_observer_connections: usize,
    /// A connection that receives nothing for this long is closed (pings keep live ones busy;
    /// keep it several times the discovery ping interval).
    pub idle_timeout: Duration,
    /// Interval at which the dialer asks discovery whom to dial.
    pub dial_interval: Duration,
    /// TCP connect timeout of one dial (for a host name: of all the addresses it resolved to,
    /// tried in order, together; after the resolution).
    pub connect_timeout: Duration,
    /// How long the resolution of a host name may take at each dial (a bootstrapper's, or a
    /// peer's whose record names a host). A name that does not resolve in time, fails to
    /// resolve, or resolves only to addresses the discovery address policy refuses is a
    /// failed dial (backoff, failure count, staleness as for a refused connect), counted in
    /// `p2p_resolutions_total`.
    pub resolve_timeout: Duration,
    /// Resolves host names at dial time: [`crate::Resolver::system`] in every preset (the
    /// system resolver: `/etc/hosts`, then DNS). Tests and applications with their own name
    /// service can plug in another ([`crate::Resolver::new`]).
    pub resolver: crate::Resolver,
    /// Bytes the writer gathers into one write syscall before writing.
    pub write_batch_bytes: NonZeroUsize,
    /// Largest plaintext of a batch frame: when several small messages for one peer are
    /// queued at once, whole messages are packed into one sealed frame up to this many bytes
    /// (one AEAD call and one frame header for all of them), for peers that accept batch
    /// frames (protocol minor 1 or later). 0 sends one message chunk per frame. Does not
    /// have to match; receiving batches does not depend on it.
    pub coalesce_limit: usize,
    /// On shutdown, queued messages (high priority first) are flushed for at most this long.
    pub shutdown_flush: Duration,
    /// Free-form software version sent in the version exchange (for logs on the other side).
    pub software_version: String,
    /// How long [`crate::Oracle::block`] refuses a key; afterwards it may connect again and
    /// is dialed at once (if its address is known). [`crate::Oracle::block_for`] takes another
    /// duration, or none (until [`crate::Oracle::unblock`]). Measured on the wall clock (Unix
    /// milliseconds, as discovery's timers).
    pub block_duration: Duration,
    /// Connection events each [`crate::Oracle::subscribe`] subscriber may fall behind by
    /// before it loses the oldest ones (and is told how many). Memory: one event (a key, a
    /// direction, a reason) per slot, shared by all subscribers.
    pub event_capacity: NonZeroUsize,
    /// Fault injection for tests: while the filter refuses a peer's key, this node behaves as
    /// if a network partition separated them (dials to it fail as `connect_failed`, an
    /// established connection with it closes as `io` at its next read). `None` in every
    /// preset; never set it in production.
    pub insecure_link_filter_for_testing: Option<LinkFilter>,
}

/// A test hook deciding, from a peer's encoded public key, whether the link to it is up (see
/// [`Config::insecure_link_filter_for_testing`]).
#[derive(Clone)]
pub struct LinkFilter(Arc<LinkPredicate>);

/// The predicate inside a [`LinkFilter`].
type LinkPredicate = dyn Fn(&[u8]) -> bool + Send + Sync;

impl LinkFilter {
    /// A filter from a predicate over encoded public keys (`true`: the link is up).
    pub fn new(allows: impl Fn(&[u8]) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(allows))
    }

    /// Whether the link to the peer with encoded key `key` is up.
    pub(crate) fn allows(&self, key: &[u8]) -> bool {
        (self.0)(key)
    }
}

impl std::fmt::Debug for LinkFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkFilter(..)")
    }
}

impl<S: Signer> Config<S> {
    /// Conservative settings for production networks: 1 MiB frames, 5 s handshake deadline,
    /// 5 s to resolve a host name, pings every 5 s, 30 handshakes per IP per minute, blocks for one hour, 1024 buffered
    /// connection events per subscriber; peer records advertising loopback addresses are
    /// dropped (private ranges are accepted).
    pub fn recommended(
        signer: S,
        namespace: &[u8],
        listen: SocketAddr,
        dialable: SocketAddr,
        bootstrappers: Vec<PeerUrl>,
    ) -> Self {
        let handshake = p2p_handshake::Config::recommended(namespace.to_vec());
        let mut mux = p2p_mux::MuxConfig::recommended();
        mux.max_frame_plaintext = plaintext_for(handshake.max_frame_len);
        Self {
            signer,
            listen,
            dialable,
            dialable_host: None,
            bootstrappers,
            handshake,
            discovery: p2p_discovery::Config::recommended(namespace.to_vec()),
            mux,
            max_concurrent_handshakes: nz(64),
            max_concurrent_dials: nz(64),
            handshakes_per_ip_per_minute: nz32(30),
            handshakes_per_prefix_per_minute: nz32(120),
            max_handshakes_per_prefix: nz(8),
            max_tracked_ips: nz(1 << 16),
            version_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_inbound_connections: nz(1024),
            max_observer_connections: 256,
            idle_timeout: Duration::from_secs(30),
            dial_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            resolve_timeout: Duration::from_secs(5),
            resolver: crate::Resolver::system(),
            write_batch_bytes: nz(256 * 1024),
            coalesce_limit: p2p_session::DEFAULT_COALESCE_LIMIT,
            shutdown_flush: Duration::from_secs(2),
            software_version: concat!("p2p/", env!("CARGO_PKG_VERSION")).to_owned(),
            block_duration: Duration::from_secs(3600),
            event_capacity: nz(1024),
            insecure_link_filter_for_testing: None,
        }
    }

    /// Fast timers and generous limits for local clusters and tests (discovery's `local` preset:
    /// loopback addresses accepted in peer records and as resolved host names; 1 s to resolve
    /// a host name; blocks for one minute, 256 buffered connection events). Never for production: short timeouts and high handshake rates make
    /// a node easier to flood.
    pub fn aggressive(
        signer: S,
        namespace: &[u8],
        listen: SocketAddr,
        dialable: SocketAddr,
        bootstrappers: Vec<PeerUrl>,
    ) -> Self {
        let mut handshake = p2p_handshake::Config::recommended(namespace.to_vec());
        handshake.deadline = Duration::from_secs(2);
        let base = Self::recommended(signer, namespace, listen, dialable, bootstrappers);
        Self {
            handshake,
            discovery: p2p_discovery::Config::local(namespace.to_vec()),
            handshakes_per_ip_per_minute: nz32(60_000),
            // Local clusters dial from one address: the per-prefix limits must not bind.
            handshakes_per_prefix_per_minute: nz32(240_000),
            max_handshakes_per_prefix: base.max_concurrent_handshakes,
            idle_timeout: Duration::from_secs(5),
            version_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(5),
            dial_interval: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(2),
            resolve_timeout: Duration::from_secs(1),
            shutdown_flush: Duration::from_millis(500),
            block_duration: Duration::from_secs(60),
            event_capacity: nz(256),
            max_observer_connections: 64,
            ..base
        }
    }

    /// Sets the largest frame body (plaintext + tag) in both the handshake and the mux
    /// settings, which must agree. **Must match** across peers. [`crate::Network::new`] refuses
    /// a size below the largest control frame or above [`p2p_session::MAX_FRAME_LEN`].
    pub fn set_max_frame_len(&mut self, max_frame_len: u32) {
        self.handshake.max_frame_len = max_frame_len;
        self.mux.max_frame_plaintext = plaintext_for(max_frame_len);
    }
}

/// Largest plaintext of a frame whose body (plaintext + tag) is at most `max_frame_len`.
fn plaintext_for(max_frame_len: u32) -> u32 {
    max_frame_len.saturating_sub(p2p_cipher::TAG_LEN as u32)
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

fn nz32(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}
