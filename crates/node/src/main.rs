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
