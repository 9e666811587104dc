//! `p2p-node demo`: a local cluster in one process.
//!
//! Order: create N networks on 127.0.0.1 port 0 (node 0 first, so the others can name it as
//! their only bootstrapper), register the peer set and two channels on each, spawn them, poll
//! every oracle until each node is connected to all others (with a progress bar), run the
//! traffic phase (every node broadcasts on four streams at a fixed rate), let in-flight messages
//! drain, read the facade's byte counters from each node's registry, shut everything down and
//! build the [`Summary`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use governor::Quota;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use p2p_identity::{PeerUrl, Signer, ed25519};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::demo::{Probe, ReceiverLog, Stream, StreamSummary, Summary, quantile};

/// Namespace of the demo network.
pub const DEMO_NAMESPACE: &[u8] = b"_P2P_NODE_DEMO";
/// Channel id of the uncompressed demo channel.
pub const PLAIN_CHANNEL: u32 = 1;
/// Channel id of the zstd-compressed demo channel.
pub const ZSTD_CHANNEL: u32 = 2;
/// zstd level of the compressed channel.
pub const ZSTD_LEVEL: i32 = 3;
/// Longest time to wait for in-flight messages after the traffic phase.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the mesh is polled while it forms.
const MESH_POLL: Duration = Duration::from_millis(50);

/// Options of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Number of nodes (at least 2).
    pub nodes: usize,
    /// Length of the traffic phase.
    pub traffic: Duration,
    /// Longest time to wait for the full mesh.
    pub mesh_timeout: Duration,
    /// Message size in bytes (at least the probe header).
    pub message_size: usize,
    /// Broadcasts per second per node per stream.
    pub rate: NonZeroU32,
    /// Whether to draw a progress bar on standard error.
    pub progress: bool,
}

/// Why the demo failed before producing a summary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A network could not be created.
    #[error("cannot start node {index}: {reason}")]
    Start {
        /// The node.
        index: usize,
        /// The facade's reason.
        reason: String,
    },
    /// The mesh did not form in time.
    #[error("the full mesh did not form within {timeout:?}: {connected} of {wanted} connections")]
    MeshTimeout {
        /// The timeout.
        timeout: Duration,
        /// Connections (counted from both ends) at the timeout.
        connected: usize,
        /// Connections needed.
        wanted: usize,
    },
}

/// Channel and quota settings shared by every node.
struct ChannelSetup {
    quota: Quota,
    max_message_size: usize,
    backlog: usize,
}

/// What a sender task recorded: per stream, per sequence number, the recipients the message
/// was queued for.
#[derive(Default)]
struct SendLog {
    queued: HashMap<Stream, Vec<Vec<usize>>>,
    dropped: BTreeMap<String, u64>,
    dropped_per_stream: HashMap<Stream, u64>,
    payload_bytes_queued: u64,
}

/// Runs the demo.
pub async fn run(options: DemoOptions) -> Result<Summary, DemoError> {
    let n = options.nodes;
    let signers: Vec<ed25519::PrivateKey> = (0..n as u64)
        .map(ed25519::PrivateKey::insecure_from_seed)
        .collect();
    let keys: Vec<ed25519::PublicKey> = signers.iter().map(Signer::public_key).collect();
    let index_of: Arc<HashMap<ed25519::PublicKey, usize>> = Arc::new(
        keys.iter()
            .cloned()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect(),
    );
    let mut peer_set = keys.clone();
    peer_set.sort();

    // Generous quotas and backlogs: the demo measures the data path, not the limits.
    let per_peer = options.rate.get().saturating_mul(4).max(100);
    let setup = ChannelSetup {
        quota: Quota::per_second(NonZeroU32::new(per_peer).unwrap_or(NonZeroU32::MIN)),
        max_message_size: options.message_size.max(crate::demo::PROBE_HEADER_LEN) * 2,
        backlog: 4096,
    };

    let started = Instant::now();
    let mut oracles = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    let mut registries = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    let mut bootstrap: Option<PeerUrl> = None;
    let localhost: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    for (index, signer) in signers.into_iter().enumerate() {
        let start_err = |reason: String| DemoError::Start { index, reason };
        let mut registry = Registry::default();
        let config = p2p::Config::aggressive(
            signer,
            DEMO_NAMESPACE,
            localhost,
            localhost,
            bootstrap.iter().cloned().collect(),
        );
        let (mut network, oracle) =
            p2p::Network::new(config, &mut registry).map_err(|e| start_err(e.to_string()))?;
        oracle
            .register(0, peer_set.clone())
            .map_err(|e| start_err(e.to_string()))?;
        let (plain_tx, plain_rx) = network
            .register(
                PLAIN_CHANNEL,
                setup.quota,
                setup.max_message_size,
                setup.backlog,
                None,
            )
            .map_err(|e| start_err(e.to_string()))?;
        let (zstd_tx, zstd_rx) = network
            .register(
                ZSTD_CHANNEL,
                setup.quota,
                setup.max_message_size,
                setup.backlog,
                Some(ZSTD_LEVEL),
            )
            .map_err(|e| start_err(e.to_string()))?;
        if index == 0 {
            bootstrap = Some(PeerUrl::new(&keys[0], oracle.local_addr()));
        }
        tasks.push(tokio::spawn(network.run()));
        oracles.push(oracle);
        senders.push((plain_tx, zstd_tx));
        receivers.push([plain_rx, zstd_rx]);
        registries.push(registry);
    }

    // Mesh formation.
    let wanted = n * (n - 1);
    let bar = if options.progress {
        ProgressBar::with_draw_target(Some(wanted as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} forming mesh [{bar:40}] {pos}/{len} connections {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mesh_deadline = started + options.mesh_timeout;
    let mesh_ms = loop {
        let connected: usize = oracles.iter().map(|o| o.connected().len()).sum();
        bar.set_position(connected as u64);
        if connected >= wanted {
            break started.elapsed().as_millis() as u64;
        }
        if Instant::now() >= mesh_deadline {
            bar.abandon();
            for o in &oracles {
                o.shutdown();
            }
            return Err(DemoError::MeshTimeout {
                timeout: options.mesh_timeout,
                connected,
                wanted,
            });
        }
        tokio::time::sleep(MESH_POLL).await;
    };
    bar.finish_and_clear();
    tracing::info!(mesh_ms, nodes = n, "full mesh formed");

    // Traffic.
    let epoch = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut receive_tasks = Vec::new();
    for (node, pair) in receivers.into_iter().enumerate() {
        for mut receiver in pair {
            let index_of = Arc::clone(&index_of);
            receive_tasks.push(tokio::spawn(async move {
                let mut log = ReceiverLog::default();
                while let Some((from, message)) = receiver.recv().await {
                    let now = epoch.elapsed().as_micros() as u64;
                    let from = index_of.get(&from).map(|&i| i as u32);
                    log.record(from, &message, now);
                }
                (node, log)
            }));
        }
    }
    let traffic_bar = if options.progress {
        ProgressBar::with_draw_target(
            Some(options.traffic.as_millis() as u64),
            ProgressDrawTarget::stderr(),
        )
    } else {
        ProgressBar::hidden()
    };
    traffic_bar.set_style(
        ProgressStyle::with_template("  sending traffic [{bar:40}] {elapsed}/{duration}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut send_tasks = Vec::new();
    for (node, (plain, zstd)) in senders.into_iter().enumerate() {
        let index_of = Arc::clone(&index_of);
        let mut stop = stop_rx.clone();
        let size = options.message_size;
        let period = Duration::from_secs(1) / options.rate.get();
        send_tasks.push(tokio::spawn(async move {
            let mut log = SendLog::default();
            let mut sequence = 0u64;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tick.tick() => {}
                }
                for stream in Stream::ALL {
                    let probe = Probe {
                        stream,
                        sender: node as u32,
                        sequence,
                        sent_at_us: epoch.elapsed().as_micros() as u64,
                    };
                    let message = Bytes::from(probe.encode(size));
                    let len = message.len() as u64;
                    let sender = if stream.compressed { &zstd } else { &plain };
                    let priority = if stream.high {
                        p2p::Priority::High
                    } else {
                        p2p::Priority::Low
                    };
                    let queued: Vec<usize> =
                        match sender.send(p2p::Recipients::All, message, priority) {
                            Ok(report) => {
                                for (reason, peers) in [
                                    ("not_connected", &report.not_connected),
                                    ("backlog_full", &report.backlog_full),
                                ] {
                                    if !peers.is_empty() {
                                        *log.dropped.entry(reason.to_owned()).or_default() +=
                                            peers.len() as u64;
                                        *log.dropped_per_stream.entry(stream).or_default() +=
                                            peers.len() as u64;
                                    }
                                }
                                report
                                    .queued
                                    .iter()
                                    .filter_map(|k| index_of.get(k).copied())
                                    .collect()
                            }
                            Err(e) => {
                                *log.dropped.entry(format!("send error: {e}")).or_default() += 1;
                                Vec::new()
                            }
                        };
                    log.payload_bytes_queued += len * queued.len() as u64;
                    log.queued.entry(stream).or_default().push(queued);
                }
                sequence += 1;
            }
            log
        }));
    }
    let traffic_started = Instant::now();
    while traffic_started.elapsed() < options.traffic {
        traffic_bar.set_position(traffic_started.elapsed().as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    let traffic_seconds = traffic_started.elapsed().as_secs_f64();
    traffic_bar.finish_and_clear();
    let mut send_logs = Vec::with_capacity(n);
    for task in send_tasks {
        // A sender task only panics on a bug; treat it as an empty log so the summary shows it.
        send_logs.push(task.await.unwrap_or_default());
    }
    let expected: u64 = send_logs
        .iter()
        .flat_map(|l| l.queued.values())
        .flatten()
        .map(|r| r.len() as u64)
        .sum();

    // Drain: wait until the receivers' message counts stop short of nothing, or time out.
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let received: u64 = registries
            .iter()
            .map(|r| scrape_sum(r, "p2p_mux_messages_received_total"))
            .sum();
        if received >= expected || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wire_bytes: u64 = registries
        .iter()
        .map(|r| scrape_sum(r, "p2p_wire_bytes_sent_total"))
        .sum();
    for o in &oracles {
        o.shutdown();
    }
    for task in tasks {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, task).await;
    }
    let mut per_channel_logs: Vec<(usize, ReceiverLog)> = Vec::new();
    for task in receive_tasks {
        match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
            Ok(Ok(entry)) => per_channel_logs.push(entry),
            _ => tracing::warn!("a receiver did not finish"),
        }
    }
    // Merge the two channel logs of each node.
    let mut merged: Vec<Vec<ReceiverLog>> = (0..n).map(|_| Vec::new()).collect();
    for (node, log) in per_channel_logs {
        merged[node].push(log);
    }

    Ok(summarize(
        &options,
        mesh_ms,
        traffic_seconds,
        &send_logs,
        &merged,
        wire_bytes,
    ))
}

/// Builds the summary from what the senders queued and what the receivers saw.
fn summarize(
    options: &DemoOptions,
    mesh_ms: u64,
    traffic_seconds: f64,
    send_logs: &[SendLog],
    receivers: &[Vec<ReceiverLog>],
    wire_bytes: u64,
) -> Summary {
    let received = |node: usize, sender: u32, stream: Stream, seq: u64| {
        receivers[node]
            .iter()
            .any(|log| log.received(sender, stream, seq))
    };
    let mut streams: BTreeMap<u8, StreamSummary> = Stream::ALL
        .iter()
        .map(|s| {
            (
                s.index(),
                StreamSummary {
                    stream: s.name().to_owned(),
                    ..StreamSummary::default()
                },
            )
        })
        .collect();
    let mut dropped_reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut payload_bytes_queued = 0;
    for (sender, log) in send_logs.iter().enumerate() {
        payload_bytes_queued += log.payload_bytes_queued;
        for (reason, count) in &log.dropped {
            *dropped_reasons.entry(reason.clone()).or_default() += count;
        }
        for (stream, messages) in &log.queued {
            let entry = streams.entry(stream.index()).or_default();
            entry.broadcasts += messages.len() as u64;
            entry.dropped += log.dropped_per_stream.get(stream).copied().unwrap_or(0);
            for (seq, recipients) in messages.iter().enumerate() {
                entry.queued += recipients.len() as u64;
                entry.delivered += recipients
                    .iter()
                    .filter(|&&r| received(r, sender as u32, *stream, seq as u64))
                    .count() as u64;
            }
        }
    }
    let streams: Vec<StreamSummary> = streams.into_values().collect();
    let broadcasts = streams.iter().map(|s| s.broadcasts).sum();
    let queued: u64 = streams.iter().map(|s| s.queued).sum();
    let delivered: u64 = streams.iter().map(|s| s.delivered).sum();
    let dropped = dropped_reasons.values().sum();
    let all_logs = receivers.iter().flatten();
    let mut latencies: Vec<u64> = Vec::new();
    let (mut duplicates, mut malformed, mut payload_bytes) = (0, 0, 0);
    for log in all_logs {
        latencies.extend_from_slice(&log.latencies_us);
        duplicates += log.duplicates();
        malformed += log.malformed + log.impostors;
        payload_bytes += log.payload_bytes;
    }
    latencies.sort_unstable();
    let lost = queued - delivered.min(queued);
    let secs = traffic_seconds.max(1e-9);
    Summary {
        nodes: options.nodes,
        mesh_ms,
        traffic_seconds,
        message_size: options.message_size,
        broadcasts,
        queued,
        delivered,
        dropped,
        dropped_reasons,
        lost,
        duplicates,
        malformed,
        payload_bytes,
        throughput_mib_s: payload_bytes as f64 / secs / (1024.0 * 1024.0),
        messages_per_s: delivered as f64 / secs,
        latency_p50_us: quantile(&latencies, 0.50),
        latency_p99_us: quantile(&latencies, 0.99),
        latency_max_us: latencies.last().copied().unwrap_or(0),
        wire_bytes_sent: (wire_bytes > 0).then_some(wire_bytes),
        payload_bytes_queued,
        streams,
        ok: lost == 0 && duplicates == 0 && malformed == 0 && delivered > 0,
    }
}

/// Sums every sample of the metric `name` (all label sets) in the text encoding of `registry`.
pub fn scrape_sum(registry: &Registry, name: &str) -> u64 {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return 0;
    }
    sum_samples(&text, name)
}

/// Sums the samples of metric `name` in an OpenMetrics text document.
pub fn sum_samples(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok())?
        })
        .map(|v| v as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_samples_across_labels() {
        let text = "# HELP x_total X.\n# TYPE x_total counter\n\
                    x_total{channel=\"1\"} 5\nx_total{channel=\"2\"} 7\nxy_total 100\n# EOF\n";
        assert_eq!(sum_samples(text, "x_total"), 12);
        assert_eq!(sum_samples(text, "xy_total"), 100);
        assert_eq!(sum_samples(text, "z_total"), 0);
    }
}
