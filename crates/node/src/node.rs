//! `p2p-node run`: a long-running node with a line-based chat.
//!
//! The order of operations: load the configuration (done by the caller), build the facade's
//! `Config` from the preset, create the `Network` (binds the listener), register the peer set
//! with the oracle, register every channel, start the metrics endpoint, spawn the network, then
//! loop: lines from standard input are broadcast on the chat channel, messages from the chat
//! channel are printed on standard output as `<peer id>: <line>`, and the connected-peer count
//! is logged when it changes. Ctrl-C or SIGTERM ends the loop; the oracle shuts the network
//! down and the metrics server stops.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use governor::Quota;
use p2p_identity::{PeerUrl, Signer, Verifier};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::config::{ChannelConfig, Identity, Keyed, NodeConfig, Preset};
use crate::metrics::MetricsServer;

/// How often the connected-peer count is polled.
const CONNECTED_POLL: Duration = Duration::from_millis(250);
/// Lines from standard input buffered before the reader thread waits.
const STDIN_BUFFER: usize = 64;
/// Longest time to wait for the network task after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The facade refused the configuration or could not bind the listener.
    #[error("cannot start the network: {0}")]
    Network(String),
    /// A channel could not be registered.
    #[error("cannot register channel {channel}: {reason}")]
    Channel {
        /// The channel id.
        channel: u32,
        /// The facade's reason.
        reason: String,
    },
    /// The metrics endpoint could not bind its address.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The configured address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Counters of the node itself (the facade registers its own).
#[derive(Clone, Debug, Default)]
struct NodeMetrics {
    connected: Gauge,
    chat_sent: Counter,
    chat_received: Counter,
    chat_dropped: Counter,
}

impl NodeMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "p2p_node_connected_peers",
            "Peers currently connected",
            self.connected.clone(),
        );
        registry.register(
            "p2p_node_chat_sent",
            "Chat lines broadcast",
            self.chat_sent.clone(),
        );
        registry.register(
            "p2p_node_chat_received",
            "Chat lines received",
            self.chat_received.clone(),
        );
        registry.register(
            "p2p_node_chat_dropped",
            "Chat (line, recipient) pairs refused at send time",
            self.chat_dropped.clone(),
        );
    }
}

/// Settings shared by both schemes.
struct Common {
    listen: SocketAddr,
    external: SocketAddr,
    external_host: Option<p2p::HostName>,
    namespace: String,
    bootstrappers: Vec<PeerUrl>,
    preset: Preset,
    channels: Vec<ChannelConfig>,
    chat_channel: u32,
    metrics: Option<SocketAddr>,
}

/// Runs the node until Ctrl-C or SIGTERM.
pub async fn run(config: NodeConfig) -> Result<(), RunError> {
    let common = Common {
        listen: config.listen,
        external: config.external,
        external_host: config.external_host,
        namespace: config.namespace,
        bootstrappers: config.bootstrappers,
        preset: config.preset,
        channels: config.channels,
        chat_channel: config.chat_channel,
        metrics: config.metrics,
    };
    match config.identity {
        Identity::Ed25519(keyed) => run_with(keyed, common).await,
        Identity::Bls12381(keyed) => run_with(keyed, common).await,
    }
}

async fn run_with<S: Signer>(keyed: Keyed<S>, common: Common) -> Result<(), RunError> {
    let me = keyed.signer.public_key();
    let mut registry = Registry::default();
    let node_metrics = NodeMetrics::default();
    node_metrics.register(&mut registry);

    let namespace = common.namespace.as_bytes();
    let config = match common.preset {
        Preset::Recommended => p2p::Config::recommended(
            keyed.signer,
            namespace,
            common.listen,
            common.external,
            common.bootstrappers,
        ),
        Preset::Aggressive => p2p::Config::aggressive(
            keyed.signer,
            namespace,
            common.listen,
            common.external,
            common.bootstrappers,
        ),
    };
    let mut config = config;
    config.dialable_host = common.external_host.clone();
    let (mut network, oracle) =
        p2p::Network::new(config, &mut registry).map_err(|e| RunError::Network(e.to_string()))?;
    oracle
        .register(0, keyed.peers.clone())
        .map_err(|e| RunError::Network(e.to_string()))?;

    let mut chat = None;
    for ch in &common.channels {
        let (sender, receiver) = network
            .register(
                ch.id,
                Quota::per_second(ch.rate),
                ch.max_message_size.get(),
                ch.backlog.get(),
                ch.compression,
            )
            .map_err(|e| RunError::Channel {
                channel: ch.id,
                reason: e.to_string(),
            })?;
        if ch.id == common.chat_channel {
            chat = Some((sender, receiver));
        } else {
            // The built-in application only uses the chat channel; other channels are
            // registered so peers agree on the channel set, and their messages are counted.
            let id = ch.id;
            let mut receiver = receiver;
            tokio::spawn(async move {
                while let Some((from, message)) = receiver.recv().await {
                    tracing::debug!(channel = id, from = %from.peer_id(), len = message.len(), "message on a non-chat channel");
                }
            });
        }
    }
    // The configuration check guarantees the chat channel is one of the channels.
    let Some((chat_sender, mut chat_receiver)) = chat else {
        return Err(RunError::Channel {
            channel: common.chat_channel,
            reason: "chat channel is not configured".to_owned(),
        });
    };

    let local = oracle.local_addr();
    let mut external = common.external;
    if external.port() == 0 {
        external.set_port(local.port());
    }
    let mut url = PeerUrl::new(&me, external);
    if let Some(name) = &common.external_host {
        url.host = p2p_identity::Host::Dns(name.to_string());
    }
    tracing::info!(
        listen = %local,
        external = %external,
        peer_id = %me.peer_id(),
        peer_url = %url,
        peers = keyed.peers.len(),
        "node started"
    );

    let registry = Arc::new(registry);
    let metrics_server = match common.metrics {
        Some(addr) => {
            let server = MetricsServer::start(addr, Arc::clone(&registry))
                .await
                .map_err(|source| RunError::Metrics { addr, source })?;
            tracing::info!(addr = %server.local_addr(), "metrics endpoint listening");
            Some(server)
        }
        None => None,
    };

    let network_task = tokio::spawn(network.run());
    let mut lines = spawn_stdin_reader();
    let mut stdin_open = true;
    let mut poll = tokio::time::interval(CONNECTED_POLL);
    let mut last_connected: Option<usize> = None;
    let peer_total = keyed.peers.len().saturating_sub(1);
    let shutdown = crate::shutdown::signal();
    tokio::pin!(shutdown);

    let signal = loop {
        tokio::select! {
            signal = &mut shutdown => break signal,
            line = lines.recv(), if stdin_open => match line {
                Some(line) => send_line(&chat_sender, &node_metrics, line),
                None => {
                    tracing::info!("standard input closed; the node keeps running");
                    stdin_open = false;
                }
            },
            received = chat_receiver.recv() => match received {
                Some((from, message)) => {
                    node_metrics.chat_received.inc();
                    print_line(&from.peer_id().to_string(), &message);
                }
                None => break "network stopped",
            },
            _ = poll.tick() => {
                let connected: BTreeSet<S::PublicKey> = oracle.connected().into_iter().collect();
                let n = connected.len();
                if last_connected != Some(n) {
                    node_metrics.connected.set(i64::try_from(n).unwrap_or(i64::MAX));
                    tracing::info!(connected = n, of = peer_total, "connected peers changed");
                    last_connected = Some(n);
                }
            }
        }
    };

    tracing::info!(signal, "shutting down");
    oracle.shutdown();
    match tokio::time::timeout(SHUTDOWN_GRACE, network_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "network ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "network task failed"),
        Err(_) => tracing::warn!("network did not stop within the grace period"),
    }
    if let Some(server) = metrics_server {
        server.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Broadcasts one chat line and reports refusals on standard error.
fn send_line<P: Verifier>(sender: &p2p::Sender<P>, metrics: &NodeMetrics, line: String) {
    if line.is_empty() {
        return;
    }
    match sender.send(
        p2p::Recipients::All,
        Bytes::from(line.into_bytes()),
        p2p::Priority::High,
    ) {
        Ok(report) => {
            metrics.chat_sent.inc();
            let refused = report.not_connected.len() + report.backlog_full.len();
            metrics.chat_dropped.inc_by(refused as u64);
            if report.queued.is_empty() {
                eprintln!("(not sent: no peer connected)");
            }
            for peer in &report.backlog_full {
                eprintln!("(not sent to {}: backlog full)", peer.peer_id());
            }
            tracing::debug!(queued = report.queued.len(), refused, "chat line sent");
        }
        Err(e) => eprintln!("(not sent: {e})"),
    }
}

/// Prints a received line as `<from>: <text>`.
fn print_line(from: &str, message: &[u8]) {
    let clean = sanitize(message);
    let mut out = std::io::stdout().lock();
    // A closed stdout only loses the chat output; the node keeps serving its peers.
    let _ = writeln!(out, "{from}: {clean}");
    let _ = out.flush();
}

/// A received message as one printable line: invalid UTF-8 is replaced and control characters
/// (newlines, escape sequences) are escaped, so a peer cannot forge extra lines or drive the
/// local terminal.
pub fn sanitize(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let mut clean = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            clean.extend(c.escape_default());
        } else {
            clean.push(c);
        }
    }
    clean
}

/// Reads standard input on a plain thread (a blocking read must not hold up the runtime's
/// shutdown) and forwards each line; the channel closes at end of input.
fn spawn_stdin_reader() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(STDIN_BUFFER);
    let spawned = std::thread::Builder::new()
        .name("stdin".to_owned())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot read standard input; chat input disabled");
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_control_characters() {
        assert_eq!(sanitize(b"hello"), "hello");
        assert_eq!(sanitize(b"a\nb"), "a\\nb");
        assert_eq!(sanitize(b"\x1b[31mred"), "\\u{1b}[31mred");
        assert_eq!(sanitize(&[0xff, b'x']), "\u{fffd}x");
        assert_eq!(sanitize("héllo".as_bytes()), "héllo");
    }
}
