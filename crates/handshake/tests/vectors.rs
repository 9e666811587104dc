//! Test vectors: from fixed seeds, every handshake message and the first frames in hex.
//!
//! `regenerate_vectors` (ignored; run by `cargo xtask vectors` with
//! `P2P_REGENERATE_VECTORS=1`) writes `tests/vectors/<scheme>.txt`; `vectors_match` checks that
//! the code still produces exactly the checked-in bytes.

use std::path::PathBuf;

use bytes::BytesMut;
use p2p_framing::frame;
use p2p_handshake::{Config, Dialee, Dialer, MAX_MESSAGE_LEN};
use p2p_identity::{Signer, Verifier, bls12381, ed25519};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const NAMESPACE: &[u8] = b"_P2P_VECTORS";
const DIALER_SEED: u64 = 1;
const DIALEE_SEED: u64 = 2;
const DIALER_RNG_SEED: u64 = 1001;
const DIALEE_RNG_SEED: u64 = 1002;
const NOW_DIALER: u64 = 1_700_000_000_000;
const NOW_DIALEE: u64 = 1_700_000_000_040;

fn framed(body: &[u8]) -> String {
    let mut out = BytesMut::new();
    frame::encode(&mut out, body, MAX_MESSAGE_LEN as u32).expect("handshake bodies fit");
    hex::encode(out)
}

fn render<S: Signer>() -> String {
    let cfg = Config::recommended(NAMESPACE);
    let (d, e) = (
        S::insecure_from_seed(DIALER_SEED),
        S::insecure_from_seed(DIALEE_SEED),
    );
    let (dialer, hello) = Dialer::new(
        &cfg,
        &d,
        e.public_key(),
        NOW_DIALER,
        &mut ChaCha20Rng::seed_from_u64(DIALER_RNG_SEED),
    );
    let (waiting, answer) = Dialee::handle_hello(
        &cfg,
        &e,
        &hello,
        NOW_DIALEE,
        &mut ChaCha20Rng::seed_from_u64(DIALEE_RNG_SEED),
        |_| Ok(()),
    )
    .expect("vector hello accepted");
    let (mut at_dialer, confirmation) = dialer
        .handle_answer(&answer, NOW_DIALEE)
        .expect("vector answer accepted");
    let mut at_dialee = waiting
        .handle_confirmation(&confirmation)
        .expect("vector confirmation accepted");

    let seal = |c: &mut p2p_cipher::SendCipher, body: &[u8]| {
        let mut out = BytesMut::new();
        let start = frame::begin(&mut out);
        out.extend_from_slice(body);
        c.seal(&mut out, start.body_offset()).expect("fresh cipher");
        frame::finish(&mut out, start, cfg.max_frame_len).expect("small frame");
        hex::encode(out)
    };
    let dialer_frame_1 = seal(&mut at_dialer.send, b"ping from dialer");
    let dialee_frame_0 = seal(&mut at_dialee.send, b"pong from dialee");
    let dialee_frame_1 = seal(&mut at_dialee.send, b"");

    let mut s = String::new();
    let mut line = |k: &str, v: String| {
        s.push_str(k);
        s.push_str(" = ");
        s.push_str(&v);
        s.push('\n');
    };
    line("scheme", S::PublicKey::SCHEME.to_string());
    line("namespace", hex::encode(NAMESPACE));
    line(
        "seeds",
        format!(
            "dialer key {DIALER_SEED}, dialee key {DIALEE_SEED}, dialer rng ChaCha20Rng({DIALER_RNG_SEED}), dialee rng ChaCha20Rng({DIALEE_RNG_SEED})"
        ),
    );
    line("now_dialer_ms", NOW_DIALER.to_string());
    line("now_dialee_ms", NOW_DIALEE.to_string());
    line("dialer_public_key", hex::encode(d.public_key().as_bytes()));
    line("dialee_public_key", hex::encode(e.public_key().as_bytes()));
    line("hello_body", hex::encode(&hello));
    line("hello_frame", framed(&hello));
    line("answer_body", hex::encode(&answer));
    line("answer_frame", framed(&answer));
    line("confirmation_frame", framed(&confirmation));
    line("dialer_frame_1 (\"ping from dialer\")", dialer_frame_1);
    line("dialee_frame_0 (\"pong from dialee\")", dialee_frame_0);
    line("dialee_frame_1 (empty)", dialee_frame_1);
    s
}

fn path(scheme: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("{scheme}.txt"))
}

fn all() -> [(&'static str, String); 2] {
    [
        ("ed25519", render::<ed25519::PrivateKey>()),
        ("bls12381", render::<bls12381::PrivateKey>()),
    ]
}

#[test]
#[ignore = "writes the vectors; run by `cargo xtask vectors`"]
fn regenerate_vectors() {
    if std::env::var("P2P_REGENERATE_VECTORS").as_deref() != Ok("1") {
        eprintln!("set P2P_REGENERATE_VECTORS=1 to write the vectors");
        return;
    }
    for (scheme, text) in all() {
        std::fs::write(path(scheme), text).expect("vectors directory is writable");
    }
}

#[test]
fn vectors_match() {
    for (scheme, text) in all() {
        let stored = std::fs::read_to_string(path(scheme)).expect("vectors are checked in");
        assert_eq!(
            stored, text,
            "{scheme} vectors differ from the code's output"
        );
    }
}
