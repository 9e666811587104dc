//! The short address of a public key.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::KeyError;

/// The short address of a public key: the first 20 bytes of SHA-256 of its canonical encoding,
/// shown as 40 lowercase hex digits (the construction CometBFT uses for node ids).
///
/// A `PeerId` names a key without carrying it; only the key itself can verify signatures.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId([u8; Self::LEN]);

impl PeerId {
    /// Length in bytes.
    pub const LEN: usize = 20;

    /// The id of a key given by its canonical encoding.
    pub fn of_key_bytes(key: &[u8]) -> Self {
        let digest = Sha256::digest(key);
        let mut id = [0u8; Self::LEN];
        id.copy_from_slice(&digest[..Self::LEN]);
        Self(id)
    }

    /// Wraps 20 raw bytes.
    pub const fn from_array(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", hex::encode(self.0))
    }
}

impl FromStr for PeerId {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        if s.len() != 2 * Self::LEN {
            return Err(KeyError::WrongLength {
                expected: Self::LEN,
                got: s.len() / 2,
            });
        }
        let mut id = [0u8; Self::LEN];
        hex::decode_to_slice(s, &mut id).map_err(|_| KeyError::InvalidHex)?;
        Ok(Self(id))
    }
}
