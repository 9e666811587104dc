//! The AEAD backend: the `chacha20poly1305` crate by default, aws-lc-rs with the `aws-lc-rs`
//! feature. Both implement IETF ChaCha20-Poly1305 (RFC 8439) with an empty associated data, so
//! the wire format does not depend on the choice.

use crate::nonce::NONCE_LEN;
use crate::{KEY_LEN, TAG_LEN};

/// Name of the backend compiled in (for logs and bench labels).
#[cfg(not(feature = "aws-lc-rs"))]
pub const BACKEND: &str = "chacha20poly1305";
/// Name of the backend compiled in (for logs and bench labels).
#[cfg(feature = "aws-lc-rs")]
pub const BACKEND: &str = "aws-lc-rs";

/// The backend refused or failed an operation (the reason is deliberately opaque).
#[derive(Debug)]
pub(crate) struct BackendError;

#[cfg(not(feature = "aws-lc-rs"))]
mod imp {
    use super::{BackendError, KEY_LEN, NONCE_LEN, TAG_LEN};
    use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};
    use zeroize::Zeroize;

    /// Wipes its key on drop (`chacha20poly1305`'s `zeroize` feature).
    pub(crate) struct AeadKey(ChaCha20Poly1305);

    impl AeadKey {
        pub(crate) fn new(key: &[u8; KEY_LEN]) -> Self {
            // `Key` is the crate's own array type: fill it from the borrowed key (no by-value
            // copy) and wipe it once the cipher holds its copy.
            let mut k = Key::default();
            k.copy_from_slice(key);
            let aead = ChaCha20Poly1305::new(&k);
            k.as_mut_slice().zeroize();
            Self(aead)
        }

        #[inline]
        pub(crate) fn seal(
            &self,
            nonce: &[u8; NONCE_LEN],
            data: &mut [u8],
        ) -> Result<[u8; TAG_LEN], BackendError> {
            let tag = self
                .0
                .encrypt_inout_detached(&Nonce::from(*nonce), &[], data.into())
                .map_err(|_| BackendError)?;
            Ok(tag.into())
        }

        #[inline]
        pub(crate) fn open(
            &self,
            nonce: &[u8; NONCE_LEN],
            data: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), BackendError> {
            self.0
                .decrypt_inout_detached(&Nonce::from(*nonce), &[], data.into(), &Tag::from(*tag))
                .map_err(|_| BackendError)
        }
    }
}

#[cfg(feature = "aws-lc-rs")]
mod imp {
    use super::{BackendError, KEY_LEN, NONCE_LEN, TAG_LEN};
    use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

    pub(crate) struct AeadKey(LessSafeKey);

    impl AeadKey {
        pub(crate) fn new(key: &[u8; KEY_LEN]) -> Self {
            // A 32-byte key is exactly what CHACHA20_POLY1305 requires, so this cannot fail.
            let unbound = UnboundKey::new(&CHACHA20_POLY1305, key)
                .expect("a 32-byte key is valid for ChaCha20-Poly1305");
            Self(LessSafeKey::new(unbound))
        }

        #[inline]
        pub(crate) fn seal(
            &self,
            nonce: &[u8; NONCE_LEN],
            data: &mut [u8],
        ) -> Result<[u8; TAG_LEN], BackendError> {
            let tag = self
                .0
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::empty(),
                    data,
                )
                .map_err(|_| BackendError)?;
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            Ok(out)
        }

        #[inline]
        pub(crate) fn open(
            &self,
            nonce: &[u8; NONCE_LEN],
            data: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), BackendError> {
            self.0
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::empty(),
                    tag,
                    data,
                )
                .map(|_| ())
                .map_err(|_| BackendError)
        }
    }
}

pub(crate) use imp::AeadKey;
