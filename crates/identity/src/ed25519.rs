//! Ed25519 identities (RFC 8032) with strict verification.
//!
//! Public keys are 32 bytes, signatures 64 bytes, secret keys the 32-byte seed of RFC 8032.
//! Parsing rejects non-canonical point encodings and small-order points; verification uses
//! ed25519-dalek's `verify_strict`, which also rejects non-canonical `s` and small-order `R`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::{KeyError, SchemeKind, SignatureError, signing_payload};

/// An Ed25519 private key, wiped when dropped.
pub struct PrivateKey {
    key: SigningKey,
    public: PublicKey,
}

impl PrivateKey {
    fn from_seed_bytes(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let public = PublicKey::from_verifying_key(key.verifying_key());
        Self { key, public }
    }

    /// Signs `message` as is, without namespace (raw RFC 8032 signing).
    ///
    /// Only for conformance tests against RFC 8032 vectors; protocol code signs through
    /// [`crate::Signer::sign`], which adds the namespace.
    pub fn sign_raw(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature(self.key.sign(message).to_bytes())
    }
}

/// The secret is an ed25519-dalek `SigningKey`, which wipes itself on drop (its `zeroize`
/// feature); the public half is not secret.
impl ZeroizeOnDrop for PrivateKey {}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519::PrivateKey({})", self.public)
    }
}

impl crate::Signer for PrivateKey {
    type PublicKey = PublicKey;
    const SECRET_LEN: usize = 32;

    fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed_bytes(&seed)
    }

    fn insecure_from_seed(seed: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"_P2P_IDENTITY_INSECURE_ED25519_SEED");
        hasher.update(seed.to_be_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        Self::from_seed_bytes(&digest)
    }

    fn from_secret_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let seed: &[u8; 32] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: 32,
            got: bytes.len(),
        })?;
        Ok(Self::from_seed_bytes(seed))
    }

    fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        // From the borrowed seed: `to_bytes` would leave an unwiped copy on the stack.
        Zeroizing::new(self.key.as_bytes().to_vec())
    }

    fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    fn sign(&self, namespace: &[u8], message: &[u8]) -> Signature {
        self.sign_raw(&signing_payload(namespace, message))
    }
}

/// An Ed25519 public key (32 bytes, canonical compressed Edwards y).
#[derive(Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    bytes: [u8; 32],
}

impl PublicKey {
    fn from_verifying_key(key: VerifyingKey) -> Self {
        Self {
            bytes: key.to_bytes(),
            key,
        }
    }

    /// Verifies `signature` over `message` as is, without namespace (raw RFC 8032, strict).
    ///
    /// Only for conformance tests; protocol code verifies through [`crate::Verifier::verify`].
    pub fn verify_raw(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.key
            .verify_strict(message, &sig)
            .map_err(|_| SignatureError::Invalid)
    }
}

impl crate::Verifier for PublicKey {
    type Signature = Signature;
    const SCHEME: SchemeKind = SchemeKind::Ed25519;
    const LEN: usize = 32;

    fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: 32,
            got: bytes.len(),
        })?;
        let key = VerifyingKey::from_bytes(&arr).map_err(|_| KeyError::NonCanonical)?;
        // The decoder accepts some non-canonical encodings (y >= p, or a sign bit on x = 0);
        // the canonical re-encoding must give back the same bytes.
        if key.to_edwards().compress().to_bytes() != arr {
            return Err(KeyError::NonCanonical);
        }
        if key.is_weak() {
            return Err(KeyError::WeakKey);
        }
        Ok(Self { key, bytes: arr })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn verify(
        &self,
        namespace: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        self.verify_raw(&signing_payload(namespace, message), signature)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.bytes))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", hex::encode(self.bytes))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        <Self as crate::Verifier>::from_hex(s)
    }
}

/// An Ed25519 signature (64 bytes: `R || s`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl crate::Signature for Signature {
    const LEN: usize = 64;

    fn from_bytes(bytes: &[u8]) -> Result<Self, SignatureError> {
        let arr: [u8; 64] = bytes.try_into().map_err(|_| SignatureError::WrongLength {
            expected: 64,
            got: bytes.len(),
        })?;
        // `s` must be below the group order L < 2^253; the top three bits being set is the
        // cheap, certain rejection. The full `s < L` check happens in `verify_strict`.
        if arr[63] & 0xe0 != 0 {
            return Err(SignatureError::NonCanonical);
        }
        Ok(Self(arr))
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519::Signature({})", hex::encode(self.0))
    }
}
