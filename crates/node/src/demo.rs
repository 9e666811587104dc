//! Book-keeping of the demo cluster: the probe message layout, per-receiver tracking of
//! latency, loss and duplicates, and the summary (table or JSON).
//!
//! The network part of the demo lives in the binary; everything here is plain data so it can
//! be tested without sockets.
//!
//! # Probe layout
//!
//! Every demo message starts with a 22-byte header, followed by filler up to the message size:
//!
//! ```text
//! +--------+--------+----------------+------------------+----------------------+
//! | stream | sender |   sequence     |   sent at (µs)   |  filler ...          |
//! |  1 B   |  4 B   |   8 B (BE)     |   8 B (BE)       |                      |
//! +--------+--------+----------------+------------------+----------------------+
//! ```
//!
//! `stream` is 0..4 (channel × priority, see [`Stream`]); `sender` is the sender's index in
//! the cluster; `sequence` counts the sender's messages on that stream from 0; `sent at` is
//! microseconds since the demo's common start instant (all nodes share one process clock).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

/// Length of the probe header.
pub const PROBE_HEADER_LEN: usize = 1 + 4 + 8 + 8;

/// One of the four traffic streams of the demo: (compressed channel or not) × (priority).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stream {
    /// Whether the stream uses the compressed channel.
    pub compressed: bool,
    /// Whether the stream is sent with high priority.
    pub high: bool,
}

impl Stream {
    /// All four streams, in index order.
    pub const ALL: [Self; 4] = [
        Self {
            compressed: false,
            high: true,
        },
        Self {
            compressed: false,
            high: false,
        },
        Self {
            compressed: true,
            high: true,
        },
        Self {
            compressed: true,
            high: false,
        },
    ];

    /// Index 0..4 in [`Stream::ALL`].
    pub fn index(self) -> u8 {
        u8::from(self.compressed) * 2 + u8::from(!self.high)
    }

    /// The stream with index `i`, if `i < 4`.
    pub fn from_index(i: u8) -> Option<Self> {
        Self::ALL.get(usize::from(i)).copied()
    }

    /// A short name (`plain/high`, `zstd/low`, ...).
    pub fn name(self) -> &'static str {
        match (self.compressed, self.high) {
            (false, true) => "plain/high",
            (false, false) => "plain/low",
            (true, true) => "zstd/high",
            (true, false) => "zstd/low",
        }
    }
}

/// The header of a demo message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Which stream the message belongs to.
    pub stream: Stream,
    /// The sender's index in the cluster.
    pub sender: u32,
    /// The sender's sequence number on that stream.
    pub sequence: u64,
    /// Send time, microseconds since the demo's start.
    pub sent_at_us: u64,
}

/// Why a received message is not a valid probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Shorter than the header.
    #[error("message of {0} bytes is shorter than the probe header")]
    Short(usize),
    /// The stream byte is not 0..4.
    #[error("unknown stream {0}")]
    UnknownStream(u8),
}

impl Probe {
    /// Writes the probe into a message of `size` bytes (at least [`PROBE_HEADER_LEN`]).
    ///
    /// Filler bytes on the compressed streams are text (compressible); on the plain streams a
    /// cheap pseudo-random sequence seeded by the header (barely compressible).
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size.max(PROBE_HEADER_LEN));
        out.push(self.stream.index());
        out.extend_from_slice(&self.sender.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.sent_at_us.to_be_bytes());
        if self.stream.compressed {
            const TEXT: &[u8] = b"the quick brown fox jumps over the lazy validator; ";
            while out.len() < size {
                let take = TEXT.len().min(size - out.len());
                out.extend_from_slice(&TEXT[..take]);
            }
        } else {
            // xorshift64*: not for security, only to make the filler look random to zstd.
            let mut x = (u64::from(self.sender) << 32) ^ self.sequence ^ 0x9e37_79b9_7f4a_7c15;
            while out.len() < size {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                let take = v.len().min(size - out.len());
                out.extend_from_slice(&v[..take]);
            }
        }
        out
    }

    /// Reads the probe header of a message.
    pub fn decode(message: &[u8]) -> Result<Self, ProbeError> {
        let Some(header) = message.get(..PROBE_HEADER_LEN) else {
            return Err(ProbeError::Short(message.len()));
        };
        let stream = Stream::from_index(header[0]).ok_or(ProbeError::UnknownStream(header[0]))?;
        let mut sender = [0u8; 4];
        sender.copy_from_slice(&header[1..5]);
        let mut sequence = [0u8; 8];
        sequence.copy_from_slice(&header[5..13]);
        let mut sent_at = [0u8; 8];
        sent_at.copy_from_slice(&header[13..21]);
        Ok(Self {
            stream,
            sender: u32::from_be_bytes(sender),
            sequence: u64::from_be_bytes(sequence),
            sent_at_us: u64::from_be_bytes(sent_at),
        })
    }
}

/// What one receiver saw.
#[derive(Debug, Default)]
pub struct ReceiverLog {
    /// Sequence numbers received, per (sender, stream), with a count (>1 is a duplicate).
    seen: HashMap<(u32, Stream), HashMap<u64, u32>>,
    /// Delivery latencies in microseconds.
    pub latencies_us: Vec<u64>,
    /// Payload bytes received (whole messages).
    pub payload_bytes: u64,
    /// Messages received, duplicates included.
    pub messages: u64,
    /// Messages that were not valid probes.
    pub malformed: u64,
    /// Messages whose sender key did not match the sender index in the probe.
    pub impostors: u64,
}

impl ReceiverLog {
    /// Records a message from the peer with cluster index `from` (`None` when the key is not
    /// one of the cluster's), received at `now_us` (microseconds since the demo's start).
    pub fn record(&mut self, from: Option<u32>, message: &[u8], now_us: u64) {
        self.messages += 1;
        let Ok(probe) = Probe::decode(message) else {
            self.malformed += 1;
            return;
        };
        if from != Some(probe.sender) {
            self.impostors += 1;
            return;
        }
        self.payload_bytes += message.len() as u64;
        self.latencies_us
            .push(now_us.saturating_sub(probe.sent_at_us));
        *self
            .seen
            .entry((probe.sender, probe.stream))
            .or_default()
            .entry(probe.sequence)
            .or_default() += 1;
    }

    /// Whether `(sender, stream, sequence)` arrived at least once.
    pub fn received(&self, sender: u32, stream: Stream, sequence: u64) -> bool {
        self.seen
            .get(&(sender, stream))
            .is_some_and(|m| m.contains_key(&sequence))
    }

    /// Extra copies received (a message received twice counts one).
    pub fn duplicates(&self) -> u64 {
        self.seen
            .values()
            .flat_map(|m| m.values())
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum()
    }

    /// Distinct messages received.
    pub fn distinct(&self) -> u64 {
        self.seen.values().map(|m| m.len() as u64).sum()
    }
}

/// The value at quantile `q` (0..=1) of sorted `values` (nearest rank), or 0 when empty.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Per-stream counts in the summary.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StreamSummary {
    /// Stream name.
    pub stream: String,
    /// Broadcasts made.
    pub broadcasts: u64,
    /// (message, recipient) pairs the network accepted for delivery.
    pub queued: u64,
    /// Of those, pairs that arrived.
    pub delivered: u64,
    /// (message, recipient) pairs refused at send time (reasons in the summary).
    pub dropped: u64,
}

/// The demo's result.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Milliseconds from start until every node was connected to every other node.
    pub mesh_ms: u64,
    /// Length of the traffic phase in seconds.
    pub traffic_seconds: f64,
    /// Message size in bytes.
    pub message_size: usize,
    /// Broadcasts made (each to every other node).
    pub broadcasts: u64,
    /// (message, recipient) pairs the network accepted for delivery.
    pub queued: u64,
    /// Pairs that arrived (distinct).
    pub delivered: u64,
    /// Pairs refused at send time.
    pub dropped: u64,
    /// Refusals by reason.
    pub dropped_reasons: BTreeMap<String, u64>,
    /// Accepted pairs that never arrived (lost without a reason).
    pub lost: u64,
    /// Extra copies received.
    pub duplicates: u64,
    /// Received messages that were not valid probes or came from the wrong key.
    pub malformed: u64,
    /// Payload bytes delivered.
    pub payload_bytes: u64,
    /// Payload throughput over the traffic phase, MiB/s.
    pub throughput_mib_s: f64,
    /// Messages delivered per second over the traffic phase.
    pub messages_per_s: f64,
    /// Median delivery latency, microseconds.
    pub latency_p50_us: u64,
    /// 99th percentile delivery latency, microseconds.
    pub latency_p99_us: u64,
    /// Largest delivery latency, microseconds.
    pub latency_max_us: u64,
    /// Bytes written to sockets by all nodes (from the facade's metrics), if available.
    pub wire_bytes_sent: Option<u64>,
    /// Payload bytes handed to the network for sending (all recipients counted).
    pub payload_bytes_queued: u64,
    /// Per-stream counts.
    pub streams: Vec<StreamSummary>,
    /// Whether the run passed (mesh formed, nothing lost without a reason, no duplicates).
    pub ok: bool,
}

impl Summary {
    /// The summary as a human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "p2p-node demo summary ({} nodes)", self.nodes);
        let _ = writeln!(
            s,
            "  {:<28} {:>14}",
            "time to full mesh",
            format!("{} ms", self.mesh_ms)
        );
        let _ = writeln!(
            s,
            "  {:<28} {:>14}",
            "traffic phase",
            format!("{:.1} s", self.traffic_seconds)
        );
        let _ = writeln!(
            s,
            "  {:<28} {:>14}",
            "message size",
            format!("{} B", self.message_size)
        );
        let _ = writeln!(s, "  {:<28} {:>14}", "broadcasts", self.broadcasts);
        let _ = writeln!(s, "  {:<28} {:>14}", "deliveries queued", self.queued);
        let _ = writeln!(s, "  {:<28} {:>14}", "delivered", self.delivered);
        let _ = writeln!(
            s,
            "  {:<28} {:>14}",
            "dropped at send (reason)", self.dropped
        );
        for (reason, n) in &self.dropped_reasons {
            let _ = writeln!(s, "    {reason:<26} {n:>14}");
        }
        let _ = writeln!(s, "  {:<28} {:>14}", "lost without reason", self.lost);
        let _ = writeln!(s, "  {:<28} {:>14}", "duplicates", self.duplicates);
        let _ = writeln!(
            s,
            "  {:<28} {:>14}",
            "payload throughput",
            format!("{:.2} MiB/s", self.throughput_mib_s)
        );
        let _ = writeln!(
            s,
            "  {:<28} {:>14}",
            "messages delivered",
            format!("{:.0} /s", self.messages_per_s)
        );
        let _ = writeln!(
            s,
            "  {:<28} {:>14}",
            "latency p50 / p99",
            format!(
                "{:.2} / {:.2} ms",
                self.latency_p50_us as f64 / 1e3,
                self.latency_p99_us as f64 / 1e3
            )
        );
        let _ = writeln!(
            s,
            "  {:<28} {:>14}",
            "payload queued",
            format!("{} B", self.payload_bytes_queued)
        );
        match self.wire_bytes_sent {
            Some(wire) => {
                let ratio = if self.payload_bytes_queued == 0 {
                    0.0
                } else {
                    wire as f64 / self.payload_bytes_queued as f64
                };
                let _ = writeln!(
                    s,
                    "  {:<28} {:>14}",
                    "bytes on the wire",
                    format!("{wire} B ({ratio:.3}x payload)")
                );
            }
            None => {
                let _ = writeln!(s, "  {:<28} {:>14}", "bytes on the wire", "n/a");
            }
        }
        let _ = writeln!(
            s,
            "  {:<12} {:>10} {:>10} {:>10} {:>10}",
            "stream", "broadcasts", "queued", "delivered", "dropped"
        );
        for st in &self.streams {
            let _ = writeln!(
                s,
                "  {:<12} {:>10} {:>10} {:>10} {:>10}",
                st.stream, st.broadcasts, st.queued, st.delivered, st.dropped
            );
        }
        let _ = writeln!(s, "  result: {}", if self.ok { "OK" } else { "FAILED" });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_roundtrip() {
        for stream in Stream::ALL {
            assert_eq!(Stream::from_index(stream.index()), Some(stream));
            let probe = Probe {
                stream,
                sender: 7,
                sequence: 1 << 40,
                sent_at_us: 123_456,
            };
            let bytes = probe.encode(100);
            assert_eq!(bytes.len(), 100);
            assert_eq!(Probe::decode(&bytes), Ok(probe));
            // A message shorter than the header still carries the whole header.
            assert_eq!(probe.encode(3).len(), PROBE_HEADER_LEN);
        }
    }

    #[test]
    fn malformed_probes() {
        assert_eq!(Probe::decode(&[0; 5]), Err(ProbeError::Short(5)));
        let mut bytes = Probe {
            stream: Stream::ALL[0],
            sender: 0,
            sequence: 0,
            sent_at_us: 0,
        }
        .encode(PROBE_HEADER_LEN);
        bytes[0] = 9;
        assert_eq!(Probe::decode(&bytes), Err(ProbeError::UnknownStream(9)));
    }

    #[test]
    fn log_counts_duplicates_and_impostors() {
        let mut log = ReceiverLog::default();
        let p = Probe {
            stream: Stream::ALL[2],
            sender: 3,
            sequence: 5,
            sent_at_us: 1_000,
        };
        let bytes = p.encode(64);
        log.record(Some(3), &bytes, 1_500);
        log.record(Some(3), &bytes, 1_700);
        log.record(Some(4), &bytes, 1_700);
        log.record(Some(3), &[1, 2, 3], 1_700);
        assert!(log.received(3, Stream::ALL[2], 5));
        assert!(!log.received(3, Stream::ALL[2], 6));
        assert!(!log.received(3, Stream::ALL[1], 5));
        assert_eq!(log.distinct(), 1);
        assert_eq!(log.duplicates(), 1);
        assert_eq!(log.impostors, 1);
        assert_eq!(log.malformed, 1);
        assert_eq!(log.messages, 4);
        assert_eq!(log.latencies_us, vec![500, 700]);
    }

    #[test]
    fn compressed_filler_compresses() {
        let mk = |compressed| Probe {
            stream: Stream {
                compressed,
                high: true,
            },
            sender: 1,
            sequence: 2,
            sent_at_us: 3,
        };
        let text = mk(true).encode(4096);
        let noise = mk(false).encode(4096);
        let distinct = |b: &[u8]| {
            let mut seen = [false; 256];
            b.iter().for_each(|&x| seen[usize::from(x)] = true);
            seen.iter().filter(|&&s| s).count()
        };
        assert!(distinct(&text) < 40, "text filler uses few byte values");
        assert!(distinct(&noise) > 200, "noise filler uses most byte values");
    }

    #[test]
    fn quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&v, 0.0), 1);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
