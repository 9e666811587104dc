//! `p2p-node`: key management, a long-running node and a local demo cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use p2p_identity::SchemeKind;
use std::io::IsTerminal;
use std::num::NonZeroU32;
use std::time::Duration;

use p2p_node::cluster::{self, DemoError, DemoOptions};
use p2p_node::config::{LogFormat, NodeConfig};
use p2p_node::keyfile::NodeKey;
use p2p_node::logging;

/// Exit code for a configuration that does not load.
const EXIT_CONFIG: u8 = 2;
/// Exit code of the demo when the full mesh does not form in time.
const EXIT_MESH: u8 = 2;

/// Command-line node of the p2p workspace.
#[derive(Debug, Parser)]
#[command(name = "p2p-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a local cluster in this process, form the full mesh, send traffic, print a summary.
    Demo(DemoArgs),
    /// Generate a new key file (mode 0600; never overwrites).
    Keygen {
        /// Identity scheme.
        #[arg(long, value_enum, default_value_t = SchemeArg::Ed25519)]
        scheme: SchemeArg,
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key, peer id and peer URL template of a key file.
    Id {
        /// The key file.
        file: PathBuf,
    },
    /// Run a node from a configuration file, with a line-based chat on stdin/stdout.
    Run {
        /// The configuration file (TOML; see docs/operations.md).
        #[arg(long)]
        config: PathBuf,
    },
    /// Reliability soak: N member processes on 127.0.0.1 with random traffic and restarts,
    /// then a full account of every message and of memory (see docs/reliability.md).
    #[cfg(unix)]
    Soak(SoakArgs),
    /// Multi-host cluster (Linux, root): N `p2p-node run` processes, each in its own network
    /// namespace with its own address on a bridge; prints the mesh forming and a summary, then
    /// deletes everything it created.
    #[cfg(target_os = "linux")]
    Cluster(ClusterArgs),
    /// One member of a soak (started by `soak`; speaks JSON lines on standard output).
    #[cfg(unix)]
    #[command(hide = true)]
    SoakMember(MemberArgs),
}

/// Traffic options shared by `soak` and `soak-member`.
#[cfg(unix)]
#[derive(Debug, clap::Args)]
struct TrafficArgs {
    /// Sends per second per member on the small and medium channels (each to one node, or to
    /// all others).
    #[arg(long, default_value_t = 80.0)]
    rate: f64,
    /// Sends per second per member on the bulk (zstd, multi-frame) channel.
    #[arg(long, default_value_t = 0.2)]
    bulk_rate: f64,
    /// Smallest bulk message, bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    bulk_min: usize,
    /// Largest bulk message, bytes (at most 4 MiB - 4 KiB).
    #[arg(long, default_value_t = 3 * 1024 * 1024)]
    bulk_max: usize,
    /// Fraction of small and medium sends that go to every other node.
    #[arg(long, default_value_t = 0.1)]
    broadcast: f64,
    /// Mean seconds between bursts that overflow a backlog on purpose (0: none).
    #[arg(long, default_value_t = 30.0)]
    burst_every: f64,
}

#[cfg(unix)]
impl TrafficArgs {
    fn traffic(&self) -> p2p_node::soak::member::Traffic {
        p2p_node::soak::member::Traffic {
            rate: self.rate.max(0.0),
            bulk_rate: self.bulk_rate.max(0.0),
            bulk_min: self.bulk_min,
            bulk_max: self.bulk_max,
            broadcast: self.broadcast.clamp(0.0, 1.0),
            burst_every: self.burst_every.max(0.0),
        }
    }
}

/// Options of `p2p-node soak`.
#[cfg(unix)]
#[derive(Debug, clap::Args)]
struct SoakArgs {
    /// Number of member processes.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(2..=64))]
    nodes: u16,
    /// Length of the traffic phase in minutes.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Length of the traffic phase in seconds (overrides --minutes; for short checks).
    #[arg(long)]
    seconds: Option<f64>,
    /// Seed of keys, traffic, ports and restarts.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean seconds between two restarts of a random member (0: never).
    #[arg(long, default_value_t = 20.0)]
    restart_every: f64,
    /// Fraction of restarts that are crashes (SIGKILL) rather than SIGTERM.
    #[arg(long, default_value_t = 0.3)]
    kill_ratio: f64,
    /// Members 0..STEADY are never restarted (default: a quarter of the nodes, at least 1).
    #[arg(long)]
    steady: Option<u16>,
    /// Seconds of traffic before the first restart.
    #[arg(long, default_value_t = 20.0)]
    warmup: f64,
    /// Seconds between the end of sending and the final stop.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Seconds between two memory samples of a member.
    #[arg(long, default_value_t = 2.0)]
    sample_every: f64,
    /// Memory is judged on a member that lived at least this many seconds after warm-up.
    #[arg(long, default_value_t = 60.0)]
    judge_after: f64,
    /// Directory for member logs, report.json and rss.csv.
    #[arg(long, default_value = "target/soak")]
    out: PathBuf,
    /// Leave glibc's malloc as it is by default in the members (its mmap threshold then grows,
    /// and resident memory with it; see docs/reliability.md).
    #[arg(long)]
    default_malloc: bool,
    #[command(flatten)]
    traffic: TrafficArgs,
}

/// Options of `p2p-node soak-member`.
#[cfg(unix)]
#[derive(Debug, clap::Args)]
struct MemberArgs {
    /// This member's node index.
    #[arg(long)]
    index: u16,
    /// Listening ports of all nodes, by index, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    ports: Vec<u16>,
    /// Seed of keys and traffic.
    #[arg(long)]
    seed: u64,
    /// Incarnation of this node (0 at first, +1 per restart).
    #[arg(long, default_value_t = 0)]
    incarnation: u32,
    #[command(flatten)]
    traffic: TrafficArgs,
}

/// Options of `p2p-node cluster`.
#[cfg(target_os = "linux")]
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Number of nodes (one network namespace each).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(2..=64))]
    nodes: u16,
    /// Timer preset of the nodes.
    #[arg(long, value_enum, default_value_t = PresetArg::Recommended)]
    preset: PresetArg,
    /// Seconds to wait for the full mesh (exit code 2 when it does not form).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    mesh_timeout: u64,
    /// Keep the directory with the keys, configurations and logs (kept anyway on failure).
    #[arg(long)]
    keep: bool,
    /// Print the summary as one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// Preset names on the command line.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, ValueEnum)]
enum PresetArg {
    /// `Config::recommended` (loopback refused, private addresses allowed, real-network timers).
    Recommended,
    /// `Config::aggressive` (fast timers).
    Aggressive,
}

/// Options of `p2p-node demo`.
#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(2..=64))]
    nodes: u16,
    /// Length of the traffic phase, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Seconds to wait for the full mesh before giving up (exit code 2).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    mesh_timeout: u64,
    /// Broadcasts per second per node on each of the four streams.
    #[arg(long, default_value_t = NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN))]
    rate: NonZeroU32,
    /// Message size in bytes (at least 21, the probe header).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(21..=1_048_576))]
    size: u32,
    /// Print the summary as one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SchemeArg {
    /// Ed25519.
    Ed25519,
    /// BLS12-381 (min-pk).
    #[value(alias = "bls12381")]
    Bls,
}

impl From<SchemeArg> for SchemeKind {
    fn from(s: SchemeArg) -> Self {
        match s {
            SchemeArg::Ed25519 => Self::Ed25519,
            SchemeArg::Bls => Self::Bls12381,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen { scheme, out } => keygen(scheme.into(), &out),
        Command::Id { file } => id(&file),
        Command::Run { config } => {
            let config = match NodeConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            logging::init(config.log_format, &config.log_filter);
            match runtime().map(|rt| rt.block_on(p2p_node::node::run(config))) {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "node failed");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo(args) => demo(args),
        #[cfg(target_os = "linux")]
        Command::Cluster(args) => cluster_cmd(args),
        #[cfg(unix)]
        Command::Soak(args) => soak(args),
        #[cfg(unix)]
        Command::SoakMember(args) => {
            let options = p2p_node::soak::member::MemberOptions {
                index: args.index,
                ports: args.ports,
                seed: args.seed,
                incarnation: args.incarnation,
                traffic: args.traffic.traffic(),
            };
            match p2p_node::soak::member::run(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("soak-member: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(unix)]
fn soak(args: SoakArgs) -> ExitCode {
    use p2p_node::soak::{account, coordinator};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let member_exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let duration = secs(args.seconds.unwrap_or(args.minutes * 60.0));
    let steady = args
        .steady
        .unwrap_or((args.nodes / 4).max(1))
        .min(args.nodes);
    let options = coordinator::SoakOptions {
        nodes: args.nodes,
        duration,
        seed: args.seed,
        restart_every: (args.restart_every > 0.0).then(|| secs(args.restart_every)),
        kill_ratio: args.kill_ratio.clamp(0.0, 1.0),
        steady,
        warmup: secs(args.warmup),
        drain: secs(args.drain),
        sample_every: secs(args.sample_every.max(0.1)),
        progress_every: Some(Duration::from_secs(30)),
        traffic: args.traffic.traffic(),
        out_dir: args.out.clone(),
        member_exe,
        default_malloc: args.default_malloc,
    };
    let settings = account::Settings {
        judge_after_s: args.judge_after,
        ..account::Settings::default()
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    eprintln!(
        "p2p-node soak: {} members on 127.0.0.1 for {:.0} s, restart every ~{} s ({:.0}% SIGKILL, nodes 0..{steady} steady), seed {}",
        args.nodes,
        duration.as_secs_f64(),
        args.restart_every,
        options.kill_ratio * 100.0,
        args.seed
    );
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let name = rt.block_on(p2p_node::shutdown::signal());
                eprintln!("soak: {name}; stopping the members");
                flag.store(true, Ordering::SeqCst);
            }
        });
    }
    let started = std::time::Instant::now();
    let (incarnations, traffic_s) = match coordinator::run(options.clone(), &interrupted) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = account::reconcile(&incarnations, &settings);
    let was_interrupted = interrupted.load(Ordering::SeqCst);
    println!("{}", report.table().trim_end());
    if was_interrupted {
        println!("interrupted: the figures cover only the part that ran");
    }
    let record = serde_json::json!({
        "command": command,
        "nodes": args.nodes,
        "traffic_seconds": traffic_s,
        "wall_seconds": started.elapsed().as_secs_f64(),
        "seed": args.seed,
        "restart_every_s": args.restart_every,
        "kill_ratio": options.kill_ratio,
        "steady": steady,
        "traffic": {
            "rate": options.traffic.rate,
            "bulk_rate": options.traffic.bulk_rate,
            "bulk_min": options.traffic.bulk_min,
            "bulk_max": options.traffic.bulk_max,
            "broadcast": options.traffic.broadcast,
            "burst_every": options.traffic.burst_every,
        },
        "default_malloc": args.default_malloc,
        "interrupted": was_interrupted,
        "report": report,
    });
    let mut csv = String::from("node,incarnation,seconds,rss_kib\n");
    for inc in &incarnations {
        for (t, kib) in &inc.rss {
            csv.push_str(&format!("{},{},{t:.1},{kib}\n", inc.node, inc.incarnation));
        }
    }
    let rss_path = args.out.join("rss.csv");
    if let Err(e) = std::fs::write(&rss_path, csv) {
        eprintln!("error: {}: {e}", rss_path.display());
    }
    let path = args.out.join("report.json");
    match serde_json::to_string_pretty(&record) {
        Ok(text) => {
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            eprintln!("soak: report written to {}", path.display());
        }
        Err(e) => eprintln!("error: cannot encode the report: {e}"),
    }
    if report.ok && !was_interrupted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Exit code of `cluster` when network namespaces are not available (not root, no iproute2,
/// no kernel support): callers such as tests tell it from a failure.
#[cfg(target_os = "linux")]
const EXIT_UNAVAILABLE: u8 = 3;

#[cfg(target_os = "linux")]
fn cluster_cmd(args: ClusterArgs) -> ExitCode {
    use p2p_node::config::Preset;
    use p2p_node::multihost::{self, ClusterOptions};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = ClusterOptions {
        nodes: usize::from(args.nodes),
        exe,
        preset: match args.preset {
            PresetArg::Recommended => Preset::Recommended,
            PresetArg::Aggressive => Preset::Aggressive,
        },
        mesh_timeout: Duration::from_secs(args.mesh_timeout),
        chat_timeout: Duration::from_secs(10),
        keep: args.keep,
        progress: true,
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let name = rt.block_on(p2p_node::shutdown::signal());
                eprintln!("cluster: {name}; stopping the nodes and deleting the namespaces");
                flag.store(true, Ordering::SeqCst);
            }
        });
    }
    match multihost::run(&options, &interrupted) {
        Ok(summary) => {
            if args.json {
                match serde_json::to_string(&summary) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("error: cannot encode the summary: {e}"),
                }
            } else {
                print!("{}", summary.table());
            }
            if summary.ok {
                ExitCode::SUCCESS
            } else if summary.mesh_ms.is_none() {
                ExitCode::from(EXIT_MESH)
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) if e.is_unavailable() => {
            eprintln!("error: network namespaces are not available: {e}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn demo(args: DemoArgs) -> ExitCode {
    logging::init(LogFormat::Human, "warn");
    let options = DemoOptions {
        nodes: usize::from(args.nodes),
        traffic: Duration::from_secs(args.seconds),
        mesh_timeout: Duration::from_secs(args.mesh_timeout),
        message_size: args.size as usize,
        rate: args.rate,
        progress: !args.json && std::io::stderr().is_terminal(),
    };
    if !args.json {
        eprintln!(
            "p2p-node demo: {} nodes on 127.0.0.1, {} s of traffic, {} B messages, {} broadcasts/s per node per stream",
            options.nodes, args.seconds, options.message_size, options.rate
        );
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cluster::run(options)) {
        Ok(summary) => {
            if args.json {
                match serde_json::to_string(&summary) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("error: cannot encode the summary: {e}"),
                }
            } else {
                print!("{}", summary.table());
            }
            if summary.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e @ DemoError::MeshTimeout { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_MESH)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(scheme: SchemeKind, out: &std::path::Path) -> ExitCode {
    let result = NodeKey::generate(scheme).and_then(|key| {
        key.write_new(out)?;
        Ok(key)
    });
    match result {
        Ok(key) => {
            println!("wrote {} key to {}", key.scheme(), out.display());
            print_id(&key);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn id(file: &std::path::Path) -> ExitCode {
    match NodeKey::read(file) {
        Ok(key) => {
            print_id(&key);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn print_id(key: &NodeKey) {
    println!("scheme:     {}", key.scheme());
    println!("public key: {}", key.public_key_hex());
    println!("peer id:    {}", key.peer_id());
    println!("peer URL:   {}@<host>:<port>", key.public_key_hex());
}
