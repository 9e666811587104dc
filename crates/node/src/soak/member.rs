//! `p2p-node soak-member`: one node of the soak, driven by the coordinator.
//!
//! Order: bind the listener on 127.0.0.1 at the port given (retrying while a previous
//! incarnation's socket lingers), register the peer set and the three channels, spawn the
//! network, print `ready`; then a sender thread sends random traffic in 20 ms batches (each
//! framed by a `plan` and a `done` line), one task per channel receives and checks messages,
//! and a reporter prints deliveries every 250 ms and the library's drop counters every second.
//! Standard input takes `quiet` (stop sending, keep receiving) and `stop`; end of input,
//! SIGTERM or SIGINT also stop. Stopping: the sender thread finishes its batch, the network
//! shuts down (flushing queued messages), the receivers drain, and the last `recv`, `metrics`
//! and `exit` lines are printed. A member that has not exited 10 s after it was told to stop
//! exits anyway.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use governor::Quota;
use p2p::{Priority, Recipients};
use p2p_identity::{PeerUrl, Signer, ed25519};
use prometheus_client::registry::Registry;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::intervals::Intervals;
use super::probe::Probe;
use super::wire::{Line, Refusal, parse_disconnects, parse_dropped};
use super::{BULK, CHANNELS, NAMESPACE, SMALL, addr, bootstrap_nodes, signer};
use crate::config::LogFormat;

/// Length of one send batch.
pub const TICK: Duration = Duration::from_millis(20);
/// How often deliveries are reported.
const RECV_REPORT: Duration = Duration::from_millis(250);
/// Deliveries reports per metrics report.
const METRICS_EVERY: u32 = 4;
/// How long to retry binding the listener.
const BIND_RETRY: Duration = Duration::from_secs(10);
/// Longest time from the stop request to the exit.
const HARD_EXIT: Duration = Duration::from_secs(10);
/// Longest wait for the network task, then for the receivers, after shutdown.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(4);

type Key = ed25519::PublicKey;

/// What and how much a member sends.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    /// Sends per second on the small and medium channels together (each send goes to one
    /// node, or to all others).
    pub rate: f64,
    /// Sends per second on the bulk channel (one recipient each).
    pub bulk_rate: f64,
    /// Smallest bulk message, bytes before compression.
    pub bulk_min: usize,
    /// Largest bulk message, bytes before compression.
    pub bulk_max: usize,
    /// Fraction of small and medium sends that go to every other node.
    pub broadcast: f64,
    /// Mean seconds between bursts (twice the small channel's backlog at once to one node,
    /// which must overflow it); 0 for none.
    pub burst_every: f64,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            rate: 80.0,
            bulk_rate: 0.2,
            bulk_min: 256 * 1024,
            bulk_max: 3 * 1024 * 1024,
            broadcast: 0.1,
            burst_every: 30.0,
        }
    }
}

/// Options of one member process.
#[derive(Clone, Debug)]
pub struct MemberOptions {
    /// This node's index.
    pub index: u16,
    /// The listening port of every node, by index.
    pub ports: Vec<u16>,
    /// Seed of the keys and of the traffic.
    pub seed: u64,
    /// Incarnation (0 for the first process of this node).
    pub incarnation: u32,
    /// What to send.
    pub traffic: Traffic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Run,
    Quiet,
    Stop,
}

/// Runs a member until it is told to stop. Errors are for setup failures.
pub fn run(options: MemberOptions) -> Result<(), String> {
    crate::logging::init(LogFormat::Human, "warn");
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
    {
        tracing::warn!(error = %e, "no parent-death signal; relying on standard input");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = rt.block_on(member(options));
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Writes one line to standard output; `false` when the coordinator is gone.
fn emit(line: &Line) -> bool {
    let mut text = line.encode();
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

async fn member(o: MemberOptions) -> Result<(), String> {
    let nodes = u16::try_from(o.ports.len()).map_err(|_| "too many nodes".to_owned())?;
    if o.index >= nodes {
        return Err(format!("index {} out of {nodes} nodes", o.index));
    }
    let keys: Vec<Key> = (0..nodes).map(|i| signer(o.seed, i).public_key()).collect();
    let index_of: Arc<HashMap<Key, u16>> =
        Arc::new(keys.iter().cloned().zip(0..).collect::<HashMap<Key, u16>>());
    let me = o.index;
    let listen = addr(o.ports[usize::from(me)]);
    let bootstrappers: Vec<PeerUrl> = bootstrap_nodes(nodes, me)
        .map(|i| PeerUrl::new(&keys[usize::from(i)], addr(o.ports[usize::from(i)])))
        .collect();

    // A restarted member binds the same port; retry while the old socket lingers.
    let bind_deadline = Instant::now() + BIND_RETRY;
    let (registry, mut network, oracle) = loop {
        let config = p2p::Config::aggressive(
            signer(o.seed, me),
            NAMESPACE,
            listen,
            listen,
            bootstrappers.clone(),
        );
        let mut registry = Registry::default();
        match p2p::Network::new(config, &mut registry) {
            Ok((network, oracle)) => break (registry, network, oracle),
            Err(p2p::Error::Io(e))
                if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < bind_deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("cannot start the network on {listen}: {e}")),
        }
    };
    oracle
        .register(0, keys.clone())
        .map_err(|e| format!("peer set: {e}"))?;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for spec in CHANNELS {
        let quota = Quota::per_second(NonZeroU32::new(spec.per_second).unwrap_or(NonZeroU32::MIN));
        let (tx, rx) = network
            .register(
                u32::from(spec.id),
                quota,
                spec.max_size,
                spec.backlog,
                spec.zstd,
            )
            .map_err(|e| format!("channel {}: {e}", spec.id))?;
        senders.push(tx);
        receivers.push((spec.id, rx));
    }
    let mut running = tokio::spawn(network.run());
    if !emit(&Line::Ready {
        index: me,
        incarnation: o.incarnation,
        addr: listen.to_string(),
    }) {
        oracle.shutdown();
        return Err("standard output is closed".to_owned());
    }

    let (mode_tx, mut mode_rx) = watch::channel(Mode::Run);
    let mode_tx = Arc::new(mode_tx);
    spawn_stdin_reader(Arc::clone(&mode_tx));
    {
        let mode_tx = Arc::clone(&mode_tx);
        tokio::spawn(async move {
            let signal = crate::shutdown::signal().await;
            tracing::info!(signal, "stopping");
            mode_tx.send_replace(Mode::Stop);
        });
    }

    let account = Arc::new(Mutex::new(RecvAccount::new(me)));
    let mut receive_tasks = Vec::new();
    for (channel, mut rx) in receivers {
        let account = Arc::clone(&account);
        let index_of = Arc::clone(&index_of);
        receive_tasks.push(tokio::spawn(async move {
            while let Some((from, message)) = rx.recv().await {
                let probe = Probe::decode(&message);
                let from = index_of.get(&from).copied();
                lock(&account).record(from, channel, probe.ok());
            }
        }));
    }

    let side = SendSide {
        me,
        nodes,
        incarnation: o.incarnation,
        keys,
        index_of: Arc::clone(&index_of),
        senders,
        traffic: o.traffic.clone(),
        rng: StdRng::seed_from_u64(
            o.seed ^ (u64::from(me) << 48) ^ (u64::from(o.incarnation) << 16) ^ 0x50a4,
        ),
        next: HashMap::new(),
    };
    let sender_mode = mode_tx.subscribe();
    let sender_stop = Arc::clone(&mode_tx);
    let sender_thread = std::thread::spawn(move || side.run(sender_mode, sender_stop));

    let registry = Arc::new(registry);
    let reporter = {
        let account = Arc::clone(&account);
        let registry = Arc::clone(&registry);
        let oracle = oracle.clone();
        let mode_tx = Arc::clone(&mode_tx);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RECV_REPORT);
            let mut n = 0u32;
            loop {
                tick.tick().await;
                n += 1;
                let recv = lock(&account).flush();
                let ok = emit(&recv)
                    && (!n.is_multiple_of(METRICS_EVERY) || emit(&metrics(&registry, &oracle)));
                if !ok {
                    mode_tx.send_replace(Mode::Stop);
                    return;
                }
            }
        })
    };

    let mut clean = true;
    let mut network_done = false;
    tokio::select! {
        _ = mode_rx.wait_for(|m| *m == Mode::Stop) => {}
        result = &mut running => {
            network_done = true;
            clean = false;
            tracing::error!(?result, "the network ended on its own");
            mode_tx.send_replace(Mode::Stop);
        }
    }
    std::thread::spawn(|| {
        std::thread::sleep(HARD_EXIT);
        eprintln!("soak-member: did not stop within {HARD_EXIT:?}; exiting");
        std::process::exit(3);
    });
    // The sender finishes its batch (its `done` line is out before the network stops).
    let joined = tokio::task::spawn_blocking(move || sender_thread.join()).await;
    clean &= matches!(joined, Ok(Ok(())));
    oracle.shutdown();
    if !network_done {
        clean &= matches!(
            tokio::time::timeout(SHUTDOWN_WAIT, &mut running).await,
            Ok(Ok(Ok(())))
        );
    }
    // The receivers end once the network (and its mux) is gone and their queues are drained.
    for task in receive_tasks {
        clean &= tokio::time::timeout(SHUTDOWN_WAIT, task).await.is_ok();
    }
    reporter.abort();
    let _ = reporter.await;
    let recv = lock(&account).flush();
    let _ = emit(&recv) && emit(&metrics(&registry, &oracle)) && emit(&Line::Exit { clean });
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `quiet`, `stop` and end of input on standard input.
fn spawn_stdin_reader(mode: Arc<watch::Sender<Mode>>) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line.as_deref().map(str::trim) {
                Ok("quiet") => {
                    mode.send_if_modified(|m| {
                        let change = *m == Mode::Run;
                        if change {
                            *m = Mode::Quiet;
                        }
                        change
                    });
                }
                Ok("stop") | Err(_) => break,
                Ok(_) => {}
            }
        }
        mode.send_replace(Mode::Stop);
    });
}

fn metrics(registry: &Registry, oracle: &p2p::Oracle<ed25519::PrivateKey>) -> Line {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        text.clear();
    }
    Line::Metrics {
        dropped: parse_dropped(&text),
        disconnects: parse_disconnects(&text),
        connected: oracle.connected().len(),
    }
}

/// One send decided for a batch.
struct Op {
    channel: usize,
    priority: Priority,
    to: Vec<u16>,
    size: usize,
}

/// The sending side: the thread that sends random traffic.
struct SendSide {
    me: u16,
    nodes: u16,
    incarnation: u32,
    keys: Vec<Key>,
    index_of: Arc<HashMap<Key, u16>>,
    /// By position in [`CHANNELS`].
    senders: Vec<p2p::Sender<Key>>,
    traffic: Traffic,
    rng: StdRng,
    /// Next sequence number per `(to, channel, priority)`.
    next: HashMap<(u16, u8, u8), u64>,
}

const fn priority_code(p: Priority) -> u8 {
    match p {
        Priority::High => 0,
        Priority::Low => 1,
    }
}

impl SendSide {
    fn run(mut self, mode: watch::Receiver<Mode>, stop: Arc<watch::Sender<Mode>>) {
        let start = Instant::now();
        let (mut credit, mut bulk_credit) = (0.0f64, 0.0f64);
        let mut tick: u64 = 0;
        loop {
            let now = *mode.borrow();
            if now == Mode::Stop {
                return;
            }
            tick += 1;
            let at = start + TICK * u32::try_from(tick).unwrap_or(u32::MAX);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            if now == Mode::Quiet || self.nodes < 2 {
                continue;
            }
            let ops = self.decide(&mut credit, &mut bulk_credit);
            if ops.is_empty() {
                continue;
            }
            if !self.send_batch(tick, ops) {
                stop.send_replace(Mode::Stop);
                return;
            }
        }
    }

    fn other(&mut self) -> u16 {
        let r = self.rng.random_range(0..self.nodes - 1);
        if r >= self.me { r + 1 } else { r }
    }

    fn all_others(&self) -> Vec<u16> {
        (0..self.nodes).filter(|&i| i != self.me).collect()
    }

    fn decide(&mut self, credit: &mut f64, bulk_credit: &mut f64) -> Vec<Op> {
        let dt = TICK.as_secs_f64();
        let t = self.traffic.clone();
        let mut ops = Vec::new();
        *credit += t.rate * dt * self.rng.random_range(0.5..1.5);
        while *credit >= 1.0 {
            *credit -= 1.0;
            let to = if self.rng.random_bool(t.broadcast.clamp(0.0, 1.0)) {
                self.all_others()
            } else {
                vec![self.other()]
            };
            let op = if self.rng.random_bool(0.6) {
                Op {
                    channel: 0,
                    priority: Priority::High,
                    size: self.rng.random_range(32..=256),
                    to,
                }
            } else {
                Op {
                    channel: 1,
                    priority: if self.rng.random_bool(0.3) {
                        Priority::High
                    } else {
                        Priority::Low
                    },
                    size: self.rng.random_range(1024..=16 * 1024),
                    to,
                }
            };
            ops.push(op);
        }
        *bulk_credit += t.bulk_rate * dt * self.rng.random_range(0.5..1.5);
        while *bulk_credit >= 1.0 {
            *bulk_credit -= 1.0;
            let max = t.bulk_max.clamp(1, BULK.max_size - 4096);
            let min = t.bulk_min.min(max);
            ops.push(Op {
                channel: 2,
                priority: Priority::Low,
                size: self.rng.random_range(min..=max),
                to: vec![self.other()],
            });
        }
        if t.burst_every > 0.0 && self.rng.random_bool((dt / t.burst_every).min(1.0)) {
            let to = self.other();
            for _ in 0..2 * SMALL.backlog {
                ops.push(Op {
                    channel: 0,
                    priority: Priority::High,
                    size: 64,
                    to: vec![to],
                });
            }
        }
        ops
    }

    /// Plans, sends and reports one batch; `false` when standard output is closed.
    fn send_batch(&mut self, tick: u64, ops: Vec<Op>) -> bool {
        let mut touched: BTreeMap<(u16, u8, u8), u64> = BTreeMap::new();
        let mut planned = Vec::with_capacity(ops.len());
        for op in ops {
            let ch = CHANNELS[op.channel].id;
            let pr = priority_code(op.priority);
            let entries: Vec<(u16, u64)> = op
                .to
                .iter()
                .map(|&to| {
                    let next = self.next.entry((to, ch, pr)).or_insert(0);
                    let seq = *next;
                    *next += 1;
                    touched.insert((to, ch, pr), *next);
                    (to, seq)
                })
                .collect();
            planned.push((op, entries));
        }
        let next = touched
            .into_iter()
            .map(|((to, ch, pr), n)| (to, ch, pr, n))
            .collect();
        // The plan is out before any of its messages: a crash cannot hide a send.
        if !emit(&Line::Plan { tick, next }) {
            return false;
        }
        let mut refused = Vec::new();
        for (op, entries) in planned {
            let spec = CHANNELS[op.channel];
            let pr = priority_code(op.priority);
            let probe = Probe {
                channel: spec.id,
                priority: pr,
                sender: self.me,
                incarnation: self.incarnation,
                entries,
            };
            let message =
                Bytes::from(probe.encode(op.size, spec.zstd.is_some(), self.rng.random()));
            let recipients = if probe.entries.len() == 1 {
                Recipients::One(self.keys[usize::from(probe.entries[0].0)].clone())
            } else {
                Recipients::List(
                    probe
                        .entries
                        .iter()
                        .map(|e| self.keys[usize::from(e.0)].clone())
                        .collect(),
                )
            };
            match self.senders[op.channel].send(recipients, message, op.priority) {
                Ok(report) => {
                    let mut seen: HashSet<u16> = HashSet::new();
                    for key in &report.queued {
                        if let Some(&i) = self.index_of.get(key) {
                            seen.insert(i);
                        }
                    }
                    for (list, why) in [
                        (&report.not_connected, Refusal::NotConnected),
                        (&report.backlog_full, Refusal::BacklogFull),
                    ] {
                        for key in list {
                            if let Some(&i) = self.index_of.get(key)
                                && seen.insert(i)
                                && let Some(seq) = probe.seq_for(i)
                            {
                                refused.push((i, spec.id, pr, seq, why));
                            }
                        }
                    }
                    for &(i, seq) in &probe.entries {
                        if !seen.contains(&i) {
                            refused.push((i, spec.id, pr, seq, Refusal::Unreported));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, channel = spec.id, "send refused");
                    for &(i, seq) in &probe.entries {
                        refused.push((i, spec.id, pr, seq, Refusal::SendError));
                    }
                }
            }
        }
        emit(&Line::Done { tick, refused })
    }
}

/// What the receivers saw, and what is not reported yet.
struct RecvAccount {
    me: u16,
    /// Per `(from, incarnation, channel, priority)`: delivered numbers and the largest.
    streams: HashMap<(u16, u32, u8, u8), (Intervals, u64)>,
    /// Delivered since the last report.
    delta: HashMap<(u16, u32, u8, u8), Intervals>,
    duplicates: u64,
    reordered: u64,
    malformed: u64,
}

impl RecvAccount {
    fn new(me: u16) -> Self {
        Self {
            me,
            streams: HashMap::new(),
            delta: HashMap::new(),
            duplicates: 0,
            reordered: 0,
            malformed: 0,
        }
    }

    /// Records one message received on `channel` from node `from` (`None`: not a soak key).
    fn record(&mut self, from: Option<u16>, channel: u8, probe: Option<Probe>) {
        let Some(probe) = probe else {
            self.malformed += 1;
            return;
        };
        if from != Some(probe.sender) || probe.channel != channel {
            self.malformed += 1;
            return;
        }
        let Some(seq) = probe.seq_for(self.me) else {
            self.malformed += 1;
            return;
        };
        let key = (
            probe.sender,
            probe.incarnation,
            probe.channel,
            probe.priority,
        );
        let (seen, top) = self
            .streams
            .entry(key)
            .or_insert_with(|| (Intervals::new(), 0));
        if !seen.insert(seq) {
            self.duplicates += 1;
            return;
        }
        if seq < *top {
            self.reordered += 1;
        }
        *top = (*top).max(seq);
        self.delta.entry(key).or_default().insert(seq);
    }

    /// The `recv` line with everything delivered since the previous one.
    fn flush(&mut self) -> Line {
        let mut delta = Vec::new();
        for ((from, inc, ch, pr), set) in self.delta.drain() {
            for r in set.iter() {
                delta.push((from, inc, ch, pr, r.start, r.end));
            }
        }
        delta.sort_unstable();
        Line::Recv {
            delta,
            duplicates: self.duplicates,
            reordered: self.reordered,
            malformed: self.malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(sender: u16, inc: u32, entries: Vec<(u16, u64)>) -> Option<Probe> {
        Some(Probe {
            channel: 1,
            priority: 0,
            sender,
            incarnation: inc,
            entries,
        })
    }

    #[test]
    fn receiver_account_flags_anomalies() {
        let mut a = RecvAccount::new(2);
        a.record(Some(1), 1, probe(1, 0, vec![(2, 0)]));
        a.record(Some(1), 1, probe(1, 0, vec![(3, 5), (2, 2)]));
        a.record(Some(1), 1, probe(1, 0, vec![(2, 1)]));
        a.record(Some(1), 1, probe(1, 0, vec![(2, 1)]));
        a.record(Some(4), 1, probe(1, 0, vec![(2, 3)]));
        a.record(Some(1), 2, probe(1, 0, vec![(2, 3)]));
        a.record(Some(1), 1, probe(1, 0, vec![(3, 3)]));
        a.record(Some(1), 1, None);
        let Line::Recv {
            delta,
            duplicates,
            reordered,
            malformed,
        } = a.flush()
        else {
            panic!("not a recv line")
        };
        assert_eq!(delta, vec![(1, 0, 1, 0, 0, 3)]);
        assert_eq!((duplicates, reordered, malformed), (1, 1, 4));
        let Line::Recv { delta, .. } = a.flush() else {
            panic!("not a recv line")
        };
        assert!(delta.is_empty());
    }
}
