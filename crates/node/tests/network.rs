//! End-to-end tests of the `p2p-node` binary on loopback: the demo cluster with a parsed
//! summary, and three `p2p-node run` processes from configuration files exchanging a chat line,
//! with `/metrics` scraped before and after. Every child process is killed when its guard drops,
//! so a failing assertion never leaves a node running.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_p2p-node");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A running `p2p-node run`; the process is killed when this is dropped.
struct NodeProcess {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::UnboundedReceiver<String>,
    logs: mpsc::UnboundedReceiver<serde_json::Value>,
    seen_logs: Vec<String>,
}

impl NodeProcess {
    fn spawn(name: &'static str, config: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let (out_tx, stdout) = mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let _ = out_tx.send(line);
            }
        });
        let (log_tx, logs) = mpsc::unbounded_channel();
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "message": line }));
                let _ = log_tx.send(value);
            }
        });
        Self {
            name,
            child,
            stdin,
            stdout,
            logs,
            seen_logs: Vec::new(),
        }
    }

    /// Waits for a log event whose message is `message` and that satisfies `pred`.
    async fn wait_log(
        &mut self,
        message: &str,
        within: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let found = timeout(within, async {
            while let Some(event) = self.logs.recv().await {
                self.seen_logs.push(event.to_string());
                if event["message"] == message && pred(&event) {
                    return Some(event);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(event)) => event,
            _ => panic!(
                "{}: no log {message:?} within {within:?}; logs so far:\n{}",
                self.name,
                self.seen_logs.join("\n")
            ),
        }
    }

    async fn wait_stdout(&mut self, expected: &str, within: Duration) {
        let found = timeout(within, async {
            while let Some(line) = self.stdout.recv().await {
                if line == expected {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "{}: did not print {expected:?} within {within:?}",
            self.name
        );
    }

    async fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Sends `signal` (`TERM` or `INT`) and waits for a clean exit.
    async fn terminate(&mut self, signal: &str) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{}: did not stop after SIG{signal}", self.name))
            .unwrap();
        assert!(exit.success(), "{}: exit status {exit}", self.name);
    }
}

/// Ports that were free a moment ago (the listeners are closed before the nodes bind them).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn public_key(key_file: &str) -> String {
    let text = std::fs::read_to_string(fixtures().join(key_file)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned()
}

fn peer_id(key_file: &str) -> String {
    let out = std::process::Command::new(BIN)
        .arg("id")
        .arg(fixtures().join(key_file))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("peer id:"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Minimal HTTP/1.1 GET; returns the body.
async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap()
}

/// Sum of all samples of `name` (every label set).
fn metric(body: &str, name: &str) -> u64 {
    metric_where(body, name, "")
}

/// Sum of the samples of `name` whose label set contains `label` (e.g. `reason="ok"`).
fn metric_where(body: &str, name: &str, label: &str) -> u64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let matches = series.split('{').next()? == name && series.contains(label);
            matches.then(|| value.parse::<f64>().ok())?
        })
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_chat_and_metrics() {
    timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a", "b", "c"];
        let keys: Vec<String> = names.iter().map(|n| public_key(&format!("{n}.key"))).collect();
        let ports = free_ports(3);
        let peers = keys
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            // Everyone bootstraps from a; a bootstraps from b.
            let boot = if i == 0 { 1 } else { 0 };
            let config = format!(
                "key_file = {key:?}\n\
                 listen = \"127.0.0.1:{port}\"\n\
                 external = \"127.0.0.1:{port}\"\n\
                 namespace = \"p2p-node-e2e\"\n\
                 peers = [{peers}]\n\
                 bootstrappers = [\"{bkey}@127.0.0.1:{bport}\"]\n\
                 preset = \"aggressive\"\n\
                 metrics = \"127.0.0.1:0\"\n\
                 log_format = \"json\"\n\
                 [[channels]]\nid = 7\nrate = 50\nmax_message_size = 4096\nbacklog = 64\n\
                 [[channels]]\nid = 8\nrate = 50\nmax_message_size = 4096\nbacklog = 64\ncompression = 3\n",
                key = fixtures().join(format!("{name}.key")),
                port = ports[i],
                bkey = keys[boot],
                bport = ports[boot],
            );
            let path = dir.path().join(format!("{name}.toml"));
            std::fs::write(&path, config).unwrap();
            nodes.push(path);
        }
        let labels: [&'static str; 3] = ["a", "b", "c"];
        let mut procs: Vec<NodeProcess> = nodes
            .iter()
            .zip(labels)
            .map(|(path, name)| NodeProcess::spawn(name, path))
            .collect();

        let mut metrics_addrs = Vec::new();
        for p in &mut procs {
            let event = p
                .wait_log("metrics endpoint listening", Duration::from_secs(20), |_| true)
                .await;
            let addr: SocketAddr = event["addr"].as_str().unwrap().parse().unwrap();
            metrics_addrs.push(addr);
        }
        for p in &mut procs {
            p.wait_log("connected peers changed", Duration::from_secs(30), |e| {
                e["connected"] == 2
            })
            .await;
        }

        let before_a = scrape(metrics_addrs[0]).await;
        let before_b = scrape(metrics_addrs[1]).await;
        for body in [&before_a, &before_b] {
            // Connection metrics of the facade: two live connections, handshakes that succeeded.
            assert_eq!(metric(body, "p2p_node_connected_peers"), 2, "{body}");
            assert_eq!(metric(body, "p2p_connections"), 2, "{body}");
            assert!(metric_where(body, "p2p_handshakes_total", "reason=\"ok\"") >= 2, "{body}");
            assert!(metric(body, "p2p_wire_bytes_sent_total") > 0, "{body}");
        }
        assert_eq!(metric(&before_b, "p2p_node_chat_received_total"), 0);

        procs[0].send_line("hello from a \u{1b}[31m").await;
        let from_a = peer_id("a.key");
        let expected = format!("{from_a}: hello from a \\u{{1b}}[31m");
        for p in procs[1..].iter_mut() {
            p.wait_stdout(&expected, Duration::from_secs(10)).await;
        }
        let after_a = scrape(metrics_addrs[0]).await;
        assert_eq!(metric(&after_a, "p2p_node_chat_sent_total"), 1, "{after_a}");
        let sent = |body: &str| metric_where(body, "p2p_mux_messages_sent_total", "channel=\"7\"");
        assert_eq!(sent(&after_a) - sent(&before_a), 2, "one chat line to two peers");
        assert!(
            metric(&after_a, "p2p_wire_bytes_sent_total")
                > metric(&before_a, "p2p_wire_bytes_sent_total")
        );
        let after_b = scrape(metrics_addrs[1]).await;
        assert_eq!(metric(&after_b, "p2p_node_chat_received_total"), 1, "{after_b}");
        let received =
            |body: &str| metric_where(body, "p2p_mux_messages_received_total", "channel=\"7\"");
        assert_eq!(
            received(&after_b) - received(&before_b),
            1,
            "message counter did not move:\n{before_b}\n---\n{after_b}"
        );
        assert!(
            metric(&after_b, "p2p_wire_bytes_received_total")
                > metric(&before_b, "p2p_wire_bytes_received_total")
        );

        // SIGTERM (service managers) and SIGINT (Ctrl-C) both stop a node cleanly.
        for (p, signal) in procs.iter_mut().zip(["TERM", "INT", "TERM"]) {
            p.terminate(signal).await;
            let expected = format!("SIG{signal}");
            p.wait_log("shutting down", Duration::from_secs(5), |e| e["signal"] == expected.as_str())
                .await;
            p.wait_log("stopped", Duration::from_secs(5), |_| true).await;
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_small_cluster_summary() {
    let child = Command::new(BIN)
        .args([
            "demo",
            "--nodes",
            "4",
            "--seconds",
            "2",
            "--json",
            "--rate",
            "50",
            "--size",
            "512",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("demo timed out")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {stdout}\n{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}"));
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["nodes"], 4);
    assert_eq!(summary["lost"], 0, "{summary}");
    assert_eq!(summary["duplicates"], 0, "{summary}");
    let queued = summary["queued"].as_u64().unwrap();
    let delivered = summary["delivered"].as_u64().unwrap();
    let broadcasts = summary["broadcasts"].as_u64().unwrap();
    // 4 nodes x 4 streams x 20/s x 2 s nominal; leave room for a slow, shared CI machine.
    assert!(broadcasts >= 4 * 4 * 10, "{summary}");
    assert_eq!(delivered, queued, "{summary}");
    // Every broadcast goes to the 3 other nodes unless the send report gave a reason.
    let dropped = summary["dropped"].as_u64().unwrap();
    assert_eq!(queued + dropped, broadcasts * 3, "{summary}");
    assert_eq!(summary["streams"].as_array().unwrap().len(), 4);
    assert!(summary["latency_p50_us"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        summary["latency_p99_us"].as_u64().unwrap() >= summary["latency_p50_us"].as_u64().unwrap()
    );
    assert!(
        summary["payload_bytes"].as_u64().unwrap() == delivered * 512,
        "{summary}"
    );
    assert!(
        summary["wire_bytes_sent"].as_u64().unwrap() > 0,
        "{summary}"
    );
}
