//! `Network` (the running node) and `Oracle` (its control handle).

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_discovery::{Address, HostError, HostName, Tracker};
use p2p_identity::{Host, PeerUrl, Signer, Verifier};
use p2p_mux::{Mux, Receiver, Sender};
use p2p_session::{DialNowError, Manager, ManagerConfig, PeerEvent, SessionConfig};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{Config, PROTOCOL_MAJOR, PROTOCOL_MINOR};
use crate::events::Events;
use crate::metrics::{ConnDirection, IndexLabel, Metrics, ReasonLabel};
use crate::peer;

/// The public key type of a signer.
pub(crate) type Key<S> = <S as Signer>::PublicKey;

/// The close signal of one connection: sending `true` ends both of its tasks.
pub(crate) type CloseHandle = Arc<watch::Sender<bool>>;

/// The sender and receiver of one channel, as [`Network::register`] returns them.
pub type Channel<S> = (Sender<Key<S>>, Receiver<Key<S>>);

/// Why the network could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding the listener or another socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A bootstrapper URL's key is not a valid key of this network's scheme.
    #[error("bootstrapper {url}: {source}")]
    BootstrapperKey {
        /// The URL.
        url: PeerUrl,
        /// Why the key is invalid.
        source: p2p_identity::KeyError,
    },
    /// A bootstrapper's host name is not a valid host name (it is resolved only at dial
    /// time; see [`HostName`] for the syntax).
    #[error("bootstrapper {url}: {source}")]
    BootstrapperHost {
        /// The URL.
        url: PeerUrl,
        /// Why the name is refused.
        source: HostError,
    },
    /// The layer configurations disagree (namespace or frame size).
    #[error("inconsistent configuration: {0}")]
    Config(&'static str),
    /// The maximum frame length is outside the allowed range: at least the largest control
    /// frame (own record, bit vector, full gossip answer, version info), at most
    /// [`p2p_session::MAX_FRAME_LEN`].
    #[error("max_frame_len {got} outside [{min}, {max}]")]
    FrameSize {
        /// The configured `handshake.max_frame_len`.
        got: u32,
        /// The largest control frame (plaintext and tag) of this configuration.
        min: usize,
        /// [`p2p_session::MAX_FRAME_LEN`].
        max: u32,
    },
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
    pub(crate) session: SessionConfig,
    pub(crate) connect_timeout: Duration,
    pub(crate) resolve_timeout: Duration,
    pub(crate) resolver: crate::Resolver,
    pub(crate) address_policy: p2p_discovery::AddressPolicy,
    pub(crate) link_filter: Option<crate::config::LinkFilter>,
    pub(crate) dial_interval: Duration,
    pub(crate) write_batch_bytes: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) shutdown_flush: Duration,
    pub(crate) local_addr: SocketAddr,
    pub(crate) manager: Arc<Manager<Key<S>, CloseHandle>>,
    pub(crate) metrics: Metrics,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) tasks: Mutex<JoinSet<()>>,
    /// Wakes the dialer before its next tick (a peer became dialable).
    pub(crate) dial_now: tokio::sync::Notify,
    /// Connection events for subscribers.
    pub(crate) events: broadcast::Sender<PeerEvent<Key<S>>>,
    /// Held while moving events from the manager to `events`, so that they keep their order.
    pub(crate) events_order: Mutex<()>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the task set stays
/// consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<S: Signer> Shared<S> {
    /// Whether the test hook leaves the link to the peer with encoded key `key` up.
    pub(crate) fn link_up(&self, key: &[u8]) -> bool {
        self.link_filter.as_ref().is_none_or(|f| f.allows(key))
    }

    /// Spawns `fut` into the task set; returns `false` (and drops it) once shutting down.
    pub(crate) fn spawn<F>(&self, fut: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = lock(&self.tasks);
        if *self.shutdown.borrow() {
            return false;
        }
        tasks.spawn(fut);
        true
    }

    pub(crate) fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Moves the manager's connection events to the subscribers, in order. Call after every
    /// manager call that may produce one (admit, established, release). Never waits: a
    /// broadcast send drops the oldest event for subscribers that lag.
    pub(crate) fn publish_events(&self) {
        let _order = lock(&self.events_order);
        while let Some(event) = self.manager.poll_event() {
            self.metrics.events.inc();
            // No subscriber: the event is simply not kept.
            let _ = self.events.send(event);
        }
    }

    pub(crate) fn count(&self, family: Family, direction: ConnDirection, reason: &str) {
        let family = match family {
            Family::Handshakes => &self.metrics.handshakes,
            Family::Disconnects => &self.metrics.disconnects,
            Family::Refused => &self.metrics.refused,
        };
        family
            .get_or_create(&ReasonLabel {
                direction,
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// Which counter family [`Shared::count`] increments.
#[derive(Clone, Copy)]
pub(crate) enum Family {
    Handshakes,
    Disconnects,
    Refused,
}

/// Milliseconds since the Unix epoch (the time base of handshakes and records).
pub(crate) fn now_ms() -> u64 {
    p2p_handshake::now_ms()
}

/// Closes a connection through its handle.
pub(crate) fn close(handle: &CloseHandle) {
    handle.send_replace(true);
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
    /// Builds a network from `config`: checks it, binds the listener, signs this node's
    /// record, and registers the metrics in `registry` (under the prefix `p2p`).
    ///
    /// Returns the network (register channels on it, then run it) and its [`Oracle`].
    pub fn new(config: Config<S>, registry: &mut Registry) -> Result<(Self, Oracle<S>), Error> {
        if config.handshake.namespace[..] != config.discovery.namespace[..] {
            return Err(Error::Config("handshake and discovery namespaces differ"));
        }
        let max_frame = config.handshake.max_frame_len;
        let min_frame = p2p_session::largest_control_plaintext::<Key<S>>(
            &config.discovery,
            config.handshake.namespace.len(),
        ) + p2p_cipher::TAG_LEN;
        if (max_frame as usize) < min_frame || max_frame > p2p_session::MAX_FRAME_LEN {
            return Err(Error::FrameSize {
                got: max_frame,
                min: min_frame,
                max: p2p_session::MAX_FRAME_LEN,
            });
        }
        let plaintext = u64::from(config.mux.max_frame_plaintext) + p2p_cipher::TAG_LEN as u64;
        if plaintext > u64::from(max_frame) {
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
        let dialable = match config.dialable_host {
            None => Address::Socket(dialable),
            Some(name) => Address::host(
                name,
                NonZeroU16::new(dialable.port())
                    .ok_or(Error::Config("the listener bound port 0"))?,
            ),
        };
        let mut bootstrappers = Vec::with_capacity(config.bootstrappers.len());
        let mut id_bootstrappers = Vec::new();
        for url in &config.bootstrappers {
            let key = match url.public_key::<Key<S>>() {
                Ok(key) => key,
                Err(source) => {
                    return Err(Error::BootstrapperKey {
                        url: url.clone(),
                        source,
                    });
                }
            };
            let addr = bootstrapper_address(url)?;
            match key {
                Some(key) => bootstrappers.push((key, addr)),
                // Only an id: matched against the tracked keys at dial time.
                None => id_bootstrappers.push((url.peer_id(), addr)),
            }
        }
        let mut session = SessionConfig::new(
            &config.discovery,
            config.version_timeout,
            config.idle_timeout,
        );
        session.coalesce_limit = config.coalesce_limit;
        let address_policy = config.discovery.address_policy;
        let tracker = Tracker::with_signer(
            config.discovery,
            &config.signer,
            dialable,
            now_ms(),
            bootstrappers,
        )?;
        let manager = Manager::new(
            ManagerConfig {
                max_inbound: config.max_inbound_connections,
                max_inbound_handshakes: config.max_concurrent_handshakes,
                max_dials: config.max_concurrent_dials,
                handshakes_per_ip_per_minute: config.handshakes_per_ip_per_minute,
                handshakes_per_prefix_per_minute: config.handshakes_per_prefix_per_minute,
                max_handshakes_per_prefix: config.max_handshakes_per_prefix,
                max_tracked_ips: config.max_tracked_ips,
                block_duration: config.block_duration,
                max_observer_inbound: config.max_observer_connections,
            },
            tracker,
            Instant::now(),
        );
        for (id, addr) in id_bootstrappers {
            manager.add_id_bootstrapper(id, addr);
        }
        let metrics = Metrics::default();
        let sub = registry.sub_registry_with_prefix("p2p");
        metrics.register(sub);
        let mux = Mux::new(config.mux.clone());
        mux.metrics().register(sub);
        let (shutdown, _) = watch::channel(false);
        let me = config.signer.public_key();
        let shared = Arc::new(Shared {
            me,
            handshake: config.handshake,
            session,
            connect_timeout: config.connect_timeout,
            resolve_timeout: config.resolve_timeout,
            resolver: config.resolver,
            address_policy,
            link_filter: config.insecure_link_filter_for_testing.clone(),
            dial_interval: config.dial_interval,
            write_batch_bytes: config.write_batch_bytes.get(),
            write_timeout: config.write_timeout,
            shutdown_flush: config.shutdown_flush,
            local_addr,
            manager: Arc::new(manager),
            metrics,
            shutdown,
            tasks: Mutex::new(JoinSet::new()),
            dial_now: tokio::sync::Notify::new(),
            events: broadcast::channel(config.event_capacity.get()).0,
            events_order: Mutex::new(()),
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
        quota: governor::Quota,
        max_message_size: usize,
        backlog: usize,
        compression: Option<i32>,
    ) -> Result<Channel<S>, Error> {
        Ok(self
            .mux
            .register(channel, quota, max_message_size, backlog, compression)?)
    }

    /// Like [`Network::register`], for a channel only validators use: observers
    /// ([`Oracle::register_observers`]) are no recipients of [`crate::Recipients::All`] on it
    /// (a send naming one reports it in [`crate::SendReport::restricted`]), and a message an
    /// observer sends on it is dropped (after the channel's rate limits) and counted in
    /// `p2p_mux_dropped_total{reason="ValidatorsOnly"}`; the connection stays. Local policy:
    /// peers need not agree on which channels are validators-only.
    pub fn register_validators_only(
        &mut self,
        channel: u32,
        quota: governor::Quota,
        max_message_size: usize,
        backlog: usize,
        compression: Option<i32>,
    ) -> Result<Channel<S>, Error> {
        Ok(self.mux.register_validators_only(
            channel,
            quota,
            max_message_size,
            backlog,
            compression,
        )?)
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
        // `spawn` refuses new tasks from here on (it checks the flag under the set's lock).
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
        drop(ctx);
        Ok(())
    }
}

/// Accepts TCP connections and runs inbound handshakes within the manager's limits.
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
        let (handshake_permit, inbound_permit) =
            match shared.manager.handle_accept(addr.ip(), Instant::now()) {
                Ok(permits) => permits,
                Err(reason) => {
                    shared.count(Family::Refused, ConnDirection::Inbound, reason.label());
                    debug!(%addr, %reason, "refused inbound connection");
                    continue;
                }
            };
        let ctx2 = Arc::clone(&ctx);
        shared.spawn(async move {
            let _ = stream.set_nodelay(true);
            let shared = &ctx2.shared;
            let result = p2p_handshake::accept(
                stream,
                &shared.signer,
                |key: &[u8]| shared.manager.authorize(key, now_ms()),
                &shared.handshake,
            )
            .await;
            drop(handshake_permit);
            match result {
                Ok(conn) => peer::run_connection(ctx2, conn, false, Some(inbound_permit)).await,
                Err(e) => {
                    shared.count(Family::Handshakes, ConnDirection::Inbound, e.label());
                    debug!(%addr, error = %e, "inbound handshake failed");
                }
            }
        });
    }
}

/// Asks the manager whom to dial, at the configured interval.
async fn dial_loop<S: Signer>(ctx: Arc<peer::Ctx<S>>) {
    let shared = &ctx.shared;
    let mut shutdown = shared.shutdown.subscribe();
    let mut tick = tokio::time::interval(shared.dial_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
            () = shared.dial_now.notified() => {}
        }
        for dial in shared.manager.poll_dials(now_ms(), &mut rand::rng()) {
            let ctx2 = Arc::clone(&ctx);
            let addr = dial.addr.clone();
            shared.spawn(
                async move { dial_one(ctx2, dial).await }.instrument(info_span!("dial", %addr)),
            );
        }
    }
}

async fn dial_one<S: Signer>(ctx: Arc<peer::Ctx<S>>, dial: p2p_session::Dial<Key<S>, CloseHandle>) {
    let shared = &ctx.shared;
    let p2p_session::Dial { key, addr, permit } = dial;
    let attempt = async {
        if !shared.link_up(key.as_bytes()) {
            return Err("connect_failed");
        }
        let connector = crate::resolve::Connector {
            resolver: &shared.resolver,
            resolve_timeout: shared.resolve_timeout,
            connect_timeout: shared.connect_timeout,
            policy: &shared.address_policy,
        };
        let stream = connector
            .connect(&addr, |result| {
                shared
                    .metrics
                    .resolutions
                    .get_or_create(&crate::resolve::ResolutionLabel {
                        result: result.label(),
                    })
                    .inc();
            })
            .await?;
        let _ = stream.set_nodelay(true);
        p2p_handshake::dial(stream, &shared.signer, key.clone(), &shared.handshake)
            .await
            .map_err(|e| {
                debug!(error = %e, "outbound handshake failed");
                e.label()
            })
    };
    let result = attempt.await;
    drop(permit);
    match result {
        Ok(conn) => peer::run_connection(ctx, conn, true, None).await,
        Err(reason) => {
            shared.count(Family::Handshakes, ConnDirection::Outbound, reason);
            shared
                .manager
                .handle_dial_failed(&key, now_ms(), &mut rand::rng());
        }
    }
}

/// A bootstrapper URL's address: its IP, or its host name kept as a name (resolved at each
/// dial).
fn bootstrapper_address(url: &PeerUrl) -> Result<Address, Error> {
    let invalid = |source| Error::BootstrapperHost {
        url: url.clone(),
        source,
    };
    match &url.host {
        Host::Ip(ip) => Ok(Address::Socket(SocketAddr::new(*ip, url.port))),
        Host::Dns(name) => {
            let name = HostName::parse(name).map_err(invalid)?;
            let port = NonZeroU16::new(url.port).ok_or(invalid(HostError::InvalidPort))?;
            Ok(Address::host(name, port))
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
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let work = shared
            .manager
            .poll_housekeeping(now_ms(), Instant::now(), &mut rand::rng());
        if let Some((frame, peers)) = work.ping {
            for peer in peers {
                // A full control queue means the peer is not reading; its timers end it.
                let _ = ctx.control.send(&peer, frame.clone());
            }
        }
        for handle in &work.evict {
            info!("peer left every tracked set; disconnecting");
            close(handle);
        }
        shared.metrics.blocked_peers.set(work.blocked as i64);
        shared
            .metrics
            .observers_connected
            .set(work.observers as i64);
        if work.unblocked > 0 {
            debug!(expired = work.unblocked, "blocks expired; dialing");
            shared.dial_now.notify_one();
        }
        for unknown in &work.unresolved {
            warn!(id = %unknown.id, addr = %unknown.addr, "{unknown}");
        }
        shared
            .metrics
            .unresolved_bootstrappers
            .set(shared.manager.unresolved_bootstrappers() as i64);
        for s in work.stats {
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
    }
}

/// The control handle of a [`Network`]: peer sets, blocks, disconnects and dials on demand,
/// connection events, shutdown. Cheap to clone.
pub struct Oracle<S: Signer> {
    pub(crate) shared: Arc<Shared<S>>,
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
        for handle in self.shared.manager.handle_peer_set(index, keys)? {
            info!("peer left every tracked set; disconnecting");
            close(&handle);
        }
        // New peers with known addresses are dialable now.
        self.shared.dial_now.notify_one();
        Ok(())
    }

    /// Blocks `key` for [`Config::block_duration`]: disconnects it and refuses it until the
    /// block expires or [`Oracle::unblock`]. Blocking again restarts the block.
    pub fn block(&self, key: Key<S>) {
        if let Some(handle) = self.shared.manager.block(key, now_ms()) {
            close(&handle);
        }
    }

    /// Blocks `key` for `duration` (`None`: until [`Oracle::unblock`]), replacing any block
    /// it has; see [`Oracle::block`].
    pub fn block_for(&self, key: Key<S>, duration: Option<Duration>) {
        if let Some(handle) = self.shared.manager.block_for(key, duration, now_ms()) {
            close(&handle);
        }
    }

    /// Whether `key` is blocked now.
    pub fn is_blocked(&self, key: &Key<S>) -> bool {
        self.shared.manager.is_blocked(key, now_ms())
    }

    /// Closes the connection to `key` without blocking it; returns whether it was connected.
    /// Does not wait for the close. The peer stays authorized: it may dial us again at once,
    /// and we redial it after the usual backoff. Its disconnect event's reason is
    /// `disconnect_requested`.
    pub fn disconnect(&self, key: &Key<S>) -> bool {
        match self.shared.manager.disconnect(key) {
            Some(handle) => {
                close(&handle);
                true
            }
            None => false,
        }
    }

    /// Dials `key` now instead of after its backoff or the dialer's next tick, if we know an
    /// address for it (a dial already under way is not repeated).
    ///
    /// Errors: [`DialNowError`] when `key` is ours, not authorized, blocked or connected.
    pub fn dial_now(&self, key: &Key<S>) -> Result<(), DialNowError> {
        self.shared.manager.dial_now(key, now_ms())?;
        self.shared.dial_now.notify_one();
        Ok(())
    }

    /// Subscribes to connection events (peer, connected or disconnected, direction, reason)
    /// from now on. Each subscriber has its own bounded queue of [`Config::event_capacity`]
    /// events; one that lags is told how many it missed and never slows the network.
    pub fn subscribe(&self) -> Events<Key<S>> {
        Events {
            rx: self.shared.events.subscribe(),
            missed: self.shared.metrics.events_missed.clone(),
        }
    }

    /// Lifts a block; the peer is dialed at once (if we know its address).
    pub fn unblock(&self, key: &Key<S>) {
        self.shared.manager.unblock(key);
        self.shared.dial_now.notify_one();
    }

    /// The peers connected right now.
    pub fn connected(&self) -> Vec<Key<S>> {
        self.shared.manager.connected()
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
        // Under the task set's lock, so no task is spawned after `run` takes the set.
        let _tasks = lock(&self.shared.tasks);
        self.shared.shutdown.send_replace(true);
    }
}
