//! `identity::sign` and `identity::verify` for each scheme.

use criterion::{Criterion, criterion_group, criterion_main};
use p2p_identity::{Signer, Verifier, bls12381, ed25519};
use std::hint::black_box;

const NAMESPACE: &[u8] = b"_P2P_BENCH";
const MESSAGE: &[u8] = &[7u8; 128];

fn scheme<S: Signer>(c: &mut Criterion, name: &str) {
    let signer = S::insecure_from_seed(1);
    let public = signer.public_key();
    let signature = signer.sign(NAMESPACE, MESSAGE);
    let mut group = c.benchmark_group("identity");
    group.bench_function(format!("sign/scheme={name}"), |b| {
        b.iter(|| signer.sign(black_box(NAMESPACE), black_box(MESSAGE)))
    });
    group.bench_function(format!("verify/scheme={name}"), |b| {
        b.iter(|| public.verify(black_box(NAMESPACE), black_box(MESSAGE), &signature))
    });
    group.bench_function(format!("parse_key/scheme={name}"), |b| {
        let bytes = public.as_bytes().to_vec();
        b.iter(|| S::PublicKey::from_bytes(black_box(&bytes)))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    scheme::<ed25519::PrivateKey>(c, "ed25519");
    scheme::<bls12381::PrivateKey>(c, "bls12381");
}

criterion_group!(identity, benches);
criterion_main!(identity);
