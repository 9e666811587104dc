//! `p2p-node cluster`: N `p2p-node run` processes, each in its own network namespace with its
//! own address, as if on N machines of one LAN (`cargo xtask cluster`).
//!
//! Order: create the [`Testbed`] (hub namespace with a bridge, one namespace per node, see
//! the [`netns`] module); write a fresh ed25519 key and a configuration file per node into
//! a directory of its own (every key in `peers`, node 0 as the only bootstrapper, `listen`
//! and `external` on the node's address and the same port everywhere, `/metrics` on the node's
//! address); start `ip netns exec <ns> p2p-node run --config ...` for each, with standard
//! input and output piped (the built-in chat) and logs to a file; every 100 ms scrape every
//! node's `/metrics` from the hub namespace (as a monitoring host would) and print the
//! per-node peer counts whenever they change, until every node has N-1 peers; send a chat line
//! on node 0's standard input and wait until every other node prints it; scrape a last time
//! and read each namespace's kernel TCP table (which addresses each node's connections come
//! from); SIGTERM every node; delete the namespaces; build the [`ClusterSummary`].
//!
//! Every path out of [`run`] (success, error, Ctrl-C through the `interrupted` flag, panic)
//! kills the nodes still running and deletes the namespaces: both are owned by a guard whose
//! `Drop` does it. Nodes run in their own process group, so a Ctrl-C in the terminal reaches
//! only the orchestrator, which then stops them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use p2p_identity::SchemeKind;
use serde::Serialize;

use crate::config::Preset;
use crate::keyfile::{KeyFileError, NodeKey};
use crate::netns::{self, NetnsError, TcpConn, Testbed};

/// Port every node listens on (each has its own address, so they can all use the same one).
pub const P2P_PORT: u16 = 3000;
/// Port of every node's `/metrics`.
pub const METRICS_PORT: u16 = 9100;
/// Network name (chain id) of the cluster.
pub const CLUSTER_NAMESPACE: &str = "p2p-node-cluster";
/// Channel of the built-in chat.
pub const CHAT_CHANNEL: u32 = 1;
/// How often the nodes' metrics are scraped while the mesh forms.
const POLL: Duration = Duration::from_millis(100);
/// Timeout of one scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a node may take to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// Lines of a failed node's log shown in the error.
const LOG_TAIL_LINES: usize = 20;

/// Options of a cluster run.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of nodes (2 to [`netns::MAX_NODES`]).
    pub nodes: usize,
    /// The `p2p-node` binary the nodes run.
    pub exe: PathBuf,
    /// Timer preset of every node.
    pub preset: Preset,
    /// Longest time to wait for the full mesh.
    pub mesh_timeout: Duration,
    /// Longest time to wait for the chat line to reach every node.
    pub chat_timeout: Duration,
    /// Keep the directory with keys, configurations and logs (it is always kept on failure).
    pub keep: bool,
    /// Print progress lines on standard error.
    pub progress: bool,
}

/// Why a cluster run failed before producing a summary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Namespaces could not be created or used (see [`NetnsError::is_unavailable`]).
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Fewer than two nodes.
    #[error("a cluster needs at least 2 nodes, not {0}")]
    TooFewNodes(usize),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A key could not be generated or written.
    #[error("cannot create a node key: {0}")]
    Key(#[from] KeyFileError),
    /// A node exited while the cluster was running.
    #[error("node {index} exited ({status}); its log {log}:\n{tail}")]
    NodeExited {
        /// The node.
        index: usize,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

impl ClusterError {
    /// Whether the error means namespaces are not available on this machine.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Netns(e) if e.is_unavailable())
    }
}

/// What one node showed.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    /// Index in the cluster.
    pub index: usize,
    /// Its network namespace.
    pub namespace: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// `p2p_node_connected_peers` at the end.
    pub peers: u64,
    /// `p2p_handshakes_total{direction="Inbound",reason="ok"}`.
    pub inbound_ok: u64,
    /// `p2p_handshakes_total{direction="Outbound",reason="ok"}`.
    pub outbound_ok: u64,
    /// `p2p_handshakes_total` with another reason than `ok`.
    pub handshakes_failed: u64,
    /// `p2p_refused_connections_total` (all reasons: per-IP and per-prefix limits, ...).
    pub refused: u64,
    /// `p2p_wire_bytes_sent_total`.
    pub wire_sent: u64,
    /// `p2p_wire_bytes_received_total`.
    pub wire_received: u64,
    /// Source addresses of the established connections accepted on the p2p port, from the
    /// kernel's TCP table of the node's namespace (sorted).
    pub inbound_from: Vec<Ipv4Addr>,
    /// Addresses this node's own established connections to a p2p port go to (sorted).
    pub outbound_to: Vec<Ipv4Addr>,
    /// Whether this node printed node 0's chat line (`None` for node 0).
    pub chat_received: Option<bool>,
    /// How the process ended after SIGTERM.
    pub exit: String,
}

/// The outcome of a cluster run.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterSummary {
    /// Number of nodes.
    pub nodes: usize,
    /// The subnet of the testbed.
    pub subnet: String,
    /// Timer preset of the nodes.
    pub preset: String,
    /// Time from the start of the processes to the full mesh; `None` if it did not form.
    pub mesh_ms: Option<u64>,
    /// Nodes (other than node 0) that printed node 0's chat line.
    pub chat_received: usize,
    /// Nodes that should have.
    pub chat_expected: usize,
    /// Time from writing the line to node 0 until the last node printed it.
    pub chat_ms: Option<u64>,
    /// Whether every node's connections go to every other node's own address, each once seen
    /// (the kernel's view: distinct source addresses).
    pub distinct_addresses: bool,
    /// Nodes that exited with status 0 after SIGTERM.
    pub clean_stops: usize,
    /// Namespaces that could not be deleted.
    pub teardown_errors: Vec<String>,
    /// Per node.
    pub per_node: Vec<NodeReport>,
    /// Whether everything above is as it should be.
    pub ok: bool,
}

impl ClusterSummary {
    /// The summary as an aligned text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "p2p-node cluster summary ({} nodes, one network namespace each, bridge {})",
            self.nodes, self.subnet
        );
        let _ = writeln!(s, "  {:<28}{:>14}", "preset", self.preset);
        let mesh = self
            .mesh_ms
            .map_or_else(|| "not formed".to_owned(), |ms| format!("{ms} ms"));
        let _ = writeln!(s, "  {:<28}{:>14}", "time to full mesh", mesh);
        let chat = match self.chat_ms {
            Some(ms) => format!(
                "{} of {} in {ms} ms",
                self.chat_received, self.chat_expected
            ),
            None => format!("{} of {}", self.chat_received, self.chat_expected),
        };
        let _ = writeln!(s, "  {:<28}{:>14}", "chat line from node 0", chat);
        let _ = writeln!(
            s,
            "  {:<28}{:>14}",
            "distinct source addresses",
            if self.distinct_addresses { "yes" } else { "NO" }
        );
        let refused: u64 = self.per_node.iter().map(|n| n.refused).sum();
        let _ = writeln!(s, "  {:<28}{:>14}", "refused connections", refused);
        let _ = writeln!(
            s,
            "  {:<28}{:>14}",
            "clean stops (SIGTERM)",
            format!("{} of {}", self.clean_stops, self.nodes)
        );
        let _ = writeln!(
            s,
            "  node  address       peers  in ok  out ok  hs fail  wire sent  wire recv  inbound from (kernel)"
        );
        for n in &self.per_node {
            let from = n
                .inbound_from
                .iter()
                .map(|a| format!(".{}", a.octets()[3]))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                s,
                "  {:>4}  {:<12}  {:>5}  {:>5}  {:>6}  {:>7}  {:>9}  {:>9}  {}",
                n.index,
                n.address,
                format!("{}/{}", n.peers, self.nodes - 1),
                n.inbound_ok,
                n.outbound_ok,
                n.handshakes_failed,
                n.wire_sent,
                n.wire_received,
                if from.is_empty() { "-" } else { &from },
            );
        }
        for e in &self.teardown_errors {
            let _ = writeln!(s, "  teardown: {e}");
        }
        let _ = writeln!(s, "  result: {}", if self.ok { "OK" } else { "FAILED" });
        s
    }
}

/// A running node process.
struct NodeProc {
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

/// Owns the nodes and the testbed; dropping it kills the nodes, then deletes the namespaces.
struct Cluster {
    procs: Vec<NodeProc>,
    testbed: Testbed,
}

impl Cluster {
    /// Fails if a node exited.
    fn check_alive(&mut self) -> Result<(), ClusterError> {
        for (index, p) in self.procs.iter_mut().enumerate() {
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(ClusterError::NodeExited {
                    index,
                    status: status.to_string(),
                    log: p.log.clone(),
                    tail: log_tail(&p.log),
                });
            }
        }
        Ok(())
    }

    /// SIGKILL to every node still running, and reaps them all.
    fn kill_all(&mut self) {
        for p in &mut self.procs {
            if let Ok(None) = p.child.try_wait() {
                let _ = p.child.kill();
            }
            let _ = p.child.wait();
        }
    }

    /// SIGTERM to every node, then waits (killing those that outlive the grace period).
    fn stop_all(&mut self) -> Vec<String> {
        for p in &mut self.procs {
            p.stdin = None;
            let pid = i32::try_from(p.child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = Instant::now() + TERM_GRACE;
        self.procs
            .iter_mut()
            .map(|p| match wait_until(&mut p.child, deadline) {
                Some(status) => describe_exit(status),
                None => {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    "killed after the grace period".to_owned()
                }
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        // The testbed deletes the namespaces when it drops, after this.
    }
}

fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

fn describe_exit(status: ExitStatus) -> String {
    if status.success() {
        "exit 0".to_owned()
    } else {
        status.to_string()
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// The configuration file of node `index`.
fn node_config(
    key_file: &Path,
    addr: Ipv4Addr,
    peers: &[String],
    bootstrapper: Option<&str>,
    preset: Preset,
) -> String {
    let peers = peers
        .iter()
        .map(|k| format!("    \"{k}\",\n"))
        .collect::<String>();
    let boot = bootstrapper.map_or_else(String::new, |b| format!("\"{b}\""));
    let preset = preset_name(preset);
    format!(
        "# Written by `p2p-node cluster`.\n\
         key_file = {key_file:?}\n\
         listen = \"{addr}:{P2P_PORT}\"\n\
         external = \"{addr}:{P2P_PORT}\"\n\
         namespace = \"{CLUSTER_NAMESPACE}\"\n\
         peers = [\n{peers}]\n\
         bootstrappers = [{boot}]\n\
         preset = \"{preset}\"\n\
         metrics = \"{addr}:{METRICS_PORT}\"\n\
         log_format = \"human\"\n\
         log_filter = \"info\"\n\
         \n\
         [[channels]]\n\
         id = {CHAT_CHANNEL}\n\
         rate = 100\n\
         max_message_size = 65536\n\
         backlog = 256\n"
    )
}

fn preset_name(preset: Preset) -> &'static str {
    match preset {
        Preset::Recommended => "recommended",
        Preset::Aggressive => "aggressive",
    }
}

/// Sum of the samples of metric `name` whose labels contain every one of `labels`.
pub fn sample_sum(body: &str, name: &str, labels: &[&str]) -> u64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let series_name = series.split('{').next()?;
            let matches = series_name == name && labels.iter().all(|lab| series.contains(lab));
            matches.then(|| value.parse::<f64>().ok())?
        })
        .map(|v| v as u64)
        .sum()
}

/// Scrapes every node's `/metrics` from the hub; `None` for a node that does not answer.
fn scrape_all(hub: &str, addrs: &[SocketAddr]) -> Result<Vec<Option<String>>, NetnsError> {
    netns::in_namespace(hub, || {
        addrs
            .iter()
            .map(|a| netns::http_get(*a, "/metrics", SCRAPE_TIMEOUT).ok())
            .collect()
    })
}

/// Runs the cluster (see the module docs). `interrupted` is checked while waiting; when set,
/// the run stops, cleans up and returns [`ClusterError::Interrupted`].
pub fn run(
    options: &ClusterOptions,
    interrupted: &AtomicBool,
) -> Result<ClusterSummary, ClusterError> {
    let n = options.nodes;
    if n < 2 {
        return Err(ClusterError::TooFewNodes(n));
    }
    let say = |line: String| {
        if options.progress {
            eprintln!("{line}");
        }
    };
    let testbed = Testbed::create(n)?;
    say(format!(
        "cluster: hub namespace {} with bridge br0 {}/24; {n} node namespaces {}..n{} at {} to {}",
        testbed.hub(),
        testbed.hub_addr(),
        testbed.node(0).unwrap_or_default(),
        n - 1,
        testbed.node_addr(0),
        testbed.node_addr(n - 1),
    ));
    let mut cluster = Cluster {
        procs: Vec::with_capacity(n),
        testbed,
    };

    let dir = std::env::temp_dir().join(format!("p2pc-{}", std::process::id()));
    // A directory left by an earlier run with the same pid would refuse the new key files.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(format!("remove {}", dir.display())))?;
    }
    std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let result = run_in(&mut cluster, options, &dir, interrupted, &say);
    // Processes first (a namespace with a process inside outlives its name), then namespaces.
    cluster.kill_all();
    let teardown_errors: Vec<String> = cluster
        .testbed
        .teardown()
        .iter()
        .map(ToString::to_string)
        .collect();
    drop(cluster);
    let keep = options.keep || !matches!(&result, Ok(s) if s.ok) || !teardown_errors.is_empty();
    if keep {
        say(format!(
            "cluster: keys, configurations and logs kept in {}",
            dir.display()
        ));
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut summary = result?;
    summary.ok &= teardown_errors.is_empty();
    summary.teardown_errors = teardown_errors;
    say("cluster: nodes stopped, namespaces deleted".to_owned());
    Ok(summary)
}

fn run_in(
    cluster: &mut Cluster,
    options: &ClusterOptions,
    dir: &Path,
    interrupted: &AtomicBool,
    say: &dyn Fn(String),
) -> Result<ClusterSummary, ClusterError> {
    let n = options.nodes;
    let addrs: Vec<Ipv4Addr> = (0..n).map(|i| cluster.testbed.node_addr(i)).collect();
    let keys = (0..n)
        .map(|_| NodeKey::generate(SchemeKind::Ed25519))
        .collect::<Result<Vec<_>, _>>()?;
    let public: Vec<String> = keys.iter().map(NodeKey::public_key_hex).collect();
    let boot = format!("{}@{}:{P2P_PORT}", public[0], addrs[0]);
    let (line_tx, line_rx) = mpsc::channel::<(usize, String)>();
    for (i, key) in keys.iter().enumerate() {
        let key_file = dir.join(format!("node-{i}.key"));
        key.write_new(&key_file)?;
        let config = node_config(
            &key_file,
            addrs[i],
            &public,
            (i != 0).then_some(boot.as_str()),
            options.preset,
        );
        let config_file = dir.join(format!("node-{i}.toml"));
        std::fs::write(&config_file, config)
            .map_err(io_err(format!("write {}", config_file.display())))?;
        let log = dir.join(format!("node-{i}.log"));
        let log_file =
            std::fs::File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
        let ns = cluster.testbed.node(i).unwrap_or_default().to_owned();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&options.exe)
            .arg("run")
            .arg("--config")
            .arg(&config_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .process_group(0)
            .spawn()
            .map_err(io_err(format!("start node {i} (ip netns exec {ns} ...)")))?;
        let stdin = child.stdin.take();
        if let Some(stdout) = child.stdout.take() {
            let tx = line_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((i, line)).is_err() {
                        break;
                    }
                }
            });
        }
        cluster.procs.push(NodeProc { child, stdin, log });
    }
    drop(line_tx);
    let started = Instant::now();
    say(format!(
        "cluster: started {n} `p2p-node run` (preset {}, node 0 bootstraps the others); scraping /metrics from {}",
        preset_name(options.preset),
        cluster.testbed.hub_addr()
    ));

    // The mesh: poll every node's connected-peer gauge.
    let metrics: Vec<SocketAddr> = addrs
        .iter()
        .map(|a| SocketAddr::V4(SocketAddrV4::new(*a, METRICS_PORT)))
        .collect();
    let wanted = (n - 1) as u64;
    let mut last: Option<Vec<Option<u64>>> = None;
    let mesh_ms = loop {
        if interrupted.load(Ordering::SeqCst) {
            return Err(ClusterError::Interrupted);
        }
        cluster.check_alive()?;
        let bodies = scrape_all(cluster.testbed.hub(), &metrics)?;
        let peers: Vec<Option<u64>> = bodies
            .iter()
            .map(|b| {
                b.as_deref()
                    .map(|b| sample_sum(b, "p2p_node_connected_peers", &[]))
            })
            .collect();
        let elapsed = started.elapsed();
        if last.as_ref() != Some(&peers) {
            let cells = peers
                .iter()
                .map(|p| p.map_or_else(|| "-".to_owned(), |p| p.to_string()))
                .collect::<Vec<_>>()
                .join(" ");
            let links: u64 = peers.iter().flatten().sum::<u64>() / 2;
            say(format!(
                "  {:>6.2} s  peers per node [{cells}]  links {links}/{}",
                elapsed.as_secs_f64(),
                wanted * n as u64 / 2
            ));
            last = Some(peers.clone());
        }
        if peers.iter().all(|p| *p == Some(wanted)) {
            break Some(elapsed.as_millis() as u64);
        }
        if elapsed > options.mesh_timeout {
            say(format!(
                "cluster: the full mesh did not form within {:?}",
                options.mesh_timeout
            ));
            break None;
        }
        std::thread::sleep(POLL);
    };

    // The chat: a line typed into node 0 must be printed by every other node.
    let mut chat_seen = vec![false; n];
    let mut chat_ms = None;
    if mesh_ms.is_some() {
        let text = format!("hello from node 0 at {}", addrs[0]);
        let expected = format!("{}: {text}", keys[0].peer_id());
        let sent_at = Instant::now();
        if let Some(stdin) = cluster.procs[0].stdin.as_mut() {
            writeln!(stdin, "{text}")
                .and_then(|()| stdin.flush())
                .map_err(io_err("write to node 0's standard input"))?;
        }
        say(format!("cluster: node 0 says {text:?}"));
        let deadline = sent_at + options.chat_timeout;
        while chat_seen[1..].iter().any(|s| !s) {
            if interrupted.load(Ordering::SeqCst) {
                return Err(ClusterError::Interrupted);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match line_rx.recv_timeout(left.min(POLL)) {
                Ok((i, line)) if line == expected && i != 0 => {
                    chat_seen[i] = true;
                    say(format!(
                        "  node {i} ({}) printed it after {} ms",
                        addrs[i],
                        sent_at.elapsed().as_millis()
                    ));
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        if chat_seen[1..].iter().all(|s| *s) {
            chat_ms = Some(sent_at.elapsed().as_millis() as u64);
        }
    }

    // The last scrape and each namespace's TCP table, before stopping anything.
    cluster.check_alive()?;
    let bodies = scrape_all(cluster.testbed.hub(), &metrics)?;
    let mut tables = Vec::with_capacity(n);
    for i in 0..n {
        let ns = cluster.testbed.node(i).unwrap_or_default();
        let table = netns::in_namespace(ns, netns::established_tcp)?
            .map_err(io_err(format!("read the TCP table of {ns}")))?;
        tables.push(table);
    }
    say("cluster: stopping the nodes (SIGTERM)".to_owned());
    let exits = cluster.stop_all();

    let mut per_node = Vec::with_capacity(n);
    let mut distinct = true;
    for i in 0..n {
        let body = bodies[i].as_deref().unwrap_or_default();
        let (inbound_from, outbound_to) = peers_seen(&tables[i], addrs[i]);
        let others: BTreeSet<Ipv4Addr> = addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| *a)
            .collect();
        let seen: BTreeSet<Ipv4Addr> = inbound_from.iter().chain(&outbound_to).copied().collect();
        // One connection per pair, to the other node's own address: n-1 connections, n-1
        // distinct addresses, exactly the others'.
        distinct &= seen == others && inbound_from.len() + outbound_to.len() == n - 1;
        let handshakes_all = sample_sum(body, "p2p_handshakes_total", &[]);
        let ok = sample_sum(body, "p2p_handshakes_total", &["reason=\"ok\""]);
        per_node.push(NodeReport {
            index: i,
            namespace: cluster.testbed.node(i).unwrap_or_default().to_owned(),
            address: addrs[i],
            peers: sample_sum(body, "p2p_node_connected_peers", &[]),
            inbound_ok: sample_sum(
                body,
                "p2p_handshakes_total",
                &["direction=\"Inbound\"", "reason=\"ok\""],
            ),
            outbound_ok: sample_sum(
                body,
                "p2p_handshakes_total",
                &["direction=\"Outbound\"", "reason=\"ok\""],
            ),
            handshakes_failed: handshakes_all.saturating_sub(ok),
            refused: sample_sum(body, "p2p_refused_connections_total", &[]),
            wire_sent: sample_sum(body, "p2p_wire_bytes_sent_total", &[]),
            wire_received: sample_sum(body, "p2p_wire_bytes_received_total", &[]),
            inbound_from,
            outbound_to,
            chat_received: (i != 0).then_some(chat_seen[i]),
            exit: exits.get(i).cloned().unwrap_or_default(),
        });
    }
    let clean_stops = exits.iter().filter(|e| *e == "exit 0").count();
    let chat_received = chat_seen[1..].iter().filter(|s| **s).count();
    let ok = mesh_ms.is_some()
        && chat_received == n - 1
        && distinct
        && clean_stops == n
        && per_node.iter().all(|r| r.refused == 0);
    Ok(ClusterSummary {
        nodes: n,
        subnet: format!("{}/24", netns::SUBNET),
        preset: preset_name(options.preset).to_owned(),
        mesh_ms,
        chat_received,
        chat_expected: n - 1,
        chat_ms,
        distinct_addresses: distinct,
        clean_stops,
        teardown_errors: Vec::new(),
        per_node,
        ok,
    })
}

/// From a node's TCP table: the sources of connections accepted on its p2p port, and the
/// destinations of its own connections to a p2p port (each sorted).
fn peers_seen(table: &[TcpConn], me: Ipv4Addr) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
    let mut inbound = Vec::new();
    let mut outbound = Vec::new();
    for c in table {
        if *c.local.ip() != me {
            continue;
        }
        if c.local.port() == P2P_PORT {
            inbound.push(*c.remote.ip());
        } else if c.remote.port() == P2P_PORT {
            outbound.push(*c.remote.ip());
        }
    }
    inbound.sort();
    outbound.sort();
    (inbound, outbound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_samples_by_labels() {
        let body = "# TYPE p2p_handshakes counter\n\
                    p2p_handshakes_total{direction=\"Inbound\",reason=\"ok\"} 3\n\
                    p2p_handshakes_total{direction=\"Outbound\",reason=\"ok\"} 2\n\
                    p2p_handshakes_total{direction=\"Inbound\",reason=\"io\"} 1\n\
                    p2p_node_connected_peers 5\n# EOF\n";
        assert_eq!(sample_sum(body, "p2p_handshakes_total", &[]), 6);
        assert_eq!(
            sample_sum(body, "p2p_handshakes_total", &["reason=\"ok\""]),
            5
        );
        assert_eq!(
            sample_sum(
                body,
                "p2p_handshakes_total",
                &["direction=\"Inbound\"", "reason=\"ok\""]
            ),
            3
        );
        assert_eq!(sample_sum(body, "p2p_node_connected_peers", &[]), 5);
        assert_eq!(sample_sum(body, "missing", &[]), 0);
    }

    #[test]
    fn config_is_valid_for_run() {
        let dir = std::env::temp_dir().join(format!("p2pc-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = NodeKey::generate(SchemeKind::Ed25519).unwrap();
        let other = NodeKey::generate(SchemeKind::Ed25519).unwrap();
        let key_file = dir.join("k.key");
        let _ = std::fs::remove_file(&key_file);
        key.write_new(&key_file).unwrap();
        let peers = [key.public_key_hex(), other.public_key_hex()];
        let boot = format!("{}@10.213.0.2:{P2P_PORT}", peers[1]);
        let text = node_config(
            &key_file,
            Ipv4Addr::new(10, 213, 0, 1),
            &peers,
            Some(&boot),
            Preset::Recommended,
        );
        let config = crate::config::NodeConfig::parse(&text, Path::new("x.toml"), &dir).unwrap();
        assert_eq!(config.listen, "10.213.0.1:3000".parse().unwrap());
        assert_eq!(config.metrics, Some("10.213.0.1:9100".parse().unwrap()));
        assert_eq!(config.bootstrappers.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn peers_seen_splits_directions() {
        let me = Ipv4Addr::new(10, 213, 0, 1);
        let conn = |l: &str, r: &str| TcpConn {
            local: l.parse().unwrap(),
            remote: r.parse().unwrap(),
        };
        let table = [
            conn("10.213.0.1:3000", "10.213.0.3:41000"),
            conn("10.213.0.1:3000", "10.213.0.2:41000"),
            conn("10.213.0.1:42000", "10.213.0.4:3000"),
            conn("10.213.0.1:9100", "10.213.0.254:50000"),
        ];
        let (inbound, outbound) = peers_seen(&table, me);
        assert_eq!(
            inbound,
            vec![Ipv4Addr::new(10, 213, 0, 2), Ipv4Addr::new(10, 213, 0, 3)]
        );
        assert_eq!(outbound, vec![Ipv4Addr::new(10, 213, 0, 4)]);
    }
}
