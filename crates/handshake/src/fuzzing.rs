//! Harnesses for the cargo-fuzz targets in `fuzz/` (enabled by the `fuzzing` feature).
//!
//! Each harness feeds the input both raw and XOR-ed onto a genuine message, so the fuzzer
//! reaches the checks behind the protobuf decoder quickly.

use p2p_identity::{Signer, bls12381, ed25519};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::{Config, Dialee, Dialer, HandshakeError, Refusal};

const NOW: u64 = 1_700_000_000_000;

fn patched(genuine: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = genuine.to_vec();
    for (i, b) in data.iter().enumerate() {
        match out.get_mut(i) {
            Some(slot) => *slot ^= b,
            None => out.push(*b),
        }
    }
    out
}

fn dialee_scheme<S: Signer>(data: &[u8]) {
    let cfg = Config::local(&b"_P2P_FUZZ"[..]);
    let (d, e) = (S::insecure_from_seed(1), S::insecure_from_seed(2));
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let (_, hello) = Dialer::new(&cfg, &d, e.public_key(), NOW, &mut rng);
    for input in [data.to_vec(), patched(&hello, data)] {
        let result = Dialee::handle_hello(&cfg, &e, &input, NOW, &mut rng, |_| Ok(()));
        if let Ok((waiting, _)) = result {
            // Whatever got through, the fuzzer cannot also produce a confirmation.
            let confirm = waiting.handle_confirmation(data);
            assert!(matches!(confirm, Err(HandshakeError::Confirmation)));
        }
        // A refusing authorizer always wins over everything after it.
        let refused =
            Dialee::handle_hello(&cfg, &e, &input, NOW, &mut rng, |_| Err(Refusal::Blocked));
        assert!(refused.is_err());
    }
}

fn dialer_scheme<S: Signer>(data: &[u8]) {
    let cfg = Config::local(&b"_P2P_FUZZ"[..]);
    let (d, e) = (S::insecure_from_seed(1), S::insecure_from_seed(2));
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let (dialer, hello) = Dialer::new(&cfg, &d, e.public_key(), NOW, &mut rng);
    let Ok((_, answer)) = Dialee::handle_hello(&cfg, &e, &hello, NOW, &mut rng, |_| Ok(())) else {
        panic!("a genuine hello is accepted");
    };
    let _ = dialer.handle_answer(data, NOW);
    let (dialer, _) = Dialer::new(
        &cfg,
        &d,
        e.public_key(),
        NOW,
        &mut ChaCha20Rng::seed_from_u64(0),
    );
    let input = patched(&answer, data);
    let result = dialer.handle_answer(&input, NOW);
    if data.iter().all(|b| *b == 0) && data.len() <= answer.len() {
        assert!(result.is_ok(), "the genuine answer is accepted");
    }
}

/// The dialee fed an arbitrary first message (both schemes).
pub fn dialee_hello(data: &[u8]) {
    dialee_scheme::<ed25519::PrivateKey>(data);
    dialee_scheme::<bls12381::PrivateKey>(data);
}

/// The dialer fed an arbitrary answer (both schemes).
pub fn dialer_answer(data: &[u8]) {
    dialer_scheme::<ed25519::PrivateKey>(data);
    dialer_scheme::<bls12381::PrivateKey>(data);
}
