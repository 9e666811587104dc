//! Every way a key, a signature or a signed message can be wrong, per scheme.

use p2p_identity::{KeyError, Signature as _, SignatureError, Signer, Verifier, bls12381, ed25519};

const NS: &[u8] = b"_P2P_TEST_NAMESPACE";

fn signature_rules<S: Signer>() {
    let a = S::insecure_from_seed(1);
    let b = S::insecure_from_seed(2);
    let sig = a.sign(NS, b"message");
    let pk = a.public_key();
    assert_eq!(pk.verify(NS, b"message", &sig), Ok(()));
    assert_eq!(
        pk.verify(NS, b"messagf", &sig),
        Err(SignatureError::Invalid),
        "tampered message"
    );
    assert_eq!(
        pk.verify(b"_P2P_OTHER_NAMESPACE", b"message", &sig),
        Err(SignatureError::Invalid),
        "wrong namespace"
    );
    assert_eq!(
        b.public_key().verify(NS, b"message", &sig),
        Err(SignatureError::Invalid),
        "wrong key"
    );
    // Moving bytes between namespace and message changes what is signed.
    let sig2 = a.sign(b"ab", b"c");
    assert_eq!(pk.verify(b"a", b"bc", &sig2), Err(SignatureError::Invalid));
    // Wrong lengths.
    let len = <<S::PublicKey as Verifier>::Signature as p2p_identity::Signature>::LEN;
    let bytes = sig.as_bytes();
    assert_eq!(
        <<S::PublicKey as Verifier>::Signature as p2p_identity::Signature>::from_bytes(
            &bytes[..len - 1]
        ),
        Err(SignatureError::WrongLength {
            expected: len,
            got: len - 1
        })
    );
    let key_len = <S::PublicKey as Verifier>::LEN;
    assert_eq!(
        S::PublicKey::from_bytes(&vec![0u8; key_len + 1]),
        Err(KeyError::WrongLength {
            expected: key_len,
            got: key_len + 1
        })
    );
    assert_eq!(
        S::PublicKey::from_bytes(&[]),
        Err(KeyError::WrongLength {
            expected: key_len,
            got: 0
        })
    );
    assert_eq!(
        S::PublicKey::from_hex("zz"),
        Err(KeyError::WrongLength {
            expected: key_len,
            got: 1
        })
    );
    assert_eq!(
        S::PublicKey::from_hex(&"zz".repeat(key_len)),
        Err(KeyError::InvalidHex)
    );
}

#[test]
fn ed25519_signature_rules() {
    signature_rules::<ed25519::PrivateKey>();
}

#[test]
fn bls_signature_rules() {
    signature_rules::<bls12381::PrivateKey>();
}

/// Little-endian 32-byte encoding of `y` with the x sign bit `sign`.
fn ed_point(y_le: [u8; 32], sign: bool) -> [u8; 32] {
    let mut b = y_le;
    if sign {
        b[31] |= 0x80;
    }
    b
}

#[test]
fn ed25519_rejects_non_canonical_and_small_order_keys() {
    // p = 2^255 - 19 encoded little-endian; y = p is a non-canonical encoding of y = 0.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    assert_eq!(
        ed25519::PublicKey::from_bytes(&p),
        Err(KeyError::NonCanonical)
    );
    // y = p + 1 is a non-canonical encoding of y = 1 (the identity).
    let mut p1 = p;
    p1[0] = 0xee;
    assert_eq!(
        ed25519::PublicKey::from_bytes(&p1),
        Err(KeyError::NonCanonical)
    );
    // The identity (y = 1), canonically encoded, is a weak key.
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(ed25519::PublicKey::from_bytes(&one), Err(KeyError::WeakKey));
    // y = -1 (the point of order 2) is weak too.
    let mut minus_one = p;
    minus_one[0] = 0xec;
    assert_eq!(
        ed25519::PublicKey::from_bytes(&minus_one),
        Err(KeyError::WeakKey)
    );
    // The identity with the sign bit set: x = 0 cannot be negative, so it is non-canonical.
    assert_eq!(
        ed25519::PublicKey::from_bytes(&ed_point(one, true)),
        Err(KeyError::NonCanonical)
    );
    // Some y has no x on the curve: find one and check it is refused as not a point.
    let not_on_curve = (2u8..=255)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| ed25519::PublicKey::from_bytes(b) == Err(KeyError::NonCanonical))
        .expect("some small y is not on the curve");
    assert_ne!(not_on_curve[0], 0);
}

#[test]
fn ed25519_rejects_signature_with_high_s() {
    let sk = ed25519::PrivateKey::insecure_from_seed(3);
    let mut bytes = sk.sign(b"ns", b"m").as_bytes().to_vec();
    bytes[63] |= 0xe0;
    assert_eq!(
        ed25519::Signature::from_bytes(&bytes),
        Err(SignatureError::NonCanonical)
    );
    // s + L (still below 2^253) parses but is refused by strict verification (malleability).
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let sig = sk.sign(b"ns", b"m");
    let mut malleated = sig.as_bytes().to_vec();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(malleated[32 + i]) + u16::from(l[i]) + carry;
        malleated[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    if let Ok(m) = ed25519::Signature::from_bytes(&malleated) {
        assert_eq!(
            sk.public_key().verify(b"ns", b"m", &m),
            Err(SignatureError::Invalid)
        );
    }
}

/// A compressed G1 encoding of the point with x = `x` (small integer), sort bit clear.
fn g1_with_x(x: u8) -> [u8; 48] {
    let mut b = [0u8; 48];
    b[47] = x;
    b[0] |= 0x80; // compression flag
    b
}

#[test]
fn bls_rejects_identity_non_canonical_and_off_subgroup_keys() {
    // Identity: compression + infinity flags, all else zero.
    let mut inf = [0u8; 48];
    inf[0] = 0xc0;
    assert_eq!(
        bls12381::PublicKey::from_bytes(&inf),
        Err(KeyError::WeakKey)
    );
    // Infinity flag with non-zero bits is not a canonical encoding.
    let mut bad_inf = inf;
    bad_inf[47] = 1;
    assert_eq!(
        bls12381::PublicKey::from_bytes(&bad_inf),
        Err(KeyError::NonCanonical)
    );
    // Uncompressed flag in a 48-byte encoding.
    let sk = bls12381::PrivateKey::insecure_from_seed(9);
    let mut no_flag = [0u8; 48];
    no_flag.copy_from_slice(sk.public_key().as_bytes());
    no_flag[0] &= 0x7f;
    assert_eq!(
        bls12381::PublicKey::from_bytes(&no_flag),
        Err(KeyError::NonCanonical)
    );
    // x >= p (all ones under the flags) is not a canonical field element.
    let mut big = [0xffu8; 48];
    big[0] = 0x9f;
    assert_eq!(
        bls12381::PublicKey::from_bytes(&big),
        Err(KeyError::NonCanonical)
    );
    // Points on the curve are almost never in the prime-order subgroup (the cofactor is large):
    // among small x, find one on the curve and check it is refused for the subgroup.
    let results: Vec<_> = (1u8..=40)
        .map(|x| bls12381::PublicKey::from_bytes(&g1_with_x(x)))
        .collect();
    assert!(results.contains(&Err(KeyError::NotInSubgroup)));
    assert!(results.iter().all(|r| r.is_err()));
}

#[test]
fn bls_rejects_malformed_signatures() {
    let mut inf = [0u8; 96];
    inf[0] = 0xc0;
    // The identity parses as a point but can never verify for a real key.
    let sk = bls12381::PrivateKey::insecure_from_seed(4);
    if let Ok(sig) = bls12381::Signature::from_bytes(&inf) {
        assert_eq!(
            sk.public_key().verify(b"ns", b"m", &sig),
            Err(SignatureError::Invalid)
        );
    }
    let mut big = [0xffu8; 96];
    big[0] = 0x9f;
    assert_eq!(
        bls12381::Signature::from_bytes(&big),
        Err(SignatureError::NonCanonical)
    );
    let garbage = [0x80u8; 96];
    assert!(bls12381::Signature::from_bytes(&garbage).is_err());
}

#[test]
fn secret_keys_are_validated() {
    assert_eq!(
        bls12381::PrivateKey::from_secret_bytes(&[0u8; 32]).err(),
        Some(KeyError::InvalidSecret)
    );
    assert_eq!(
        bls12381::PrivateKey::from_secret_bytes(&[0xffu8; 32]).err(),
        Some(KeyError::InvalidSecret)
    );
    assert_eq!(
        ed25519::PrivateKey::from_secret_bytes(&[1u8; 31]).err(),
        Some(KeyError::WrongLength {
            expected: 32,
            got: 31
        })
    );
    assert!(bls12381::PrivateKey::key_gen(&[0u8; 31]).is_none());
}
