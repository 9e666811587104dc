//! Signed peer records: the exact signed bytes, signing, verification, and a verified record.
//!
//! A record says "key K is reachable at address A, as of timestamp T" and is signed by K. A
//! is a socket or a host name ([`crate::host::Address`]). The signature covers, through the
//! identity crate's domain separation ([`p2p_identity::signing_payload`]):
//!
//! ```text
//! namespace  = the network namespace (Config::namespace)
//! message    = "_P2P_DISCOVERY_PEER_RECORD"      26 bytes (RECORD_MESSAGE_PREFIX)
//!            || u8 address length                 1 byte (7, 19, or 5..=255 for a name)
//!            || address encoding                  the bytes of `Peer.socket` (crate::socket,
//!                                                 crate::host)
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
use crate::host::{Address, encode_address};

/// Domain-separation prefix of the signed message of a peer record.
pub const _P2P_DISCOVERY_PEER_RECORD: &[u8] = b"_P2P_DISCOVERY_PEER_RECORD";

/// The message (without namespace) that a record's signature covers (see the module docs),
/// for a socket address.
pub fn record_message(socket: &SocketAddr, timestamp: u64) -> Vec<u8> {
    record_message_for(&Address::Socket(*socket), timestamp)
}

/// The message (without namespace) that a record's signature covers, for any address.
pub fn record_message_for(address: &Address, timestamp: u64) -> Vec<u8> {
    let enc = encode_address(address);
    let addr = enc.as_bytes();
    let mut out = Vec::with_capacity(_P2P_DISCOVERY_PEER_RECORD.len() + 1 + addr.len() + 8);
    out.extend_from_slice(_P2P_DISCOVERY_PEER_RECORD);
    // Every encoding is at most `MAX_ADDRESS_LEN` (255) bytes.
    out.push(addr.len() as u8);
    out.extend_from_slice(addr);
    out.extend_from_slice(&timestamp.to_be_bytes());
    out
}

/// Signs a record of a socket address for `signer`'s own key and returns it in wire form.
pub fn sign_record<S: Signer>(
    signer: &S,
    namespace: &[u8],
    socket: SocketAddr,
    timestamp: u64,
) -> Peer {
    sign_record_for(signer, namespace, &Address::Socket(socket), timestamp)
}

/// Signs a record of any address (a socket or a host name) for `signer`'s own key.
pub fn sign_record_for<S: Signer>(
    signer: &S,
    namespace: &[u8],
    address: &Address,
    timestamp: u64,
) -> Peer {
    let signature = signer.sign(namespace, &record_message_for(address, timestamp));
    Peer {
        socket: Bytes::copy_from_slice(encode_address(address).as_bytes()),
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
    verify_record_for(
        namespace,
        key,
        &Address::Socket(*socket),
        timestamp,
        signature,
    )
}

/// Like [`verify_record`] for any address.
///
/// Errors: [`Error::MalformedSignature`], [`Error::BadSignature`].
pub fn verify_record_for<V: Verifier>(
    namespace: &[u8],
    key: &V,
    address: &Address,
    timestamp: u64,
    signature: &[u8],
) -> Result<(), Error> {
    let sig = V::Signature::from_bytes(signature).map_err(Error::MalformedSignature)?;
    key.verify(namespace, &record_message_for(address, timestamp), &sig)
        .map_err(|_| Error::BadSignature)
}

/// A record whose signature has been verified for the key it is stored under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRecord {
    address: Address,
    timestamp: u64,
    signature: Bytes,
    /// The wire form (socket encoding, key bytes), kept so gossip answers need no allocation
    /// per record.
    socket_bytes: Bytes,
    key_bytes: Bytes,
}

impl VerifiedRecord {
    /// The advertised address (a socket or a host name).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The advertised socket address, `None` for a host name.
    pub fn socket(&self) -> Option<SocketAddr> {
        self.address.socket()
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
        address: &Address,
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
        address: &Address,
        timestamp: u64,
        signature: &Bytes,
    ) -> Result<Arc<VerifiedRecord>, Error> {
        verify_record_for(namespace, key, address, timestamp, signature)?;
        Ok(Arc::new(VerifiedRecord {
            address: address.clone(),
            timestamp,
            signature: Bytes::copy_from_slice(signature),
            socket_bytes: Bytes::copy_from_slice(encode_address(address).as_bytes()),
            key_bytes: Bytes::copy_from_slice(key.as_bytes()),
        }))
    }
}

type CacheKey = (u64, Bytes);
type CacheEntry = (Box<[u8]>, Box<[u8]>, Address, Arc<VerifiedRecord>);

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
        address: &Address,
        timestamp: u64,
        signature: &Bytes,
    ) -> Result<Arc<VerifiedRecord>, Error> {
        let cache_key = (timestamp, signature.clone());
        if let Some((k, ns, a, rec)) = self.inner.borrow().get(&cache_key)
            && &**k == key.as_bytes()
            && &**ns == namespace
            && a == address
        {
            return Ok(rec.clone());
        }
        let rec = DirectVerifier.verify(namespace, key, address, timestamp, signature)?;
        *self.verified.borrow_mut() += 1;
        self.inner.borrow_mut().insert(
            cache_key,
            (
                key.as_bytes().into(),
                namespace.into(),
                address.clone(),
                rec.clone(),
            ),
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
        let a = cache.verify(b"ns", &key, &socket.into(), 5, &sig).unwrap();
        let b = cache.verify(b"ns", &key, &socket.into(), 5, &sig).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.verifications(), 1);
        // Same signature bytes under another key, namespace or socket: a real check, which fails.
        assert_eq!(
            cache.verify(b"ns", &other_key, &socket.into(), 5, &sig),
            Err(Error::BadSignature)
        );
        assert_eq!(
            cache.verify(b"xx", &key, &socket.into(), 5, &sig),
            Err(Error::BadSignature)
        );
        let other: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert_eq!(
            cache.verify(b"ns", &key, &other.into(), 5, &sig),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn host_record_message_layout() {
        let address: Address = "node1.example.com:258".parse().unwrap();
        let msg = record_message_for(&address, 0x0102_0304_0506_0708);
        let mut expected = b"_P2P_DISCOVERY_PEER_RECORD".to_vec();
        expected.extend_from_slice(&[21, 0x48, 17]);
        expected.extend_from_slice(b"node1.example.com");
        expected.extend_from_slice(&[1, 2]);
        expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(msg, expected);
        // A socket record's message is unchanged by the host extension.
        let socket: SocketAddr = "127.1.2.3:258".parse().unwrap();
        assert_eq!(
            record_message_for(&Address::Socket(socket), 9),
            record_message(&socket, 9)
        );
    }

    fn sign_and_verify_host<S: Signer>() {
        let signer = S::insecure_from_seed(7);
        let key = signer.public_key();
        let address: Address = "validator1.example.com:9000".parse().unwrap();
        let peer = sign_record_for(&signer, b"ns", &address, 42);
        assert_eq!(
            crate::host::decode_address(&peer.socket),
            Ok(address.clone())
        );
        let sig = peer.signature.unwrap().signature;
        assert_eq!(verify_record_for(b"ns", &key, &address, 42, &sig), Ok(()));
        let mut cache = SharedRecordCache::new();
        let rec = cache.verify(b"ns", &key, &address, 42, &sig).unwrap();
        assert_eq!(rec.address(), &address);
        assert_eq!(rec.socket(), None);
        assert_eq!(rec.to_peer().socket, peer.socket);
        // Another name, port, or the same port as a socket: no.
        for other in [
            "validator2.example.com:9000",
            "validator1.example.com:9001",
            "validator1.example.co:9000",
            "127.0.0.1:9000",
        ] {
            let other: Address = other.parse().unwrap();
            assert_eq!(
                verify_record_for(b"ns", &key, &other, 42, &sig),
                Err(Error::BadSignature),
                "{other}"
            );
        }
    }

    #[test]
    fn host_records_sign_and_verify_both_schemes() {
        sign_and_verify_host::<ed25519::PrivateKey>();
        sign_and_verify_host::<bls12381::PrivateKey>();
    }
}
