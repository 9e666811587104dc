//! Identity schemes for the p2p workspace: who a peer is, and how it proves it.
//!
//! Every other crate of the workspace is generic over the trait pair defined here:
//! [`Signer`] (a private key) and [`Verifier`] (a public key), with [`Signature`] as the
//! bytes that pass between them. Two schemes are provided:
//!
//! - [`ed25519`]: Ed25519 with strict verification (ed25519-dalek);
//! - [`bls12381`]: BLS12-381 "min-pk" (public keys in G1, signatures in G2) with the IETF
//!   ciphersuite `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`, so keys and signatures
//!   interoperate with existing validator tooling.
//!
//! A peer is named by its public key, or by the short [`PeerId`] of that key, and is reached
//! through a [`PeerUrl`] (`<key-or-id>@<host>:<port>`).
//!
//! # Design
//!
//! - Keys have one canonical byte encoding ([`Verifier::as_bytes`]); parsing accepts exactly
//!   that encoding and nothing else, so two different byte strings never name the same peer.
//! - Keys are totally ordered by their canonical bytes; peer sets are sorted by this order.
//! - Every signature covers a *namespace* and a *message*, domain-separated by
//!   [`signing_payload`]: `u32_be(len(namespace)) || namespace || message`. Callers sign explicit
//!   byte layouts that they document, never a re-encoded protobuf.
//!
//! # Security
//!
//! Requires: private keys generated from a secure RNG ([`Signer::generate`]); the
//! `insecure_from_seed` constructors are for tests and demos only.
//!
//! Provides: strict parsing (wrong lengths, non-canonical encodings, identity and small-order
//! points are typed errors); Ed25519 verification that rejects weak keys and malleable
//! signatures; BLS key validation per the IETF draft (on curve, in the subgroup, not the
//! identity) and signature subgroup checks; domain separation between namespaces, so a
//! signature made for one network never verifies on another.
//!
//! Does not provide: secret-key storage, constant-time guarantees beyond those of the underlying
//! libraries, or aggregate BLS signatures (each signature stands alone, so the
//! proof-of-possession rule of the ciphersuite is not needed for rogue-key resistance).

pub mod bls12381;
pub mod ed25519;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod peer_id;
mod peer_url;

use std::fmt::{Debug, Display};
use std::hash::Hash;

pub use error::{KeyError, PeerUrlError, SignatureError};
pub use peer_id::PeerId;
pub use peer_url::{Host, PeerUrl, PeerUrlTarget};

/// Which identity scheme a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchemeKind {
    /// Ed25519 ([`ed25519`]).
    Ed25519,
    /// BLS12-381, public keys in G1 ([`bls12381`]).
    Bls12381,
}

impl SchemeKind {
    /// The scheme's name as used in configuration files and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Bls12381 => "bls12381",
        }
    }
}

impl Display for SchemeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A signature in its canonical encoding.
pub trait Signature: Clone + Eq + Debug + Send + Sync + 'static {
    /// Length of the canonical encoding in bytes.
    const LEN: usize;

    /// Parses a signature from its canonical encoding.
    ///
    /// Rejects wrong lengths and encodings that can never verify (for BLS: not a point of the
    /// prime-order subgroup of G2).
    fn from_bytes(bytes: &[u8]) -> Result<Self, SignatureError>;

    /// The canonical encoding.
    fn as_bytes(&self) -> &[u8];
}

/// A public key: names a peer and verifies its signatures.
///
/// The order (`Ord`) is the lexicographic order of the canonical bytes; `Display` is lowercase
/// hex of those bytes.
pub trait Verifier: Clone + Eq + Ord + Hash + Debug + Display + Send + Sync + 'static {
    /// The signature type of this scheme.
    type Signature: Signature;

    /// The scheme this key belongs to.
    const SCHEME: SchemeKind;

    /// Length of the canonical encoding in bytes.
    const LEN: usize;

    /// Parses a public key from its canonical encoding, rejecting wrong lengths, non-canonical
    /// encodings, points not on the curve or not in the right subgroup, and the identity or
    /// small-order points.
    fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError>;

    /// The canonical encoding.
    fn as_bytes(&self) -> &[u8];

    /// Verifies `signature` over `message` in `namespace` (see [`signing_payload`]).
    fn verify(
        &self,
        namespace: &[u8],
        message: &[u8],
        signature: &Self::Signature,
    ) -> Result<(), SignatureError>;

    /// The short address of this key.
    fn peer_id(&self) -> PeerId {
        PeerId::of_key_bytes(self.as_bytes())
    }

    /// Parses a key from lowercase or uppercase hex of its canonical encoding.
    fn from_hex(hex_str: &str) -> Result<Self, KeyError> {
        if hex_str.len() != 2 * Self::LEN {
            return Err(KeyError::WrongLength {
                expected: Self::LEN,
                got: hex_str.len() / 2,
            });
        }
        let bytes = hex::decode(hex_str).map_err(|_| KeyError::InvalidHex)?;
        Self::from_bytes(&bytes)
    }
}

/// A private key: signs messages for its public key.
pub trait Signer: Send + Sync + 'static {
    /// The public key type of this scheme.
    type PublicKey: Verifier;

    /// Length of the secret encoding ([`Signer::secret_bytes`]) in bytes.
    const SECRET_LEN: usize;

    /// Generates a fresh key from a cryptographically secure RNG.
    fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self
    where
        Self: Sized;

    /// A deterministic key derived from `seed`.
    ///
    /// **Insecure**: anyone who knows the seed knows the key. For tests, examples and local
    /// demos only.
    fn insecure_from_seed(seed: u64) -> Self
    where
        Self: Sized;

    /// Restores a key from [`Signer::secret_bytes`].
    fn from_secret_bytes(bytes: &[u8]) -> Result<Self, KeyError>
    where
        Self: Sized;

    /// The secret encoding of the key (keep it secret; it is zeroized when dropped).
    fn secret_bytes(&self) -> zeroize::Zeroizing<Vec<u8>>;

    /// The public key.
    fn public_key(&self) -> Self::PublicKey;

    /// Signs `message` in `namespace` (see [`signing_payload`]).
    fn sign(&self, namespace: &[u8], message: &[u8]) -> <Self::PublicKey as Verifier>::Signature;
}

/// The bytes that a signature actually covers: `u32_be(len(namespace)) || namespace || message`.
///
/// The length prefix makes the split between namespace and message unambiguous, so no
/// (namespace, message) pair can be reinterpreted as another.
///
/// # Panics
///
/// Never for namespaces shorter than 4 GiB; longer namespaces are a programming error and
/// saturate the prefix (they cannot be sent by any peer, since namespaces come from local
/// configuration).
pub fn signing_payload(namespace: &[u8], message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(namespace.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + namespace.len() + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(namespace);
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_payload_is_unambiguous() {
        // ("ab", "c") and ("a", "bc") must not produce the same payload.
        assert_ne!(signing_payload(b"ab", b"c"), signing_payload(b"a", b"bc"));
        assert_eq!(
            signing_payload(b"ns", b"m"),
            [0, 0, 0, 2, b'n', b's', b'm'].to_vec()
        );
        assert_eq!(signing_payload(b"", b""), vec![0, 0, 0, 0]);
    }

    #[test]
    fn scheme_names() {
        assert_eq!(SchemeKind::Ed25519.to_string(), "ed25519");
        assert_eq!(SchemeKind::Bls12381.to_string(), "bls12381");
    }
}
