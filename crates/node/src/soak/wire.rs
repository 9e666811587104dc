//! What a member tells the coordinator: one JSON object per line on its standard output.
//!
//! Stream keys are tuples to keep lines short: a send stream is `(to, channel, priority)`,
//! a receive stream `(from, from_incarnation, channel, priority)`; priority 0 is high.

use serde::{Deserialize, Serialize};

/// Why the API did not queue a message for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// `SendReport::not_connected`.
    NotConnected,
    /// `SendReport::backlog_full`.
    BacklogFull,
    /// `send` returned an error (the message was queued for nobody).
    SendError,
    /// The recipient was in none of the report's lists (a library bug if it ever happens).
    Unreported,
}

/// One line from a member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Line {
    /// The network runs; the member starts sending.
    Ready {
        /// Node index.
        index: u16,
        /// Incarnation.
        incarnation: u32,
        /// The listener's address.
        addr: String,
    },
    /// Written before a batch of sends: for each stream touched, its next sequence number
    /// after the batch (the batch uses the numbers from the previous value up to this one).
    Plan {
        /// Batch number.
        tick: u64,
        /// `(to, channel, priority, next)`.
        next: Vec<(u16, u8, u8, u64)>,
    },
    /// Written after the batch: the refused (recipient, sequence) pairs.
    Done {
        /// Batch number (the same as its plan's).
        tick: u64,
        /// `(to, channel, priority, seq, why)`.
        refused: Vec<(u16, u8, u8, u64, Refusal)>,
    },
    /// Deliveries since the previous `recv` line, and cumulative anomaly counts.
    Recv {
        /// `(from, from_incarnation, channel, priority, start, end)`: sequence numbers
        /// `start..end` of that stream were delivered.
        delta: Vec<(u16, u32, u8, u8, u64, u64)>,
        /// Messages delivered twice (same stream and sequence number).
        duplicates: u64,
        /// Messages delivered after a later one of the same stream.
        reordered: u64,
        /// Messages that failed the checksum, named the wrong sender or channel, or were not
        /// addressed to this member.
        malformed: u64,
    },
    /// The library's counters: `p2p_mux_dropped_total` by (channel, reason), cumulative.
    Metrics {
        /// `(channel, reason, count)`.
        dropped: Vec<(u8, String, u64)>,
        /// `p2p_disconnects_total` summed over directions: `(reason, count)`.
        #[serde(default)]
        disconnects: Vec<(String, u64)>,
        /// Peers connected now.
        connected: usize,
    },
    /// The last line: the member shut down (`clean`: every step ended in time).
    Exit {
        /// Whether the shutdown completed.
        clean: bool,
    },
}

impl Line {
    /// The line as JSON without the newline.
    pub fn encode(&self) -> String {
        // Serializing these plain types cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// The samples of counter `name` in an OpenMetrics text: `(channel label, reason label,
/// value)` (a missing label is `None`).
fn samples<'a>(
    text: &'a str,
    name: &'a str,
) -> impl Iterator<Item = (Option<u8>, Option<String>, u64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once("} ")?;
        let (mut channel, mut reason) = (None, None);
        for pair in labels.split(',') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let v = v.trim_matches('"');
            match k {
                "channel" => channel = v.parse::<u8>().ok(),
                "reason" => reason = Some(v.to_owned()),
                _ => {}
            }
        }
        let count = value.trim().parse::<f64>().ok()? as u64;
        Some((channel, reason, count))
    })
}

/// Parses the `p2p_mux_dropped_total` samples into `(channel, reason, count)`.
pub fn parse_dropped(text: &str) -> Vec<(u8, String, u64)> {
    samples(text, "p2p_mux_dropped_total")
        .filter_map(|(c, r, n)| Some((c?, r?, n)))
        .collect()
}

/// Parses the `p2p_disconnects_total` samples into `(reason, count)`, summing directions.
pub fn parse_disconnects(text: &str) -> Vec<(String, u64)> {
    let mut by_reason: std::collections::BTreeMap<String, u64> = Default::default();
    for (_, reason, n) in samples(text, "p2p_disconnects_total") {
        if let Some(r) = reason {
            *by_reason.entry(r).or_default() += n;
        }
    }
    by_reason.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let lines = [
            Line::Plan {
                tick: 3,
                next: vec![(1, 2, 0, 10)],
            },
            Line::Done {
                tick: 3,
                refused: vec![(1, 2, 0, 9, Refusal::BacklogFull)],
            },
            Line::Exit { clean: true },
        ];
        for line in lines {
            let text = line.encode();
            assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), line, "{text}");
        }
    }

    #[test]
    fn parses_dropped_counters() {
        let text = "# TYPE p2p_mux_dropped counter\n\
            p2p_mux_dropped_total{channel=\"1\",reason=\"NotConnected\"} 7\n\
            p2p_mux_dropped_total{channel=\"3\",reason=\"QueuedAtDisconnect\"} 2\n\
            p2p_mux_messages_sent_total{channel=\"1\"} 100\n\
            p2p_disconnects_total{direction=\"inbound\",reason=\"local\"} 2\n\
            p2p_disconnects_total{direction=\"outbound\",reason=\"local\"} 1\n# EOF\n";
        assert_eq!(
            parse_dropped(text),
            vec![
                (1, "NotConnected".to_owned(), 7),
                (3, "QueuedAtDisconnect".to_owned(), 2)
            ]
        );
        assert_eq!(parse_disconnects(text), vec![("local".to_owned(), 3)]);
    }
}
