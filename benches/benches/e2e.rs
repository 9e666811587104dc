//! End to end over real loopback TCP between two facade networks (both ends in spawned tasks of
//! a 2-worker runtime), each group beside its baselines measured in the same run: plain tokio
//! TCP with length-prefixed frames, the same carrying frames sealed by the AEAD backend, and
//! the backend sealing alone. `cargo xtask bench-report` prints the same figures (with
//! percentiles and ratios) in well under a minute.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use p2p::identity::{Signer, bls12381, ed25519};
use p2p_benches::e2e::{self, Pair};

const SIZES: [(usize, &str); 5] = [
    (100, "100B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
    (16 << 20, "16MiB"),
];

fn one_way(c: &mut Criterion) {
    let rt = e2e::runtime();
    let pair = Pair::<ed25519::PrivateKey>::new(&rt, 1024);
    let mut g = c.benchmark_group("e2e::one_way");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for (size, label) in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("net/size={label}"), |b| {
            b.iter_custom(|n| pair.one_way(&rt, size, n).0)
        });
        g.bench_function(format!("tcp/size={label}"), |b| {
            b.iter_custom(|n| e2e::tcp_one_way(&rt, size, n))
        });
        g.bench_function(format!("sealed_tcp/size={label}"), |b| {
            b.iter_custom(|n| e2e::sealed_tcp_one_way(&rt, size, n))
        });
        g.bench_function(format!("seal/size={label}"), |b| {
            b.iter_custom(|n| e2e::seal(size.min(e2e::FRAME), n))
        });
    }
    g.finish();
    pair.shutdown(&rt);
}

fn round_trip(c: &mut Criterion) {
    let rt = e2e::runtime();
    let mut pair = Pair::<ed25519::PrivateKey>::new(&rt, 1024);
    let mut g = c.benchmark_group("e2e::round_trip");
    g.sample_size(20);
    g.bench_function("net/size=1KiB", |b| {
        b.iter_custom(|n| pair.round_trips(&rt, 1024, n as usize).iter().sum())
    });
    g.bench_function("tcp/size=1KiB", |b| {
        b.iter_custom(|n| e2e::tcp_round_trips(&rt, 1024, n as usize).iter().sum())
    });
    g.finish();
    pair.shutdown(&rt);
}

fn connect_scheme<S: Signer>(c: &mut Criterion, scheme: &str) {
    let rt = e2e::runtime();
    let pair = Pair::<S>::new(&rt, 16);
    let mut g = c.benchmark_group("e2e::connect");
    g.sample_size(10);
    g.bench_function(format!("net/scheme={scheme}"), |b| {
        b.iter_custom(|n| pair.reconnects(n as usize).iter().sum())
    });
    g.bench_function(format!("bare_handshake/scheme={scheme}"), |b| {
        b.iter_custom(|n| e2e::bare_handshakes::<S>(&rt, n as usize).iter().sum())
    });
    g.finish();
    pair.shutdown(&rt);
}

fn connect(c: &mut Criterion) {
    connect_scheme::<ed25519::PrivateKey>(c, "ed25519");
    connect_scheme::<bls12381::PrivateKey>(c, "bls12381");
}

criterion_group!(benches, one_way, round_trip, connect);
criterion_main!(benches);
