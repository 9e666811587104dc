//! `discovery::*`: bit-vector build and diff for 100, 1,000 and 10,000 keys, and record
//! verification per scheme, each beside its raw primitive.

use std::hint::black_box;
use std::net::SocketAddr;
use std::num::NonZeroUsize;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use p2p_discovery::{Config, Tracker, record_message, sign_record, verify_record};
use p2p_identity::{Signature as _, Signer, Verifier, bls12381, ed25519};
use p2p_proto::{BitVec, Peers};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const NS: &[u8] = b"_P2P_BENCH";
const NOW: u64 = 1_700_000_000_000;

fn addr(i: u64) -> SocketAddr {
    SocketAddr::from((
        [127, 0, (i >> 8) as u8, i as u8],
        1000 + (i % 50_000) as u16,
    ))
}

/// A tracker for key 0 with a set of `n` keys, of which every other one has a known record.
fn tracker(n: u64) -> (Tracker<ed25519::PublicKey>, Vec<ed25519::PublicKey>) {
    let signers: Vec<ed25519::PrivateKey> = (0..n)
        .map(ed25519::PrivateKey::insecure_from_seed)
        .collect();
    let keys: Vec<_> = signers.iter().map(|s| s.public_key()).collect();
    let mut config = Config::recommended(NS);
    config.max_records_per_message = NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN);
    let mut t = Tracker::with_signer(config, &signers[0], addr(0), NOW, vec![]).unwrap();
    t.handle_peer_set(1, keys.clone()).unwrap();
    for chunk in signers
        .iter()
        .enumerate()
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .chunks(1024)
    {
        let peers = chunk
            .iter()
            .map(|(i, s)| sign_record(*s, NS, addr(*i as u64), NOW))
            .collect();
        t.handle_peers(&keys[1], Peers { peers }, NOW).unwrap();
    }
    (t, keys)
}

fn bit_vectors(c: &mut Criterion) {
    let mut group = c.benchmark_group("discovery");
    for n in [100u64, 1_000, 10_000] {
        let (mut t, keys) = tracker(n);
        let ours = t.bit_vec(1).unwrap();
        let known: Vec<bool> = (0..n as usize)
            .map(|i| ours.bits[i / 8] & (1 << (i % 8)) != 0)
            .collect();
        group.bench_function(format!("bit_vec_build/keys={n}"), |b| {
            b.iter(|| t.bit_vec_uncached(black_box(1)))
        });
        // Raw primitive: packing a slice of flags into bytes.
        group.bench_function(format!("bit_vec_build_raw/keys={n}"), |b| {
            b.iter(|| {
                let mut out = vec![0u8; known.len().div_ceil(8)];
                for (i, &k) in black_box(&known).iter().enumerate() {
                    if k {
                        out[i / 8] |= 1 << (i % 8);
                    }
                }
                out
            })
        });
        // Diff against a sender that knows everything we know: no answer (the ping case).
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let same = ours.clone();
        group.bench_function(format!("bit_vec_diff_equal/keys={n}"), |b| {
            b.iter(|| {
                t.handle_bit_vec(&keys[1], black_box(&same), &mut rng)
                    .unwrap()
            })
        });
        // Diff against a sender that knows nothing: answer with up to 32 random records.
        let empty = BitVec {
            index: 1,
            bits: Bytes::from(vec![0u8; ours.bits.len()]),
        };
        group.bench_function(format!("bit_vec_diff_answer/keys={n}"), |b| {
            b.iter(|| {
                t.handle_bit_vec(&keys[1], black_box(&empty), &mut rng)
                    .unwrap()
            })
        });
        // Raw primitive: AND-NOT of the two byte strings, counting the missing bits.
        group.bench_function(format!("bit_vec_diff_raw/keys={n}"), |b| {
            b.iter(|| {
                black_box(&ours.bits)
                    .iter()
                    .zip(black_box(&empty.bits).iter())
                    .map(|(x, y)| (x & !y).count_ones())
                    .sum::<u32>()
            })
        });
    }
    group.finish();
}

fn verify_scheme<S: Signer>(c: &mut Criterion, name: &str) {
    let signer = S::insecure_from_seed(3);
    let key = signer.public_key();
    let socket = addr(3);
    let peer = sign_record(&signer, NS, socket, NOW);
    let sig_bytes = peer.signature.unwrap().signature;
    let message = record_message(&socket, NOW);
    let sig = <<S::PublicKey as Verifier>::Signature>::from_bytes(&sig_bytes).unwrap();
    let mut group = c.benchmark_group("discovery");
    group.bench_function(format!("verify_record/scheme={name}"), |b| {
        b.iter(|| verify_record(NS, &key, black_box(&socket), NOW, black_box(&sig_bytes)))
    });
    // Raw primitive: the scheme's verification of the same bytes, signature already parsed.
    group.bench_function(format!("verify_raw/scheme={name}"), |b| {
        b.iter(|| key.verify(NS, black_box(&message), &sig))
    });
    group.finish();
}

fn records(c: &mut Criterion) {
    verify_scheme::<ed25519::PrivateKey>(c, "ed25519");
    verify_scheme::<bls12381::PrivateKey>(c, "bls12381");
}

criterion_group!(discovery, bit_vectors, records);
criterion_main!(discovery);
