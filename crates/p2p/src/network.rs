//! `Network` (the running node) and `Oracle` (its control handle).

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use governor::Quota;
use p2p_discovery::{KeepConnection, Tracker, resolve_duplicate};
use p2p_handshake::Refusal;
use p2p_identity::{PeerUrl, Signer};
use p2p_mux::{Mux, Receiver, Sender};
use p2p_proto::message::Payload;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{Config, PROTOCOL_MAJOR, PROTOCOL_MINOR};
use crate::metrics::{ConnDirection, IndexLabel, Metrics, ReasonLabel};
use crate::peer;

/// The public key type of a signer.
pub(crate) type Key<S> = <S as Signer>::PublicKey;

/// The sender and receiver of one channel, as [`Network::register`] returns them.
pub type Channel<S> = (Sender<Key<S>>, Receiver<Key<S>>);

/// Why the network could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding the listener or another socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A bootstrapper URL names only a peer id; the handshake needs the full public key.
    #[error("bootstrapper {0} gives a peer id, not a public key; use <public-key-hex>@host:port")]
    BootstrapperWithoutKey(PeerUrl),
    /// A bootstrapper URL's key is not a valid key of this network's scheme.
    #[error("bootstrapper {url}: {source}")]
    BootstrapperKey {
        /// The URL.
        url: PeerUrl,
        /// Why the key is invalid.
        source: p2p_identity::KeyError,
    },
    /// A bootstrapper's host name did not resolve.
    #[error("bootstrapper {0}: host name did not resolve")]
    BootstrapperUnresolved(PeerUrl),
    /// The layer configurations disagree (namespace or frame size).
    #[error("inconsistent configuration: {0}")]
    Config(&'static str),
    /// Discovery refused its initial state (for example our own record).
    #[error("discovery: {0}")]
    Discovery(#[from] p2p_discovery::Error),
    /// A channel could not be registered.
    #[error("channel: {0}")]
    Channel(#[from] p2p_mux::MuxError),
    /// [`Network::run`] was called on a network whose oracle already shut it down.
    #[error("the network was shut down")]
    Shutdown,
}

/// State shared by the network's tasks and the oracle.
pub(crate) struct Shared<S: Signer> {
    pub(crate) signer: S,
    pub(crate) me: Key<S>,
    pub(crate) handshake: p2p_handshake::Config,
    pub(crate) idle_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) dial_interval: Duration,
    pub(crate) write_batch_bytes: usize,
    pub(crate) shutdown_flush: Duration,
    pub(crate) max_inbound: usize,
    pub(crate) local_addr: SocketAddr,
    pub(crate) tracker: Mutex<Tracker<Key<S>>>,
    pub(crate) state: Mutex<State<Key<S>>>,
    pub(crate) metrics: Metrics,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) handshake_slots: Arc<Semaphore>,
    pub(crate) ip_limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    pub(crate) tasks: Mutex<JoinSet<()>>,
}

/// Connections and blocks, under one lock so admission decisions are atomic.
pub(crate) struct State<P> {
    pub(crate) peers: HashMap<P, PeerEntry>,
    pub(crate) blocked: HashSet<P>,
    pub(crate) next_id: u64,
    pub(crate) inbound: usize,
}

/// One established connection.
pub(crate) struct PeerEntry {
    pub(crate) id: u64,
    pub(crate) dialed_by_me: bool,
    /// Closing it (sending `true`) ends both tasks of the connection.
    pub(crate) close: watch::Sender<bool>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (every critical section
/// here leaves the data consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<S: Signer> Shared<S> {
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if !*self.shutdown.borrow() {
            lock(&self.tasks).spawn(fut);
        }
    }

    pub(crate) fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The handshake authorizer: cheap checks before any signature verification.
    pub(crate) fn authorize(&self, key: &Key<S>) -> Result<(), Refusal> {
        if *key == self.me {
            return Err(Refusal::Other("self connection"));
        }
        {
            let state = lock(&self.state);
            if state.blocked.contains(key) {
                return Err(Refusal::Blocked);
            }
            if state.peers.contains_key(key) {
                return Err(Refusal::AlreadyConnected);
            }
        }
        if !lock(&self.tracker).is_authorized(key) {
            return Err(Refusal::NotAuthorized);
        }
        Ok(())
    }

    /// Admits an established connection, applying the simultaneous-dial rule. Returns its id
    /// and close signal, or the reason it is refused.
    pub(crate) fn admit(
        &self,
        key: &Key<S>,
        dialed_by_me: bool,
    ) -> Result<(u64, watch::Receiver<bool>), &'static str> {
        if *key == self.me {
            return Err("self_connection");
        }
        if !lock(&self.tracker).is_authorized(key) {
            return Err("not_authorized");
        }
        let mut state = lock(&self.state);
        if state.blocked.contains(key) {
            return Err("blocked");
        }
        if let Some(existing) = state.peers.get(key) {
            match resolve_duplicate(&self.me, key, existing.dialed_by_me, dialed_by_me) {
                KeepConnection::Existing => return Err("duplicate"),
                KeepConnection::New => {
                    existing.close.send_replace(true);
                }
            }
        }
        state.next_id += 1;
        let id = state.next_id;
        let (close, close_rx) = watch::channel(false);
        state.peers.insert(
            key.clone(),
            PeerEntry {
                id,
                dialed_by_me,
                close,
            },
        );
        drop(state);
        // Invariant: authorized above; the tracker only refuses unauthorized keys.
        let _ = lock(&self.tracker).handle_connected(key, dialed_by_me);
        Ok((id, close_rx))
    }

    /// Forgets connection `id` of `key` (if it is still the current one).
    pub(crate) fn release(&self, key: &Key<S>, id: u64) -> bool {
        let mut state = lock(&self.state);
        let current = state.peers.get(key).is_some_and(|e| e.id == id);
        if current {
            state.peers.remove(key);
            drop(state);
            let _ = lock(&self.tracker).handle_disconnected(key, now_ms(), &mut rand::rng());
        }
        current
    }

    /// Closes the connection with `key`, if any.
    pub(crate) fn close(&self, key: &Key<S>) {
        if let Some(entry) = lock(&self.state).peers.get(key) {
            entry.close.send_replace(true);
        }
    }
}

/// Milliseconds since the Unix epoch (the time base of handshakes and records).
pub(crate) fn now_ms() -> u64 {
    p2p_handshake::now_ms()
}

/// A network node: register channels, then [`Network::run`] it.
pub struct Network<S: Signer> {
    shared: Arc<Shared<S>>,
    mux: Mux<Key<S>>,
    listener: std::net::TcpListener,
    software_version: String,
}

impl<S: Signer> std::fmt::Debug for Network<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("me", &self.shared.me)
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl<S: Signer> Network<S> {
    /// Builds a network from `config`: binds the listener, signs this node's record, and
    /// registers the metrics in `registry` (under the prefix `p2p`).
    ///
    /// Returns the network (register channels on it, then run it) and its [`Oracle`].
    pub fn new(config: Config<S>, registry: &mut Registry) -> Result<(Self, Oracle<S>), Error> {
        if config.handshake.namespace[..] != config.discovery.namespace[..] {
            return Err(Error::Config("handshake and discovery namespaces differ"));
        }
        let plaintext = u64::from(config.mux.max_frame_plaintext) + p2p_cipher::TAG_LEN as u64;
        if plaintext > u64::from(config.handshake.max_frame_len) {
            return Err(Error::Config(
                "mux.max_frame_plaintext + 16 exceeds handshake.max_frame_len",
            ));
        }
        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let mut dialable = config.dialable;
        if dialable.port() == 0 {
            dialable.set_port(local_addr.port());
        }
        let mut bootstrappers = Vec::with_capacity(config.bootstrappers.len());
        for url in &config.bootstrappers {
            let key = match url.public_key::<Key<S>>() {
                Ok(Some(key)) => key,
                Ok(None) => return Err(Error::BootstrapperWithoutKey(url.clone())),
                Err(source) => {
                    return Err(Error::BootstrapperKey {
                        url: url.clone(),
                        source,
                    });
                }
            };
            let addr = match url.socket_addr() {
                Some(addr) => addr,
                None => (url.host.to_string().as_str(), url.port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .ok_or_else(|| Error::BootstrapperUnresolved(url.clone()))?,
            };
            bootstrappers.push((key, addr));
        }
        let tracker = Tracker::with_signer(
            config.discovery.clone(),
            &config.signer,
            dialable,
            now_ms(),
            bootstrappers,
        )?;
        let metrics = Metrics::default();
        let sub = registry.sub_registry_with_prefix("p2p");
        metrics.register(sub);
        let mux = Mux::new(config.mux.clone());
        mux.metrics().register(sub);
        let per_minute = config.handshakes_per_ip_per_minute;
        let quota = Quota::per_minute(per_minute).allow_burst(per_minute);
        let (shutdown, _) = watch::channel(false);
        let me = config.signer.public_key();
        let shared = Arc::new(Shared {
            me,
            handshake: config.handshake,
            idle_timeout: config.idle_timeout,
            connect_timeout: config.connect_timeout,
            dial_interval: config.dial_interval,
            write_batch_bytes: config.write_batch_bytes.get(),
            shutdown_flush: config.shutdown_flush,
            max_inbound: config.max_inbound_connections.get(),
            local_addr,
            tracker: Mutex::new(tracker),
            state: Mutex::new(State {
                peers: HashMap::new(),
                blocked: HashSet::new(),
                next_id: 0,
                inbound: 0,
            }),
            metrics,
            shutdown,
            handshake_slots: Arc::new(Semaphore::new(config.max_concurrent_handshakes.get())),
            ip_limiter: governor::RateLimiter::keyed(quota),
            tasks: Mutex::new(JoinSet::new()),
            signer: config.signer,
        });
        let oracle = Oracle {
            shared: Arc::clone(&shared),
        };
        Ok((
            Self {
                shared,
                mux,
                listener,
                software_version: config.software_version,
            },
            oracle,
        ))
    }

    /// Registers channel `channel` with its per-peer rate `quota` (inbound and outbound),
    /// maximum message size in bytes, backlog (messages queued per peer, and the receiver's
    /// queue) and optional zstd level. Returns the channel's sender and receiver.
    ///
    /// Channels must be registered before [`Network::run`]; ids and limits **must match**
    /// across peers.
    pub fn register(
        &mut self,
        channel: u32,
        quota: Quota,
        max_message_size: usize,
        backlog: usize,
        compression: Option<i32>,
    ) -> Result<Channel<S>, Error> {
        Ok(self
            .mux
            .register(channel, quota, max_message_size, backlog, compression)?)
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Runs the network until [`Oracle::shutdown`]: accepts and dials connections, runs one
    /// reader and one writer task per peer, gossips addresses. On shutdown, queued messages are
    /// flushed for at most the configured time, then every task ends before this returns.
    pub async fn run(self) -> Result<(), Error> {
        let Self {
            shared,
            mux,
            listener,
            software_version,
        } = self;
        if shared.shutting_down() {
            return Err(Error::Shutdown);
        }
        let listener = TcpListener::from_std(listener)?;
        let version = p2p_proto::VersionInfo {
            protocol_major: PROTOCOL_MAJOR,
            protocol_minor: PROTOCOL_MINOR,
            namespace: Bytes::copy_from_slice(&shared.handshake.namespace),
            software_version,
            channels: mux.channel_ids().collect(),
        };
        let ctx = Arc::new(peer::Ctx {
            control: mux.control_sender(),
            version_frame: encode_payload(&Payload::Version(version.clone())),
            version,
            mux,
            shared: Arc::clone(&shared),
        });
        let me = shared.me.to_string();
        let span = info_span!("node", me = %&me[..16.min(me.len())]);
        shared.spawn(listen_loop(Arc::clone(&ctx), listener).instrument(span.clone()));
        shared.spawn(dial_loop(Arc::clone(&ctx)).instrument(span.clone()));
        shared.spawn(housekeeping_loop(Arc::clone(&ctx)).instrument(span.clone()));
        info!(parent: &span, addr = %shared.local_addr, "network running");

        let mut shutdown = shared.shutdown.subscribe();
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            // Reap finished tasks while waiting, so the set does not grow.
            let reap = tokio::time::sleep(Duration::from_millis(500));
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() { break },
                () = reap => {
                    let mut tasks = lock(&shared.tasks);
                    while tasks.try_join_next().is_some() {}
                }
            }
        }
        info!(parent: &span, "shutting down");
        // Connections flush for `shutdown_flush`; give them that plus a margin, then abort.
        let mut tasks = std::mem::take(&mut *lock(&shared.tasks));
        let deadline = shared.shutdown_flush + Duration::from_millis(500);
        let drained = tokio::time::timeout(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(parent: &span, remaining = tasks.len(), "tasks did not end in time; aborting");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        // Tasks spawned concurrently with the take above (a handshake finishing right then).
        let mut late = std::mem::take(&mut *lock(&shared.tasks));
        late.abort_all();
        while late.join_next().await.is_some() {}
        drop(ctx);
        Ok(())
    }
}

pub(crate) fn encode_payload(payload: &Payload) -> Bytes {
    let mut out = BytesMut::with_capacity(p2p_framing::envelope::encoded_len(payload));
    p2p_framing::envelope::encode(payload, &mut out);
    out.freeze()
}

/// Accepts TCP connections and runs inbound handshakes within the configured limits.
async fn listen_loop<S: Signer>(ctx: Arc<peer::Ctx<S>>, listener: TcpListener) {
    let shared = &ctx.shared;
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                debug!(error = %e, "accept failed");
                // Out of file descriptors and similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let refuse = |reason: &str| {
            shared
                .metrics
                .refused
                .get_or_create(&ReasonLabel {
                    direction: ConnDirection::Inbound,
                    reason: reason.to_owned(),
                })
                .inc();
            debug!(%addr, reason, "refused inbound connection");
        };
        if shared.ip_limiter.check_key(&addr.ip()).is_err() {
            refuse("ip_rate_limited");
            continue;
        }
        let Ok(permit) = Arc::clone(&shared.handshake_slots).try_acquire_owned() else {
            refuse("handshake_slots_full");
            continue;
        };
        {
            let mut state = lock(&shared.state);
            if state.inbound >= shared.max_inbound {
                drop(state);
                refuse("inbound_cap");
                continue;
            }
            state.inbound += 1;
        }
        let guard = InboundGuard(Arc::clone(&ctx));
        let ctx2 = Arc::clone(&ctx);
        shared.spawn(async move {
            let _guard = guard;
            let _ = stream.set_nodelay(true);
            let shared = &ctx2.shared;
            let result = p2p_handshake::accept(
                stream,
                &shared.signer,
                |key: &Key<S>| shared.authorize(key),
                &shared.handshake,
            )
            .await;
            drop(permit);
            match result {
                Ok(conn) => peer::run_connection(ctx2, conn, false).await,
                Err(e) => {
                    count_handshake(shared, ConnDirection::Inbound, handshake_reason(&e));
                    debug!(%addr, error = %e, "inbound handshake failed");
                }
            }
        });
    }
}

/// Decrements the inbound connection count when an inbound connection ends.
struct InboundGuard<S: Signer>(Arc<peer::Ctx<S>>);

impl<S: Signer> Drop for InboundGuard<S> {
    fn drop(&mut self) {
        let mut state = lock(&self.0.shared.state);
        state.inbound = state.inbound.saturating_sub(1);
    }
}

pub(crate) fn count_handshake<S: Signer>(
    shared: &Shared<S>,
    direction: ConnDirection,
    reason: &str,
) {
    shared
        .metrics
        .handshakes
        .get_or_create(&ReasonLabel {
            direction,
            reason: reason.to_owned(),
        })
        .inc();
}

/// A short, stable label for a handshake failure.
fn handshake_reason(e: &p2p_handshake::Error) -> &'static str {
    use p2p_handshake::{Error as E, HandshakeError as H};
    match e {
        E::Timeout => "timeout",
        E::Closed => "closed",
        E::Io(_) => "io",
        E::Frame(_) => "oversized",
        E::Cipher(_) => "confirmation",
        E::Handshake(h) => match h {
            H::NetworkMismatch => "network_mismatch",
            H::Refused(Refusal::NotAuthorized) => "not_authorized",
            H::Refused(Refusal::Blocked) => "blocked",
            H::Refused(Refusal::AlreadyConnected) => "already_connected",
            H::BadSignature(_) => "bad_signature",
            H::TimestampTooOld { .. } | H::TimestampTooNew { .. } => "timestamp",
            H::WrongRecipient => "wrong_recipient",
            H::UnexpectedPeer => "unexpected_peer",
            _ => "invalid",
        },
        _ => "other",
    }
}

/// Asks discovery whom to dial, at the configured interval.
async fn dial_loop<S: Signer>(ctx: Arc<peer::Ctx<S>>) {
    let shared = &ctx.shared;
    let mut shutdown = shared.shutdown.subscribe();
    let mut tick = tokio::time::interval(shared.dial_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let dials = lock(&shared.tracker).poll_dials(now_ms());
        for (key, addr) in dials {
            let blocked = lock(&shared.state).blocked.contains(&key);
            if blocked {
                let _ = lock(&shared.tracker).handle_dial_failed(&key, now_ms(), &mut rand::rng());
                continue;
            }
            let ctx2 = Arc::clone(&ctx);
            shared.spawn(
                async move { dial_one(ctx2, key, addr).await }
                    .instrument(info_span!("dial", %addr)),
            );
        }
    }
}

async fn dial_one<S: Signer>(ctx: Arc<peer::Ctx<S>>, key: Key<S>, addr: SocketAddr) {
    let shared = &ctx.shared;
    let Ok(permit) = Arc::clone(&shared.handshake_slots).acquire_owned().await else {
        return;
    };
    let attempt = async {
        let stream = tokio::time::timeout(shared.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect_timeout")?
            .map_err(|_| "connect_failed")?;
        let _ = stream.set_nodelay(true);
        p2p_handshake::dial(stream, &shared.signer, key.clone(), &shared.handshake)
            .await
            .map_err(|e| {
                debug!(error = %e, "outbound handshake failed");
                handshake_reason(&e)
            })
    };
    let result = attempt.await;
    drop(permit);
    match result {
        Ok(conn) => peer::run_connection(ctx, conn, true).await,
        Err(reason) => {
            count_handshake(shared, ConnDirection::Outbound, reason);
            let _ = lock(&shared.tracker).handle_dial_failed(&key, now_ms(), &mut rand::rng());
        }
    }
}

/// Pings, evictions and gauges.
async fn housekeeping_loop<S: Signer>(ctx: Arc<peer::Ctx<S>>) {
    let shared = &ctx.shared;
    let mut shutdown = shared.shutdown.subscribe();
    let period = (shared.dial_interval / 2).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_gc = Duration::ZERO;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let (ping, evictions, stats) = {
            let mut tracker = lock(&shared.tracker);
            let ping = tracker.poll_ping(now_ms(), &mut rand::rng());
            (ping, tracker.take_evictions(), tracker.stats())
        };
        if let Some(bit_vec) = ping {
            let frame = encode_payload(&Payload::BitVec(bit_vec));
            let peers: Vec<Key<S>> = lock(&shared.state).peers.keys().cloned().collect();
            for peer in peers {
                // A full control queue means the peer is not reading; its idle timeout ends it.
                let _ = ctx.control.send(&peer, frame.clone());
            }
        }
        for key in evictions {
            info!(peer = %key, "peer left every tracked set; disconnecting");
            shared.close(&key);
        }
        for s in stats {
            let label = IndexLabel { index: s.index };
            shared
                .metrics
                .known_peers
                .get_or_create(&label)
                .set(s.known as i64);
            shared
                .metrics
                .connected_peers
                .get_or_create(&label)
                .set(s.connected as i64);
        }
        since_gc += period;
        if since_gc >= Duration::from_secs(60) {
            since_gc = Duration::ZERO;
            shared.ip_limiter.retain_recent();
            shared.ip_limiter.shrink_to_fit();
        }
    }
}

/// The control handle of a [`Network`]: peer sets, blocks, shutdown. Cheap to clone.
pub struct Oracle<S: Signer> {
    shared: Arc<Shared<S>>,
}

impl<S: Signer> Clone for Oracle<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: Signer> std::fmt::Debug for Oracle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oracle")
            .field("me", &self.shared.me)
            .finish_non_exhaustive()
    }
}

impl<S: Signer> Oracle<S> {
    /// Authorizes the peer set `index` (keys are sorted and de-duplicated). Only the most
    /// recent indexes are tracked; peers that are in no tracked set any more (and are not
    /// bootstrappers) are disconnected.
    pub fn register(&self, index: u64, keys: Vec<Key<S>>) -> Result<(), p2p_discovery::Error> {
        let evictions = {
            let mut tracker = lock(&self.shared.tracker);
            tracker.handle_peer_set(index, keys)?;
            tracker.take_evictions()
        };
        for key in evictions {
            info!(peer = %key, "peer left every tracked set; disconnecting");
            self.shared.close(&key);
        }
        Ok(())
    }

    /// Blocks `key`: disconnects it and refuses it until [`Oracle::unblock`].
    pub fn block(&self, key: Key<S>) {
        lock(&self.shared.state).blocked.insert(key.clone());
        self.shared.close(&key);
    }

    /// Lifts a block.
    pub fn unblock(&self, key: &Key<S>) {
        lock(&self.shared.state).blocked.remove(key);
    }

    /// The peers connected right now.
    pub fn connected(&self) -> Vec<Key<S>> {
        lock(&self.shared.state).peers.keys().cloned().collect()
    }

    /// This node's public key.
    pub fn public_key(&self) -> Key<S> {
        self.shared.me.clone()
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A peer URL for this node (`<key>@<listen address>`).
    pub fn peer_url(&self) -> PeerUrl {
        PeerUrl::new(&self.shared.me, self.shared.local_addr)
    }

    /// Asks [`Network::run`] to flush and end.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}
