//! A deterministic, seeded simulation of many trackers in one process (no sockets, simulated
//! time), used by the convergence tests and `docs/discovery.md`.
//!
//! Model: `nodes` nodes share one peer set (index 0) and each knows only node 0 as its
//! bootstrapper. Time advances in rounds of one `ping_interval`. In each round, in node order:
//!
//! 1. every node's [`Tracker::poll_dials`] is carried out: a dial succeeds iff it targets the
//!    current address of the node with that key; simultaneous dials between two nodes collapse
//!    to one connection by [`resolve_duplicate`]. After each new connection both sides send
//!    their record, then a random bit vector, and answer the other's vector (as the facade
//!    does after a handshake);
//! 2. every node's [`Tracker::poll_ping`] vector goes to each of its connections, and each
//!    answer comes back within the round.
//!
//! After the network has converged (every node stores the current record of every other node),
//! `churn_percent` of the nodes (never node 0) restart: their connections drop, they get a new
//! address (new port), a newer signed record and a fresh tracker, and the run goes on until the
//! network converges again.
//!
//! Every record is signed for real (once per node and incarnation) and verified for real through
//! one [`SharedRecordCache`], so each distinct record is verified once in the whole process and
//! then recognised by its exact bytes. Traffic counts the protobuf-encoded `Message` sizes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use p2p_identity::Signer;
use p2p_proto::{BitVec, Peers, ProstMessage};
use rand::Rng;
use rand::seq::index::sample;

use crate::{Config, KeepConnection, SharedRecordCache, Tracker, resolve_duplicate, sign_record};

/// Parameters of one simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Give up after this many rounds (per phase).
    pub max_rounds: usize,
    /// Percentage of nodes that restart with new addresses after the first convergence
    /// (0 disables churn).
    pub churn_percent: usize,
    /// Tracker configuration of every node.
    pub tracker: Config,
}

impl SimConfig {
    /// `nodes` nodes, 10% churn, [`Config::recommended`] with a 1 s ping interval (and
    /// [`crate::AddressPolicy::local`], as the simulated addresses are on loopback).
    pub fn new(nodes: usize) -> Self {
        let mut tracker = Config::recommended(&b"_P2P_DISCOVERY_SIMULATION"[..]);
        tracker.ping_interval = Duration::from_secs(1);
        tracker.dial_backoff_base = Duration::from_secs(1);
        tracker.dial_jitter = Duration::from_millis(200);
        tracker.max_failed_dials = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN);
        // The simulated addresses are loopback placeholders (never dialed for real).
        tracker.address_policy = crate::AddressPolicy::local();
        Self {
            nodes,
            max_rounds: 64,
            churn_percent: 10,
            tracker,
        }
    }
}

/// Figures of one phase (initial convergence, or reconvergence after churn).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhaseReport {
    /// Rounds until every node stored every current record (`None`: not within `max_rounds`).
    pub rounds: Option<usize>,
    /// Discovery bytes sent by all nodes during the phase (vectors and records).
    pub bytes: u64,
    /// Bit vectors sent.
    pub vectors: u64,
    /// `Peers` messages sent (own records after handshakes and gossip answers).
    pub peers_messages: u64,
    /// Records carried by those messages.
    pub records: u64,
    /// Connections established.
    pub connections: u64,
    /// Dials that failed (stale addresses).
    pub failed_dials: u64,
    /// Largest gossip answer, in bytes.
    pub max_answer_bytes: u64,
    /// Largest number of bytes one node sent in one round.
    pub max_node_round_bytes: u64,
}

/// The result of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Number of nodes.
    pub nodes: usize,
    /// The initial convergence from one bootstrapper.
    pub initial: PhaseReport,
    /// Nodes restarted with new addresses.
    pub restarted: usize,
    /// Reconvergence after the restarts (default when churn is disabled).
    pub churn: PhaseReport,
    /// Real signature verifications in the whole run (each distinct record once).
    pub verifications: u64,
    /// Largest [`Tracker::memory_estimate`] of any node at the end.
    pub max_tracker_memory: usize,
}

struct Node<S: Signer> {
    signer: S,
    tracker: Tracker<S::PublicKey, SharedRecordCache>,
    addr: SocketAddr,
    timestamp: u64,
    conns: Vec<u32>,
    round_bytes: u64,
}

struct Sim<S: Signer> {
    cfg: SimConfig,
    keys: Arc<[S::PublicKey]>,
    /// Position in the sorted set -> node id.
    pos_to_node: Vec<usize>,
    nodes: Vec<Node<S>>,
    cache: SharedRecordCache,
}

const START_MS: u64 = 1_700_000_000_000;

/// Runs the simulation with keys of scheme `S` (see the module docs).
pub fn run<S: Signer, R: Rng + ?Sized>(cfg: SimConfig, rng: &mut R) -> SimReport {
    let signers: Vec<S> = (0..cfg.nodes as u64).map(S::insecure_from_seed).collect();
    let mut sorted: Vec<(S::PublicKey, usize)> = signers
        .iter()
        .enumerate()
        .map(|(i, s)| (s.public_key(), i))
        .collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let pos_to_node = sorted.iter().map(|(_, i)| *i).collect();
    let keys: Arc<[S::PublicKey]> = sorted.into_iter().map(|(k, _)| k).collect();
    let mut sim = Sim {
        cfg,
        keys,
        pos_to_node,
        nodes: Vec::new(),
        cache: SharedRecordCache::new(),
    };
    let boot = (signers[0].public_key(), address(0, 0));
    for (i, signer) in signers.into_iter().enumerate() {
        let node = sim.new_node(signer, i, 0, START_MS, &boot);
        sim.nodes.push(node);
    }
    let mut report = SimReport {
        nodes: sim.nodes.len(),
        ..SimReport::default()
    };
    let mut round = 0u64;
    report.initial = sim.phase(&mut round, rng);
    if sim.cfg.churn_percent > 0 && report.initial.rounds.is_some() && sim.nodes.len() > 1 {
        let count = (sim.nodes.len() * sim.cfg.churn_percent / 100).max(1);
        let count = count.min(sim.nodes.len() - 1);
        let now = START_MS + round * ms(&sim.cfg);
        for i in sample(rng, sim.nodes.len() - 1, count) {
            sim.restart(i + 1, now, &boot, rng);
        }
        report.restarted = count;
        report.churn = sim.phase(&mut round, rng);
    }
    report.verifications = sim.cache.verifications();
    report.max_tracker_memory = sim
        .nodes
        .iter()
        .map(|n| n.tracker.memory_estimate())
        .max()
        .unwrap_or(0);
    report
}

fn ms(cfg: &SimConfig) -> u64 {
    u64::try_from(cfg.tracker.ping_interval.as_millis()).unwrap_or(1000)
}

/// The address of node `i` in incarnation `inc` (loopback range; never used for I/O).
fn address(i: usize, inc: u16) -> SocketAddr {
    let ip = Ipv4Addr::new(127, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8);
    SocketAddr::new(IpAddr::V4(ip), 10_000 + inc)
}

/// Size of a `Message` whose payload (field 2 or 3) encodes to `inner` bytes: one tag byte, the
/// varint length, the payload.
fn encoded(inner: usize) -> u64 {
    let mut varint = 1;
    let mut v = inner >> 7;
    while v > 0 {
        varint += 1;
        v >>= 7;
    }
    (1 + varint + inner) as u64
}

impl<S: Signer> Sim<S> {
    fn new_node(
        &self,
        signer: S,
        i: usize,
        inc: u16,
        now: u64,
        boot: &(S::PublicKey, SocketAddr),
    ) -> Node<S> {
        let addr = address(i, inc);
        let record = sign_record(&signer, &self.cfg.tracker.namespace, addr, now);
        // Our own record was just signed with our key, and the bootstrapper list is valid.
        let mut tracker = Tracker::with_verifier(
            self.cfg.tracker.clone(),
            signer.public_key(),
            record,
            vec![(boot.0.clone(), boot.1.into())],
            self.cache.clone(),
        )
        .expect("own record verifies");
        tracker
            .handle_peer_set_shared(0, self.keys.clone())
            .expect("set within limits");
        Node {
            signer,
            tracker,
            addr,
            timestamp: now,
            conns: Vec::new(),
            round_bytes: 0,
        }
    }

    fn node_of(&self, key: &S::PublicKey) -> Option<usize> {
        self.keys
            .binary_search(key)
            .ok()
            .map(|p| self.pos_to_node[p])
    }

    fn restart<R: Rng + ?Sized>(
        &mut self,
        i: usize,
        now: u64,
        boot: &(S::PublicKey, SocketAddr),
        rng: &mut R,
    ) {
        let conns = std::mem::take(&mut self.nodes[i].conns);
        let key = self.nodes[i].signer.public_key();
        for c in conns {
            let peer = &mut self.nodes[c as usize];
            peer.conns.retain(|&x| x as usize != i);
            let _ = peer.tracker.handle_disconnected(&key, now, rng);
        }
        let inc = (self.nodes[i].addr.port() - 10_000) + 1;
        let signer = S::insecure_from_seed(i as u64);
        self.nodes[i] = self.new_node(signer, i, inc, now, boot);
    }

    fn converged(&self) -> bool {
        let expected: Vec<u64> = self
            .pos_to_node
            .iter()
            .map(|&n| self.nodes[n].timestamp)
            .collect();
        self.nodes.iter().all(|node| {
            node.tracker
                .records()
                .zip(&expected)
                .all(|((_, rec), &ts)| rec.is_some_and(|r| r.timestamp() == ts))
        })
    }

    fn phase<R: Rng + ?Sized>(&mut self, round: &mut u64, rng: &mut R) -> PhaseReport {
        let mut rep = PhaseReport::default();
        for r in 1..=self.cfg.max_rounds {
            *round += 1;
            let now = START_MS + *round * ms(&self.cfg);
            for n in &mut self.nodes {
                n.round_bytes = 0;
            }
            self.dial_step(now, rng, &mut rep);
            self.ping_step(now, rng, &mut rep);
            let max_node = self.nodes.iter().map(|n| n.round_bytes).max().unwrap_or(0);
            rep.max_node_round_bytes = rep.max_node_round_bytes.max(max_node);
            if self.converged() {
                rep.rounds = Some(r);
                break;
            }
        }
        rep
    }

    fn dial_step<R: Rng + ?Sized>(&mut self, now: u64, rng: &mut R, rep: &mut PhaseReport) {
        let mut successes: Vec<(usize, usize)> = Vec::new();
        for a in 0..self.nodes.len() {
            for (key, addr) in self.nodes[a].tracker.poll_dials(now) {
                match self.node_of(&key) {
                    Some(b) if addr == self.nodes[b].addr => successes.push((a, b)),
                    _ => {
                        rep.failed_dials += 1;
                        let _ = self.nodes[a].tracker.handle_dial_failed(&key, now, rng);
                    }
                }
            }
        }
        // Group both directions of a pair; keep one connection per pair.
        successes.sort_unstable_by_key(|&(a, b)| (a.min(b), a.max(b), a));
        let mut i = 0;
        while i < successes.len() {
            let (a, b) = successes[i];
            let mut dialer = a;
            let mut j = i + 1;
            if j < successes.len() && successes[j] == (b, a) {
                // Simultaneous dials: both connections complete; the rule picks one.
                let key_a = self.nodes[a].signer.public_key();
                let key_b = self.nodes[b].signer.public_key();
                // From a's side: existing = a's dial, new = b's dial.
                if resolve_duplicate(&key_a, &key_b, true, false) == KeepConnection::New {
                    dialer = b;
                }
                j += 1;
            }
            let listener = if dialer == a { b } else { a };
            self.connect(dialer, listener, now, rng, rep);
            i = j;
        }
    }

    fn connect<R: Rng + ?Sized>(
        &mut self,
        dialer: usize,
        listener: usize,
        now: u64,
        rng: &mut R,
        rep: &mut PhaseReport,
    ) {
        let kd = self.nodes[dialer].signer.public_key();
        let kl = self.nodes[listener].signer.public_key();
        if self.nodes[dialer].conns.contains(&(listener as u32)) {
            let _ = self.nodes[dialer].tracker.handle_connected(&kl, true);
            let _ = self.nodes[listener].tracker.handle_connected(&kd, false);
            return;
        }
        rep.connections += 1;
        let _ = self.nodes[dialer].tracker.handle_connected(&kl, true);
        let _ = self.nodes[listener].tracker.handle_connected(&kd, false);
        self.nodes[dialer].conns.push(listener as u32);
        self.nodes[listener].conns.push(dialer as u32);
        // Records first, then vectors (and their answers), both ways.
        for (x, y, kx) in [(dialer, listener, &kd), (listener, dialer, &kl)] {
            let peers = Peers {
                peers: vec![self.nodes[x].tracker.my_record()],
            };
            self.count_peers(x, &peers, rep, false);
            let _ = self.nodes[y].tracker.handle_peers(kx, peers, now);
        }
        for (x, y, kx, ky) in [(dialer, listener, &kd, &kl), (listener, dialer, &kl, &kd)] {
            if let Some(bv) = self.nodes[x].tracker.random_bit_vec(rng) {
                self.exchange(x, y, kx, ky, &bv, now, rng, rep);
            }
        }
    }

    fn ping_step<R: Rng + ?Sized>(&mut self, now: u64, rng: &mut R, rep: &mut PhaseReport) {
        for a in 0..self.nodes.len() {
            let Some(bv) = self.nodes[a].tracker.poll_ping(now, rng) else {
                continue;
            };
            let ka = self.nodes[a].signer.public_key();
            let conns = self.nodes[a].conns.clone();
            for b in conns {
                let b = b as usize;
                let kb = self.nodes[b].signer.public_key();
                self.exchange(a, b, &ka, &kb, &bv, now, rng, rep);
            }
        }
    }

    /// `x` sends `bv` to `y`; `y`'s answer (if any) goes back to `x`.
    #[allow(
        clippy::too_many_arguments,
        reason = "internal helper of the simulation"
    )]
    fn exchange<R: Rng + ?Sized>(
        &mut self,
        x: usize,
        y: usize,
        kx: &S::PublicKey,
        ky: &S::PublicKey,
        bv: &BitVec,
        now: u64,
        rng: &mut R,
        rep: &mut PhaseReport,
    ) {
        let size = encoded(bv.encoded_len());
        rep.vectors += 1;
        rep.bytes += size;
        self.nodes[x].round_bytes += size;
        if let Ok(Some(answer)) = self.nodes[y].tracker.handle_bit_vec(kx, bv, rng) {
            self.count_peers(y, &answer, rep, true);
            let _ = self.nodes[x].tracker.handle_peers(ky, answer, now);
        }
    }

    fn count_peers(&mut self, from: usize, peers: &Peers, rep: &mut PhaseReport, answer: bool) {
        let size = encoded(peers.encoded_len());
        rep.peers_messages += 1;
        rep.records += peers.peers.len() as u64;
        rep.bytes += size;
        self.nodes[from].round_bytes += size;
        if answer {
            rep.max_answer_bytes = rep.max_answer_bytes.max(size);
        }
    }
}
