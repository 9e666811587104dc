//! The coordinator: starts the members, restarts them at random, samples their memory, stops
//! them and hands what they reported to [`account`](super::account).
//!
//! Order: pick N free loopback ports outside the kernel's ephemeral range (so that no
//! outgoing connection can take a restarting member's port), start every member (incarnation
//! 0) and wait until all are ready; then, until the duration is over, every 100 ms: notice
//! members that exited on their own (restarting them), restart one random member that is not
//! steady when its time comes (SIGTERM, or SIGKILL with probability `kill_ratio`; it comes
//! back with the same key and port after 0.2 to 2 s), sample every member's `VmRSS`. At the
//! end: `quiet` to every member (sending stops, receiving goes on) for the drain time, then
//! SIGTERM to all, and the reconciliation. Members are in their own process group (a Ctrl-C
//! reaches only the coordinator, which then stops them) and are killed when the coordinator's
//! fleet is dropped, on every path out of [`run`].

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::account::{End, Incarnation, IncarnationLog};
use super::member::Traffic;
use super::wire::Line;

/// How long a member may take to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(12);
/// How long the members may take to become ready at the start.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Main loop period.
const STEP: Duration = Duration::from_millis(100);

/// Options of a soak run.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Number of member processes.
    pub nodes: u16,
    /// Length of the traffic phase.
    pub duration: Duration,
    /// Seed of keys, traffic, ports and restarts.
    pub seed: u64,
    /// Mean time between two restarts (each between half and one and a half of it); `None`
    /// for no restarts.
    pub restart_every: Option<Duration>,
    /// Fraction of restarts done with SIGKILL (a crash) instead of SIGTERM.
    pub kill_ratio: f64,
    /// Nodes `0..steady` are never restarted (they carry the memory check over the whole run).
    pub steady: u16,
    /// No restart before this much of the traffic phase.
    pub warmup: Duration,
    /// Time between `quiet` and the final SIGTERM.
    pub drain: Duration,
    /// Interval between two memory samples of a member.
    pub sample_every: Duration,
    /// Interval between two progress lines on standard error (`None`: none).
    pub progress_every: Option<Duration>,
    /// What the members send.
    pub traffic: Traffic,
    /// Where member logs go.
    pub out_dir: PathBuf,
    /// The `p2p-node` binary to start members with.
    pub member_exe: PathBuf,
    /// Start members with glibc's malloc as configured by default, instead of pinning its
    /// mmap threshold (see [`PINNED_MMAP_THRESHOLD`]).
    pub default_malloc: bool,
}

/// glibc's initial mmap threshold, given to members as `MALLOC_MMAP_THRESHOLD_` unless
/// [`SoakOptions::default_malloc`] (or the variable is already set). By default glibc raises
/// the threshold each time a block above it is freed (up to 32 MiB), after which multi-MiB
/// message buffers come from its arenas and fragment them: resident memory then climbs to a
/// high-water mark of the allocation history rather than following live memory. Pinned,
/// message-sized blocks are mapped and unmapped, and a leak shows.
pub const PINNED_MMAP_THRESHOLD: &str = "131072";

/// Live totals for progress lines.
#[derive(Debug, Default)]
struct Live {
    sent: AtomicU64,
    delivered: AtomicU64,
}

/// A running member process.
struct Member {
    node: u16,
    incarnation: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    reader: JoinHandle<IncarnationLog>,
    ready: Arc<AtomicBool>,
    started: Instant,
    rss: Vec<(f64, u64)>,
}

/// Every member, running or finished; dropping it kills the running ones.
struct Fleet {
    options: SoakOptions,
    ports: Vec<u16>,
    live: Arc<Live>,
    running: Vec<Option<Member>>,
    finished: Vec<Incarnation>,
}

impl Fleet {
    fn spawn(&mut self, node: u16, incarnation: u32) -> Result<(), String> {
        let o = &self.options;
        let log_path = o.out_dir.join(format!("node-{node:02}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let ports = self
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let t = &o.traffic;
        let mut cmd = Command::new(&o.member_exe);
        cmd.arg("soak-member")
            .args(["--index", &node.to_string()])
            .args(["--ports", &ports])
            .args(["--seed", &o.seed.to_string()])
            .args(["--incarnation", &incarnation.to_string()])
            .args(["--rate", &t.rate.to_string()])
            .args(["--bulk-rate", &t.bulk_rate.to_string()])
            .args(["--bulk-min", &t.bulk_min.to_string()])
            .args(["--bulk-max", &t.bulk_max.to_string()])
            .args(["--broadcast", &t.broadcast.to_string()])
            .args(["--burst-every", &t.burst_every.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0);
        if !o.default_malloc && std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            cmd.env("MALLOC_MMAP_THRESHOLD_", PINNED_MMAP_THRESHOLD);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", o.member_exe.display()))?;
        let stdout = child.stdout.take().ok_or("no member stdout")?;
        let stdin = child.stdin.take();
        let ready = Arc::new(AtomicBool::new(false));
        let reader = {
            let ready = Arc::clone(&ready);
            let live = Arc::clone(&self.live);
            std::thread::spawn(move || read_lines(stdout, &ready, &live))
        };
        self.running[usize::from(node)] = Some(Member {
            node,
            incarnation,
            child,
            stdin,
            reader,
            ready,
            started: Instant::now(),
            rss: Vec::new(),
        });
        Ok(())
    }

    /// Stops the given members (SIGTERM for all first, or SIGKILL) and records them.
    fn stop(&mut self, nodes: &[u16], kill: bool, end: End) {
        let mut stopping = Vec::new();
        for &node in nodes {
            if let Some(mut m) = self.running[usize::from(node)].take() {
                if kill {
                    let _ = m.child.kill();
                } else {
                    signal_term(&m.child);
                }
                stopping.push(m);
            }
        }
        let deadline = Instant::now() + TERM_GRACE;
        for mut m in stopping {
            let mut end = end;
            let status = loop {
                match m.child.try_wait() {
                    Ok(Some(status)) => break status.to_string(),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Ok(None) | Err(_) => {
                        end = End::Hung;
                        let _ = m.child.kill();
                        break m
                            .child
                            .wait()
                            .map_or_else(|e| e.to_string(), |s| s.to_string());
                    }
                }
            };
            self.record(m, end, status);
        }
    }

    fn record(&mut self, mut m: Member, end: End, exit: String) {
        drop(m.stdin.take());
        let log = m.reader.join().unwrap_or_default();
        self.finished.push(Incarnation {
            node: m.node,
            incarnation: m.incarnation,
            end,
            exit,
            rss: m.rss,
            log,
        });
    }

    /// Members that exited without being asked.
    fn reap(&mut self) -> Vec<(u16, u32)> {
        let mut dead = Vec::new();
        for slot in &mut self.running {
            let exited = slot
                .as_mut()
                .and_then(|m| m.child.try_wait().ok().flatten());
            if let Some(status) = exited
                && let Some(m) = slot.take()
            {
                dead.push((m, status.to_string()));
            }
        }
        let mut out = Vec::new();
        for (m, status) in dead {
            eprintln!(
                "soak: node {} (incarnation {}) exited on its own: {status}",
                m.node, m.incarnation
            );
            out.push((m.node, m.incarnation));
            self.record(m, End::Died, status);
        }
        out
    }

    fn sample(&mut self) {
        for m in self.running.iter_mut().flatten() {
            if let Some(kib) = rss_kib(m.child.id()) {
                m.rss.push((m.started.elapsed().as_secs_f64(), kib));
            }
        }
    }

    fn tell_all(&mut self, what: &str) {
        for m in self.running.iter_mut().flatten() {
            if let Some(stdin) = m.stdin.as_mut() {
                let _ = writeln!(stdin, "{what}").and_then(|()| stdin.flush());
            }
        }
    }

    fn live_nodes(&self) -> Vec<u16> {
        self.running.iter().flatten().map(|m| m.node).collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for m in self.running.iter_mut().flatten() {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
    }
}

/// Reads a member's lines until its standard output closes.
fn read_lines(
    stdout: std::process::ChildStdout,
    ready: &AtomicBool,
    live: &Live,
) -> IncarnationLog {
    let mut log = IncarnationLog::default();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Line>(&line) {
            Ok(parsed) => {
                let is_ready = matches!(parsed, Line::Ready { .. });
                let (sent, delivered) = log.apply(parsed);
                live.sent.fetch_add(sent, Ordering::Relaxed);
                live.delivered.fetch_add(delivered, Ordering::Relaxed);
                if is_ready {
                    ready.store(true, Ordering::SeqCst);
                }
            }
            Err(_) => log.bad_lines += 1,
        }
    }
    log.finish();
    log
}

fn signal_term(child: &Child) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// `VmRSS` of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:` field of a `/proc/<pid>/status` text, KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `n` free ports on 127.0.0.1 outside the ephemeral range, chosen from the seed.
pub fn choose_ports(n: u16, seed: u64) -> Result<Vec<u16>, String> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let (lo, hi) = range
        .as_deref()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|v| v.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let pool: Vec<u16> = if lo > 12000 {
        (10000..lo).collect()
    } else {
        (hi.saturating_add(1)..u16::MAX).collect()
    };
    if pool.is_empty() {
        return Err("no ports outside the ephemeral range".to_owned());
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9077);
    let mut ports: Vec<u16> = Vec::new();
    for _ in 0..pool.len().min(20_000) {
        let p = pool[rng.random_range(0..pool.len())];
        if !ports.contains(&p) && std::net::TcpListener::bind(super::addr(p)).is_ok() {
            ports.push(p);
            if ports.len() == usize::from(n) {
                return Ok(ports);
            }
        }
    }
    Err(format!("found only {} free ports", ports.len()))
}

/// Runs the soak; `interrupted` ends it early (the report then covers what ran).
pub fn run(o: SoakOptions, interrupted: &AtomicBool) -> Result<(Vec<Incarnation>, f64), String> {
    if o.nodes < 2 {
        return Err("a soak needs at least 2 nodes".to_owned());
    }
    if o.steady > o.nodes {
        return Err("more steady nodes than nodes".to_owned());
    }
    std::fs::create_dir_all(&o.out_dir).map_err(|e| format!("{}: {e}", o.out_dir.display()))?;
    for node in 0..o.nodes {
        let _ = std::fs::remove_file(o.out_dir.join(format!("node-{node:02}.log")));
    }
    let ports = choose_ports(o.nodes, o.seed)?;
    let mut fleet = Fleet {
        options: o.clone(),
        ports,
        live: Arc::new(Live::default()),
        running: (0..o.nodes).map(|_| None).collect(),
        finished: Vec::new(),
    };
    let mut incarnation: Vec<u32> = vec![0; usize::from(o.nodes)];
    for node in 0..o.nodes {
        fleet.spawn(node, 0)?;
    }
    let ready_deadline = Instant::now() + READY_TIMEOUT;
    while !fleet
        .running
        .iter()
        .flatten()
        .all(|m| m.ready.load(Ordering::SeqCst))
    {
        if Instant::now() > ready_deadline || interrupted.load(Ordering::SeqCst) {
            return Err("the members did not all become ready".to_owned());
        }
        if !fleet.reap().is_empty() {
            return Err(format!(
                "a member exited during start-up; see {}",
                o.out_dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let t0 = Instant::now();
    let end = t0 + o.duration;
    let mut rng = StdRng::seed_from_u64(o.seed ^ 0xC00D);
    let restartable: Vec<u16> = (o.steady..o.nodes).collect();
    let jitter = |rng: &mut StdRng, d: Duration| d.mul_f64(rng.random_range(0.5..1.5));
    let mut next_restart = o
        .restart_every
        .filter(|_| !restartable.is_empty())
        .map(|d| t0 + o.warmup + jitter(&mut rng, d));
    let mut down: Vec<(u16, Instant)> = Vec::new();
    let mut next_sample = t0;
    let mut next_progress = o.progress_every.map(|d| t0 + d);
    while Instant::now() < end && !interrupted.load(Ordering::SeqCst) {
        let now = Instant::now();
        for (node, _) in fleet.reap() {
            down.push((node, now + Duration::from_secs(1)));
        }
        if let (Some(at), Some(every)) = (next_restart, o.restart_every)
            && now >= at
        {
            let candidates: Vec<u16> = fleet
                .live_nodes()
                .into_iter()
                .filter(|n| restartable.contains(n))
                .collect();
            // One member down at a time, and none close to the end.
            if down.is_empty() && now + Duration::from_secs(5) < end && !candidates.is_empty() {
                let victim = candidates[rng.random_range(0..candidates.len())];
                let kill = rng.random_bool(o.kill_ratio.clamp(0.0, 1.0));
                let end_kind = if kill { End::Crashed } else { End::Restarted };
                fleet.stop(&[victim], kill, end_kind);
                let pause = Duration::from_millis(rng.random_range(200..=2000));
                down.push((victim, Instant::now() + pause));
            }
            next_restart = Some(now + jitter(&mut rng, every));
        }
        let mut still_down = Vec::new();
        for (node, at) in down {
            if Instant::now() >= at {
                incarnation[usize::from(node)] += 1;
                fleet.spawn(node, incarnation[usize::from(node)])?;
            } else {
                still_down.push((node, at));
            }
        }
        down = still_down;
        if Instant::now() >= next_sample {
            fleet.sample();
            next_sample += o.sample_every;
        }
        if let (Some(at), Some(every)) = (next_progress, o.progress_every)
            && Instant::now() >= at
        {
            progress(&fleet, t0.elapsed(), o.duration);
            next_progress = Some(at + every);
        }
        std::thread::sleep(STEP);
    }
    let traffic_s = t0.elapsed().as_secs_f64();
    if !interrupted.load(Ordering::SeqCst) {
        fleet.tell_all("quiet");
        let drained = Instant::now() + o.drain;
        while Instant::now() < drained && !interrupted.load(Ordering::SeqCst) {
            if Instant::now() >= next_sample {
                fleet.sample();
                next_sample += o.sample_every;
            }
            std::thread::sleep(STEP);
        }
    }
    fleet.sample();
    let nodes = fleet.live_nodes();
    fleet.stop(&nodes, false, End::Final);
    let mut finished = std::mem::take(&mut fleet.finished);
    finished.sort_by_key(|i| (i.node, i.incarnation));
    Ok((finished, traffic_s))
}

fn progress(fleet: &Fleet, elapsed: Duration, total: Duration) {
    let restarts = fleet.finished.len();
    let rss: Vec<u64> = fleet
        .running
        .iter()
        .flatten()
        .filter_map(|m| m.rss.last().map(|x| x.1))
        .collect();
    eprintln!(
        "soak: {:>5.0}/{:.0} s, {} members up, {restarts} restarts, sent {}, delivered {}, rss {}..{} KiB",
        elapsed.as_secs_f64(),
        total.as_secs_f64(),
        fleet.live_nodes().len(),
        fleet.live.sent.load(Ordering::Relaxed),
        fleet.live.delivered.load(Ordering::Relaxed),
        rss.iter().min().copied().unwrap_or(0),
        rss.iter().max().copied().unwrap_or(0),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tp2p-node\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn ports_are_distinct_and_free() {
        let ports = choose_ports(4, 7).unwrap();
        assert_eq!(ports.len(), 4);
        let mut sorted = ports;
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
    }
}
