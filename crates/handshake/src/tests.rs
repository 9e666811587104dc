use super::*;
use crate::wire::{self, Parsed};
use bytes::BytesMut;
use p2p_identity::{Signer, Verifier, bls12381, ed25519};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const NOW: u64 = 1_700_000_000_000;

fn cfg() -> Config {
    Config::local(&b"_P2P_TEST_NET"[..])
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn allow(_: &[u8]) -> Result<(), Refusal> {
    Ok(())
}

/// Runs a whole handshake in memory and checks that frames flow both ways.
fn pair<S: Signer>() {
    let (d, e) = (S::insecure_from_seed(1), S::insecure_from_seed(2));
    let (dialer, hello) = Dialer::new(&cfg(), &d, e.public_key(), NOW, &mut rng(10));
    let (waiting, answer) =
        Dialee::handle_hello(&cfg(), &e, &hello, NOW + 5, &mut rng(11), allow).unwrap();
    assert_eq!(waiting.claimed_peer(), &d.public_key());
    let (mut at_dialer, confirmation) = dialer.handle_answer(&answer, NOW + 9).unwrap();
    let mut at_dialee = waiting.handle_confirmation(&confirmation).unwrap();
    assert_eq!(at_dialer.peer, e.public_key());
    assert_eq!(at_dialee.peer, d.public_key());
    for (from, to) in [
        (&mut at_dialer.send, &mut at_dialee.recv),
        (&mut at_dialee.send, &mut at_dialer.recv),
    ] {
        let mut f = BytesMut::from(&b"ping"[..]);
        from.seal(&mut f, 0).unwrap();
        to.open(&mut f).unwrap();
        assert_eq!(&f[..], b"ping");
    }
}

#[test]
fn ed25519_pair_connects() {
    pair::<ed25519::PrivateKey>();
}

#[test]
fn bls_pair_connects() {
    pair::<bls12381::PrivateKey>();
}

type Key = ed25519::PrivateKey;

fn hello_from(d: &Key, to: &Key, cfg: &Config, now: u64) -> (Dialer<ed25519::PublicKey>, Vec<u8>) {
    Dialer::new(cfg, d, to.public_key(), now, &mut rng(20))
}

fn keys() -> (Key, Key) {
    (Key::insecure_from_seed(1), Key::insecure_from_seed(2))
}

fn dialee_err(e: &Key, hello: &[u8], now: u64) -> HandshakeError {
    Dialee::handle_hello(&cfg(), e, hello, now, &mut rng(21), allow).unwrap_err()
}

/// Re-encodes a parsed message after `edit` (for crafting bad messages).
fn reencode(body: &[u8], edit: impl FnOnce(&mut Parsed)) -> Vec<u8> {
    let mut p = wire::parse::<ed25519::PublicKey>(body).unwrap();
    edit(&mut p);
    wire::encode(
        &p.ns_tag,
        &p.recipient,
        &p.ephemeral,
        p.timestamp,
        &p.sender,
        &p.signature,
    )
}

#[test]
fn wrong_recipient_is_refused() {
    let (d, e) = keys();
    let other = Key::insecure_from_seed(3);
    let (_, hello) = hello_from(&d, &other, &cfg(), NOW);
    assert_eq!(dialee_err(&e, &hello, NOW), HandshakeError::WrongRecipient);
}

#[test]
fn unauthorized_blocked_and_connected_dialers_are_refused_before_verification() {
    let (d, e) = keys();
    let (_, hello) = hello_from(&d, &e, &cfg(), NOW);
    // A broken signature: a refusing authorizer must still be what fails, because it runs
    // before signature verification.
    let broken = reencode(&hello, |p| {
        let mut s = p.signature.to_vec();
        s[0] ^= 1;
        p.signature = s.into();
    });
    for refusal in [
        Refusal::NotAuthorized,
        Refusal::Blocked,
        Refusal::AlreadyConnected,
    ] {
        for msg in [&hello, &broken] {
            let mut seen = None;
            let err = Dialee::handle_hello(&cfg(), &e, msg, NOW, &mut rng(1), |k| {
                seen = Some(k.to_vec());
                Err(refusal.clone())
            })
            .unwrap_err();
            assert_eq!(err, HandshakeError::Refused(refusal.clone()));
            assert_eq!(seen.as_deref(), Some(d.public_key().as_bytes()));
        }
    }
}

/// 48 bytes with the compression flag set whose x coordinate is above the field modulus: no
/// BLS12-381 G1 point has this encoding, so parsing it would fail with an invalid key.
fn bls_key_bytes_that_are_no_point() -> Vec<u8> {
    let mut bytes = vec![0xff_u8; 48];
    bytes[0] = 0x9f; // compressed, not infinity, sign 0, x = 2^381 - 1 > p
    bytes
}

#[test]
fn unauthorized_bls_key_is_refused_before_any_curve_math() {
    let (d, e) = (
        bls12381::PrivateKey::insecure_from_seed(1),
        bls12381::PrivateKey::insecure_from_seed(2),
    );
    let (_, hello) = Dialer::new(&cfg(), &d, e.public_key(), NOW, &mut rng(1));
    let mut p = wire::parse::<bls12381::PublicKey>(&hello).unwrap();
    let junk = bls_key_bytes_that_are_no_point();
    assert!(bls12381::PublicKey::from_bytes(&junk).is_err());
    p.sender = junk.into();
    let forged = wire::encode(
        &p.ns_tag,
        &p.recipient,
        &p.ephemeral,
        p.timestamp,
        &p.sender,
        &p.signature,
    );
    // The authorizer runs on the raw bytes before the key is decompressed: an unknown key is
    // refused as unauthorized, not as an invalid point (which would mean the parse ran first).
    let mut calls = 0;
    let err = Dialee::handle_hello(&cfg(), &e, &forged, NOW, &mut rng(1), |_| {
        calls += 1;
        Err(Refusal::NotAuthorized)
    })
    .unwrap_err();
    assert_eq!(err, HandshakeError::Refused(Refusal::NotAuthorized));
    assert_eq!(calls, 1);
    // An authorizer that lets any bytes through (the facade's never does): the parse still
    // runs after it and refuses the bytes.
    assert_eq!(
        Dialee::handle_hello(&cfg(), &e, &forged, NOW, &mut rng(1), allow).unwrap_err(),
        HandshakeError::InvalidKey(p2p_identity::KeyError::NonCanonical)
    );
    // A genuine but unknown key: refused the same way.
    let err = Dialee::handle_hello(&cfg(), &e, &hello, NOW, &mut rng(1), |_| {
        Err(Refusal::NotAuthorized)
    })
    .unwrap_err();
    assert_eq!(err, HandshakeError::Refused(Refusal::NotAuthorized));
}

#[test]
fn bad_signature_is_refused() {
    let (d, e) = keys();
    let (_, hello) = hello_from(&d, &e, &cfg(), NOW);
    let broken = reencode(&hello, |p| {
        let mut s = p.signature.to_vec();
        s[5] ^= 0x10;
        p.signature = s.into();
    });
    assert!(matches!(
        dialee_err(&e, &broken, NOW),
        HandshakeError::BadSignature(_)
    ));
    // A valid signature by another key than the one claimed.
    let mallory = Key::insecure_from_seed(9);
    let (_, forged) = hello_from(&mallory, &e, &cfg(), NOW);
    let claimed = reencode(&forged, |p| {
        p.sender = d.public_key().as_bytes().to_vec().into()
    });
    assert!(matches!(
        dialee_err(&e, &claimed, NOW),
        HandshakeError::BadSignature(_)
    ));
    // Any change to a signed field breaks the signature (here the timestamp).
    let moved = reencode(&hello, |p| p.timestamp += 1);
    assert!(matches!(
        dialee_err(&e, &moved, NOW),
        HandshakeError::BadSignature(_)
    ));
}

#[test]
fn bls_bad_signature_is_refused() {
    let (d, e) = (
        bls12381::PrivateKey::insecure_from_seed(1),
        bls12381::PrivateKey::insecure_from_seed(2),
    );
    let other = bls12381::PrivateKey::insecure_from_seed(3);
    let (_, hello) = Dialer::new(&cfg(), &other, e.public_key(), NOW, &mut rng(1));
    // Splice d's key in place of the signer's: parses, authorizes, fails verification.
    let mut p = wire::parse::<bls12381::PublicKey>(&hello).unwrap();
    p.sender = d.public_key().as_bytes().to_vec().into();
    let forged = wire::encode(
        &p.ns_tag,
        &p.recipient,
        &p.ephemeral,
        p.timestamp,
        &p.sender,
        &p.signature,
    );
    let err = Dialee::handle_hello(&cfg(), &e, &forged, NOW, &mut rng(1), allow).unwrap_err();
    assert!(matches!(err, HandshakeError::BadSignature(_)), "{err:?}");
}

#[test]
fn timestamps_outside_the_window_are_refused() {
    let (d, e) = keys();
    let c = cfg();
    let (_, hello) = hello_from(&d, &e, &c, NOW);
    // Exactly at the edges is accepted.
    let ok_late = NOW + c.max_past_ms;
    Dialee::handle_hello(&c, &e, &hello, ok_late, &mut rng(1), allow).unwrap();
    let ok_early = NOW - c.max_future_ms;
    Dialee::handle_hello(&c, &e, &hello, ok_early, &mut rng(1), allow).unwrap();
    assert_eq!(
        dialee_err(&e, &hello, ok_late + 1),
        HandshakeError::TimestampTooOld {
            timestamp: NOW,
            now: ok_late + 1
        }
    );
    assert_eq!(
        dialee_err(&e, &hello, ok_early - 1),
        HandshakeError::TimestampTooNew {
            timestamp: NOW,
            now: ok_early - 1
        }
    );
}

#[test]
fn dialer_checks_the_answer_timestamp() {
    let (d, e) = keys();
    let c = cfg();
    let (dialer, hello) = hello_from(&d, &e, &c, NOW);
    let (_, answer) = Dialee::handle_hello(&c, &e, &hello, NOW, &mut rng(1), allow).unwrap();
    assert!(matches!(
        dialer.handle_answer(&answer, NOW + c.max_past_ms + 1),
        Err(HandshakeError::TimestampTooOld { .. })
    ));
}

#[test]
fn namespace_mismatch_is_a_distinct_error() {
    let (d, e) = keys();
    let other_net = Config::local(&b"_P2P_OTHER_NET"[..]);
    let (_, hello) = hello_from(&d, &e, &other_net, NOW);
    assert_eq!(dialee_err(&e, &hello, NOW), HandshakeError::NetworkMismatch);

    // Dialer side: an answer whose tag is for another network.
    let (dialer, hello) = hello_from(&d, &e, &cfg(), NOW);
    let (_, answer) = Dialee::handle_hello(&cfg(), &e, &hello, NOW, &mut rng(1), allow).unwrap();
    let mut answer = answer;
    answer[0] ^= 1;
    assert!(matches!(
        dialer.handle_answer(&answer, NOW),
        Err(HandshakeError::NetworkMismatch)
    ));
}

#[test]
fn forged_namespace_tag_still_fails_the_signature() {
    // A peer on another namespace that copies our tag does not get in: the namespace itself
    // is signed.
    let (d, e) = keys();
    let other_net = Config::local(&b"_P2P_OTHER_NET"[..]);
    let (_, hello) = hello_from(&d, &e, &other_net, NOW);
    let ours = wire::namespace_tag(&cfg().namespace);
    let retagged = reencode(&hello, |p| p.ns_tag = ours);
    assert!(matches!(
        dialee_err(&e, &retagged, NOW),
        HandshakeError::BadSignature(_)
    ));
}

#[test]
fn self_connection_is_refused() {
    let (_, e) = keys();
    let (_, hello) = hello_from(&e, &e, &cfg(), NOW);
    assert_eq!(dialee_err(&e, &hello, NOW), HandshakeError::SelfConnection);
}

#[test]
fn truncated_oversized_and_garbage_messages_are_refused() {
    let (d, e) = keys();
    let (_, hello) = hello_from(&d, &e, &cfg(), NOW);
    assert_eq!(
        dialee_err(&e, &[], NOW),
        HandshakeError::Malformed(Malformed::Truncated)
    );
    for cut in 0..hello.len() {
        let err = dialee_err(&e, &hello[..cut], NOW);
        assert!(
            matches!(err, HandshakeError::Malformed(_)),
            "cut at {cut}: {err:?}"
        );
    }
    let big = vec![0u8; MAX_MESSAGE_LEN + 1];
    assert_eq!(
        dialee_err(&e, &big, NOW),
        HandshakeError::TooLarge {
            len: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        }
    );
    let garbage = [0xffu8; 64];
    assert_eq!(
        dialee_err(&e, &garbage, NOW),
        HandshakeError::Malformed(Malformed::Protobuf)
    );
    // Well-formed protobuf with wrong field lengths.
    let short_eph = {
        let mut p = wire::parse::<ed25519::PublicKey>(&hello).unwrap();
        p.sender = vec![1u8; 31].into();
        wire::encode(
            &p.ns_tag,
            &p.recipient,
            &p.ephemeral,
            p.timestamp,
            &p.sender,
            &p.signature,
        )
    };
    assert_eq!(
        dialee_err(&e, &short_eph, NOW),
        HandshakeError::Malformed(Malformed::SenderKeyLength)
    );
    // The dialer refuses the same kinds of answers.
    let (dialer, _) = hello_from(&d, &e, &cfg(), NOW);
    assert_eq!(
        dialer.handle_answer(&garbage, NOW).unwrap_err(),
        HandshakeError::Malformed(Malformed::Protobuf)
    );
}

#[test]
fn invalid_dialer_key_is_refused() {
    let (d, e) = keys();
    let (_, hello) = hello_from(&d, &e, &cfg(), NOW);
    // The identity point is a 32-byte string that is not an acceptable ed25519 key; the
    // authorizer here accepts any bytes, so the parse after it is what refuses.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let bad = reencode(&hello, |p| p.sender = identity.to_vec().into());
    assert!(matches!(
        dialee_err(&e, &bad, NOW),
        HandshakeError::InvalidKey(_)
    ));
}

#[test]
fn low_order_ephemeral_is_refused() {
    let (d, e) = keys();
    let c = cfg();
    // A correctly signed hello (an authorized but malicious dialer) with the u = 0 point.
    let eph = [0u8; 32];
    let signed = wire::signed_bytes(
        _P2P_HANDSHAKE_HELLO,
        d.public_key().as_bytes(),
        e.public_key().as_bytes(),
        &eph,
        NOW,
        None,
    );
    let sig = d.sign(&c.namespace, &signed);
    let hello = wire::encode(
        &wire::namespace_tag(&c.namespace),
        e.public_key().as_bytes(),
        &eph,
        NOW,
        d.public_key().as_bytes(),
        p2p_identity::Signature::as_bytes(&sig),
    );
    assert_eq!(dialee_err(&e, &hello, NOW), HandshakeError::NonContributory);
}

#[test]
fn unexpected_dialee_key_is_refused() {
    let (d, e) = keys();
    let c = Key::insecure_from_seed(3);
    // d dials expecting e, but c answers (with a hello that was addressed to c).
    let (dialer, _) = hello_from(&d, &e, &cfg(), NOW);
    let (_, hello_to_c) = hello_from(&d, &c, &cfg(), NOW);
    let (_, answer) =
        Dialee::handle_hello(&cfg(), &c, &hello_to_c, NOW, &mut rng(1), allow).unwrap();
    assert_eq!(
        dialer.handle_answer(&answer, NOW).unwrap_err(),
        HandshakeError::UnexpectedPeer
    );
}

#[test]
fn replayed_hello_never_yields_a_peer() {
    let (d, e) = keys();
    // A real session, recorded.
    let (dialer, hello) = hello_from(&d, &e, &cfg(), NOW);
    let (waiting, answer) =
        Dialee::handle_hello(&cfg(), &e, &hello, NOW, &mut rng(1), allow).unwrap();
    let (_, confirmation) = dialer.handle_answer(&answer, NOW).unwrap();
    waiting.handle_confirmation(&confirmation).unwrap();
    // While the real session lives, the facade's authorizer refuses the replay outright.
    let err = Dialee::handle_hello(&cfg(), &e, &hello, NOW + 1, &mut rng(2), |_| {
        Err(Refusal::AlreadyConnected)
    })
    .unwrap_err();
    assert_eq!(err, HandshakeError::Refused(Refusal::AlreadyConnected));
    // Otherwise the replay gets an answer under a fresh dialee ephemeral, but the attacker
    // cannot confirm: neither the recorded confirmation nor anything else opens.
    let (waiting, _) =
        Dialee::handle_hello(&cfg(), &e, &hello, NOW + 1, &mut rng(2), allow).unwrap();
    assert_eq!(
        waiting.handle_confirmation(&confirmation).unwrap_err(),
        HandshakeError::Confirmation
    );
    let (waiting, _) =
        Dialee::handle_hello(&cfg(), &e, &hello, NOW + 1, &mut rng(3), allow).unwrap();
    assert_eq!(
        waiting
            .handle_confirmation(&[0u8; CONFIRMATION_LEN])
            .unwrap_err(),
        HandshakeError::Confirmation
    );
}

#[test]
fn replayed_answer_is_refused_in_another_session() {
    let (d, e) = keys();
    let (_, hello_a) = hello_from(&d, &e, &cfg(), NOW);
    let (_, answer_a) =
        Dialee::handle_hello(&cfg(), &e, &hello_a, NOW, &mut rng(1), allow).unwrap();
    // A second session of the same pair, same millisecond, another ephemeral key.
    let (dialer_b, _) = Dialer::new(&cfg(), &d, e.public_key(), NOW, &mut rng(99));
    assert!(matches!(
        dialer_b.handle_answer(&answer_a, NOW),
        Err(HandshakeError::BadSignature(_))
    ));
}

#[test]
fn bad_confirmation_is_refused() {
    let (d, e) = keys();
    let (dialer, hello) = hello_from(&d, &e, &cfg(), NOW);
    let (waiting, answer) =
        Dialee::handle_hello(&cfg(), &e, &hello, NOW, &mut rng(1), allow).unwrap();
    let (_, confirmation) = dialer.handle_answer(&answer, NOW).unwrap();
    let mut tampered = confirmation.to_vec();
    tampered[3] ^= 4;
    assert_eq!(
        waiting.handle_confirmation(&tampered).unwrap_err(),
        HandshakeError::Confirmation
    );
    // The dialer's second frame (sequence 1) in place of the confirmation is refused: the
    // confirmation must be the very first frame.
    let (dialer, hello) = hello_from(&d, &e, &cfg(), NOW);
    let (waiting, answer) =
        Dialee::handle_hello(&cfg(), &e, &hello, NOW, &mut rng(1), allow).unwrap();
    let (mut est, _confirmation) = dialer.handle_answer(&answer, NOW).unwrap();
    let mut second = BytesMut::from(_P2P_HANDSHAKE_CONFIRM);
    est.send.seal(&mut second, 0).unwrap();
    assert_eq!(
        waiting.handle_confirmation(&second).unwrap_err(),
        HandshakeError::Confirmation
    );
    // Wrong length.
    let (dialer, hello) = hello_from(&d, &e, &cfg(), NOW);
    let (waiting, answer) =
        Dialee::handle_hello(&cfg(), &e, &hello, NOW, &mut rng(1), allow).unwrap();
    let (_, confirmation) = dialer.handle_answer(&answer, NOW).unwrap();
    assert_eq!(
        waiting.handle_confirmation(&confirmation[1..]).unwrap_err(),
        HandshakeError::Confirmation
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_hellos_and_answers_are_refused(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
        let (d, e) = keys();
        prop_assert!(Dialee::handle_hello(&cfg(), &e, &data, NOW, &mut rng(1), allow).is_err());
        let (dialer, _) = hello_from(&d, &e, &cfg(), NOW);
        prop_assert!(dialer.handle_answer(&data, NOW).is_err());
    }
}

/// Compiles only for types that promise to wipe their secrets when dropped.
fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}

#[test]
fn handshake_secrets_are_zeroize_on_drop() {
    // The ephemeral secret, the x25519 output, the HKDF pseudorandom key and the two traffic
    // keys all live in types that wipe themselves.
    assert_zeroize_on_drop::<x25519_dalek::StaticSecret>();
    assert_zeroize_on_drop::<x25519_dalek::SharedSecret>();
    assert_zeroize_on_drop::<wire::Prk>();
    assert_zeroize_on_drop::<wire::Keys>();
    assert_zeroize_on_drop::<Dialer<ed25519::PublicKey>>();
}

#[test]
fn prk_is_held_in_a_zeroizing_buffer() {
    use zeroize::Zeroize;
    let transcript = [7u8; 32];
    let shared = [9u8; 32];
    let mut prk = wire::Prk::extract(&transcript, &shared);
    // RFC 5869 extract: HMAC-SHA-256(salt = transcript, ikm = shared).
    let expected = {
        use hkdf::hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&transcript).unwrap();
        mac.update(&shared);
        mac.finalize().into_bytes()
    };
    assert_eq!(prk.as_bytes(), expected.as_slice());
    let keys = prk.expand_keys();
    let again = wire::derive_keys(&transcript, &shared);
    assert_eq!(*keys.dialer_to_dialee, *again.dialer_to_dialee);
    assert_eq!(*keys.dialee_to_dialer, *again.dialee_to_dialer);
    assert_ne!(*keys.dialer_to_dialee, *keys.dialee_to_dialer);
    prk.zeroize();
    assert_eq!(prk.as_bytes(), &[0u8; 32]);
}
