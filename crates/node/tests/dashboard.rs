//! The Grafana dashboard (`deploy/grafana/p2p-node.json`) against the node's real `/metrics`:
//! the file must be a Grafana dashboard model (panels with Prometheus targets, a data-source
//! variable), and every metric any of its queries names must be served by `p2p-node run`.
//!
//! Families with labels are only exposed once they have a sample, so the test makes two nodes
//! on loopback (ports chosen by the OS) go through what every panel shows: a connection, a
//! chat line, a burst over the chat channel's quota and backlog (rate-limited and dropped
//! messages), a flood of bare TCP connections (refused before the handshake, failed
//! handshakes) and one node stopping (a disconnect).

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_p2p-node");

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/p2p-node.json")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every PromQL expression of the dashboard, after checking the dashboard's shape.
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["uid"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["schemaVersion"].as_u64().is_some());
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "no Prometheus data-source variable"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id: {panel}"
        );
        assert!(
            panel["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{panel}"
        );
        for key in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][key].as_u64().is_some(), "{panel}");
        }
        assert!(
            panel["gridPos"]["x"].as_u64().unwrap() + panel["gridPos"]["w"].as_u64().unwrap() <= 24
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["type"], "prometheus", "{panel}");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel without a query: {panel}");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(target["refId"].as_str().is_some(), "{target}");
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{expr}"
            );
            exprs.push(expr.to_owned());
        }
    }
    exprs
}

/// The metric names a PromQL expression refers to (identifiers starting with `p2p_`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("p2p_"))
        .map(str::to_owned)
        .collect()
}

/// Series names with at least one sample in an OpenMetrics body.
fn sample_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split([' ', '{']).next())
        .map(str::to_owned)
        .collect()
}

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

async fn scrape(addr: SocketAddr) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// Scrapes `addr` until `pred` holds on the body (or panics after `within`).
async fn scrape_until(addr: SocketAddr, within: Duration, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        if let Some(body) = scrape(addr).await {
            if pred(&body) {
                return body;
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr}: condition not met within {within:?}; last scrape:\n{last}");
}

fn spawn(config: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_only_metrics_the_node_serves() {
    let text = std::fs::read_to_string(dashboard_path()).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exprs = dashboard_exprs(&dashboard);
    let wanted: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(wanted.len() >= 10, "{wanted:?}");

    timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let keys = [public_key("a.key"), public_key("b.key")];
        let ports = free_ports(4);
        let (p2p, metrics) = (&ports[..2], &ports[2..]);
        let mut configs = Vec::new();
        for (i, name) in ["a", "b"].iter().enumerate() {
            // b bootstraps from a. The chat channel allows 1 message per second and a backlog
            // of 1, so a burst is both rate-limited and dropped.
            let boot = if i == 1 {
                format!("\"{}@127.0.0.1:{}\"", keys[0], p2p[0])
            } else {
                String::new()
            };
            let config = format!(
                "key_file = {key:?}\n\
                 listen = \"127.0.0.1:{port}\"\n\
                 external = \"127.0.0.1:{port}\"\n\
                 namespace = \"p2p-node-dashboard\"\n\
                 peers = [\"{k0}\", \"{k1}\"]\n\
                 bootstrappers = [{boot}]\n\
                 metrics = \"127.0.0.1:{mport}\"\n\
                 [[channels]]\nid = 7\nrate = 1\nmax_message_size = 4096\nbacklog = 1\n",
                key = fixtures().join(format!("{name}.key")),
                port = p2p[i],
                mport = metrics[i],
                k0 = keys[0],
                k1 = keys[1],
            );
            let path = dir.path().join(format!("{name}.toml"));
            std::fs::write(&path, config).unwrap();
            configs.push(path);
        }
        let mut a = spawn(&configs[0]);
        let mut b = spawn(&configs[1]);
        let a_metrics: SocketAddr = format!("127.0.0.1:{}", metrics[0]).parse().unwrap();
        let b_metrics: SocketAddr = format!("127.0.0.1:{}", metrics[1]).parse().unwrap();
        let connected = |body: &str| body.contains("p2p_node_connected_peers 1");
        scrape_until(a_metrics, Duration::from_secs(20), connected).await;
        scrape_until(b_metrics, Duration::from_secs(20), connected).await;

        // A burst of chat lines from b: the first goes out, the next waits for the quota, the
        // rest find the backlog full.
        let stdin = b.stdin.as_mut().unwrap();
        for i in 0..6 {
            stdin
                .write_all(format!("line {i}\n").as_bytes())
                .await
                .unwrap();
        }
        stdin.flush().await.unwrap();
        let b_body = scrape_until(b_metrics, Duration::from_secs(10), |body| {
            body.contains("p2p_mux_rate_limited_total{") && body.contains("p2p_mux_dropped_total{")
        })
        .await;
        scrape_until(a_metrics, Duration::from_secs(10), |body| {
            body.contains("p2p_node_chat_received_total 1")
        })
        .await;

        // Bare TCP connections that never handshake: beyond the per-IP quota (30 a minute in
        // the recommended preset) they are refused before the handshake.
        for _ in 0..45 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", p2p[0])) {
                drop(s);
            }
        }
        scrape_until(a_metrics, Duration::from_secs(10), |body| {
            body.contains("p2p_refused_connections_total{")
        })
        .await;

        // b stops: a counts a disconnect.
        let pid = b.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = timeout(Duration::from_secs(10), b.wait()).await;
        let a_body = scrape_until(a_metrics, Duration::from_secs(10), |body| {
            body.contains("p2p_disconnects_total{")
        })
        .await;
        let _ = a.kill().await;

        let served: BTreeSet<String> = sample_names(&a_body)
            .union(&sample_names(&b_body))
            .cloned()
            .collect();
        let missing: Vec<&String> = wanted.difference(&served).collect();
        assert!(
            missing.is_empty(),
            "the dashboard queries metrics the node does not serve: {missing:?}\nserved: {served:?}"
        );
        println!(
            "dashboard: {} queries, {} metrics, all served",
            exprs.len(),
            wanted.len()
        );
    })
    .await
    .expect("test timed out");
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let names = metric_names(
        "sum by (instance) (rate(p2p_wire_bytes_sent_total{job=~\"$job\"}[$__rate_interval])) / sum(rate(p2p_mux_bytes_sent_total[5m]))",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["p2p_mux_bytes_sent_total", "p2p_wire_bytes_sent_total"]
    );
    let served = sample_names("# TYPE x counter\nx_total{a=\"1\"} 2\ny 1\n# EOF\n");
    assert_eq!(served.into_iter().collect::<Vec<_>>(), ["x_total", "y"]);
}
