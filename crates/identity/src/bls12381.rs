//! BLS12-381 identities, "min-pk" variant: public keys in G1 (48 bytes compressed), signatures
//! in G2 (96 bytes compressed).
//!
//! Follows the IETF BLS signature draft (draft-irtf-cfrg-bls-signature-05) with the
//! proof-of-possession ciphersuite [`CIPHERSUITE_DST`], the one Ethereum consensus clients use,
//! so keys and signatures made here verify there and the other way around:
//!
//! - `KeyGen` (HKDF-SHA-256 with the salt `BLS-SIG-KEYGEN-SALT-`), secret keys as 32-byte
//!   big-endian scalars;
//! - `SkToPk`, `KeyValidate` (point decodes canonically, is in the subgroup, is not the
//!   identity);
//! - `CoreSign` / `CoreVerify` with hash-to-curve `BLS12381G2_XMD:SHA-256_SSWU_RO_`.
//!
//! Point encodings are the compressed ZCash/IETF format of the `bls12_381` crate; its decoder
//! rejects non-canonical field elements, malformed flag bits and points outside the subgroup.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve};
use bls12_381::{G1Affine, G2Affine, G2Prepared, G2Projective, Scalar};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{KeyError, SchemeKind, SignatureError, signing_payload};

/// The domain-separation tag of the ciphersuite (hash-to-curve DST).
pub const CIPHERSUITE_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Salt of the draft's `KeyGen`.
const KEYGEN_SALT: &[u8] = b"BLS-SIG-KEYGEN-SALT-";

/// A BLS12-381 private key (a non-zero scalar), wiped when dropped.
pub struct PrivateKey {
    scalar: Scalar,
    public: PublicKey,
}

impl PrivateKey {
    /// The draft's `KeyGen(IKM)` with empty `key_info`; `ikm` must be at least 32 bytes.
    ///
    /// Returns `None` when `ikm` is shorter than 32 bytes.
    pub fn key_gen(ikm: &[u8]) -> Option<Self> {
        if ikm.len() < 32 {
            return None;
        }
        let mut salt: Vec<u8> = KEYGEN_SALT.to_vec();
        let mut ikm_padded = Zeroizing::new(Vec::with_capacity(ikm.len() + 1));
        ikm_padded.extend_from_slice(ikm);
        ikm_padded.push(0); // I2OSP(0, 1)
        loop {
            salt = Sha256::digest(&salt).to_vec();
            // `extract` rather than `new`, so the PRK that hkdf hands back can be wiped.
            let (mut prk, hk) = hkdf::Hkdf::<Sha256>::extract(Some(&salt), &ikm_padded);
            prk.as_mut_slice().zeroize();
            let mut okm = Zeroizing::new([0u8; 48]);
            // key_info is empty; I2OSP(L, 2) with L = 48.
            // 48 bytes is far below HKDF-SHA-256's 255 * 32 byte limit.
            if hk.expand(&[0, 48], okm.as_mut()).is_err() {
                return None;
            }
            // OS2IP(OKM) mod r: big-endian 48 bytes into a little-endian 64-byte buffer.
            let mut wide = Zeroizing::new([0u8; 64]);
            for (i, b) in okm.iter().rev().enumerate() {
                wide[i] = *b;
            }
            let mut scalar = Scalar::from_bytes_wide(&wide);
            if scalar != Scalar::zero() {
                let key = Self::from_scalar(&scalar);
                scalar.zeroize();
                return Some(key);
            }
        }
    }

    fn from_scalar(scalar: &Scalar) -> Self {
        let point = G1Affine::from(G1Affine::generator() * scalar);
        let public = PublicKey {
            bytes: point.to_compressed(),
            point,
        };
        Self {
            scalar: *scalar,
            public,
        }
    }

    /// The draft's `CoreSign`: signs `message` as is, without namespace.
    ///
    /// Only for conformance tests against the ciphersuite's vectors; protocol code signs
    /// through [`crate::Signer::sign`], which adds the namespace.
    pub fn sign_raw(&self, message: &[u8]) -> Signature {
        let q = hash_to_g2(message);
        #[allow(
            clippy::op_ref,
            reason = "by reference: no by-value copy of the secret scalar in this frame"
        )]
        let point = G2Affine::from(q * &self.scalar);
        Signature {
            bytes: point.to_compressed(),
            point,
        }
    }
}

fn hash_to_g2(message: &[u8]) -> G2Projective {
    <G2Projective as HashToCurve<ExpandMsgXmd<Sha256>>>::hash_to_curve([message], CIPHERSUITE_DST)
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        // `Scalar` is `Copy`; bls12_381's `zeroize` feature makes this a volatile write of zero.
        self.scalar.zeroize();
    }
}

impl ZeroizeOnDrop for PrivateKey {}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bls12381::PrivateKey({})", self.public)
    }
}

impl crate::Signer for PrivateKey {
    type PublicKey = PublicKey;
    const SECRET_LEN: usize = 32;

    fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ikm.as_mut());
        // Invariant: `ikm` is 32 bytes, the minimum `key_gen` accepts.
        Self::key_gen(ikm.as_ref()).expect("32-byte IKM is accepted by KeyGen")
    }

    fn insecure_from_seed(seed: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"_P2P_IDENTITY_INSECURE_BLS12381_SEED");
        hasher.update(seed.to_be_bytes());
        let ikm: [u8; 32] = hasher.finalize().into();
        // Invariant: `ikm` is 32 bytes, the minimum `key_gen` accepts.
        Self::key_gen(&ikm).expect("32-byte IKM is accepted by KeyGen")
    }

    fn from_secret_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let be: &[u8; 32] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: 32,
            got: bytes.len(),
        })?;
        let mut le = Zeroizing::new(*be);
        le.reverse();
        let mut scalar = Zeroizing::new(
            Option::<Scalar>::from(Scalar::from_bytes(&le)).ok_or(KeyError::InvalidSecret)?,
        );
        if *scalar == Scalar::zero() {
            return Err(KeyError::InvalidSecret);
        }
        let key = Self::from_scalar(&scalar);
        scalar.zeroize();
        Ok(key)
    }

    fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = Zeroizing::new(self.scalar.to_bytes());
        bytes.reverse();
        Zeroizing::new(bytes.to_vec())
    }

    fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    fn sign(&self, namespace: &[u8], message: &[u8]) -> Signature {
        self.sign_raw(&signing_payload(namespace, message))
    }
}

/// A BLS12-381 public key: a point of G1, 48 bytes compressed.
#[derive(Clone)]
pub struct PublicKey {
    point: G1Affine,
    bytes: [u8; 48],
}

impl PublicKey {
    /// The draft's `CoreVerify`: verifies `signature` over `message` as is, without namespace.
    ///
    /// Only for conformance tests; protocol code verifies through [`crate::Verifier::verify`].
    pub fn verify_raw(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let q = G2Affine::from(hash_to_g2(message));
        // e(pk, H(m)) == e(g1, sig)  <=>  e(pk, H(m)) * e(-g1, sig) == 1
        let neg_g1 = -G1Affine::generator();
        let result = bls12_381::multi_miller_loop(&[
            (&self.point, &G2Prepared::from(q)),
            (&neg_g1, &G2Prepared::from(signature.point)),
        ])
        .final_exponentiation();
        if result == bls12_381::Gt::identity() {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

impl crate::Verifier for PublicKey {
    type Signature = Signature;
    const SCHEME: SchemeKind = SchemeKind::Bls12381;
    const LEN: usize = 48;

    fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 48] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: 48,
            got: bytes.len(),
        })?;
        // Decode without the subgroup check first, so the error says which rule failed.
        let point = Option::<G1Affine>::from(G1Affine::from_compressed_unchecked(&arr))
            .ok_or(KeyError::NonCanonical)?;
        if bool::from(point.is_identity()) {
            return Err(KeyError::WeakKey);
        }
        if !bool::from(point.is_torsion_free()) {
            return Err(KeyError::NotInSubgroup);
        }
        Ok(Self { point, bytes: arr })
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
        write!(f, "bls12381:{}", hex::encode(self.bytes))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        <Self as crate::Verifier>::from_hex(s)
    }
}

/// A BLS12-381 signature: a point of G2, 96 bytes compressed.
#[derive(Clone)]
pub struct Signature {
    point: G2Affine,
    bytes: [u8; 96],
}

impl crate::Signature for Signature {
    const LEN: usize = 96;

    fn from_bytes(bytes: &[u8]) -> Result<Self, SignatureError> {
        let arr: [u8; 96] = bytes.try_into().map_err(|_| SignatureError::WrongLength {
            expected: 96,
            got: bytes.len(),
        })?;
        // `from_compressed` checks canonical encoding, the curve equation and the subgroup.
        let point = Option::<G2Affine>::from(G2Affine::from_compressed(&arr))
            .ok_or(SignatureError::NonCanonical)?;
        Ok(Self { point, bytes: arr })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Signature {}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bls12381::Signature({})", hex::encode(self.bytes))
    }
}
