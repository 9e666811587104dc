//! A node's manager, mux and a session with one peer, on simulated time.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use governor::Quota;
use p2p_discovery::Tracker;
use p2p_identity::{Signer, ed25519};
use p2p_mux::{Mux, MuxConfig, Receiver, Sender};
use p2p_proto::VersionInfo;
use p2p_proto::message::Payload;
use p2p_session::decode::encode;
use p2p_session::{Event, Manager, ManagerConfig, Now, Session, SessionConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(crate) const NAMESPACE: &[u8] = b"_P2P_SESSION_TEST";
pub(crate) const UNIX0: u64 = 1_700_000_000_000;

pub(crate) type K = ed25519::PrivateKey;
pub(crate) type P = ed25519::PublicKey;

pub(crate) struct Node {
    pub(crate) keys: Vec<K>,
    pub(crate) manager: Arc<Manager<P, u32>>,
    pub(crate) mux: Mux<P>,
    pub(crate) tx: Sender<P>,
    pub(crate) rx: Receiver<P>,
    pub(crate) discovery: p2p_discovery::Config,
    pub t0: Instant,
    pub(crate) rng: ChaCha8Rng,
    /// Writer halves of admitted peers (dropping one disconnects the peer from the mux).
    pub(crate) schedulers: Vec<p2p_mux::Scheduler<P>>,
}

pub(crate) fn manager_config() -> ManagerConfig {
    ManagerConfig {
        max_inbound: NonZeroUsize::new(4).unwrap(),
        max_inbound_handshakes: NonZeroUsize::new(2).unwrap(),
        max_dials: NonZeroUsize::new(2).unwrap(),
        handshakes_per_ip_per_minute: NonZeroU32::new(3).unwrap(),
        handshakes_per_prefix_per_minute: NonZeroU32::new(20).unwrap(),
        max_handshakes_per_prefix: NonZeroUsize::new(2).unwrap(),
        max_tracked_ips: NonZeroUsize::new(16).unwrap(),
        block_duration: Duration::from_secs(60),
        max_observer_inbound: 0,
    }
}

/// Node 0 of a set of `n` keys (seeds 0..n), tracking that set as index 0.
pub(crate) fn node(n: u64) -> Node {
    node_with(n, manager_config())
}

/// [`node`] with other manager limits.
pub(crate) fn node_with(n: u64, config: ManagerConfig) -> Node {
    node_at(
        n,
        config,
        "127.0.0.1:7000".parse::<std::net::SocketAddr>().unwrap(),
    )
}

/// [`node_with`], whose own record advertises `address`.
pub(crate) fn node_at(
    n: u64,
    config: ManagerConfig,
    address: impl Into<p2p_discovery::Address>,
) -> Node {
    let keys: Vec<K> = (0..n).map(K::insecure_from_seed).collect();
    let discovery = p2p_discovery::Config::local(NAMESPACE.to_vec());
    let tracker =
        Tracker::with_signer(discovery.clone(), &keys[0], address, UNIX0, vec![]).unwrap();
    let t0 = Instant::now();
    let manager = Arc::new(Manager::new(config, tracker, t0));
    manager
        .handle_peer_set(0, keys.iter().map(Signer::public_key).collect())
        .unwrap();
    let mut mux = Mux::new(MuxConfig {
        max_frame_plaintext: 4096,
        ..MuxConfig::recommended()
    });
    let quota = Quota::per_second(NonZeroU32::new(10).unwrap());
    let (tx, rx) = mux.register(1, quota, 1 << 16, 2, None).unwrap();
    Node {
        keys,
        manager,
        mux,
        tx,
        rx,
        discovery,
        t0,
        rng: ChaCha8Rng::seed_from_u64(1),
        schedulers: Vec::new(),
    }
}

pub(crate) fn version(namespace: &[u8]) -> VersionInfo {
    VersionInfo {
        protocol_major: 1,
        protocol_minor: 0,
        namespace: Bytes::copy_from_slice(namespace),
        software_version: "test/1".into(),
        channels: vec![1],
    }
}

impl Node {
    pub(crate) fn key(&self, i: usize) -> P {
        self.keys[i].public_key()
    }

    pub(crate) fn config(&self) -> SessionConfig {
        SessionConfig::new(
            &self.discovery,
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
    }

    pub(crate) fn at(&self, ms: u64) -> Now {
        Now {
            instant: self.t0 + Duration::from_millis(ms),
            unix_ms: UNIX0 + ms,
        }
    }

    /// A session with peer `i` that just finished its handshake at `t0`.
    pub(crate) fn session(&self, i: usize) -> Session<P> {
        Session::new(
            self.key(i),
            false,
            version(NAMESPACE),
            self.config(),
            self.t0,
        )
    }

    pub(crate) fn frame(
        &mut self,
        s: &mut Session<P>,
        body: Bytes,
        ms: u64,
    ) -> Result<Event, p2p_session::Error> {
        let now = self.at(ms);
        s.handle_frame(body, now, &self.manager, &mut self.rng)
    }

    /// The next envelope of a batch frame ([`Session::handle_rest`]).
    pub(crate) fn rest(
        &mut self,
        s: &mut Session<P>,
        ms: u64,
    ) -> Option<Result<Event, p2p_session::Error>> {
        let now = self.at(ms);
        s.handle_rest(now, &self.manager, &mut self.rng)
    }

    /// Runs the version step and admits the peer; returns the session with its opening
    /// frames drained.
    pub(crate) fn admitted(&mut self, i: usize, handle: u32) -> Session<P> {
        let mut s = self.session(i);
        assert!(s.poll_transmit().is_some());
        let event = self
            .frame(&mut s, encode(&Payload::Version(version(NAMESPACE))), 0)
            .unwrap();
        assert!(matches!(event, Event::Admit), "{event:?}");
        let admitted = self
            .manager
            .admit(&self.key(i), false, handle, UNIX0, &mut self.rng)
            .unwrap();
        let mut scheduler = None;
        let mux = &self.mux;
        s.handle_admitted(&admitted, |opening| {
            mux.peer_connected_with(self.keys[i].public_key(), opening)
                .map(|h| {
                    scheduler = Some(h.scheduler);
                    h.inbound
                })
        })
        .unwrap();
        self.schedulers.extend(scheduler);
        while s.poll_transmit().is_some() {}
        s
    }
}

/// A `Message { peers: Peers { n empty Peer entries } }`: 2 bytes per entry on the wire.
pub(crate) fn empty_records(n: usize) -> Bytes {
    let inner = [0x0a, 0x00].repeat(n);
    let mut out = vec![0x1a];
    let mut len = inner.len() as u64;
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(&inner);
    Bytes::from(out)
}
