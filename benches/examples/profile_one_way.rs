//! Runs one end-to-end one-way workload for a while, for a profiler:
//! `cargo run --release -p p2p-benches --example profile_one_way -- SIZE SECONDS [COALESCE]`
//! (`COALESCE`: the batch-frame limit in bytes, 0 for one message per frame; the preset's by
//! default). Under valgrind, where time runs slowly, use a short `SECONDS`.

use std::time::{Duration, Instant};

use p2p::identity::ed25519;
use p2p_benches::e2e::{self, Pair};

fn main() {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1 << 20);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let rt = e2e::runtime();
    let coalesce: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(p2p::session::DEFAULT_COALESCE_LIMIT);
    let pair = Pair::<ed25519::PrivateKey>::with_coalesce_limit(&rt, 1024, coalesce);
    let n = ((16u64 << 20) / size as u64).clamp(1, 20_000);
    let t = Instant::now();
    let mut bytes = 0u64;
    while t.elapsed() < Duration::from_secs(secs) {
        pair.one_way(&rt, size, n);
        bytes += n * size as u64;
    }
    println!(
        "{size} B: {:.3} GB/s",
        bytes as f64 / t.elapsed().as_secs_f64() / 1e9
    );
    pair.shutdown(&rt);
}
