//! Runs the discrete-event network simulation (`p2p_session::simulation`) and prints its
//! report, the wall time and the peak resident memory of the process.
//!
//! ```text
//! cargo run --release -p p2p-session --example simulate -- \
//!     --nodes 1000 --churn 10 --adversarial 10 --seed 1 [--max-outbound 32] [--max-wall-secs 540] [--regions]
//!     [--unknown-after N] [--gossip-records N] [--bootstrappers K]
//! ```
//!
//! `cargo xtask simulate ...` runs the same.

use std::time::Instant;

use p2p_identity::ed25519;
use p2p_session::simulation::{PhaseReport, Rtt, SimConfig, SimReport, run};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A `VmHWM`/`VmRSS`-style line of /proc/self/status, in KiB (Linux; `None` elsewhere).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parse(args: &[String]) -> Result<(SimConfig, u64), String> {
    let mut nodes = 100usize;
    let mut churn = 0usize;
    let mut adversarial = 0usize;
    let mut seed = 1u64;
    let mut max_outbound = None;
    let mut regions = false;
    let mut max_phase = None;
    let mut max_wall = None;
    let mut unknown_after = None;
    let mut gossip_records = None;
    let mut bootstrappers = 1usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || -> Result<u64, String> {
            it.next()
                .ok_or(format!("{flag} needs a value"))?
                .parse::<u64>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--nodes" => nodes = value()? as usize,
            "--churn" => churn = value()? as usize,
            "--adversarial" => adversarial = value()? as usize,
            "--seed" => seed = value()?,
            "--max-outbound" => max_outbound = Some(value()? as usize),
            "--max-phase-secs" => max_phase = Some(value()?),
            "--max-wall-secs" => max_wall = Some(value()?),
            "--regions" => regions = true,
            "--unknown-after" => unknown_after = Some(value()? as u32),
            "--gossip-records" => gossip_records = Some(value()? as usize),
            "--bootstrappers" => bootstrappers = value()? as usize,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let mut cfg = SimConfig::new(nodes);
    cfg.progress = Some(std::time::Duration::from_secs(5));
    cfg.churn_percent = churn;
    cfg.adversarial_percent = adversarial;
    cfg.max_outbound = max_outbound;
    cfg.bootstrappers = bootstrappers;
    if regions {
        cfg.rtt = Rtt::regions();
    }
    cfg.max_wall = max_wall.map(std::time::Duration::from_secs);
    if let Some(n) = unknown_after {
        cfg.tracker.unknown_after_failed_dials =
            std::num::NonZeroU32::new(n).ok_or("--unknown-after must be at least 1")?;
    }
    if let Some(n) = gossip_records {
        let n = std::num::NonZeroUsize::new(n).ok_or("--gossip-records must be at least 1")?;
        cfg.tracker.max_gossip_records = n;
        cfg.tracker.max_records_per_message = cfg.tracker.max_records_per_message.max(n);
        // The session's decoding limits follow the discovery settings.
        cfg.session = p2p_session::SessionConfig::new(
            &cfg.tracker,
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(30),
        );
    }
    if let Some(s) = max_phase {
        cfg.max_phase = std::time::Duration::from_secs(s);
    }
    Ok((cfg, seed))
}

fn fmt_time(ms: Option<u64>, ping_ms: u64) -> String {
    match ms {
        Some(ms) => format!(
            "{:.1} s ({:.2} ping intervals)",
            ms as f64 / 1000.0,
            ms as f64 / ping_ms.max(1) as f64
        ),
        None => "not reached".to_string(),
    }
}

fn print_phase(name: &str, p: &PhaseReport, r: &SimReport) {
    let n = r.nodes as f64;
    println!("{name}:");
    println!(
        "  full knowledge: {}",
        fmt_time(p.full_knowledge_ms, r.ping_interval_ms)
    );
    println!(
        "  full mesh:      {}",
        fmt_time(p.full_mesh_ms, r.ping_interval_ms)
    );
    println!(
        "  phase length {:.1} s; discovery bytes per node: mean {:.0}, max {} ({} frames, largest answer {} B)",
        p.duration_ms as f64 / 1000.0,
        p.bytes as f64 / n,
        p.max_node_bytes,
        p.frames,
        p.max_answer_bytes
    );
    println!(
        "  connections {}, failed dials {}, closed for misbehaviour {}, idle closes {}",
        p.connections, p.failed_dials, p.misbehaviour_closes, p.idle_closes
    );
    println!(
        "  records received {} (stored {}, {:.1}%), vectors answered {} (unanswered {})",
        p.records_received,
        p.records_stored,
        100.0 * p.records_stored as f64 / p.records_received.max(1) as f64,
        p.vectors_answered,
        p.vectors_unanswered
    );
    println!(
        "  at the end: {:.4}% of (honest node, honest record) pairs current{}",
        p.known_ppm as f64 / 10_000.0,
        if p.wall_limit_hit {
            "; STOPPED by --max-wall-secs"
        } else {
            ""
        }
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, seed) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "{e}\nusage: simulate [--nodes N] [--churn PCT] [--adversarial PCT] [--seed S] [--max-outbound D] [--max-phase-secs S] [--regions] [--unknown-after N] [--gossip-records N] [--bootstrappers K]"
            );
            std::process::exit(2);
        }
    };
    println!(
        "nodes {} churn {}% adversarial {}% seed {seed} rtt {:?} max_outbound {:?}",
        cfg.nodes, cfg.churn_percent, cfg.adversarial_percent, cfg.rtt, cfg.max_outbound
    );
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let report = match run::<ed25519::PrivateKey, _>(cfg, &mut rng) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("simulation refused: {e}");
            std::process::exit(1);
        }
    };
    let wall = start.elapsed();
    print_phase("initial", &report.initial, &report);
    if let Some(c) = &report.churn {
        print_phase(
            &format!("after restarting {} nodes", report.restarted),
            c,
            &report,
        );
    }
    println!(
        "adversarial {}, verifications {}, bad records stored {}, max tracker memory {} B ({:.2} MiB), max connections of a node {}, events {}",
        report.adversarial,
        report.verifications,
        report.bad_records,
        report.max_tracker_memory,
        report.max_tracker_memory as f64 / 1_048_576.0,
        report.max_connections,
        report.events
    );
    let hwm = status_kib("VmHWM:").unwrap_or(0);
    println!(
        "wall time {:.1} s, peak RSS {} KiB ({:.2} GiB)",
        wall.as_secs_f64(),
        hwm,
        hwm as f64 / 1_048_576.0
    );
}
