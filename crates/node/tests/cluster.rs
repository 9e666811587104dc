//! The multi-host cluster through the real binary: `p2p-node cluster --nodes 6`, each node in
//! a network namespace of its own with its own address. Needs root and iproute2; where network
//! namespaces are not available the test says so plainly and checks only that the command
//! refuses with a clear message (exit code 3).
#![cfg(target_os = "linux")]

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_p2p-node");
/// Exit code of `p2p-node cluster` when namespaces are not available.
const EXIT_UNAVAILABLE: i32 = 3;

/// What a finished command left.
struct Finished {
    pid: u32,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `program` with `args` (killed after `limit`).
async fn run(program: &str, args: &[&str], limit: Duration) -> Finished {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let out = timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within {limit:?}"))
        .unwrap();
    Finished {
        pid,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn namespaces() -> String {
    std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_in_namespaces_form_the_mesh() {
    let started = Instant::now();
    let Finished {
        pid,
        code,
        stdout,
        stderr,
    } = run(
        BIN,
        &["cluster", "--nodes", "6", "--json", "--mesh-timeout", "15"],
        Duration::from_secs(60),
    )
    .await;
    if code == Some(EXIT_UNAVAILABLE) {
        println!(
            "skipped: network namespaces are not available here: {}",
            stderr.trim()
        );
        assert!(
            stderr.contains("network namespaces are not available"),
            "{stderr}"
        );
        return;
    }
    assert_eq!(code, Some(0), "cluster failed:\n{stdout}\n{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}\n{stderr}"));
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["nodes"], 6);
    let mesh_ms = summary["mesh_ms"].as_u64().unwrap();
    assert!(mesh_ms < 15_000, "{summary}");
    assert_eq!(summary["chat_received"], 5, "{summary}");
    assert_eq!(summary["distinct_addresses"], true, "{summary}");
    assert_eq!(summary["clean_stops"], 6, "{summary}");
    let nodes = summary["per_node"].as_array().unwrap();
    assert_eq!(nodes.len(), 6);
    let mut addresses = std::collections::BTreeSet::new();
    let mut inbound_total = 0;
    for (i, node) in nodes.iter().enumerate() {
        let address = node["address"].as_str().unwrap();
        assert_eq!(address, format!("10.213.0.{}", i + 1), "{node}");
        assert!(addresses.insert(address.to_owned()));
        assert_eq!(node["peers"], 5, "{node}");
        assert_eq!(node["refused"], 0, "{node}");
        assert!(node["wire_sent"].as_u64().unwrap() > 0, "{node}");
        // Each connection was accepted from the dialer's own address, never the bridge's.
        for from in node["inbound_from"].as_array().unwrap() {
            let from = from.as_str().unwrap();
            assert_ne!(from, address, "{node}");
            assert!(
                from.starts_with("10.213.0.") && from != "10.213.0.254",
                "{node}"
            );
        }
        inbound_total += node["inbound_from"].as_array().unwrap().len();
    }
    // 15 links, each accepted once by one end.
    assert_eq!(inbound_total, 15, "{summary}");
    // The progress went to standard error as the mesh formed.
    assert!(stderr.contains("peers per node [5 5 5 5 5 5]"), "{stderr}");
    assert!(stderr.contains("namespaces deleted"), "{stderr}");
    // Nothing is left behind.
    let left = namespaces();
    let ours = format!("p2pc-{pid}-");
    assert!(
        !left.lines().any(|l| l.starts_with(&ours)),
        "namespaces left behind:\n{left}"
    );
    println!(
        "cluster of 6: mesh in {mesh_ms} ms, test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_the_command_says_what_is_missing() {
    let is_root = euid_is_root();
    let (program, args): (&str, Vec<&str>) = if is_root {
        if std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("skipped: running as root and `setpriv` is not installed to drop privileges");
            return;
        }
        (
            "setpriv",
            vec![
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                BIN,
                "cluster",
                "--nodes",
                "2",
            ],
        )
    } else {
        (BIN, vec!["cluster", "--nodes", "2"])
    };
    let Finished {
        code,
        stdout,
        stderr,
        ..
    } = run(program, &args, Duration::from_secs(20)).await;
    if is_root && stderr.contains("Permission denied") && !stderr.contains("namespaces") {
        println!("skipped: the unprivileged user cannot execute {BIN}: {stderr}");
        return;
    }
    assert_eq!(code, Some(EXIT_UNAVAILABLE), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("network namespaces are not available") && stderr.contains("need root"),
        "{stderr}"
    );
}

/// Whether this test process runs as root (from `/proc/self/status`, no extra dependency).
fn euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
