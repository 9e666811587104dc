//! The reconciliation: from what every incarnation reported to the per-sender account, the
//! checks, the memory verdict, the table and the JSON report.
//!
//! Per stream (sender incarnation, recipient, channel, priority) the sender's lines give the
//! attempted numbers `A = 0..attempts`, the refused ones `R` (by reason) and the ones whose
//! outcome a crash hid `U` (a plan without its done line); the receivers' lines, merged over
//! the recipient's incarnations, give the delivered ones `D`. Then:
//!
//! - delivered = |D ∩ (A − R)|; anything else in `D` is a phantom (never sent, or refused);
//! - lost = |(A − R − U) − D|: queued but never delivered; the library reports part of it
//!   (`QueuedAtDisconnect`, `Unchunkable` in the sender's counters), the rest was in flight;
//! - unknown = |U − D|: sent or refused by a process that was killed in between.
//!
//! Per sender: `sent = delivered + refused + reported after queueing + unreported`, where
//! `unreported = sent − delivered − reported` is computed from the totals and must equal the
//! sequence gaps (`lost − library + unknown`) found from the sets. Loss on a stream whose
//! two ends never restarted is never expected and fails the soak.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::ops::Range;

use serde::Serialize;

use super::intervals::Intervals;
use super::wire::{Line, Refusal};

/// A send stream: `(to, channel, priority)`.
pub type SendKey = (u16, u8, u8);
/// A receive stream: `(from, from_incarnation, channel, priority)`.
pub type RecvKey = (u16, u32, u8, u8);

/// A batch's planned numbers: its tick and the range of each stream it uses.
type Plan = (u64, Vec<(SendKey, Range<u64>)>);

/// Library drop reasons that count a message lost after it was queued, on the sender.
pub const SENDER_REPORTED: [&str; 2] = ["QueuedAtDisconnect", "Unchunkable"];

/// What the sender side of one stream reported.
#[derive(Clone, Debug, Default)]
pub struct SendStream {
    /// Sequence numbers used: `0..attempts`.
    pub attempts: u64,
    /// Refused numbers, by reason.
    pub refused: BTreeMap<Refusal, Intervals>,
    /// Planned numbers whose `done` line never came (the member was killed mid-batch).
    pub unknown: Intervals,
}

/// Everything one member process reported, rebuilt from its lines.
#[derive(Clone, Debug, Default)]
pub struct IncarnationLog {
    /// Whether it printed `ready`.
    pub ready: bool,
    /// Send streams.
    pub sends: HashMap<SendKey, SendStream>,
    /// The last plan, until its `done` line.
    pending: Option<Plan>,
    /// Delivered numbers per receive stream.
    pub delivered: HashMap<RecvKey, Intervals>,
    /// Duplicates seen by the member.
    pub duplicates: u64,
    /// Out-of-order deliveries seen by the member.
    pub reordered: u64,
    /// Corrupt or misaddressed messages.
    pub malformed: u64,
    /// The library's `mux_dropped` counters, last snapshot: (channel, reason) → count.
    pub dropped: BTreeMap<(u8, String), u64>,
    /// The facade's `p2p_disconnects_total` by reason, last snapshot.
    pub disconnects: BTreeMap<String, u64>,
    /// `Some(clean)` once the `exit` line came.
    pub exit_clean: Option<bool>,
    /// Lines that did not parse or did not fit (a plan without a done, a done for another
    /// batch).
    pub bad_lines: u64,
}

impl IncarnationLog {
    /// Applies one line; returns the numbers of sends and deliveries it added (for progress).
    pub fn apply(&mut self, line: Line) -> (u64, u64) {
        match line {
            Line::Ready { .. } => {
                self.ready = true;
                (0, 0)
            }
            Line::Plan { tick, next } => {
                if self.pending.is_some() {
                    self.bad_lines += 1;
                    self.hide_pending();
                }
                let mut ranges = Vec::with_capacity(next.len());
                let mut sent = 0;
                for (to, ch, pr, n) in next {
                    let stream = self.sends.entry((to, ch, pr)).or_default();
                    if n < stream.attempts {
                        self.bad_lines += 1;
                        continue;
                    }
                    sent += n - stream.attempts;
                    ranges.push(((to, ch, pr), stream.attempts..n));
                    stream.attempts = n;
                }
                self.pending = Some((tick, ranges));
                (sent, 0)
            }
            Line::Done { tick, refused } => {
                match self.pending.take() {
                    Some((t, _)) if t == tick => {}
                    _ => self.bad_lines += 1,
                }
                for (to, ch, pr, seq, why) in refused {
                    let stream = self.sends.entry((to, ch, pr)).or_default();
                    stream.refused.entry(why).or_default().insert(seq);
                }
                (0, 0)
            }
            Line::Recv {
                delta,
                duplicates,
                reordered,
                malformed,
            } => {
                let mut got = 0;
                for (from, inc, ch, pr, start, end) in delta {
                    got += end.saturating_sub(start);
                    self.delivered
                        .entry((from, inc, ch, pr))
                        .or_default()
                        .insert_range(start..end);
                }
                self.duplicates = self.duplicates.max(duplicates);
                self.reordered = self.reordered.max(reordered);
                self.malformed = self.malformed.max(malformed);
                (0, got)
            }
            Line::Metrics {
                dropped,
                disconnects,
                ..
            } => {
                self.dropped = dropped
                    .into_iter()
                    .map(|(ch, reason, n)| ((ch, reason), n))
                    .collect();
                self.disconnects = disconnects.into_iter().collect();
                (0, 0)
            }
            Line::Exit { clean } => {
                self.exit_clean = Some(clean);
                (0, 0)
            }
        }
    }

    /// Call at the end of the member's output: a plan without its `done` line means the
    /// outcome of those sends is unknown.
    pub fn finish(&mut self) {
        self.hide_pending();
    }

    fn hide_pending(&mut self) {
        if let Some((_, ranges)) = self.pending.take() {
            for (key, range) in ranges {
                self.sends
                    .entry(key)
                    .or_default()
                    .unknown
                    .insert_range(range);
            }
        }
    }

    fn library(&self, channel: u8, reason: &str) -> u64 {
        self.dropped
            .get(&(channel, reason.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// How an incarnation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// SIGTERM by the coordinator for a restart.
    Restarted,
    /// SIGKILL by the coordinator for a restart (a crash).
    Crashed,
    /// Stopped (SIGTERM) at the end of the run.
    Final,
    /// Exited without being asked.
    Died,
    /// Did not exit within the grace time after SIGTERM and was killed.
    Hung,
}

/// One finished member process.
#[derive(Clone, Debug)]
pub struct Incarnation {
    /// Node index.
    pub node: u16,
    /// Incarnation number.
    pub incarnation: u32,
    /// How it ended.
    pub end: End,
    /// Its exit status, as text.
    pub exit: String,
    /// Resident memory samples: (seconds since it started, KiB).
    pub rss: Vec<(f64, u64)>,
    /// What it reported.
    pub log: IncarnationLog,
}

/// Settings that shape the verdict.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Samples from the first seconds of an incarnation are warm-up (at most this many
    /// seconds, at most a fifth of its life).
    pub warmup_s: f64,
    /// Memory is judged only on incarnations that lived at least this long after warm-up.
    pub judge_after_s: f64,
    /// Growth allowed, as a fraction of the start (the larger of this and `growth_kib`).
    pub growth_ratio: f64,
    /// Growth allowed, KiB.
    pub growth_kib: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            warmup_s: 30.0,
            judge_after_s: 60.0,
            growth_ratio: 0.20,
            growth_kib: 4096,
        }
    }
}

/// One sender's account (or the total).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SenderRow {
    /// Node index (`None` for the total).
    pub node: Option<u16>,
    /// Incarnations of the node.
    pub incarnations: u32,
    /// Send attempts, one per (message, recipient).
    pub sent: u64,
    /// Delivered to the recipient's application.
    pub delivered: u64,
    /// Refused at send: not connected (API report; the library counts `NotConnected`).
    pub not_connected: u64,
    /// Refused at send: backlog full (`BacklogFull`).
    pub backlog_full: u64,
    /// `send` returned an error.
    pub send_error: u64,
    /// Recipients in no list of the send report.
    pub unlisted: u64,
    /// Queued, then counted by the library as lost (`QueuedAtDisconnect`, `Unchunkable`).
    pub reported_after_queue: u64,
    /// `sent − delivered − every reported drop`: lost without any report.
    pub unreported: i64,
    /// The same, from sequence gaps: queued and never delivered, minus what the library
    /// reported, plus `unknown_at_crash`.
    pub gaps: i64,
    /// Of `gaps`: sends whose outcome a SIGKILL hid and that were not delivered.
    pub unknown_at_crash: u64,
    /// Of `gaps`: lost on streams whose two ends never restarted (must be 0).
    pub unexplained: u64,
    /// Deliveries that match no send, or a refused one (must be 0).
    pub phantom: u64,
}

impl SenderRow {
    fn add(&mut self, o: &Self) {
        self.incarnations += o.incarnations;
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.not_connected += o.not_connected;
        self.backlog_full += o.backlog_full;
        self.send_error += o.send_error;
        self.unlisted += o.unlisted;
        self.reported_after_queue += o.reported_after_queue;
        self.unreported += o.unreported;
        self.gaps += o.gaps;
        self.unknown_at_crash += o.unknown_at_crash;
        self.unexplained += o.unexplained;
        self.phantom += o.phantom;
    }

    /// Every drop that some report names.
    pub fn reported(&self) -> u64 {
        self.not_connected
            + self.backlog_full
            + self.send_error
            + self.unlisted
            + self.reported_after_queue
    }
}

/// Resident memory of one node's last incarnation.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryRow {
    /// Node index.
    pub node: u16,
    /// The incarnation measured (the node's last).
    pub incarnation: u32,
    /// Samples taken.
    pub samples: usize,
    /// Seconds between its first and last sample after warm-up.
    pub span_s: f64,
    /// Median of the first tenth of the samples after warm-up, KiB.
    pub start_kib: u64,
    /// Median of the last tenth, KiB.
    pub end_kib: u64,
    /// Largest sample, KiB.
    pub peak_kib: u64,
    /// Least-squares slope after warm-up, KiB per minute.
    pub slope_kib_per_min: f64,
    /// Whether it lived long enough to be judged.
    pub judged: bool,
    /// Whether `end − start` stayed within the allowance (true when not judged).
    pub ok: bool,
}

/// One check of the verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// Figures or the first failures.
    pub detail: String,
}

/// Counts of the library's receiver-side drop reasons (they cannot be attributed to a
/// sender: the counters are per channel).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReceiverSide {
    /// `HeldAtDisconnect`: complete messages held for a full receiver queue at disconnect.
    pub held_at_disconnect: u64,
    /// `ReceiverClosed`.
    pub receiver_closed: u64,
    /// Duplicates (within and across a receiver's incarnations).
    pub duplicates: u64,
    /// Out-of-order deliveries within a stream.
    pub reordered: u64,
    /// Corrupt or misaddressed messages.
    pub malformed: u64,
    /// Connections closed, by the facade's reason label (`p2p_disconnects_total`, summed over
    /// members and directions; a killed member's last snapshot).
    pub disconnects: BTreeMap<String, u64>,
}

/// The soak's result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Per sender node.
    pub senders: Vec<SenderRow>,
    /// Sum of the rows.
    pub total: SenderRow,
    /// Receiver-side figures.
    pub receiver_side: ReceiverSide,
    /// Per node memory.
    pub memory: Vec<MemoryRow>,
    /// Restarts by SIGTERM.
    pub restarts_sigterm: u32,
    /// Restarts by SIGKILL.
    pub restarts_sigkill: u32,
    /// The checks.
    pub checks: Vec<Check>,
    /// Whether every check passed.
    pub ok: bool,
}

/// Builds the report. `steady` lists the nodes the coordinator never restarts.
pub fn reconcile(incarnations: &[Incarnation], settings: &Settings) -> Report {
    let mut by_node: BTreeMap<u16, Vec<&Incarnation>> = BTreeMap::new();
    for inc in incarnations {
        by_node.entry(inc.node).or_default().push(inc);
    }
    // A node that ran as one process from start to end.
    let whole_run = |node: u16| {
        by_node
            .get(&node)
            .is_some_and(|v| v.len() == 1 && v[0].end == End::Final)
    };

    // Deliveries per (sender, incarnation, recipient, channel, priority), over the
    // recipient's incarnations.
    let mut delivered: HashMap<(u16, u32, u16, u8, u8), Intervals> = HashMap::new();
    let mut side = ReceiverSide::default();
    for inc in incarnations {
        for (&(from, a, ch, pr), set) in &inc.log.delivered {
            let all = delivered.entry((from, a, inc.node, ch, pr)).or_default();
            side.duplicates += all.count_common(set);
            all.extend(set);
        }
        for (reason, n) in &inc.log.disconnects {
            *side.disconnects.entry(reason.clone()).or_default() += n;
        }
        side.duplicates += inc.log.duplicates;
        side.reordered += inc.log.reordered;
        side.malformed += inc.log.malformed;
        side.held_at_disconnect += CHANNEL_IDS
            .iter()
            .map(|&c| inc.log.library(c, "HeldAtDisconnect"))
            .sum::<u64>();
        side.receiver_closed += CHANNEL_IDS
            .iter()
            .map(|&c| inc.log.library(c, "ReceiverClosed"))
            .sum::<u64>();
    }

    let mut rows = Vec::new();
    let mut over_reports = Vec::new();
    let mut mismatches = Vec::new();
    let mut unexplained = Vec::new();
    let mut matched: std::collections::HashSet<(u16, u32, u16, u8, u8)> = Default::default();
    for (&node, incs) in &by_node {
        let mut row = SenderRow {
            node: Some(node),
            ..SenderRow::default()
        };
        for inc in incs {
            row.incarnations += 1;
            let mut lost_here = 0u64;
            let mut api: BTreeMap<(u8, Refusal), u64> = BTreeMap::new();
            for (&(to, ch, pr), st) in &inc.log.sends {
                let key = (node, inc.incarnation, to, ch, pr);
                matched.insert(key);
                let empty = Intervals::new();
                let d = delivered.get(&key).unwrap_or(&empty);
                let mut attempted = Intervals::new();
                attempted.insert_range(0..st.attempts);
                let mut refused = Intervals::new();
                for (&why, set) in &st.refused {
                    let n = set.len();
                    *api.entry((ch, why)).or_default() += n;
                    match why {
                        Refusal::NotConnected => row.not_connected += n,
                        Refusal::BacklogFull => row.backlog_full += n,
                        Refusal::SendError => row.send_error += n,
                        Refusal::Unreported => row.unlisted += n,
                    }
                    refused.extend(set);
                }
                row.sent += st.attempts;
                let legit = attempted.minus(&refused);
                row.delivered += d.count_common(&legit);
                row.phantom += d.minus(&legit).len();
                let queued = legit.minus(&st.unknown);
                let lost = queued.minus(d).len();
                lost_here += lost;
                row.unknown_at_crash += st.unknown.minus(&refused).minus(d).len();
                if lost > 0 && inc.incarnation == 0 && inc.end == End::Final && whole_run(to) {
                    row.unexplained += lost;
                    let missing = queued.minus(d);
                    let ranges: Vec<String> = missing
                        .iter()
                        .take(3)
                        .map(|r| format!("{}..{}", r.start, r.end))
                        .collect();
                    unexplained.push(format!(
                        "{node}->{to} channel {ch} priority {pr}: lost {} (seq {}) of {} attempted",
                        lost,
                        ranges.join(","),
                        st.attempts
                    ));
                }
            }
            let library: u64 = CHANNEL_IDS
                .iter()
                .flat_map(|&c| SENDER_REPORTED.iter().map(move |r| (c, *r)))
                .map(|(c, r)| inc.log.library(c, r))
                .sum();
            if library > lost_here {
                over_reports.push(format!(
                    "node {node}/{}: library {library} > lost {lost_here}",
                    inc.incarnation
                ));
            }
            row.reported_after_queue += library;
            row.gaps += lost_here as i64 - library as i64;
            // The library's refusal counters against the API's reports, for processes whose
            // last counters are final (a killed process's snapshot may be stale).
            if inc.log.exit_clean == Some(true) {
                for &c in &CHANNEL_IDS {
                    for (why, label) in [
                        (Refusal::NotConnected, "NotConnected"),
                        (Refusal::BacklogFull, "BacklogFull"),
                    ] {
                        let a = api.get(&(c, why)).copied().unwrap_or(0);
                        let l = inc.log.library(c, label);
                        if a != l {
                            mismatches.push(format!(
                                "node {node}/{} channel {c} {label}: reports {a}, counter {l}",
                                inc.incarnation
                            ));
                        }
                    }
                }
            }
        }
        row.gaps += row.unknown_at_crash as i64;
        row.unreported = row.sent as i64 - row.delivered as i64 - row.reported() as i64;
        rows.push(row);
    }
    // Deliveries from a sender incarnation that reported no such stream.
    for (key, set) in &delivered {
        if !matched.contains(key)
            && let Some(row) = rows.iter_mut().find(|r| r.node == Some(key.0))
        {
            row.phantom += set.len();
        }
    }
    let mut total = SenderRow::default();
    for r in &rows {
        total.add(r);
    }

    let memory: Vec<MemoryRow> = by_node
        .iter()
        .filter_map(|(&node, incs)| incs.last().map(|inc| memory_row(node, inc, settings)))
        .collect();

    let restarts_sigterm = count_end(incarnations, End::Restarted);
    let restarts_sigkill = count_end(incarnations, End::Crashed);
    let mut checks = Vec::new();
    let identity_failures: Vec<String> = rows
        .iter()
        .filter(|r| r.unreported != r.gaps || r.unreported < 0)
        .map(|r| {
            format!(
                "node {}: sent − delivered − reported = {}, sequence gaps = {}",
                r.node.unwrap_or_default(),
                r.unreported,
                r.gaps
            )
        })
        .collect();
    checks.push(check(
        "sent = delivered + reported drops + unreported (equal to the sequence gaps)",
        identity_failures,
        format!(
            "sent {} = delivered {} + reported {} + unreported {}",
            total.sent,
            total.delivered,
            total.reported(),
            total.unreported
        ),
    ));
    checks.push(check(
        "no loss between members that never restarted",
        unexplained,
        "0 lost".to_owned(),
    ));
    checks.push(check(
        "library drop counts never exceed the messages lost",
        over_reports,
        "ok".to_owned(),
    ));
    checks.push(check(
        "library refusal counters equal the send reports",
        mismatches,
        "NotConnected and BacklogFull agree".to_owned(),
    ));
    checks.push(check(
        "every recipient is in one list of its send report",
        if total.unlisted > 0 || total.send_error > 0 {
            vec![format!(
                "{} unlisted, {} send errors",
                total.unlisted, total.send_error
            )]
        } else {
            Vec::new()
        },
        "ok".to_owned(),
    ));
    let anomalies = [
        ("duplicates", side.duplicates),
        ("reordered", side.reordered),
        ("malformed", side.malformed),
        ("phantom", total.phantom),
    ];
    checks.push(check(
        "no duplicate, reordered, corrupt or phantom delivery",
        anomalies
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect(),
        "none".to_owned(),
    ));
    checks.push(check(
        "every member started, stopped when asked and reported cleanly",
        incarnations
            .iter()
            .filter(|i| {
                !i.log.ready
                    || i.log.bad_lines > 0
                    || matches!(i.end, End::Died | End::Hung)
                    || (matches!(i.end, End::Restarted | End::Final)
                        && i.log.exit_clean != Some(true))
            })
            .map(|i| {
                format!(
                    "node {}/{}: {:?}, {}, exit line {:?}, {} bad lines",
                    i.node, i.incarnation, i.end, i.exit, i.log.exit_clean, i.log.bad_lines
                )
            })
            .collect(),
        format!(
            "{} processes, {restarts_sigterm} SIGTERM and {restarts_sigkill} SIGKILL restarts",
            incarnations.len()
        ),
    ));
    let judged = memory.iter().filter(|m| m.judged).count();
    checks.push(check(
        "resident memory does not grow",
        memory
            .iter()
            .filter(|m| !m.ok)
            .map(|m| format!("node {}: {} -> {} KiB", m.node, m.start_kib, m.end_kib))
            .collect(),
        format!(
            "{judged} of {} nodes judged (growth allowed: the larger of {:.0}% and {} KiB)",
            memory.len(),
            settings.growth_ratio * 100.0,
            settings.growth_kib
        ),
    ));
    checks.push(check(
        "traffic flowed",
        if total.delivered == 0 {
            vec!["nothing delivered".to_owned()]
        } else {
            Vec::new()
        },
        format!("{} delivered", total.delivered),
    ));
    let ok = checks.iter().all(|c| c.ok);
    Report {
        senders: rows,
        total,
        receiver_side: side,
        memory,
        restarts_sigterm,
        restarts_sigkill,
        checks,
        ok,
    }
}

/// The channel ids of the soak.
const CHANNEL_IDS: [u8; 3] = [super::SMALL.id, super::MEDIUM.id, super::BULK.id];

fn count_end(incarnations: &[Incarnation], end: End) -> u32 {
    incarnations.iter().filter(|i| i.end == end).count() as u32
}

fn check(name: &'static str, failures: Vec<String>, ok_detail: String) -> Check {
    if failures.is_empty() {
        Check {
            name,
            ok: true,
            detail: ok_detail,
        }
    } else {
        let more = failures.len().saturating_sub(5);
        let mut detail = failures.into_iter().take(5).collect::<Vec<_>>().join("; ");
        if more > 0 {
            let _ = write!(detail, "; and {more} more");
        }
        Check {
            name,
            ok: false,
            detail,
        }
    }
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The memory verdict of one incarnation.
pub fn memory_row(node: u16, inc: &Incarnation, s: &Settings) -> MemoryRow {
    let life = inc.rss.last().map_or(0.0, |x| x.0);
    let warm = s.warmup_s.min(life / 5.0);
    let post: Vec<(f64, u64)> = inc.rss.iter().copied().filter(|x| x.0 >= warm).collect();
    let span = match (post.first(), post.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0.0,
    };
    let k = (post.len() / 10).max(3).min(post.len());
    let values: Vec<u64> = post.iter().map(|x| x.1).collect();
    let start = median(&values[..k]);
    let end = median(&values[values.len() - k..]);
    let judged = post.len() >= 6 && span >= s.judge_after_s;
    let allowed = ((start as f64 * s.growth_ratio) as u64).max(s.growth_kib);
    let ok = !judged || end <= start + allowed;
    MemoryRow {
        node,
        incarnation: inc.incarnation,
        samples: inc.rss.len(),
        span_s: span,
        start_kib: start,
        end_kib: end,
        peak_kib: inc.rss.iter().map(|x| x.1).max().unwrap_or(0),
        slope_kib_per_min: slope(&post) * 60.0,
        judged,
        ok,
    }
}

/// Least-squares slope of KiB over seconds.
fn slope(points: &[(f64, u64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 as f64 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

impl Report {
    /// The human-readable account.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let mem: HashMap<u16, &MemoryRow> = self.memory.iter().map(|m| (m.node, m)).collect();
        let _ = writeln!(
            s,
            "{:>4} {:>4} {:>10} {:>10} {:>9} {:>8} {:>8} {:>10} {:>7} {:>9} {:>9} {:>7}",
            "node",
            "proc",
            "sent",
            "delivered",
            "not_conn",
            "backlog",
            "q@disc",
            "unreported",
            "crash?",
            "rss start",
            "rss end",
            "growth"
        );
        let _ = writeln!(
            s,
            "{:>4} {:>4} {:>10} {:>10} {:>9} {:>8} {:>8} {:>10} {:>7} {:>9} {:>9} {:>7}",
            "", "", "", "", "(report)", "(report)", "(lib)", "(gaps)", "", "KiB", "KiB", ""
        );
        for r in self.senders.iter().chain(std::iter::once(&self.total)) {
            let node = r.node.map_or_else(|| "all".to_owned(), |n| n.to_string());
            let (start, end, growth) = match r.node.and_then(|n| mem.get(&n)) {
                Some(m) if m.samples > 0 => (
                    m.start_kib.to_string(),
                    m.end_kib.to_string(),
                    if m.judged {
                        format!(
                            "{:+.1}%{}",
                            (m.end_kib as f64 / m.start_kib.max(1) as f64 - 1.0) * 100.0,
                            if m.ok { "" } else { "!" }
                        )
                    } else {
                        "short".to_owned()
                    },
                ),
                _ => (String::new(), String::new(), String::new()),
            };
            let _ = writeln!(
                s,
                "{:>4} {:>4} {:>10} {:>10} {:>9} {:>8} {:>8} {:>10} {:>7} {:>9} {:>9} {:>7}",
                node,
                r.incarnations,
                r.sent,
                r.delivered,
                r.not_connected,
                r.backlog_full,
                r.reported_after_queue,
                r.unreported,
                r.unknown_at_crash,
                start,
                end,
                growth
            );
        }
        let side = &self.receiver_side;
        let disconnects: Vec<String> = side
            .disconnects
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "connections closed, by reason: {}",
            disconnects.join(", ")
        );
        let _ = writeln!(
            s,
            "receiver side (library): HeldAtDisconnect {}, ReceiverClosed {}; duplicates {}, reordered {}, malformed {}",
            side.held_at_disconnect,
            side.receiver_closed,
            side.duplicates,
            side.reordered,
            side.malformed
        );
        for c in &self.checks {
            let _ = writeln!(
                s,
                "[{}] {}: {}",
                if c.ok { " ok " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect();
        if failed.is_empty() {
            let _ = writeln!(
                s,
                "verdict: PASS ({} sent, {} delivered, {} reported dropped, {} lost in flight at restarts, {} restarts)",
                self.total.sent,
                self.total.delivered,
                self.total.reported(),
                self.total.unreported,
                self.restarts_sigterm + self.restarts_sigkill
            );
        } else {
            let _ = writeln!(s, "verdict: FAIL ({})", failed.join("; "));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(node: u16, end: End, lines: Vec<Line>) -> Incarnation {
        let mut log = IncarnationLog::default();
        log.apply(Line::Ready {
            index: node,
            incarnation: 0,
            addr: String::new(),
        });
        for l in lines {
            log.apply(l);
        }
        log.finish();
        Incarnation {
            node,
            incarnation: 0,
            end,
            exit: "exit status: 0".to_owned(),
            rss: Vec::new(),
            log,
        }
    }

    fn metrics(entries: &[(u8, &str, u64)]) -> Line {
        Line::Metrics {
            dropped: entries
                .iter()
                .map(|&(c, r, n)| (c, r.to_owned(), n))
                .collect(),
            disconnects: Vec::new(),
            connected: 1,
        }
    }

    #[test]
    fn exact_account_without_restarts() {
        // Node 0 sends 5 to node 1: seq 1 refused (not connected), 4 delivered.
        let sender = inc(
            0,
            End::Final,
            vec![
                Line::Plan {
                    tick: 1,
                    next: vec![(1, 1, 0, 5)],
                },
                Line::Done {
                    tick: 1,
                    refused: vec![(1, 1, 0, 1, Refusal::NotConnected)],
                },
                metrics(&[(1, "NotConnected", 1)]),
                Line::Exit { clean: true },
            ],
        );
        let receiver = inc(
            1,
            End::Final,
            vec![
                Line::Recv {
                    delta: vec![(0, 0, 1, 0, 0, 1), (0, 0, 1, 0, 2, 5)],
                    duplicates: 0,
                    reordered: 0,
                    malformed: 0,
                },
                Line::Exit { clean: true },
            ],
        );
        let report = reconcile(&[sender, receiver], &Settings::default());
        assert!(report.ok, "{}", report.table());
        let r = &report.senders[0];
        assert_eq!(
            (r.sent, r.delivered, r.not_connected, r.unreported),
            (5, 4, 1, 0)
        );
    }

    #[test]
    fn loss_between_steady_members_fails_and_gaps_match() {
        // 10 sent; 2 queued at disconnect (library), 3 more lost in flight; nobody restarted.
        let sender = inc(
            0,
            End::Final,
            vec![
                Line::Plan {
                    tick: 1,
                    next: vec![(1, 2, 1, 10)],
                },
                Line::Done {
                    tick: 1,
                    refused: vec![],
                },
                metrics(&[(2, "QueuedAtDisconnect", 2)]),
                Line::Exit { clean: true },
            ],
        );
        let receiver = inc(
            1,
            End::Final,
            vec![Line::Recv {
                delta: vec![(0, 0, 2, 1, 0, 5)],
                duplicates: 0,
                reordered: 0,
                malformed: 0,
            }],
        );
        let report = reconcile(&[sender, receiver], &Settings::default());
        let r = &report.senders[0];
        assert_eq!((r.reported_after_queue, r.unreported, r.gaps), (2, 3, 3));
        assert_eq!(r.unexplained, 5);
        assert!(!report.ok);
        assert!(report.table().contains("verdict: FAIL"));
    }

    #[test]
    fn a_killed_sender_leaves_unknown_outcomes() {
        // The plan of the last batch (5..8) came, its done line did not; 6 was delivered.
        let mut sender = inc(
            2,
            End::Crashed,
            vec![
                Line::Plan {
                    tick: 1,
                    next: vec![(1, 1, 0, 5)],
                },
                Line::Done {
                    tick: 1,
                    refused: vec![],
                },
                Line::Plan {
                    tick: 2,
                    next: vec![(1, 1, 0, 8)],
                },
            ],
        );
        sender.node = 2;
        let receiver = inc(
            1,
            End::Final,
            vec![Line::Recv {
                delta: vec![(2, 0, 1, 0, 0, 5), (2, 0, 1, 0, 6, 7)],
                duplicates: 0,
                reordered: 0,
                malformed: 0,
            }],
        );
        let report = reconcile(&[sender, receiver], &Settings::default());
        let r = report.senders.iter().find(|r| r.node == Some(2)).unwrap();
        assert_eq!((r.sent, r.delivered, r.unknown_at_crash), (8, 6, 2));
        assert_eq!((r.unreported, r.gaps, r.unexplained), (2, 2, 0));
    }

    #[test]
    fn memory_growth_is_judged_on_long_lives() {
        let mut i = inc(0, End::Final, vec![]);
        i.rss = (0..100).map(|t| (f64::from(t) * 2.0, 10_000)).collect();
        assert!(memory_row(0, &i, &Settings::default()).ok);
        i.rss = (0..100)
            .map(|t| (f64::from(t) * 2.0, 10_000 + 200 * u64::from(t as u32)))
            .collect();
        let m = memory_row(0, &i, &Settings::default());
        assert!(m.judged && !m.ok, "{m:?}");
        assert!((m.slope_kib_per_min - 6000.0).abs() < 1.0);
        i.rss.truncate(10);
        assert!(!memory_row(0, &i, &Settings::default()).judged);
    }
}
