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

/// Median rate over [`WINDOWS`] runs of `f`, which does `work` units and returns its time.
fn rate(work: f64, mut f: impl FnMut() -> Duration) -> f64 {
    median(
        (0..WINDOWS)
            .map(|_| work / f().as_secs_f64().max(1e-9))
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

struct Size {
    bytes: usize,
    label: &'static str,
    /// Messages per window.
    n: u64,
}

const SIZES: [Size; 4] = [
    Size {
        bytes: 1 << 10,
        label: "1KiB",
        n: 100_000,
    },
    Size {
        bytes: 64 << 10,
        label: "64KiB",
        n: 4_000,
    },
    Size {
        bytes: 1 << 20,
        label: "1MiB",
        n: 256,
    },
    Size {
        bytes: 16 << 20,
        label: "16MiB",
        n: 16,
    },
];

fn bulk(rt: &Runtime) {
    let mut pair = Pair::<ed25519::PrivateKey>::new(rt, 1024);
    // Warm-up: buffers and the allocator grow to their steady size.
    pair.one_way(rt, 1 << 20, 64);
    for s in &SIZES {
        let gb = (s.bytes as u64 * s.n) as f64 / 1e9;
        // The AEAD alone, on frames of the size the network seals (at most 1 MiB), 64 MiB.
        let frame = s.bytes.min(e2e::FRAME);
        let frames = (64 << 20) / frame as u64;
        let seal = rate((frame as u64 * frames) as f64 / 1e9, || {
            e2e::seal(frame, frames)
        });
        let tcp = rate(gb, || e2e::tcp_one_way(rt, s.bytes, s.n));
        let sealed = rate(gb, || e2e::sealed_tcp_one_way(rt, s.bytes, s.n));
        let mut refused = Vec::new();
        let net = rate(gb, || {
            let (d, r) = pair.one_way(rt, s.bytes, s.n);
            refused.push(r);
            d
        });
        let name = format!("e2e::one_way/size={}", s.label);
        line(&format!("aead::seal/size={}", s.label), seal, "GB/s", &[]);
        line(&format!("tcp::one_way/size={}", s.label), tcp, "GB/s", &[]);
        line(
            &format!("sealed_tcp::one_way/size={}", s.label),
            sealed,
            "GB/s",
            &[("tcp", tcp), ("seal", seal)],
        );
        line(
            &name,
            net,
            "GB/s",
            &[("tcp", tcp), ("sealed_tcp", sealed), ("seal", seal)],
        );
        println!(
            "{name}:refused_sends {} per window (backlog full, retried)",
            median(refused.iter().map(|&r| r as f64).collect())
        );
    }
    // 100-byte messages, one send each: messages per second.
    let n = 300_000u64;
    let m = n as f64 / 1e6;
    let seal = rate(m, || e2e::seal(100, n));
    let tcp = rate(m, || e2e::tcp_one_way(rt, 100, n));
    let sealed = rate(m, || e2e::sealed_tcp_one_way(rt, 100, n));
    let mut refused = Vec::new();
    let net = rate(m, || {
        let (d, r) = pair.one_way(rt, 100, n);
        refused.push(r);
        d
    });
    line("aead::seal/size=100B", seal, "M/s", &[]);
    line("tcp::one_way/size=100B", tcp, "M/s", &[]);
    line(
        "sealed_tcp::one_way/size=100B",
        sealed,
        "M/s",
        &[("tcp", tcp), ("seal", seal)],
    );
    line(
        "e2e::small/size=100B",
        net,
        "M/s",
        &[("tcp", tcp), ("sealed_tcp", sealed), ("seal", seal)],
    );
    println!(
        "e2e::small/size=100B:refused_sends {} per window (backlog 1024, retried)",
        median(refused.iter().map(|&r| r as f64).collect())
    );

    // 1 KiB round trips.
    let n = 5_000;
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

fn connect<S: Signer>(rt: &Runtime, scheme: &str, n: usize) {
    let bare = rate(n as f64, || {
        e2e::bare_handshakes::<S>(rt, n).iter().sum::<Duration>()
    });
    let pair = Pair::<S>::new(rt, 16);
    let net = rate(n as f64, || pair.reconnects(n).iter().sum::<Duration>());
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

fn main() {
    let rt = e2e::runtime();
    println!(
        "# backend {}, tokio multi-thread with 2 workers, median of {WINDOWS} windows",
        p2p::cipher::BACKEND
    );
    bulk(&rt);
    connect::<ed25519::PrivateKey>(&rt, "ed25519", 200);
    connect::<bls12381::PrivateKey>(&rt, "bls12381", 50);
}
