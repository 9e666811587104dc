//! Known-answer tests: RFC 8032 for Ed25519, Ethereum consensus / EIP-2333 vectors for the
//! BLS ciphersuite `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`.

use p2p_identity::{Signature as _, Signer, Verifier, bls12381, ed25519};

fn lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    hex::decode(s).unwrap()
}

#[test]
fn ed25519_rfc8032() {
    let mut count = 0;
    for f in lines(include_str!("vectors/ed25519_rfc8032.txt")) {
        let sk = ed25519::PrivateKey::from_secret_bytes(&unhex(f[0])).unwrap();
        let pk = sk.public_key();
        assert_eq!(pk.as_bytes(), unhex(f[1]).as_slice());
        let msg = unhex(f[2]);
        let sig = sk.sign_raw(&msg);
        assert_eq!(sig.as_bytes(), unhex(f[3]).as_slice());
        // The published signature parses and verifies; a flipped bit does not.
        let published = ed25519::Signature::from_bytes(&unhex(f[3])).unwrap();
        pk.verify_raw(&msg, &published).unwrap();
        let mut tampered = msg.clone();
        tampered.push(0);
        assert!(pk.verify_raw(&tampered, &published).is_err());
        count += 1;
    }
    assert_eq!(count, 3);
}

#[test]
fn bls_pop_ciphersuite() {
    let (mut keygen, mut sk_to_pk, mut sign) = (0, 0, 0);
    for f in lines(include_str!("vectors/bls12381_pop.txt")) {
        match f[0] {
            "keygen" => {
                let sk = bls12381::PrivateKey::key_gen(&unhex(f[1])).unwrap();
                assert_eq!(sk.secret_bytes().as_slice(), unhex(f[2]).as_slice());
                keygen += 1;
            }
            "sk_to_pk" => {
                let sk = bls12381::PrivateKey::from_secret_bytes(&unhex(f[1])).unwrap();
                assert_eq!(sk.public_key().as_bytes(), unhex(f[2]).as_slice());
                // The published key passes KeyValidate.
                bls12381::PublicKey::from_bytes(&unhex(f[2])).unwrap();
                sk_to_pk += 1;
            }
            "sign" => {
                let sk = bls12381::PrivateKey::from_secret_bytes(&unhex(f[1])).unwrap();
                let msg = unhex(f[2]);
                let sig = sk.sign_raw(&msg);
                assert_eq!(sig.as_bytes(), unhex(f[3]).as_slice());
                let published = bls12381::Signature::from_bytes(&unhex(f[3])).unwrap();
                sk.public_key().verify_raw(&msg, &published).unwrap();
                assert!(sk.public_key().verify_raw(&[0x57; 32], &published).is_err());
                sign += 1;
            }
            other => panic!("unknown vector kind {other}"),
        }
    }
    assert_eq!((keygen, sk_to_pk, sign), (3, 3, 3));
}
