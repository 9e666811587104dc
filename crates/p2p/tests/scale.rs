//! Many networks in one process: one bootstrapper, every other node knowing only it, on several
//! loopback addresses, until the full mesh forms. The default test runs 32 networks (496
//! connections); the ignored one runs 128 (8,128 connections) and is the source of the figures
//! in docs/discovery.md and docs/performance.md:
//!
//! ```text
//! cargo test --release -p p2p --test scale -- --ignored --nocapture
//! ```
//!
//! Each run prints the time to the full mesh, the process's resident memory and open files per
//! connection end once the mesh is idle, and the CPU the idle mesh burns on keep-alive pings
//! (the ignored test at two ping intervals, to see that it follows the ping rate).

mod common;

use std::time::{Duration, Instant};

use common::*;
use p2p::Config;
use p2p::identity::{PeerUrl, Signer, ed25519};

type K = ed25519::PrivateKey;

/// Loopback addresses the nodes listen on, in turn (127.0.0.1 to 127.0.0.8).
const ADDRESSES: u8 = 8;

/// What one run measured.
#[derive(Debug)]
struct Figures {
    nodes: usize,
    connections: usize,
    to_full_mesh: Duration,
    rss_per_connection_end: f64,
    fds_per_connection_end: f64,
    idle_cpu_per_second: f64,
    ping_interval: Duration,
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// User + system CPU time of this process, from /proc/self/stat (fields 14 and 15, in clock
/// ticks of 1/100 s on Linux).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn node_config(i: u64, bootstrappers: Vec<PeerUrl>, ping: Duration) -> Config<K> {
    let mut cfg = config::<K>(i, bootstrappers);
    cfg.discovery.ping_interval = ping;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1 + (i % u64::from(ADDRESSES)) as u8], 0));
    cfg.listen = addr;
    cfg.dialable = addr;
    cfg
}

/// Starts `n` networks pinging every `ping`, waits for the full mesh (within `within`), then
/// measures the idle mesh for `idle`.
async fn mesh(n: u64, ping: Duration, within: Duration, idle: Duration) -> Figures {
    // Two sockets per connection, one in each node of this process.
    let want = 2 * n * n + 64;
    if let Ok((soft, hard)) = rlimit::Resource::NOFILE.get()
        && soft < want
    {
        let _ = rlimit::Resource::NOFILE.set(want.min(hard), hard);
    }
    let fds0 = open_files();
    let rss0 = status_kib("VmRSS:");
    let keys: Vec<_> = (0..n)
        .map(|i| K::insecure_from_seed(i).public_key())
        .collect();
    let sets = [(0, keys)];
    let t0 = Instant::now();
    let first = start::<K>(node_config(0, vec![], ping), 0, &sets);
    let boot = PeerUrl::new(&first.key, first.oracle.local_addr());
    let mut nodes = vec![first];
    for i in 1..n {
        nodes.push(start::<K>(
            node_config(i, vec![boot.clone()], ping),
            i,
            &sets,
        ));
    }
    full_mesh(&nodes, within).await;
    let to_full_mesh = t0.elapsed();
    // Idle: buffers of the opening traffic are given back after 100 ms without bytes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ends = (n * (n - 1)) as f64;
    let rss = status_kib("VmRSS:").saturating_sub(rss0) as f64 * 1024.0;
    let fds = open_files().saturating_sub(fds0) as f64;
    let cpu0 = cpu_time();
    let t = Instant::now();
    tokio::time::sleep(idle).await;
    let idle_cpu_per_second = (cpu_time() - cpu0).as_secs_f64() / t.elapsed().as_secs_f64();
    let connected = nodes
        .iter()
        .map(|n| n.oracle.connected().len())
        .sum::<usize>();
    assert_eq!(connected as f64, ends, "the mesh stayed whole while idle");
    shutdown(nodes).await;
    Figures {
        nodes: n as usize,
        connections: (n * (n - 1) / 2) as usize,
        to_full_mesh,
        rss_per_connection_end: rss / ends,
        fds_per_connection_end: fds / ends,
        idle_cpu_per_second,
        ping_interval: ping,
    }
}

fn report(f: &Figures) {
    let ends = (f.nodes * (f.nodes - 1)) as f64;
    let pings_per_second = ends / f.ping_interval.as_secs_f64();
    println!(
        "nodes {} connections {} full_mesh {:.2} s rss_per_connection_end {:.1} KiB \
         fds_per_connection_end {:.2} idle_cpu {:.3} cores ({:.2} us per ping received, \
         ping interval {:?})",
        f.nodes,
        f.connections,
        f.to_full_mesh.as_secs_f64(),
        f.rss_per_connection_end / 1024.0,
        f.fds_per_connection_end,
        f.idle_cpu_per_second,
        f.idle_cpu_per_second * 1e6 / pings_per_second,
        f.ping_interval,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_networks_form_the_full_mesh_from_one_bootstrapper() {
    let ping = Duration::from_millis(250);
    let f = mesh(32, ping, Duration::from_secs(60), Duration::from_secs(1)).await;
    report(&f);
    assert_eq!(f.connections, 496);
    // One socket per connection end (a connection replaced by the simultaneous-dial rule is
    // closed, not leaked).
    assert!(
        f.fds_per_connection_end < 1.1,
        "{} open files per connection end",
        f.fds_per_connection_end
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "128 networks: about a minute in a release build; run for the figures"]
async fn one_hundred_twenty_eight_networks_form_the_full_mesh_from_one_bootstrapper() {
    // The `aggressive` ping interval, then four times longer: the idle CPU should follow.
    for ping in [Duration::from_millis(250), Duration::from_secs(1)] {
        let f = mesh(128, ping, Duration::from_secs(300), Duration::from_secs(10)).await;
        report(&f);
        assert_eq!(f.connections, 8128);
        assert!(f.fds_per_connection_end < 1.1);
    }
}
