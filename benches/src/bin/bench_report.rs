//! `bench-report`: the end-to-end figures and their baselines in well under a minute, printed
//! as `name value unit` lines, each followed by its ratio to the baselines of the same run.
//! `cargo xtask bench-report` runs it once per AEAD backend.
//!
//! Method: every figure is the median of three windows of a fixed amount of work; the
//! baselines are measured in the same process, right before the workload they judge.

use std::time::Duration;

use p2p::identity::{Signer, bls12381, ed25519};
use p2p_benches::e2e::{self, Pair};
use tokio::runtime::Runtime;

/// Windows per figure (the median is reported).
const WINDOWS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Length of one measuring window.
const WINDOW: Duration = Duration::from_millis(400);

/// Median rate, in units per second, over [`WINDOWS`] runs of `f(n)`, which does `n` units of
/// work and returns its time; `n` is first calibrated from `n0` so that a window lasts about
/// [`WINDOW`] whatever the backend.
fn rate(n0: u64, mut f: impl FnMut(u64) -> Duration) -> f64 {
    let took = f(n0).as_secs_f64().max(1e-6);
    let n = ((n0 as f64 * WINDOW.as_secs_f64() / took) as u64).clamp(1, n0.saturating_mul(1000));
    median(
        (0..WINDOWS)
            .map(|_| n as f64 / f(n).as_secs_f64().max(1e-9))
            .collect(),
    )
}

fn line(name: &str, value: f64, unit: &str, ratios: &[(&str, f64)]) {
    let mut s = format!("{name} {value:.3} {unit}");
    for (base, v) in ratios {
        if *v > 0.0 {
            s.push_str(&format!("  {:.2}x_{base}", value / v));
        }
    }
    println!("{s}");
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

const SIZES: [(usize, &str); 4] = [
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
    (16 << 20, "16MiB"),
];

/// What one message-size group measures and how it is reported.
struct Group<'a> {
    bytes: usize,
    label: &'a str,
    /// Name of the network's figure.
    name: String,
    /// Units (GB or millions of messages) per message and per sealed frame.
    per_message: f64,
    per_frame: f64,
    unit: &'a str,
    /// Messages of the first, calibrating window.
    n0: u64,
}

/// Measures the AEAD alone, plain TCP, sealed TCP and the network on one group, then prints
/// them with their ratios and the network's refused sends per message.
fn group(rt: &Runtime, pair: &Pair<ed25519::PrivateKey>, g: &Group<'_>) {
    // The AEAD alone, on frames of the size the network seals (at most 1 MiB).
    let frame = g.bytes.min(e2e::FRAME);
    let frames0 = ((64 << 20) / frame as u64).min(200_000);
    let seal = rate(frames0, |n| e2e::seal(frame, n)) * g.per_frame;
    let tcp = rate(g.n0, |n| e2e::tcp_one_way(rt, g.bytes, n)) * g.per_message;
    let sealed = rate(g.n0, |n| e2e::sealed_tcp_one_way(rt, g.bytes, n)) * g.per_message;
    let mut refused = Vec::new();
    let net = rate(g.n0, |n| {
        let (d, r) = pair.one_way(rt, g.bytes, n);
        refused.push(r as f64 / n as f64);
        d
    }) * g.per_message;
    let (label, unit) = (g.label, g.unit);
    line(&format!("aead::seal/size={label}"), seal, unit, &[]);
    line(&format!("tcp::one_way/size={label}"), tcp, unit, &[]);
    line(
        &format!("sealed_tcp::one_way/size={label}"),
        sealed,
        unit,
        &[("tcp", tcp), ("seal", seal)],
    );
    line(
        &g.name,
        net,
        unit,
        &[("tcp", tcp), ("sealed_tcp", sealed), ("seal", seal)],
    );
    println!(
        "{}:refused_sends {:.3} per_message (backlog 1024, retried)",
        g.name,
        median(refused)
    );
}

fn bulk(rt: &Runtime) {
    let mut pair = Pair::<ed25519::PrivateKey>::new(rt, 1024);
    // Warm-up: buffers and the allocator grow to their steady size.
    pair.one_way(rt, 1 << 20, 64);
    for (bytes, label) in SIZES {
        group(
            rt,
            &pair,
            &Group {
                bytes,
                label,
                name: format!("e2e::one_way/size={label}"),
                per_message: bytes as f64 / 1e9,
                per_frame: bytes.min(e2e::FRAME) as f64 / 1e9,
                unit: "GB/s",
                // A first window of about 64 MiB.
                n0: ((64 << 20) / bytes as u64).max(2),
            },
        );
    }
    // 100-byte messages, one send each: millions of messages per second.
    group(
        rt,
        &pair,
        &Group {
            bytes: 100,
            label: "100B",
            name: "e2e::small/size=100B".to_owned(),
            per_message: 1e-6,
            per_frame: 1e-6,
            unit: "M/s",
            n0: 100_000,
        },
    );

    // The same 100-byte messages, one frame each (batch frames off): the gain of packing.
    let unbatched = Pair::<ed25519::PrivateKey>::with_coalesce_limit(rt, 1024, 0);
    unbatched.one_way(rt, 100, 10_000);
    let mut refused = Vec::new();
    let one_per_frame = rate(100_000, |n| {
        let (d, r) = unbatched.one_way(rt, 100, n);
        refused.push(r as f64 / n as f64);
        d
    }) * 1e-6;
    unbatched.shutdown(rt);
    let batched = rate(100_000, |n| pair.one_way(rt, 100, n).0) * 1e-6;
    line(
        "e2e::small/size=100B:one_frame_each",
        one_per_frame,
        "M/s",
        &[],
    );
    println!(
        "e2e::small/size=100B:one_frame_each:refused_sends {:.3} per_message",
        median(refused)
    );
    line(
        "e2e::small/size=100B:batched",
        batched,
        "M/s",
        &[("one_frame_each", one_per_frame)],
    );

    // 1 KiB round trips.
    let n = 10_000;
    let mut tcp = e2e::tcp_round_trips(rt, 1024, n);
    let mut net = pair.round_trips(rt, 1024, n);
    let (tcp50, tcp99) = (e2e::quantile(&mut tcp, 0.5), e2e::quantile(&mut tcp, 0.99));
    let (net50, net99) = (e2e::quantile(&mut net, 0.5), e2e::quantile(&mut net, 0.99));
    line("tcp::round_trip/size=1KiB:p50", us(tcp50), "us", &[]);
    line("tcp::round_trip/size=1KiB:p99", us(tcp99), "us", &[]);
    line(
        "e2e::round_trip/size=1KiB:p50",
        us(net50),
        "us",
        &[("tcp", us(tcp50))],
    );
    line(
        "e2e::round_trip/size=1KiB:p99",
        us(net99),
        "us",
        &[("tcp", us(tcp99))],
    );
    pair.shutdown(rt);
}

fn connect<S: Signer>(rt: &Runtime, scheme: &str, n: u64) {
    let bare = rate(n, |n| {
        e2e::bare_handshakes::<S>(rt, n as usize)
            .iter()
            .sum::<Duration>()
    });
    let pair = Pair::<S>::new(rt, 16);
    let net = rate(n, |n| pair.reconnects(n as usize).iter().sum::<Duration>());
    pair.shutdown(rt);
    line(
        &format!("handshake::bare/scheme={scheme}"),
        bare,
        "per_s",
        &[],
    );
    line(
        &format!("e2e::connect/scheme={scheme}"),
        net,
        "per_s",
        &[("bare_handshake", bare)],
    );
}

/// How the cost grows with the number of peers (1 KiB broadcast to 1, 8, 32, 100 peers) and
/// of channels (100-byte messages to one peer over 1, 8, 64 channels in turn).
fn scaling(rt: &Runtime) {
    let mut one = 0.0;
    for peers in [1usize, 8, 32, 100] {
        let star = e2e::Star::new(rt, peers, 1);
        star.broadcast(rt, 1024, 1000);
        let per_peer = peers as f64 * 1e-6;
        let rate = rate(20_000 / peers as u64 + 100, |n| star.broadcast(rt, 1024, n)) * per_peer;
        star.shutdown(rt);
        if peers == 1 {
            one = rate;
        }
        line(
            &format!("e2e::broadcast/size=1KiB/peers={peers}"),
            rate,
            "M_deliveries/s",
            &[("one_peer", one)],
        );
    }
    let mut one = 0.0;
    for channels in [1u32, 8, 64] {
        let star = e2e::Star::new(rt, 1, channels);
        star.broadcast(rt, 100, 10_000);
        let rate = rate(100_000, |n| star.broadcast(rt, 100, n)) * 1e-6;
        star.shutdown(rt);
        if channels == 1 {
            one = rate;
        }
        line(
            &format!("e2e::channels/size=100B/channels={channels}"),
            rate,
            "M/s",
            &[("one_channel", one)],
        );
    }
}

fn main() {
    let rt = e2e::runtime();
    println!(
        "# backend {}, tokio multi-thread with 2 workers, median of {WINDOWS} windows",
        p2p::cipher::BACKEND
    );
    if std::env::args().any(|a| a == "--scaling") {
        scaling(&rt);
        return;
    }
    bulk(&rt);
    connect::<ed25519::PrivateKey>(&rt, "ed25519", 100);
    connect::<bls12381::PrivateKey>(&rt, "bls12381", 10);
}
