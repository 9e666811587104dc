//! `handshake::full` (both sides, in memory) for each scheme, beside `handshake::crypto_ops`:
//! the same signature, key-parsing and x25519 operations run alone, so the protocol overhead
//! can be quoted as a ratio.

use criterion::{Criterion, criterion_group, criterion_main};
use p2p_handshake::{Config, Dialee, Dialer};
use p2p_identity::{Signature, Signer, Verifier, bls12381, ed25519};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::hint::black_box;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

const NOW: u64 = 1_700_000_000_000;

fn scheme<S: Signer>(c: &mut Criterion, name: &str) {
    let cfg = Config::recommended(&b"_P2P_BENCH"[..]);
    let (d, e) = (S::insecure_from_seed(1), S::insecure_from_seed(2));
    let e_pub = e.public_key();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut group = c.benchmark_group("handshake");
    group.bench_function(format!("full/scheme={name}"), |b| {
        b.iter(|| {
            let (dialer, hello) = Dialer::new(&cfg, &d, e_pub.clone(), NOW, &mut rng);
            let (waiting, answer) =
                Dialee::handle_hello(&cfg, &e, &hello, NOW, &mut rng, |_| Ok(()))
                    .expect("genuine hello");
            let (est, confirmation) = dialer.handle_answer(&answer, NOW).expect("genuine answer");
            let done = waiting
                .handle_confirmation(&confirmation)
                .expect("genuine confirmation");
            black_box((est, done))
        })
    });

    // The crypto a handshake cannot avoid: two signatures, two signature parses and
    // verifications, one key parse (the dialer's key at the dialee), two x25519 key pairs and
    // two x25519 exchanges.
    let msg = [5u8; 200];
    let d_pub_bytes = d.public_key().as_bytes().to_vec();
    let d_sig = d.sign(&cfg.namespace, &msg);
    let e_sig = e.sign(&cfg.namespace, &msg);
    group.bench_function(format!("crypto_ops/scheme={name}"), |b| {
        b.iter(|| {
            let s1 = d.sign(&cfg.namespace, black_box(&msg));
            let key = S::PublicKey::from_bytes(black_box(&d_pub_bytes)).expect("valid key");
            let sig1 = <<S::PublicKey as Verifier>::Signature as Signature>::from_bytes(black_box(
                d_sig.as_bytes(),
            ))
            .expect("valid signature");
            key.verify(&cfg.namespace, &msg, &sig1).expect("verifies");
            let s2 = e.sign(&cfg.namespace, black_box(&msg));
            let sig2 = <<S::PublicKey as Verifier>::Signature as Signature>::from_bytes(black_box(
                e_sig.as_bytes(),
            ))
            .expect("valid signature");
            e_pub.verify(&cfg.namespace, &msg, &sig2).expect("verifies");
            let a = StaticSecret::from(black_box([1u8; 32]));
            let b_ = StaticSecret::from(black_box([2u8; 32]));
            let (pa, pb) = (XPublic::from(&a), XPublic::from(&b_));
            let k1 = a.diffie_hellman(&pb);
            let k2 = b_.diffie_hellman(&pa);
            black_box((s1, s2, k1.to_bytes(), k2.to_bytes()))
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    scheme::<ed25519::PrivateKey>(c, "ed25519");
    scheme::<bls12381::PrivateKey>(c, "bls12381");
}

criterion_group!(handshake, benches);
criterion_main!(handshake);
