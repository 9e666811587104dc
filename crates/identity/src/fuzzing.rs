//! Harnesses for the cargo-fuzz targets in `fuzz/` (enabled by the `fuzzing` feature).

use crate::{PeerUrl, Signature, Signer, Verifier, bls12381, ed25519};

fn scheme<S: Signer>(data: &[u8]) {
    if let Ok(key) = S::PublicKey::from_bytes(data) {
        // A key that parses re-encodes to exactly the same bytes.
        assert_eq!(key.as_bytes(), data);
        let sig_len = <<S::PublicKey as Verifier>::Signature as Signature>::LEN;
        let sig_bytes: Vec<u8> = data.iter().copied().cycle().take(sig_len).collect();
        if let Ok(sig) =
            <<S::PublicKey as Verifier>::Signature as Signature>::from_bytes(&sig_bytes)
        {
            assert_eq!(sig.as_bytes(), &sig_bytes[..]);
            let _ = key.verify(b"fuzz", data, &sig);
        }
    }
    let _ = <<S::PublicKey as Verifier>::Signature as Signature>::from_bytes(data);
    let _ = S::from_secret_bytes(data);
}

/// Parses `data` as every kind of key, signature and peer URL; panics only on a broken
/// invariant (a parsed value that does not re-encode to its input).
pub fn parse_everything(data: &[u8]) {
    scheme::<ed25519::PrivateKey>(data);
    scheme::<bls12381::PrivateKey>(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(url) = text.parse::<PeerUrl>()
    {
        // Printing and re-parsing gives the same URL: a failure here is the bug being hunted.
        let again: PeerUrl = url.to_string().parse().expect("printed URL parses");
        assert_eq!(again, url);
    }
}
