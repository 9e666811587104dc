//! Private keys wipe their secret material when dropped.
//!
//! What is wiped and what cannot be is listed in `docs/security.md` ("Secrets in memory").

use p2p_identity::{Signer, bls12381, ed25519};
use zeroize::ZeroizeOnDrop;

/// Compiles only for types that promise to wipe their secrets when dropped.
fn assert_zeroize_on_drop<T: ZeroizeOnDrop>() {}

#[test]
fn private_keys_are_zeroize_on_drop() {
    assert_zeroize_on_drop::<ed25519::PrivateKey>();
    assert_zeroize_on_drop::<bls12381::PrivateKey>();
}

#[test]
fn secret_bytes_come_back_in_zeroizing_buffers_and_round_trip() {
    fn round_trip<S: Signer>() {
        let key = S::insecure_from_seed(5);
        let secret: zeroize::Zeroizing<Vec<u8>> = key.secret_bytes();
        assert_eq!(secret.len(), S::SECRET_LEN);
        let back = S::from_secret_bytes(&secret).unwrap();
        assert_eq!(back.public_key(), key.public_key());
    }
    round_trip::<ed25519::PrivateKey>();
    round_trip::<bls12381::PrivateKey>();
}
