//! `cargo xtask`: the one entry point for project automation.
//!
//! - `ci`: format check, clippy (`-D warnings`, all targets), docs (warnings denied), tests
//!   (default AEAD backend, then the aws-lc-rs backend of `p2p-cipher`), then a 20 s fuzz smoke
//!   of every target (installing cargo-fuzz if it is missing).
//! - `codegen`: regenerate `proto/src/gen/` from `proto/proto/*.proto` (no system `protoc`).
//! - `vectors`: regenerate the checked-in test vectors of every crate that has them.
//! - `fuzz [SECONDS]`: run every cargo-fuzz target for SECONDS each (needs `cargo-fuzz`; see
//!   `docs/fuzzing.md` for long runs).
//! - `bench-report`: the end-to-end figures beside their baselines (plain TCP, sealed TCP, the
//!   bare handshake, the AEAD alone), for both AEAD backends, as `name value unit` lines with
//!   ratios (`docs/performance.md`); `bench-report --criterion` runs the criterion benches.
//! - `soak [--nodes N] [--minutes M] [--seed S] [--restart-every SECONDS] [...]`: build
//!   `p2p-node` in release and run its reliability soak (N member processes on 127.0.0.1,
//!   random traffic and restarts, a full account of every message and of each member's
//!   memory); the table goes to standard output, logs and `report.json` to `target/soak/`.
//!   Every option of `p2p-node soak --help` is passed through; see `docs/reliability.md`.
//! - `cluster [--nodes N] [--preset recommended|aggressive] [--json] [--keep]`: build `p2p-node`
//!   in release and run `p2p-node cluster` (Linux, as root): N `p2p-node run` processes, each
//!   in its own network namespace with its own address on a bridge the command creates; it
//!   prints the mesh forming and a summary, then deletes everything. See `docs/operations.md`.
//! - `simulate [--nodes N] [--churn PCT] [--adversarial PCT] [--seed S] [--max-outbound D]
//!   [--max-phase-secs S] [--max-wall-secs S] [--regions] [--bootstrappers K] [--unknown-after N]
//!   [--gossip-records N]`: the discrete-event discovery simulation
//!   (`p2p_session::simulation`) in release, with its report, wall time and peak RSS
//!   (`docs/discovery.md`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod codegen;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("codegen") => codegen::write(&workspace_root()).map_err(|e| e.to_string()),
        Some("vectors") => vectors(),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str).unwrap_or("10")),
        Some("bench-report") => bench_report(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("cluster") => cluster(&args[1..]),
        Some("simulate") => simulate(&args[1..]),
        _ => Err(
            "usage: cargo xtask <ci | codegen | vectors | fuzz [SECONDS] | bench-report [--scaling | --criterion] | soak [--nodes N] [--minutes M] [--seed S] [--restart-every SECONDS] | cluster [--nodes N] | simulate [--nodes N] [--churn PCT] [--adversarial PCT] [--seed S] [--max-outbound D] [--bootstrappers K] ...>"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask simulate ...`: the simulation example in release, arguments passed through.
fn simulate(args: &[String]) -> Result<(), String> {
    let mut all = vec![
        "run",
        "--release",
        "-p",
        "p2p-session",
        "--example",
        "simulate",
        "--",
    ];
    all.extend(args.iter().map(String::as_str));
    run("cargo", &all, &[])
}

/// The workspace root (the parent of this crate's manifest directory).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("xtask: running {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed: {status}", args.join(" ")))
    }
}

fn ci() -> Result<(), String> {
    run("cargo", &["fmt", "--all", "--", "--check"], &[])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    run(
        "cargo",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    run("cargo", &["test", "--workspace"], &[])?;
    cipher_backend_tests()?;
    // The fuzz smoke: every target for a short while, from an empty corpus.
    ensure_cargo_fuzz()?;
    fuzz(FUZZ_SMOKE_SECONDS)
}

/// Seconds each fuzz target runs in `cargo xtask ci`.
const FUZZ_SMOKE_SECONDS: &str = "20";

/// The cargo-fuzz version `ci` installs when none is on the machine.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Installs cargo-fuzz unless a `cargo fuzz` already answers.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    run(
        "cargo",
        &[
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ],
        &[],
    )
}

/// The cipher crate's tests again with the aws-lc-rs backend, when the crate offers it.
fn cipher_backend_tests() -> Result<(), String> {
    let manifest = workspace_root().join("crates/cipher/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
    if text.contains("aws-lc-rs = [") || text.contains("aws-lc-rs=[") {
        run(
            "cargo",
            &[
                "test",
                "-p",
                "p2p-cipher",
                "-p",
                "p2p-handshake",
                "--features",
                "p2p-cipher/aws-lc-rs",
            ],
            &[],
        )?;
    }
    Ok(())
}

fn vectors() -> Result<(), String> {
    // Each crate with checked-in vectors has an ignored test named `regenerate_vectors` that
    // writes them; running it is how vectors are produced.
    run(
        "cargo",
        &[
            "test",
            "--workspace",
            "--",
            "--ignored",
            "--exact",
            "regenerate_vectors",
        ],
        &[("P2P_REGENERATE_VECTORS", "1")],
    )
}

fn fuzz(seconds: &str) -> Result<(), String> {
    let list = Command::new("cargo")
        .args(["fuzz", "list"])
        .current_dir(workspace_root().join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .map_err(|e| format!("cannot start cargo fuzz (cargo install cargo-fuzz): {e}"))?;
    if !list.status.success() {
        return Err("cargo fuzz list failed; is cargo-fuzz installed?".to_owned());
    }
    let targets = String::from_utf8_lossy(&list.stdout).to_string();
    let max_time = format!("-max_total_time={seconds}");
    for target in targets.lines().map(str::trim).filter(|t| !t.is_empty()) {
        eprintln!("xtask: fuzzing {target} for {seconds}s");
        let status = Command::new("cargo")
            .args(["fuzz", "run", target, "--", &max_time])
            .current_dir(workspace_root().join("fuzz"))
            .env("RUSTC_BOOTSTRAP", "1")
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("fuzz target {target} failed"));
        }
    }
    Ok(())
}

/// `bench-report`: the end-to-end figures and their baselines (`benches/src/bin/
/// bench_report.rs`), once per AEAD backend, each build run right after it is made. With
/// `--criterion [ARGS]`, the criterion benches instead (ARGS go to criterion); with
/// `--scaling`, how the cost grows with peers and channels instead of the main figures.
fn bench_report(extra: &[String]) -> Result<(), String> {
    if extra.first().map(String::as_str) == Some("--criterion") {
        let mut args = vec!["bench", "-p", "p2p-benches", "--"];
        args.extend(extra[1..].iter().map(String::as_str));
        return run("cargo", &args, &[]);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let exe = target.join("release").join("bench-report");
    for features in [&[][..], &["--features", "aws-lc-rs"][..]] {
        let mut args = vec![
            "build",
            "--release",
            "-p",
            "p2p-benches",
            "--bin",
            "bench-report",
        ];
        args.extend_from_slice(features);
        run("cargo", &args, &[])?;
        let started = std::time::Instant::now();
        let pass: Vec<&str> = extra.iter().map(String::as_str).collect();
        run(&exe.to_string_lossy(), &pass, &[])?;
        println!("# took {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Builds the release node and runs `p2p-node soak` with `extra` (its exit status is ours).
fn soak(extra: &[String]) -> Result<(), String> {
    run("cargo", &["build", "--release", "-p", "p2p-node"], &[])?;
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let exe = target.join("release").join("p2p-node");
    let mut args: Vec<String> = vec!["soak".to_owned()];
    args.extend(extra.iter().cloned());
    if !extra
        .iter()
        .any(|a| a == "--out" || a.starts_with("--out="))
    {
        args.push("--out".to_owned());
        args.push(target.join("soak").to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&exe.to_string_lossy(), &args, &[])
}

/// Builds the release node and runs `p2p-node cluster` with `extra` (its exit status is ours).
fn cluster(extra: &[String]) -> Result<(), String> {
    run("cargo", &["build", "--release", "-p", "p2p-node"], &[])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let exe = target.join("release").join("p2p-node");
    let mut args = vec!["cluster"];
    args.extend(extra.iter().map(String::as_str));
    run(&exe.to_string_lossy(), &args, &[])
}
