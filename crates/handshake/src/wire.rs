//! Wire encoding of the handshake messages, the signed bytes, the transcript and the KDF.
//!
//! Every layout here is described byte by byte in `docs/protocol.md`.

use bytes::Bytes;
use hkdf::Hkdf;
use p2p_identity::{Signature, Verifier};
use p2p_proto::{Handshake, ProstMessage};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{HandshakeError, Malformed};

/// Domain-separation label of the namespace tag sent in clear before each handshake message.
pub const _P2P_HANDSHAKE_NAMESPACE_TAG: &[u8] = b"_P2P_HANDSHAKE_NAMESPACE_TAG";
/// Label of the bytes the dialer signs (message 1).
pub const _P2P_HANDSHAKE_HELLO: &[u8] = b"_P2P_HANDSHAKE_HELLO";
/// Label of the bytes the dialee signs (message 2).
pub const _P2P_HANDSHAKE_ANSWER: &[u8] = b"_P2P_HANDSHAKE_ANSWER";
/// Label of the transcript hash (the HKDF salt).
pub const _P2P_HANDSHAKE_TRANSCRIPT: &[u8] = b"_P2P_HANDSHAKE_TRANSCRIPT";
/// HKDF info of the key for frames sent by the dialer.
pub const _P2P_HANDSHAKE_KEY_DIALER: &[u8] = b"_P2P_HANDSHAKE_KEY_DIALER";
/// HKDF info of the key for frames sent by the dialee.
pub const _P2P_HANDSHAKE_KEY_DIALEE: &[u8] = b"_P2P_HANDSHAKE_KEY_DIALEE";
/// Plaintext of the dialer's key-confirmation frame (message 3, its first encrypted frame).
pub const _P2P_HANDSHAKE_CONFIRM: &[u8] = b"_P2P_HANDSHAKE_CONFIRM";

/// Length of the namespace tag that starts every handshake message body.
pub const NAMESPACE_TAG_LEN: usize = 8;
/// Length of an x25519 public key.
pub const EPHEMERAL_LEN: usize = 32;
/// Largest handshake message body (namespace tag and protobuf), checked before decoding. The
/// adapter uses it as the frame limit during the handshake.
pub const MAX_MESSAGE_LEN: usize = 1024;
/// Length of the key-confirmation frame body (its plaintext and the tag).
pub const CONFIRMATION_LEN: usize = _P2P_HANDSHAKE_CONFIRM.len() + p2p_cipher::TAG_LEN;

/// `u32_be(len(x)) || x`.
fn put_lp(out: &mut Vec<u8>, x: &[u8]) {
    // Every field here is a label, a key, a hash or a namespace from local config; none comes
    // near 4 GiB, and a saturated prefix could only make a local signature fail to verify.
    let len = u32::try_from(x.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(x);
}

/// `SHA-256(lp(_P2P_HANDSHAKE_NAMESPACE_TAG) || lp(namespace))[..8]`.
pub(crate) fn namespace_tag(namespace: &[u8]) -> [u8; NAMESPACE_TAG_LEN] {
    let mut input = Vec::with_capacity(64 + namespace.len());
    put_lp(&mut input, _P2P_HANDSHAKE_NAMESPACE_TAG);
    put_lp(&mut input, namespace);
    let digest = Sha256::digest(&input);
    let mut tag = [0u8; NAMESPACE_TAG_LEN];
    tag.copy_from_slice(&digest[..NAMESPACE_TAG_LEN]);
    tag
}

/// `SHA-256(body)`: what the dialee's signature binds of the dialer's message.
pub(crate) fn hello_hash(hello_body: &[u8]) -> [u8; 32] {
    Sha256::digest(hello_body).into()
}

/// The bytes a handshake signature covers (before the identity crate's namespace prefix):
///
/// `lp(label) || lp(sender) || lp(recipient) || lp(ephemeral) || u64_be(timestamp)`
/// `[ || lp(SHA-256(hello body)) ]` (answer only).
pub(crate) fn signed_bytes(
    label: &[u8],
    sender: &[u8],
    recipient: &[u8],
    ephemeral: &[u8; EPHEMERAL_LEN],
    timestamp: u64,
    hello_hash: Option<&[u8; 32]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * 5 + label.len() + sender.len() + recipient.len() + 80);
    put_lp(&mut out, label);
    put_lp(&mut out, sender);
    put_lp(&mut out, recipient);
    put_lp(&mut out, ephemeral);
    out.extend_from_slice(&timestamp.to_be_bytes());
    if let Some(hash) = hello_hash {
        put_lp(&mut out, hash);
    }
    out
}

/// One handshake message body: `namespace_tag (8) || Handshake protobuf`.
pub(crate) fn encode(
    ns_tag: &[u8; NAMESPACE_TAG_LEN],
    recipient: &[u8],
    ephemeral: &[u8; EPHEMERAL_LEN],
    timestamp: u64,
    sender: &[u8],
    signature: &[u8],
) -> Vec<u8> {
    let msg = Handshake {
        recipient_public_key: Bytes::copy_from_slice(recipient),
        ephemeral_public_key: Bytes::copy_from_slice(ephemeral),
        timestamp,
        signature: Some(p2p_proto::Signature {
            public_key: Bytes::copy_from_slice(sender),
            signature: Bytes::copy_from_slice(signature),
        }),
    };
    let mut out = Vec::with_capacity(NAMESPACE_TAG_LEN + msg.encoded_len());
    out.extend_from_slice(ns_tag);
    // Encoding into a Vec only fails for lack of capacity, which `Vec` grows as needed.
    msg.encode(&mut out)
        .expect("encoding into a growable Vec cannot run out of space");
    out
}

/// A handshake message whose lengths are right for scheme `P` (nothing verified yet).
pub(crate) struct Parsed {
    pub(crate) ns_tag: [u8; NAMESPACE_TAG_LEN],
    pub(crate) recipient: Bytes,
    pub(crate) ephemeral: [u8; EPHEMERAL_LEN],
    pub(crate) timestamp: u64,
    pub(crate) sender: Bytes,
    pub(crate) signature: Bytes,
}

/// Step 1 of every check sequence: size, protobuf, and the length of every field.
pub(crate) fn parse<P: Verifier>(body: &[u8]) -> Result<Parsed, HandshakeError> {
    if body.len() > MAX_MESSAGE_LEN {
        return Err(HandshakeError::TooLarge {
            len: body.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    let Some((tag, proto)) = body.split_first_chunk::<NAMESPACE_TAG_LEN>() else {
        return Err(HandshakeError::Malformed(Malformed::Truncated));
    };
    let msg =
        Handshake::decode(proto).map_err(|_| HandshakeError::Malformed(Malformed::Protobuf))?;
    if msg.recipient_public_key.len() != P::LEN {
        return Err(HandshakeError::Malformed(Malformed::RecipientLength));
    }
    let ephemeral: [u8; EPHEMERAL_LEN] = msg
        .ephemeral_public_key
        .as_ref()
        .try_into()
        .map_err(|_| HandshakeError::Malformed(Malformed::EphemeralLength))?;
    let Some(sig) = msg.signature else {
        return Err(HandshakeError::Malformed(Malformed::MissingSignature));
    };
    if sig.public_key.len() != P::LEN {
        return Err(HandshakeError::Malformed(Malformed::SenderKeyLength));
    }
    if sig.signature.len() != <P::Signature as Signature>::LEN {
        return Err(HandshakeError::Malformed(Malformed::SignatureLength));
    }
    Ok(Parsed {
        ns_tag: *tag,
        recipient: msg.recipient_public_key,
        ephemeral,
        timestamp: msg.timestamp,
        sender: sig.public_key,
        signature: sig.signature,
    })
}

/// The timestamp window check.
pub(crate) fn check_timestamp(
    max_past_ms: u64,
    max_future_ms: u64,
    timestamp: u64,
    now: u64,
) -> Result<(), HandshakeError> {
    if timestamp < now.saturating_sub(max_past_ms) {
        return Err(HandshakeError::TimestampTooOld { timestamp, now });
    }
    if timestamp > now.saturating_add(max_future_ms) {
        return Err(HandshakeError::TimestampTooNew { timestamp, now });
    }
    Ok(())
}

/// The transcript hash (HKDF salt):
/// `SHA-256(lp(_P2P_HANDSHAKE_TRANSCRIPT) || lp(namespace) || lp(hello body) || lp(answer body))`.
pub(crate) fn transcript_hash(namespace: &[u8], hello: &[u8], answer: &[u8]) -> [u8; 32] {
    let mut input = Vec::with_capacity(48 + namespace.len() + hello.len() + answer.len());
    put_lp(&mut input, _P2P_HANDSHAKE_TRANSCRIPT);
    put_lp(&mut input, namespace);
    put_lp(&mut input, hello);
    put_lp(&mut input, answer);
    Sha256::digest(&input).into()
}

/// The two directional keys: HKDF-SHA-256 with salt = transcript hash, IKM = x25519 output,
/// info = `_P2P_HANDSHAKE_KEY_DIALER` / `_P2P_HANDSHAKE_KEY_DIALEE`, 32 bytes each. Wiped on
/// drop; the ciphers borrow them.
pub(crate) struct Keys {
    pub(crate) dialer_to_dialee: Zeroizing<[u8; 32]>,
    pub(crate) dialee_to_dialer: Zeroizing<[u8; 32]>,
}

/// Both fields are [`Zeroizing`].
impl ZeroizeOnDrop for Keys {}

/// The HKDF pseudorandom key of one handshake (`HKDF-Extract(salt = transcript hash, IKM =
/// x25519 output)`), in a buffer that is wiped on drop.
pub(crate) struct Prk(Zeroizing<[u8; 32]>);

impl Prk {
    /// HKDF-Extract; hkdf's own copy of the PRK is wiped before returning.
    pub(crate) fn extract(transcript: &[u8; 32], shared: &[u8; 32]) -> Self {
        let (mut output, _) = Hkdf::<Sha256>::extract(Some(transcript), shared);
        let mut prk = Zeroizing::new([0u8; 32]);
        prk.copy_from_slice(&output);
        output.as_mut_slice().zeroize();
        Self(prk)
    }

    /// The PRK bytes.
    #[cfg(test)]
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HKDF-Expand of both directional keys.
    pub(crate) fn expand_keys(&self) -> Keys {
        // Invariant: a 32-byte PRK is exactly SHA-256's output length, which `from_prk`
        // accepts.
        let hk = Hkdf::<Sha256>::from_prk(self.0.as_ref()).expect("a 32-byte PRK is valid");
        let mut keys = Keys {
            dialer_to_dialee: Zeroizing::new([0u8; 32]),
            dialee_to_dialer: Zeroizing::new([0u8; 32]),
        };
        // 32 bytes is far below HKDF-SHA-256's 255 * 32 byte output limit.
        hk.expand(_P2P_HANDSHAKE_KEY_DIALER, keys.dialer_to_dialee.as_mut())
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        hk.expand(_P2P_HANDSHAKE_KEY_DIALEE, keys.dialee_to_dialer.as_mut())
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        keys
    }
}

impl Zeroize for Prk {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

/// The only field is [`Zeroizing`].
impl ZeroizeOnDrop for Prk {}

/// Both directional keys from the transcript hash and the x25519 output (see [`Keys`]).
pub(crate) fn derive_keys(transcript: &[u8; 32], shared: &[u8; 32]) -> Keys {
    Prk::extract(transcript, shared).expand_keys()
}
