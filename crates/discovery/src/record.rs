//! Signed peer records: the exact signed bytes, signing, verification, and a verified record.
//!
//! A record says "key K is reachable at socket S, as of timestamp T" and is signed by K. The
//! signature covers, through the identity crate's domain separation
//! ([`p2p_identity::signing_payload`]):
//!
//! ```text
//! namespace  = the network namespace (Config::namespace)
//! message    = "_P2P_DISCOVERY_PEER_RECORD"      26 bytes (RECORD_MESSAGE_PREFIX)
//!            || u8 socket length                  1 byte (7 or 19)
//!            || socket encoding                   7 or 19 bytes (see crate::socket)
//!            || u64 big-endian timestamp          8 bytes (ms since the Unix epoch)
//! signed     = u32_be(len(namespace)) || namespace || message
//! ```
//!
//! The key itself is not in the message: the signature is checked against it, so it is bound
//! anyway. The prefix separates records from every other signature made with the same key in
//! the same namespace (handshakes, application messages).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use p2p_identity::{Signature as _, Signer, Verifier};
use p2p_proto::{Peer, Signature as WireSignature};

use crate::Error;
use crate::socket::encode_socket;

/// Domain-separation prefix of the signed message of a peer record.
pub const _P2P_DISCOVERY_PEER_RECORD: &[u8] = b"_P2P_DISCOVERY_PEER_RECORD";

/// The message (without namespace) that a record's signature covers (see the module docs).
pub fn record_message(socket: &SocketAddr, timestamp: u64) -> Vec<u8> {
    let enc = encode_socket(socket);
    let sock = enc.as_bytes();
    let mut out = Vec::with_capacity(_P2P_DISCOVERY_PEER_RECORD.len() + 1 + sock.len() + 8);
    out.extend_from_slice(_P2P_DISCOVERY_PEER_RECORD);
    // The socket encoding is at most 19 bytes.
    out.push(sock.len() as u8);
    out.extend_from_slice(sock);
    out.extend_from_slice(&timestamp.to_be_bytes());
    out
}

/// Signs a record for `signer`'s own key and returns it in wire form.
pub fn sign_record<S: Signer>(
    signer: &S,
    namespace: &[u8],
    socket: SocketAddr,
    timestamp: u64,
) -> Peer {
    let signature = signer.sign(namespace, &record_message(&socket, timestamp));
    Peer {
        socket: Bytes::copy_from_slice(encode_socket(&socket).as_bytes()),
        timestamp,
        signature: Some(WireSignature {
            public_key: Bytes::copy_from_slice(signer.public_key().as_bytes()),
            signature: Bytes::copy_from_slice(signature.as_bytes()),
        }),
    }
}

/// Parses `signature` and verifies it as `key`'s record signature over (socket, timestamp).
///
/// Errors: [`Error::MalformedSignature`], [`Error::BadSignature`].
pub fn verify_record<V: Verifier>(
    namespace: &[u8],
    key: &V,
    socket: &SocketAddr,
    timestamp: u64,
    signature: &[u8],
) -> Result<(), Error> {
    let sig = V::Signature::from_bytes(signature).map_err(Error::MalformedSignature)?;
    key.verify(namespace, &record_message(socket, timestamp), &sig)
        .map_err(|_| Error::BadSignature)
}

/// A record whose signature has been verified for the key it is stored under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRecord {
    socket: SocketAddr,
    timestamp: u64,
    signature: Bytes,
    /// The wire form (socket encoding, key bytes), kept so gossip answers need no allocation
    /// per record.
    socket_bytes: Bytes,
    key_bytes: Bytes,
}

impl VerifiedRecord {
    /// The advertised socket address.
    pub fn socket(&self) -> SocketAddr {
        self.socket
    }

    /// The record's timestamp (ms since the Unix epoch).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The canonical signature bytes.
    pub fn signature(&self) -> &Bytes {
        &self.signature
    }

    /// The wire form of this record.
    pub fn to_peer(&self) -> Peer {
        Peer {
            socket: self.socket_bytes.clone(),
            timestamp: self.timestamp,
            signature: Some(WireSignature {
                public_key: self.key_bytes.clone(),
                signature: self.signature.clone(),
            }),
        }
    }
}

/// How the tracker turns a decoded record into a [`VerifiedRecord`].
///
/// [`DirectVerifier`] (the default) verifies every record. [`SharedRecordCache`] remembers
/// records it has verified (keyed by every signed field and the signature bytes), so a
/// simulation of many trackers in one process verifies each distinct record once, for real.
pub trait RecordVerifier<V: Verifier> {
    /// Verifies the record and returns it in shared form.
    ///
    /// Errors: [`Error::MalformedSignature`], [`Error::BadSignature`].
    fn verify(
        &mut self,
        namespace: &[u8],
        key: &V,
        socket: SocketAddr,
        timestamp: u64,
        signature: &Bytes,
    ) -> Result<Arc<VerifiedRecord>, Error>;
}

/// Verifies every record; copies the signature bytes so a stored record never pins the frame
/// it arrived in.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectVerifier;

impl<V: Verifier> RecordVerifier<V> for DirectVerifier {
    fn verify(
        &mut self,
        namespace: &[u8],
        key: &V,
        socket: SocketAddr,
        timestamp: u64,
        signature: &Bytes,
    ) -> Result<Arc<VerifiedRecord>, Error> {
        verify_record(namespace, key, &socket, timestamp, signature)?;
        Ok(Arc::new(VerifiedRecord {
            socket,
            timestamp,
            signature: Bytes::copy_from_slice(signature),
            socket_bytes: Bytes::copy_from_slice(encode_socket(&socket).as_bytes()),
            key_bytes: Bytes::copy_from_slice(key.as_bytes()),
        }))
    }
}

type CacheKey = (u64, Bytes);
type CacheEntry = (Box<[u8]>, Box<[u8]>, SocketAddr, Arc<VerifiedRecord>);

/// A verification cache shared by the trackers of one process (single-threaded).
///
/// A hit requires the same key bytes, namespace, socket, timestamp and signature bytes as a
/// record that verified before, so it returns exactly the answer a fresh verification would.
/// Failed verifications are not cached. Entries are never evicted: meant for simulations and
/// tests, not for a long-running node (which verifies each record once anyway, since equal or
/// older timestamps are ignored before verification).
#[derive(Clone, Debug, Default)]
pub struct SharedRecordCache {
    inner: Rc<RefCell<HashMap<CacheKey, CacheEntry>>>,
    verified: Rc<RefCell<u64>>,
}

impl SharedRecordCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many real signature verifications succeeded through this cache.
    pub fn verifications(&self) -> u64 {
        *self.verified.borrow()
    }
}

impl<V: Verifier> RecordVerifier<V> for SharedRecordCache {
    fn verify(
        &mut self,
        namespace: &[u8],
        key: &V,
        socket: SocketAddr,
        timestamp: u64,
        signature: &Bytes,
    ) -> Result<Arc<VerifiedRecord>, Error> {
        let cache_key = (timestamp, signature.clone());
        if let Some((k, ns, s, rec)) = self.inner.borrow().get(&cache_key)
            && &**k == key.as_bytes()
            && &**ns == namespace
            && *s == socket
        {
            return Ok(rec.clone());
        }
        let rec = DirectVerifier.verify(namespace, key, socket, timestamp, signature)?;
        *self.verified.borrow_mut() += 1;
        self.inner.borrow_mut().insert(
            cache_key,
            (key.as_bytes().into(), namespace.into(), socket, rec.clone()),
        );
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_identity::{bls12381, ed25519};

    #[test]
    fn message_layout() {
        let socket: SocketAddr = "127.1.2.3:258".parse().unwrap();
        let msg = record_message(&socket, 0x0102_0304_0506_0708);
        let mut expected = b"_P2P_DISCOVERY_PEER_RECORD".to_vec();
        expected.extend_from_slice(&[7, 4, 127, 1, 2, 3, 1, 2]);
        expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(msg, expected);
    }

    fn sign_and_verify<S: Signer>() {
        let signer = S::insecure_from_seed(7);
        let key = signer.public_key();
        let socket: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let peer = sign_record(&signer, b"ns", socket, 42);
        let sig = peer.signature.unwrap();
        assert_eq!(&sig.public_key[..], key.as_bytes());
        assert_eq!(
            verify_record(b"ns", &key, &socket, 42, &sig.signature),
            Ok(())
        );
        // Another namespace, timestamp or socket does not verify.
        assert_eq!(
            verify_record(b"other", &key, &socket, 42, &sig.signature),
            Err(Error::BadSignature)
        );
        assert_eq!(
            verify_record(b"ns", &key, &socket, 43, &sig.signature),
            Err(Error::BadSignature)
        );
        let other: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert_eq!(
            verify_record(b"ns", &key, &other, 42, &sig.signature),
            Err(Error::BadSignature)
        );
        assert!(matches!(
            verify_record(b"ns", &key, &socket, 42, &sig.signature[1..]),
            Err(Error::MalformedSignature(_))
        ));
    }

    #[test]
    fn sign_and_verify_both_schemes() {
        sign_and_verify::<ed25519::PrivateKey>();
        sign_and_verify::<bls12381::PrivateKey>();
    }

    #[test]
    fn shared_cache_verifies_once_and_rejects_mismatches() {
        let signer = ed25519::PrivateKey::insecure_from_seed(1);
        let key = signer.public_key();
        let other_key = ed25519::PrivateKey::insecure_from_seed(2).public_key();
        let socket: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let sig = sign_record(&signer, b"ns", socket, 5)
            .signature
            .unwrap()
            .signature;
        let mut cache = SharedRecordCache::new();
        let a = cache.verify(b"ns", &key, socket, 5, &sig).unwrap();
        let b = cache.verify(b"ns", &key, socket, 5, &sig).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.verifications(), 1);
        // Same signature bytes under another key, namespace or socket: a real check, which fails.
        assert_eq!(
            cache.verify(b"ns", &other_key, socket, 5, &sig),
            Err(Error::BadSignature)
        );
        assert_eq!(
            cache.verify(b"xx", &key, socket, 5, &sig),
            Err(Error::BadSignature)
        );
        let other: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert_eq!(
            cache.verify(b"ns", &key, other, 5, &sig),
            Err(Error::BadSignature)
        );
    }
}
