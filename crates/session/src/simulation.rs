//! A seeded discrete-event simulation of a whole network of nodes in one process: no sockets,
//! simulated time, and in every node the real [`Manager`] (admission, dial plan, pings, the
//! discovery [`p2p_discovery::Tracker`]) and the real per-connection discovery routing of
//! [`crate::Session`] (opening allowance, per-key budgets, fatal errors close). Used by the
//! tests, `cargo xtask simulate` and `docs/discovery.md`.
//!
//! # Model
//!
//! - **Time** is in microseconds; events (timers, message arrivals) sit in one queue ordered by
//!   (time, sequence number), so a seed fixes the whole run.
//! - **Links**: the round-trip time between two nodes is fixed per pair, drawn from [`Rtt`]
//!   (default: uniform 10–250 ms); a message takes half of it. Messages on one connection
//!   arrive in order. Bandwidth and CPU time are not modelled.
//! - **Connections**: a dial is carried out by the driver as the facade does: the TCP connect
//!   takes 1 RTT, the dialer's first handshake message reaches the dialee 1.5 RTT after the
//!   dial (there [`Manager::handle_accept`] and [`Manager::authorize`] run; a wrong recipient
//!   key, a refusal or a closed port fails the dial 0.5 RTT later); the dialer finishes at 2 RTT
//!   (its dial slot is freed) and sends its key confirmation and version info; the dialee
//!   finishes and admits at 2.5 RTT, the dialer admits when the dialee's version info arrives,
//!   at 3 RTT. Both then send their record and a bit vector ([`Manager::admit`]).
//!   Simultaneous dials are resolved by the manager's duplicate rule.
//! - **Timers** as in the facade: `poll_dials` every `dial_interval`, `poll_housekeeping`
//!   (the pings, each connection at its own phase) every half of it, the idle timeout per
//!   connection side.
//! - **Frames**: pings and every adversary's frame travel encoded and are decoded and checked
//!   on arrival as on the wire; honest nodes' records and answers are handed over decoded
//!   (their encoded length is counted), which makes the 10,000-node run about a fifth
//!   faster and changes no outcome.
//! - **Dials fail** for a port that no process listens on (a restarted node's old address:
//!   refused after 1 RTT), for a node whose process is down (same), and for an address that
//!   belongs to another key (the dialee refuses the handshake).
//! - **Churn**: once the network has converged, `churn_percent` of the nodes (never node 0, the
//!   bootstrapper) stop: their peers see the connections close half an RTT later. After
//!   `downtime` they start again on a new port with a newer record and a fresh tracker that
//!   knows only the bootstrapper.
//! - **Adversaries** (`adversarial_percent` of the nodes, never node 0), in turn: *silent*
//!   (never pings, never answers), *stale* (answers with the first records of the network,
//!   outdated after churn), *forger* (answers with records of honest keys with newer timestamps
//!   and garbage signatures), *poisoner* (answers with a record signed by a key outside the
//!   set, and its own record re-signed for another node's address, for a loopback address or
//!   with a timestamp far in the future). They run the same manager otherwise.
//! - **Optional cap**: with `max_outbound = Some(d)`, a node stops asking for dials while it
//!   has `d` admitted connections (inbound ones are still accepted). Not a rule of the real
//!   network, which connects to every tracked peer: it is how the 10,000-node run fits in
//!   memory (50 M connections do not).
//!
//! Shared between the simulated nodes (once per process): the sorted key set (`Arc<[V]>`, as
//! a node shares it between its peer sets), verified records (through one
//! [`SharedRecordCache`]: each distinct record is verified once for real, then recognised by
//! its exact bytes), and the signed frames in flight. Each node owns its manager, its
//! tracker's per-peer slots and bit vectors, and its connection table.
//!
//! Full knowledge: every honest node that is up stores the current record of every honest
//! node. Full mesh: every honest node that is up is connected to every other one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_discovery::{SharedRecordCache, Tracker, sign_record};
use p2p_identity::{Signer, Verifier};
use p2p_proto::message::Payload;
use p2p_proto::{Peer, Peers, Signature as WireSignature};
use rand::Rng;
use rand::seq::index::sample;

use crate::SessionConfig;
use crate::decode::{self, Kind};
use crate::manager::{DialPermit, HandshakePermit, InboundPermit, Manager, ManagerConfig};
use crate::session::{Now, Opening, Routed, route_discovery};

/// Unix time (ms) at which every simulation starts.
pub const START_MS: u64 = 1_700_000_000_000;

/// Bytes a frame adds to its plaintext on the wire: the 4-byte length and the 16-byte tag.
pub const FRAME_OVERHEAD: u64 = 20;

/// How round-trip times between nodes are drawn (fixed per pair of nodes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rtt {
    /// Uniform between `min_ms` and `max_ms` (inclusive).
    Uniform {
        /// Smallest round trip, in ms.
        min_ms: u32,
        /// Largest round trip, in ms.
        max_ms: u32,
    },
    /// Node `i` lives in region `i % n`; the round trip between regions `a` and `b` is
    /// `table[a][b]` ms.
    Regions(Vec<Vec<u32>>),
}

impl Rtt {
    /// Uniform 10–250 ms: from a nearby data centre to the other side of the world.
    pub fn internet() -> Self {
        Self::Uniform {
            min_ms: 10,
            max_ms: 250,
        }
    }

    /// Five regions (North America east and west, Western Europe, North-East and South-East
    /// Asia) with round trips in the range that cloud providers publish between such regions
    /// (10 ms within a region).
    pub fn regions() -> Self {
        Self::Regions(vec![
            vec![10, 65, 75, 150, 220],
            vec![65, 10, 140, 100, 170],
            vec![75, 140, 10, 220, 160],
            vec![150, 100, 220, 10, 70],
            vec![220, 170, 160, 70, 10],
        ])
    }
}

/// Parameters of one simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes (2 to 65,536).
    pub nodes: usize,
    /// Percentage of nodes restarted on new addresses once the network converged (0: none).
    pub churn_percent: usize,
    /// Percentage of adversarial nodes (see the module docs).
    pub adversarial_percent: usize,
    /// Round-trip times.
    pub rtt: Rtt,
    /// Stop asking for dials at this many admitted connections (`None`: the real rule, a full
    /// mesh).
    pub max_outbound: Option<usize>,
    /// Nodes 0 to `bootstrappers - 1` are the bootstrappers every node knows (at least 1;
    /// they are never adversarial nor churned).
    pub bootstrappers: usize,
    /// Give up a phase (initial convergence, reconvergence after churn) after this long.
    pub max_phase: Duration,
    /// How long a churned node stays down.
    pub downtime: Duration,
    /// The facade's dial timer (housekeeping runs at half of it).
    pub dial_interval: Duration,
    /// How often convergence is checked (the precision of the reported times).
    pub check_interval: Duration,
    /// Discovery configuration of every node.
    pub tracker: p2p_discovery::Config,
    /// Manager limits of every node.
    pub manager: ManagerConfig,
    /// Session rules of every node.
    pub session: SessionConfig,
    /// Print a progress line to stderr every this much simulated time (`None`: quiet).
    pub progress: Option<Duration>,
    /// Stop the run after this much real (wall-clock) time, reporting how far it got (`None`:
    /// no limit). Makes a run's outcome depend on the machine's speed.
    pub max_wall: Option<Duration>,
}

impl SimConfig {
    /// `nodes` nodes, no churn, no adversaries, [`Rtt::internet`], full mesh; the facade's
    /// `recommended` settings (discovery: ping every 5 s; dial timer 1 s; idle timeout 30 s;
    /// 64 dials and handshakes at once), except that a node accepts `nodes` inbound
    /// connections (the recommended 1,024 would forbid a full mesh above about 2,048 nodes).
    pub fn new(nodes: usize) -> Self {
        let mut tracker = p2p_discovery::Config::recommended(&b"_P2P_SIMULATION"[..]);
        tracker.max_peer_set_size = tracker
            .max_peer_set_size
            .max(NonZeroUsize::new(nodes).unwrap_or(NonZeroUsize::MIN));
        let nz = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        let nz32 = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let manager = ManagerConfig {
            max_inbound: nz(nodes.max(1024)),
            max_inbound_handshakes: nz(64),
            max_dials: nz(64),
            handshakes_per_ip_per_minute: nz32(30),
            handshakes_per_prefix_per_minute: nz32(120),
            max_handshakes_per_prefix: nz(8),
            max_tracked_ips: nz(1 << 16),
            block_duration: Duration::from_secs(3600),
            max_observer_inbound: 0,
        };
        let session = SessionConfig::new(&tracker, Duration::from_secs(5), Duration::from_secs(30));
        Self {
            nodes,
            churn_percent: 0,
            bootstrappers: 1,
            adversarial_percent: 0,
            rtt: Rtt::internet(),
            max_outbound: None,
            max_phase: Duration::from_secs(600),
            downtime: Duration::from_secs(2),
            dial_interval: Duration::from_secs(1),
            check_interval: Duration::from_millis(100),
            tracker,
            manager,
            session,
            progress: None,
            max_wall: None,
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// `nodes` outside 2..=65,536 (each node gets its own /24 of 10.0.0.0/8).
    #[error("{0} nodes: the simulation runs 2 to 65536")]
    Nodes(usize),
    /// A percentage above 100.
    #[error("percentage {0} above 100")]
    Percent(usize),
    /// The tracker refused the configuration or the set.
    #[error("discovery: {0}")]
    Discovery(#[from] p2p_discovery::Error),
}

/// Figures of one phase (initial convergence, or reconvergence after churn). Times count from
/// the phase's start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhaseReport {
    /// Time to full knowledge, in ms (`None`: not within `max_phase`).
    pub full_knowledge_ms: Option<u64>,
    /// Time to full mesh, in ms (`None`: not reached, or not expected with `max_outbound`).
    pub full_mesh_ms: Option<u64>,
    /// How long the phase ran, in ms.
    pub duration_ms: u64,
    /// Discovery bytes (frames with their overhead) sent by all nodes.
    pub bytes: u64,
    /// The most discovery bytes one node sent.
    pub max_node_bytes: u64,
    /// Discovery frames sent.
    pub frames: u64,
    /// Largest gossip answer frame, in bytes.
    pub max_answer_bytes: u64,
    /// Connections admitted on both sides.
    pub connections: u64,
    /// Dials that failed (refused port, refusal, wrong key, not admitted).
    pub failed_dials: u64,
    /// Connections closed for misbehaviour (a fatal session error).
    pub misbehaviour_closes: u64,
    /// Connections closed by the idle timeout.
    pub idle_closes: u64,
    /// Records received in `Peers` messages by honest nodes.
    pub records_received: u64,
    /// Of those, records that were new to the receiver (stored).
    pub records_stored: u64,
    /// Bit vectors received by honest nodes that were answered with records.
    pub vectors_answered: u64,
    /// Bit vectors received by honest nodes that needed no answer.
    pub vectors_unanswered: u64,
    /// At the phase's end: the share, in parts per million, of (honest node, honest key) pairs
    /// for which the node stores the key's current record.
    pub known_ppm: u64,
    /// The phase was cut short by `max_wall`.
    pub wall_limit_hit: bool,
}

/// The result of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Number of nodes.
    pub nodes: usize,
    /// Adversarial nodes.
    pub adversarial: usize,
    /// Nodes restarted by churn.
    pub restarted: usize,
    /// Ping interval, in ms (to express times in ping intervals).
    pub ping_interval_ms: u64,
    /// The initial convergence from one bootstrapper.
    pub initial: PhaseReport,
    /// Reconvergence after churn (`None` without churn, or if the first phase did not end).
    pub churn: Option<PhaseReport>,
    /// Real signature verifications that succeeded (each distinct record once).
    pub verifications: u64,
    /// Records stored by honest nodes for honest keys that the key never signed (must be 0).
    pub bad_records: u64,
    /// Largest `Tracker::memory_estimate` of a node at the end (shared data counted in full).
    pub max_tracker_memory: usize,
    /// Most admitted connections of one node at the end.
    pub max_connections: usize,
    /// Events processed.
    pub events: u64,
}

type Key<S> = <S as Signer>::PublicKey;
type Mgr<S> = Manager<Key<S>, u64, SharedRecordCache>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Honest,
    Silent,
    Stale,
    Forger,
    Poisoner,
}

struct Node<S: Signer> {
    signer: S,
    /// Position of the key in the sorted set.
    pos: usize,
    manager: Arc<Mgr<S>>,
    port: u16,
    online: bool,
    /// Incarnation: timers of an earlier one are ignored.
    generation: u32,
    /// Timestamps of every record this node signed for itself (the last one is current).
    timestamps: Vec<u64>,
    role: Role,
    /// Admitted connections (current ones) and those with honest peers.
    links: u32,
    honest_links: u32,
    bytes: u64,
    /// Poisoner: its own re-signed record and until when it is reused.
    poison: Option<(u64, Peer)>,
}

#[derive(Clone, Copy, Debug)]
struct Side {
    open: bool,
    admitted: bool,
    /// The manager's id of the admitted connection.
    id: u64,
    opening: Opening,
    last_rx_us: u64,
}

struct Conn<S: Signer> {
    /// [dialer, dialee].
    node: [u32; 2],
    side: [Side; 2],
    rtt_us: u64,
    dial_permit: Option<DialPermit<Key<S>, u64, SharedRecordCache>>,
    handshake_permit: Option<HandshakePermit<Key<S>, u64, SharedRecordCache>>,
    _inbound_permit: Option<InboundPermit<Key<S>, u64, SharedRecordCache>>,
}

enum Ev<S: Signer> {
    DialTick(u32, u32),
    Housekeeping(u32, u32),
    /// The dialer's first handshake message reaches the host of the dialed address.
    Hello {
        conn: u64,
        dialer: u32,
        dialer_generation: u32,
        host: u32,
        host_generation: u32,
        expected: u32,
        /// Boxed: it holds a key, and events are moved on every heap operation.
        permit: Box<DialPermit<Key<S>, u64, SharedRecordCache>>,
    },
    /// A dial failed (the dialer learns it now).
    DialFailed {
        node: u32,
        generation: u32,
        key_node: u32,
    },
    DialerDone(u64),
    Confirm(u64),
    Version(u64),
    Frame {
        conn: u64,
        to: u8,
        body: Body,
    },
    Closed {
        conn: u64,
        to: u8,
    },
    Idle {
        conn: u64,
        side: u8,
    },
    Restart(u32),
    Check,
}

/// A discovery frame in flight.
enum Body {
    /// Encoded as on the wire (pings, adversaries' frames): decoded and checked on arrival.
    Wire(Bytes),
    /// An honest node's message, handed over decoded (its encoded size is what is counted;
    /// boxed: events are moved on every queue operation).
    Message(Kind, Box<Payload>),
}

impl Body {
    /// Plaintext bytes on the wire.
    fn len(&self) -> usize {
        match self {
            Self::Wire(b) => b.len(),
            Self::Message(_, p) => decode::encoded_len(p),
        }
    }
}

struct Queued<S: Signer> {
    at: u64,
    seq: u64,
    ev: Ev<S>,
}

impl<S: Signer> PartialEq for Queued<S> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<S: Signer> Eq for Queued<S> {}
impl<S: Signer> PartialOrd for Queued<S> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<S: Signer> Ord for Queued<S> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Sim<S: Signer> {
    cfg: SimConfig,
    keys: Arc<[Key<S>]>,
    /// Position in the sorted set -> node.
    pos_to_node: Vec<u32>,
    nodes: Vec<Node<S>>,
    conns: HashMap<u64, Conn<S>, BuildHasherDefault<IdHasher>>,
    queue: BinaryHeap<Reverse<Queued<S>>>,
    seq: u64,
    now: u64,
    next_conn: u64,
    cache: SharedRecordCache,
    base: Instant,
    salt: u64,
    /// Every node's first record (what stale adversaries gossip).
    first_records: Vec<Peer>,
    /// A record signed by a key outside the set (poisoners gossip it).
    outsider: Peer,
    phase: PhaseReport,
    phase_start: u64,
    /// Node bytes at the phase's start.
    phase_node_bytes: Vec<u64>,
    events: u64,
    /// Where the last knowledge check failed (checked first next time).
    knowledge_hint: usize,
    /// Key positions of the bootstrappers (nodes 0 to `bootstrappers - 1`).
    boot_positions: Vec<usize>,
}

/// Hashes the simulation's sequential connection ids with one multiplication (the map is
/// looked up for every frame; SipHash's protection against chosen keys is not needed here).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn ms_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn us_of(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The address of node `i` (its own /24 in 10.0.0.0/8).
fn ip_of(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 1)
}

/// The node whose host has `addr`'s IP, if any.
fn host_of(addr: &SocketAddr, nodes: usize) -> Option<usize> {
    let IpAddr::V4(ip) = addr.ip() else {
        return None;
    };
    let [a, b, c, d] = ip.octets();
    let i = (usize::from(b) << 8) | usize::from(c);
    (a == 10 && d == 1 && i < nodes).then_some(i)
}

/// Runs the simulation with keys of scheme `S` (see the module docs).
pub fn run<S: Signer, R: Rng + ?Sized>(cfg: SimConfig, rng: &mut R) -> Result<SimReport, SimError> {
    if !(2..=1 << 16).contains(&cfg.nodes) {
        return Err(SimError::Nodes(cfg.nodes));
    }
    for p in [cfg.churn_percent, cfg.adversarial_percent] {
        if p > 100 {
            return Err(SimError::Percent(p));
        }
    }
    let n = cfg.nodes;
    let signers: Vec<S> = (0..n as u64).map(S::insecure_from_seed).collect();
    let mut sorted: Vec<(Key<S>, u32)> = signers
        .iter()
        .enumerate()
        .map(|(i, s)| (s.public_key(), i as u32))
        .collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let pos_to_node: Vec<u32> = sorted.iter().map(|(_, i)| *i).collect();
    let mut node_pos = vec![0usize; n];
    for (p, &i) in pos_to_node.iter().enumerate() {
        node_pos[i as usize] = p;
    }
    let keys: Arc<[Key<S>]> = sorted.into_iter().map(|(k, _)| k).collect();
    // Adversaries: a random subset of the nodes other than the bootstrapper.
    let boots = cfg.bootstrappers.clamp(1, n - 1);
    let adversaries = (n * cfg.adversarial_percent / 100).min(n - boots);
    let mut roles = vec![Role::Honest; n];
    for (k, i) in sample(rng, n - boots, adversaries).into_iter().enumerate() {
        roles[i + boots] = [Role::Silent, Role::Stale, Role::Forger, Role::Poisoner][k % 4];
    }
    let boot_positions: Vec<usize> = node_pos[..boots].to_vec();
    let outsider_signer = S::insecure_from_seed(u64::MAX);
    let outsider = sign_record(
        &outsider_signer,
        &cfg.tracker.namespace,
        SocketAddr::from((ip_of(0), 9)),
        START_MS,
    );
    let mut sim = Sim {
        keys,
        pos_to_node,
        nodes: Vec::with_capacity(n),
        conns: HashMap::default(),
        queue: BinaryHeap::new(),
        seq: 0,
        now: 0,
        next_conn: 0,
        cache: SharedRecordCache::new(),
        base: Instant::now(),
        salt: rng.random(),
        first_records: Vec::with_capacity(n),
        outsider,
        phase: PhaseReport::default(),
        phase_start: 0,
        phase_node_bytes: vec![0; n],
        events: 0,
        knowledge_hint: 0,
        boot_positions,
        cfg,
    };
    for (i, signer) in signers.into_iter().enumerate() {
        let port = 10_000;
        let (manager, record) = sim.new_manager(&signer, i, port, START_MS)?;
        sim.first_records.push(record);
        sim.nodes.push(Node {
            signer,
            pos: node_pos[i],
            manager,
            port,
            online: true,
            generation: 0,
            timestamps: vec![START_MS],
            role: roles[i],
            links: 0,
            honest_links: 0,
            bytes: 0,
            poison: None,
        });
        sim.start_timers(i as u32, rng);
    }
    let check = us_of(sim.cfg.check_interval).max(1);
    sim.push(check, Ev::Check);
    let mut report = SimReport {
        nodes: n,
        adversarial: adversaries,
        ping_interval_ms: ms_of(sim.cfg.tracker.ping_interval),
        ..SimReport::default()
    };
    let first_done = sim.run_phase(rng);
    report.initial = std::mem::take(&mut sim.phase);
    if first_done && sim.cfg.churn_percent > 0 {
        let boots = sim.boot_positions.len();
        let count = (n * sim.cfg.churn_percent / 100).clamp(1, n - boots);
        sim.start_phase();
        let chosen: Vec<usize> = sample(rng, n - boots, count)
            .into_iter()
            .map(|i| i + boots)
            .collect();
        for &i in &chosen {
            sim.stop_node(i);
        }
        let down = us_of(sim.cfg.downtime);
        for &i in &chosen {
            sim.push(down, Ev::Restart(i as u32));
        }
        report.restarted = count;
        sim.run_phase(rng);
        report.churn = Some(std::mem::take(&mut sim.phase));
    }
    report.verifications = sim.cache.verifications();
    report.bad_records = sim.bad_records();
    report.max_tracker_memory = sim
        .nodes
        .iter()
        .map(|nd| nd.manager.with_tracker(|t| t.memory_estimate()))
        .max()
        .unwrap_or(0);
    report.max_connections = sim
        .nodes
        .iter()
        .map(|nd| nd.links as usize)
        .max()
        .unwrap_or(0);
    report.events = sim.events;
    Ok(report)
}

impl<S: Signer> Sim<S> {
    fn new_manager(
        &self,
        signer: &S,
        i: usize,
        port: u16,
        now_ms: u64,
    ) -> Result<(Arc<Mgr<S>>, Peer), SimError> {
        let addr = SocketAddr::from((ip_of(i), port));
        let record = sign_record(signer, &self.cfg.tracker.namespace, addr, now_ms);
        // Ourselves among them is dropped by the tracker.
        let boots = self
            .boot_positions
            .iter()
            .enumerate()
            .map(|(j, &pos)| {
                (
                    self.keys[pos].clone(),
                    SocketAddr::from((ip_of(j), 10_000)).into(),
                )
            })
            .collect();
        let mut tracker = Tracker::with_verifier(
            self.cfg.tracker.clone(),
            signer.public_key(),
            record.clone(),
            boots,
            self.cache.clone(),
        )?;
        tracker.handle_peer_set_shared(0, self.keys.clone())?;
        let manager = Manager::new(self.cfg.manager.clone(), tracker, self.instant());
        Ok((Arc::new(manager), record))
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_micros(self.now)
    }

    fn now_ms(&self) -> u64 {
        START_MS + self.now / 1000
    }

    fn push(&mut self, delay_us: u64, ev: Ev<S>) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at: self.now.saturating_add(delay_us),
            seq: self.seq,
            ev,
        }));
    }

    fn rtt_us(&self, a: u32, b: u32) -> u64 {
        let (x, y) = (a.min(b), a.max(b));
        match &self.cfg.rtt {
            Rtt::Uniform { min_ms, max_ms } => {
                let lo = u64::from(*min_ms) * 1000;
                let hi = u64::from((*max_ms).max(*min_ms)) * 1000;
                let h = splitmix(self.salt ^ (u64::from(x) << 32 | u64::from(y)));
                lo + h % (hi - lo + 1)
            }
            Rtt::Regions(table) => {
                let k = table.len().max(1);
                let row = table.get(x as usize % k);
                let ms = row
                    .and_then(|r| r.get(y as usize % k))
                    .copied()
                    .unwrap_or(100);
                u64::from(ms) * 1000
            }
        }
    }

    fn start_timers<R: Rng + ?Sized>(&mut self, i: u32, rng: &mut R) {
        let g = self.nodes[i as usize].generation;
        let dial = us_of(self.cfg.dial_interval).max(2);
        self.push(rng.random_range(0..dial), Ev::DialTick(i, g));
        self.push(rng.random_range(0..dial / 2), Ev::Housekeeping(i, g));
    }

    fn start_phase(&mut self) {
        self.phase_start = self.now;
        for (b, nd) in self.phase_node_bytes.iter_mut().zip(&self.nodes) {
            *b = nd.bytes;
        }
    }

    /// Processes events until the phase converged (or `max_phase` passed). Returns whether it
    /// converged.
    fn run_phase<R: Rng + ?Sized>(&mut self, rng: &mut R) -> bool {
        let limit = self.phase_start.saturating_add(us_of(self.cfg.max_phase));
        let mut done = false;
        while let Some(Reverse(q)) = self.queue.pop() {
            if q.at > limit {
                self.queue.push(Reverse(q));
                break;
            }
            if let Some(every) = self.cfg.progress.map(us_of).filter(|&e| e > 0)
                && self.now / every != q.at / every
            {
                eprintln!(
                    "[sim] t={:.1} s events={} connections={} isolated={} frames={} records received {} stored {} vectors answered {} unanswered {} current={:.2}% wall={:?}",
                    q.at as f64 / 1e6,
                    self.events,
                    self.conns.len(),
                    self.nodes
                        .iter()
                        .filter(|nd| nd.online && nd.links == 0)
                        .count(),
                    self.phase.frames,
                    self.phase.records_received,
                    self.phase.records_stored,
                    self.phase.vectors_answered,
                    self.phase.vectors_unanswered,
                    self.known_ppm() as f64 / 1e4,
                    self.base.elapsed()
                );
            }
            self.now = q.at;
            self.events += 1;
            if self.events.is_multiple_of(4096)
                && self.cfg.max_wall.is_some_and(|w| self.base.elapsed() > w)
            {
                self.phase.wall_limit_hit = true;
                break;
            }
            if let Ev::Check = q.ev {
                if self.check() {
                    done = true;
                    break;
                }
                let every = us_of(self.cfg.check_interval).max(1);
                self.push(every, Ev::Check);
                continue;
            }
            self.handle(q.ev, rng);
        }
        self.phase.duration_ms = (self.now - self.phase_start) / 1000;
        let mut max = 0;
        for (nd, start) in self.nodes.iter().zip(&self.phase_node_bytes) {
            max = max.max(nd.bytes - start);
        }
        self.phase.max_node_bytes = max;
        self.phase.known_ppm = self.known_ppm();
        if done {
            // The next phase's checks start again.
            let every = us_of(self.cfg.check_interval).max(1);
            self.push(every, Ev::Check);
        }
        done
    }

    /// Records the first times of full knowledge and full mesh; true when the phase is over.
    fn check(&mut self) -> bool {
        let elapsed = (self.now - self.phase_start) / 1000;
        if self.phase.full_knowledge_ms.is_none() && self.full_knowledge() {
            self.phase.full_knowledge_ms = Some(elapsed);
        }
        let mesh_expected = self.cfg.max_outbound.is_none();
        if mesh_expected && self.phase.full_mesh_ms.is_none() && self.full_mesh() {
            self.phase.full_mesh_ms = Some(elapsed);
        }
        self.phase.full_knowledge_ms.is_some()
            && (!mesh_expected || self.phase.full_mesh_ms.is_some())
    }

    fn full_knowledge(&mut self) -> bool {
        let n = self.nodes.len();
        // Expected timestamp per key position (honest nodes; others: anything).
        let expected: Vec<Option<u64>> = self
            .pos_to_node
            .iter()
            .map(|&i| {
                let nd = &self.nodes[i as usize];
                (nd.role == Role::Honest).then(|| nd.timestamps.last().copied().unwrap_or(0))
            })
            .collect();
        if self
            .nodes
            .iter()
            .any(|nd| nd.role == Role::Honest && !nd.online)
        {
            return false;
        }
        for k in 0..n {
            let i = (self.knowledge_hint + k) % n;
            let nd = &self.nodes[i];
            if nd.role != Role::Honest {
                continue;
            }
            let ok = nd.manager.with_tracker(|t| {
                t.records().zip(&expected).all(|((_, rec), exp)| match exp {
                    None => true,
                    Some(ts) => rec.is_some_and(|r| r.timestamp() == *ts),
                })
            });
            if !ok {
                self.knowledge_hint = i;
                return false;
            }
        }
        true
    }

    /// Parts per million of (honest node up, honest key) pairs with the current record stored.
    fn known_ppm(&self) -> u64 {
        let current: Vec<Option<u64>> = self
            .pos_to_node
            .iter()
            .map(|&i| {
                let nd = &self.nodes[i as usize];
                (nd.role == Role::Honest).then(|| nd.timestamps.last().copied().unwrap_or(0))
            })
            .collect();
        let (mut known, mut total) = (0u64, 0u64);
        for nd in self
            .nodes
            .iter()
            .filter(|nd| nd.role == Role::Honest && nd.online)
        {
            nd.manager.with_tracker(|t| {
                for ((_, rec), exp) in t.records().zip(&current) {
                    if let Some(ts) = exp {
                        total += 1;
                        known += u64::from(rec.is_some_and(|r| r.timestamp() == *ts));
                    }
                }
            });
        }
        (known * 1_000_000).checked_div(total).unwrap_or(0)
    }

    fn full_mesh(&self) -> bool {
        let honest = self
            .nodes
            .iter()
            .filter(|nd| nd.role == Role::Honest && nd.online)
            .count() as u32;
        self.nodes
            .iter()
            .filter(|nd| nd.role == Role::Honest)
            .all(|nd| nd.online && nd.honest_links + 1 == honest)
    }

    fn bad_records(&self) -> u64 {
        let mut bad = 0;
        for nd in self.nodes.iter().filter(|nd| nd.role == Role::Honest) {
            nd.manager.with_tracker(|t| {
                for (pos, (_, rec)) in t.records().enumerate() {
                    let owner = &self.nodes[self.pos_to_node[pos] as usize];
                    if let Some(r) = rec
                        && owner.role == Role::Honest
                        && !owner.timestamps.contains(&r.timestamp())
                    {
                        bad += 1;
                    }
                }
            });
        }
        bad
    }

    /// Records node `i` holds for the keys of the set (set 0, the only one simulated).
    fn known_of(&self, i: u32) -> usize {
        self.nodes[i as usize]
            .manager
            .with_tracker(|t| t.set_stats(0).map_or(0, |s| s.known))
    }

    fn honest(&self, i: u32) -> bool {
        self.nodes[i as usize].role == Role::Honest
    }

    fn key(&self, i: u32) -> &Key<S> {
        &self.keys[self.nodes[i as usize].pos]
    }

    fn handle<R: Rng + ?Sized>(&mut self, ev: Ev<S>, rng: &mut R) {
        match ev {
            Ev::DialTick(i, g) => self.dial_tick(i, g, rng),
            Ev::Housekeeping(i, g) => self.housekeeping(i, g, rng),
            Ev::Hello {
                conn,
                dialer,
                dialer_generation,
                host,
                host_generation,
                expected,
                permit,
            } => self.hello(
                conn,
                [dialer, dialer_generation],
                [host, host_generation],
                expected,
                *permit,
            ),
            Ev::DialFailed {
                node,
                generation,
                key_node,
            } => {
                let nd = &self.nodes[node as usize];
                if nd.online && nd.generation == generation {
                    self.phase.failed_dials += 1;
                    let key = self.key(key_node).clone();
                    let now_ms = self.now_ms();
                    self.nodes[node as usize]
                        .manager
                        .handle_dial_failed(&key, now_ms, rng);
                }
            }
            Ev::DialerDone(c) => {
                if let Some(conn) = self.conns.get_mut(&c) {
                    conn.dial_permit = None;
                    if conn.side[0].open {
                        let half = conn.rtt_us / 2;
                        self.push(half, Ev::Confirm(c));
                    }
                }
            }
            Ev::Confirm(c) => {
                let Some(conn) = self.conns.get_mut(&c) else {
                    return;
                };
                conn.handshake_permit = None;
                if !conn.side[1].open {
                    return;
                }
                // The dialee's version info goes out, then it admits the dialer.
                let half = conn.rtt_us / 2;
                self.push(half, Ev::Version(c));
                self.admit(c, 1, rng);
            }
            Ev::Version(c) => {
                if self.conns.get(&c).is_some_and(|conn| conn.side[0].open) {
                    self.admit(c, 0, rng);
                }
            }
            Ev::Frame { conn, to, body } => self.frame(conn, usize::from(to), body, rng),
            Ev::Closed { conn, to } => self.close(conn, usize::from(to), false, rng),
            Ev::Idle { conn, side } => {
                let idle = us_of(self.cfg.session.idle_timeout);
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                let s = c.side[usize::from(side)];
                if !s.open {
                    return;
                }
                let due = s.last_rx_us.saturating_add(idle);
                if self.now >= due {
                    self.phase.idle_closes += 1;
                    self.close(conn, usize::from(side), true, rng);
                } else {
                    self.push(due - self.now, Ev::Idle { conn, side });
                }
            }
            Ev::Restart(i) => self.restart(i as usize, rng),
            Ev::Check => {}
        }
    }

    fn dial_tick<R: Rng + ?Sized>(&mut self, i: u32, g: u32, rng: &mut R) {
        let nd = &self.nodes[i as usize];
        if !nd.online || nd.generation != g {
            return;
        }
        let at_cap = self
            .cfg
            .max_outbound
            .is_some_and(|d| nd.links as usize >= d);
        let manager = Arc::clone(&nd.manager);
        let every = us_of(self.cfg.dial_interval).max(1);
        self.push(every, Ev::DialTick(i, g));
        if at_cap {
            return;
        }
        let now_ms = self.now_ms();
        let dials = manager.poll_dials(now_ms, rng);
        for dial in dials {
            let Ok(pos) = self.keys.binary_search(&dial.key) else {
                continue;
            };
            let expected = self.pos_to_node[pos];
            // The simulated nodes advertise sockets only.
            let host = dial
                .addr
                .socket()
                .and_then(|addr| host_of(&addr, self.nodes.len()));
            let reachable = host.filter(|&h| {
                let hn = &self.nodes[h];
                hn.online && hn.port == dial.addr.port()
            });
            match reachable {
                Some(h) => {
                    let h = h as u32;
                    let rtt = self.rtt_us(i, h);
                    self.next_conn += 1;
                    let conn = self.next_conn;
                    let host_generation = self.nodes[h as usize].generation;
                    self.push(
                        rtt + rtt / 2,
                        Ev::Hello {
                            conn,
                            dialer: i,
                            dialer_generation: g,
                            host: h,
                            host_generation,
                            expected,
                            permit: Box::new(dial.permit),
                        },
                    );
                }
                None => {
                    // No process listens there: the connect is refused after one round trip
                    // (an address outside the simulated hosts: after 100 ms).
                    let rtt = host.map_or(100_000, |h| self.rtt_us(i, h as u32));
                    self.push(
                        rtt,
                        Ev::DialFailed {
                            node: i,
                            generation: g,
                            key_node: expected,
                        },
                    );
                }
            }
        }
    }

    /// The dialer's first handshake message reaches the host (`[node, generation]` of both).
    fn hello(
        &mut self,
        c: u64,
        [dialer, dialer_generation]: [u32; 2],
        [host, host_generation]: [u32; 2],
        expected: u32,
        permit: DialPermit<Key<S>, u64, SharedRecordCache>,
    ) {
        let rtt = self.rtt_us(dialer, host);
        let fail = Ev::DialFailed {
            node: dialer,
            generation: dialer_generation,
            key_node: expected,
        };
        let hn = &self.nodes[host as usize];
        let dn = &self.nodes[dialer as usize];
        if !hn.online
            || hn.generation != host_generation
            || !dn.online
            || dn.generation != dialer_generation
        {
            drop(permit);
            self.push(rtt / 2, fail);
            return;
        }
        // The dialee's cheap checks: recipient is me, then admission and authorization.
        if expected != host {
            drop(permit);
            self.push(rtt / 2, fail);
            return;
        }
        let ip = IpAddr::V4(ip_of(dialer as usize));
        let permits = hn.manager.handle_accept(ip, self.instant());
        let Ok((handshake, inbound)) = permits else {
            drop(permit);
            self.push(rtt / 2, fail);
            return;
        };
        if hn
            .manager
            .authorize(self.key(dialer).as_bytes(), self.now_ms())
            .is_err()
        {
            drop((permit, handshake, inbound));
            self.push(rtt / 2, fail);
            return;
        }
        let side = Side {
            open: true,
            admitted: false,
            id: 0,
            opening: Opening::NEW,
            last_rx_us: self.now,
        };
        self.conns.insert(
            c,
            Conn {
                node: [dialer, host],
                side: [side, side],
                rtt_us: rtt,
                dial_permit: Some(permit),
                handshake_permit: Some(handshake),
                _inbound_permit: Some(inbound),
            },
        );
        self.push(rtt / 2, Ev::DialerDone(c));
    }

    /// Side `s` of connection `c` received the other's version info: admission.
    fn admit<R: Rng + ?Sized>(&mut self, c: u64, s: usize, rng: &mut R) {
        let Some(conn) = self.conns.get(&c) else {
            return;
        };
        let (me, peer) = (conn.node[s], conn.node[1 - s]);
        let key = self.key(peer).clone();
        let now_ms = self.now_ms();
        let result = self.nodes[me as usize]
            .manager
            .admit(&key, s == 0, c, now_ms, rng);
        let Ok(admitted) = result else {
            if s == 0 {
                self.phase.failed_dials += 1;
            }
            // `admit` reported a refused dial to discovery already.
            self.close_refused(c, s);
            return;
        };
        if let Some(conn) = self.conns.get_mut(&c) {
            conn.side[s].admitted = true;
            conn.side[s].id = admitted.id;
            conn.side[s].last_rx_us = self.now;
        }
        if s == 0 {
            self.phase.connections += 1;
        }
        if let Some(old) = admitted.replaced {
            // The old connection is no longer current: closing it releases nothing.
            self.close(old, self.side_of(old, me), true, rng);
        } else {
            let nd = &mut self.nodes[me as usize];
            nd.links += 1;
            if self.nodes[peer as usize].role == Role::Honest {
                self.nodes[me as usize].honest_links += 1;
            }
        }
        if let Some(record) = admitted.record {
            let record = Payload::Peers(Peers {
                peers: vec![record],
            });
            self.send(c, s, Body::Message(Kind::Peers, Box::new(record)), false);
        }
        if let Some(bv) = admitted.bit_vec {
            let bv = Payload::BitVec(bv);
            self.send(c, s, Body::Message(Kind::BitVec, Box::new(bv)), false);
        }
        let idle = us_of(self.cfg.session.idle_timeout);
        self.push(
            idle,
            Ev::Idle {
                conn: c,
                side: s as u8,
            },
        );
    }

    /// Closes side `s` after a refused admission (nothing to release).
    fn close_refused(&mut self, c: u64, s: usize) {
        if let Some(conn) = self.conns.get_mut(&c) {
            conn.side[s].open = false;
            let half = conn.rtt_us / 2;
            let other = conn.side[1 - s].open;
            if other {
                self.push(
                    half,
                    Ev::Closed {
                        conn: c,
                        to: (1 - s) as u8,
                    },
                );
            } else {
                self.conns.remove(&c);
            }
        }
    }

    fn side_of(&self, c: u64, node: u32) -> usize {
        self.conns
            .get(&c)
            .map_or(0, |conn| usize::from(conn.node[0] != node))
    }

    /// Sends `body` from side `s` of `c` to the other side.
    fn send(&mut self, c: u64, s: usize, body: Body, answer: bool) {
        let Some(conn) = self.conns.get(&c) else {
            return;
        };
        let size = body.len() as u64 + FRAME_OVERHEAD;
        let from = conn.node[s];
        let half = conn.rtt_us / 2;
        self.nodes[from as usize].bytes += size;
        self.phase.bytes += size;
        self.phase.frames += 1;
        if answer {
            self.phase.max_answer_bytes = self.phase.max_answer_bytes.max(size);
        }
        self.push(
            half,
            Ev::Frame {
                conn: c,
                to: (1 - s) as u8,
                body,
            },
        );
    }

    /// Closes side `s` of `c`; `notify`: tell the other side (half an RTT later).
    fn close<R: Rng + ?Sized>(&mut self, c: u64, s: usize, notify: bool, rng: &mut R) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        if !conn.side[s].open {
            return;
        }
        conn.side[s].open = false;
        let (me, peer) = (conn.node[s], conn.node[1 - s]);
        let admitted = conn.side[s].admitted;
        let id = conn.side[s].id;
        let other_open = conn.side[1 - s].open;
        let half = conn.rtt_us / 2;
        if !other_open {
            self.conns.remove(&c);
        } else if notify {
            self.push(
                half,
                Ev::Closed {
                    conn: c,
                    to: (1 - s) as u8,
                },
            );
        }
        let key = self.key(peer).clone();
        let now_ms = self.now_ms();
        let nd = &self.nodes[me as usize];
        if admitted {
            if nd.manager.release(&key, id, "peer_closed", now_ms, rng) {
                let honest = self.honest(peer);
                let nd = &mut self.nodes[me as usize];
                nd.links = nd.links.saturating_sub(1);
                if honest {
                    nd.honest_links = nd.honest_links.saturating_sub(1);
                }
            }
        } else if s == 0 {
            self.phase.failed_dials += 1;
            nd.manager.handle_not_admitted(&key, true, now_ms, rng);
        }
    }

    fn frame<R: Rng + ?Sized>(&mut self, c: u64, to: usize, body: Body, rng: &mut R) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        let (me, peer) = (conn.node[to], conn.node[1 - to]);
        let side = &mut conn.side[to];
        if !side.open || !side.admitted {
            return;
        }
        side.last_rx_us = self.now;
        let mut opening = side.opening;
        let role = self.nodes[me as usize].role;
        let key = self.key(peer).clone();
        let now = Now {
            instant: self.instant(),
            unix_ms: self.now_ms(),
        };
        let known_before = self.known_of(me);
        let mut received = 0;
        let decoded = match body {
            Body::Wire(bytes) => decode::decode(bytes, &self.cfg.session.limits),
            Body::Message(kind, payload) => Ok((kind, *payload)),
        };
        let routed = match decoded {
            Ok((kind, payload)) => {
                let is_vec = kind == Kind::BitVec;
                if let Payload::Peers(p) = &payload {
                    received = p.peers.len() as u64;
                }
                let r = route_discovery(
                    &key,
                    &mut opening,
                    kind,
                    payload,
                    now,
                    &self.cfg.session,
                    &self.nodes[me as usize].manager,
                    rng,
                );
                r.map(|r| (r, is_vec))
            }
            Err(e) => Err(crate::Error::Decode(e)),
        };
        if let Some(conn) = self.conns.get_mut(&c) {
            conn.side[to].opening = opening;
        }
        if role == Role::Honest {
            let known_after = self.known_of(me);
            self.phase.records_received += received;
            self.phase.records_stored += known_after.saturating_sub(known_before) as u64;
            match &routed {
                Ok((Routed::Answer(_), true)) => self.phase.vectors_answered += 1,
                Ok((_, true)) => self.phase.vectors_unanswered += 1,
                _ => {}
            }
        }
        match routed {
            Err(_) => {
                self.phase.misbehaviour_closes += 1;
                self.close(c, to, true, rng);
            }
            Ok((routed, is_vec)) => {
                let answer = match role {
                    Role::Honest => match routed {
                        Routed::Answer(peers) => Some(peers),
                        _ => None,
                    },
                    _ if !is_vec => None,
                    Role::Silent => None,
                    Role::Stale => Some(self.stale_answer(me, rng)),
                    Role::Forger => Some(self.forged_answer(me, rng)),
                    Role::Poisoner => Some(self.poisoned_answer(me, rng)),
                };
                if let Some(peers) = answer
                    && !peers.peers.is_empty()
                {
                    let payload = Payload::Peers(peers);
                    let body = if role == Role::Honest {
                        Body::Message(Kind::Peers, Box::new(payload))
                    } else {
                        Body::Wire(decode::encode(&payload))
                    };
                    self.send(c, to, body, true);
                }
            }
        }
    }

    fn gossip_max(&self) -> usize {
        self.cfg.tracker.max_gossip_records.get()
    }

    fn stale_answer<R: Rng + ?Sized>(&self, me: u32, rng: &mut R) -> Peers {
        let n = self.nodes.len();
        let peers = sample(rng, n, self.gossip_max().min(n))
            .into_iter()
            .filter(|&i| i != me as usize)
            .map(|i| self.first_records[i].clone())
            .collect();
        Peers { peers }
    }

    fn forged_answer<R: Rng + ?Sized>(&self, me: u32, rng: &mut R) -> Peers {
        let n = self.nodes.len();
        let now_ms = self.now_ms();
        let peers = sample(rng, n, self.gossip_max().min(n))
            .into_iter()
            .filter(|&i| i != me as usize)
            .map(|i| {
                let mut sig =
                    vec![0u8; <<Key<S> as Verifier>::Signature as p2p_identity::Signature>::LEN];
                rng.fill(&mut sig[..]);
                let real = &self.first_records[i];
                Peer {
                    socket: real.socket.clone(),
                    timestamp: now_ms,
                    signature: Some(WireSignature {
                        public_key: Bytes::copy_from_slice(self.key(i as u32).as_bytes()),
                        signature: Bytes::from(sig),
                    }),
                }
            })
            .collect();
        Peers { peers }
    }

    fn poisoned_answer<R: Rng + ?Sized>(&mut self, me: u32, rng: &mut R) -> Peers {
        let now_ms = self.now_ms();
        let ns = self.cfg.tracker.namespace.clone();
        let ping = ms_of(self.cfg.tracker.ping_interval).max(1);
        let n = self.nodes.len();
        let nd = &self.nodes[me as usize];
        let own = match &nd.poison {
            Some((until, peer)) if *until > now_ms => peer.clone(),
            _ => {
                // Rotate between three lies about its own address.
                let victim = rng.random_range(0..n);
                let (addr, ts) = match (now_ms / ping) % 3 {
                    0 => (SocketAddr::from((ip_of(victim), 10_000)), now_ms),
                    1 => (SocketAddr::from(([127, 0, 0, 1], 10_000)), now_ms),
                    _ => (
                        SocketAddr::from((ip_of(me as usize), 10_000)),
                        now_ms + 86_400_000,
                    ),
                };
                let peer = sign_record(&nd.signer, &ns, addr, ts);
                self.nodes[me as usize].poison = Some((now_ms + ping, peer.clone()));
                peer
            }
        };
        Peers {
            peers: vec![self.outsider.clone(), own],
        }
    }

    fn housekeeping<R: Rng + ?Sized>(&mut self, i: u32, g: u32, rng: &mut R) {
        let nd = &self.nodes[i as usize];
        if !nd.online || nd.generation != g {
            return;
        }
        let manager = Arc::clone(&nd.manager);
        let silent = nd.role == Role::Silent;
        let every = (us_of(self.cfg.dial_interval) / 2).max(1);
        self.push(every, Ev::Housekeeping(i, g));
        let work = manager.poll_housekeeping(self.now_ms(), self.instant(), rng);
        let Some((frame, mut peers)) = work.ping else {
            return;
        };
        if silent {
            return;
        }
        // The manager lists peers in hash order: sort them so a seed fixes the run.
        peers.sort_unstable();
        for c in peers.iter().filter_map(|k| manager.connection(k)) {
            let s = self.side_of(c, i);
            if self.conns.get(&c).is_some_and(|conn| conn.side[s].admitted) {
                self.send(c, s, Body::Wire(frame.clone()), false);
            }
        }
    }

    /// Node `i`'s process stops: its connections close (peers notice half an RTT later).
    fn stop_node(&mut self, i: usize) {
        let nd = &mut self.nodes[i];
        nd.online = false;
        nd.generation += 1;
        nd.links = 0;
        nd.honest_links = 0;
        let me = i as u32;
        let mut affected: Vec<(u64, usize)> = self
            .conns
            .iter()
            .filter_map(|(&c, conn)| {
                let s = if conn.node[0] == me {
                    0
                } else if conn.node[1] == me {
                    1
                } else {
                    return None;
                };
                Some((c, s))
            })
            .collect();
        affected.sort_unstable();
        for (c, s) in affected {
            let Some(conn) = self.conns.get_mut(&c) else {
                continue;
            };
            conn.side[s].open = false;
            let half = conn.rtt_us / 2;
            if conn.side[1 - s].open {
                self.push(
                    half,
                    Ev::Closed {
                        conn: c,
                        to: (1 - s) as u8,
                    },
                );
            } else {
                self.conns.remove(&c);
            }
        }
    }

    fn restart<R: Rng + ?Sized>(&mut self, i: usize, rng: &mut R) {
        let now_ms = self.now_ms();
        let port = self.nodes[i].port + 1;
        let signer = S::insecure_from_seed(i as u64);
        let Ok((manager, _)) = self.new_manager(&signer, i, port, now_ms) else {
            // The same configuration built this node before.
            return;
        };
        let nd = &mut self.nodes[i];
        nd.manager = manager;
        nd.port = port;
        nd.online = true;
        nd.timestamps.push(now_ms);
        nd.poison = None;
        self.start_timers(i as u32, rng);
    }
}
