//! The dialer and dialee state machines.

use bytes::BytesMut;
use p2p_cipher::{RecvCipher, Role, SendCipher};
use p2p_identity::{Signature, Signer, Verifier};
use rand::CryptoRng;
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey as XPublic, SharedSecret, StaticSecret};
use zeroize::ZeroizeOnDrop;

use crate::wire::{
    self, _P2P_HANDSHAKE_ANSWER, _P2P_HANDSHAKE_CONFIRM, _P2P_HANDSHAKE_HELLO, CONFIRMATION_LEN,
    EPHEMERAL_LEN, NAMESPACE_TAG_LEN,
};
use crate::{Config, HandshakeError, Refusal};

/// The result of a finished handshake: who the peer is and the two cipher halves.
///
/// This is the only way to obtain a [`SendCipher`] and [`RecvCipher`] keyed for a connection.
#[derive(Debug)]
pub struct Established<P> {
    /// The authenticated public key of the peer.
    pub peer: P,
    /// Seals the frames this side sends.
    pub send: SendCipher,
    /// Opens the frames the peer sends.
    pub recv: RecvCipher,
}

/// Our RNG (rand 0.9's traits) seen through the RNG traits of x25519-dalek (rand_core 0.10), so
/// the secret's 32 random bytes are written straight into the [`StaticSecret`] being built,
/// with no copy of them in this crate.
struct X25519Rng<'a, R: ?Sized>(&'a mut R);

impl<R: CryptoRng + ?Sized> rand_core_x25519::TryRng for X25519Rng<'_, R> {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl<R: CryptoRng + ?Sized> rand_core_x25519::TryCryptoRng for X25519Rng<'_, R> {}

/// A fresh ephemeral x25519 key pair from `rng` (32 bytes of `rng`, as before: the same
/// vectors).
fn ephemeral<R: CryptoRng + ?Sized>(rng: &mut R) -> (StaticSecret, [u8; EPHEMERAL_LEN]) {
    let secret = StaticSecret::random_from_rng(&mut X25519Rng(rng));
    let public = XPublic::from(&secret).to_bytes();
    (secret, public)
}

/// x25519 with the peer's ephemeral key, refusing an all-zero (non-contributory) result. The
/// result stays in x25519-dalek's [`SharedSecret`], which wipes itself on drop.
fn exchange(
    secret: &StaticSecret,
    peer_ephemeral: &[u8; EPHEMERAL_LEN],
) -> Result<SharedSecret, HandshakeError> {
    let shared = secret.diffie_hellman(&XPublic::from(*peer_ephemeral));
    if !shared.was_contributory() {
        return Err(HandshakeError::NonContributory);
    }
    Ok(shared)
}

/// The dialer after sending its first message; expects the dialee's answer.
pub struct Dialer<P: Verifier> {
    namespace: Vec<u8>,
    ns_tag: [u8; NAMESPACE_TAG_LEN],
    max_past_ms: u64,
    max_future_ms: u64,
    me: P,
    expected: P,
    secret: StaticSecret,
    hello: Vec<u8>,
}

impl<P: Verifier> Dialer<P> {
    /// Starts a handshake with `expected` (the key we believe is at the address we dial).
    ///
    /// Returns the state and the first message body (send it as one frame).
    pub fn new<S, R>(
        cfg: &Config,
        signer: &S,
        expected: P,
        now_ms: u64,
        rng: &mut R,
    ) -> (Self, Vec<u8>)
    where
        S: Signer<PublicKey = P>,
        R: CryptoRng + ?Sized,
    {
        let me = signer.public_key();
        let (secret, eph) = ephemeral(rng);
        let ns_tag = wire::namespace_tag(&cfg.namespace);
        let signed = wire::signed_bytes(
            _P2P_HANDSHAKE_HELLO,
            me.as_bytes(),
            expected.as_bytes(),
            &eph,
            now_ms,
            None,
        );
        let signature = signer.sign(&cfg.namespace, &signed);
        let hello = wire::encode(
            &ns_tag,
            expected.as_bytes(),
            &eph,
            now_ms,
            me.as_bytes(),
            signature.as_bytes(),
        );
        let state = Self {
            namespace: cfg.namespace.clone(),
            ns_tag,
            max_past_ms: cfg.max_past_ms,
            max_future_ms: cfg.max_future_ms,
            me,
            expected,
            secret,
            hello: hello.clone(),
        };
        (state, hello)
    }

    /// Handles the dialee's answer (one frame body).
    ///
    /// Checks, in order: size and field lengths, recipient is me, namespace tag, sender is the
    /// expected key, timestamp window, then the signature (which binds our first message), then
    /// x25519. On success returns the established connection and the key-confirmation frame
    /// body, which must be sent before any other frame.
    pub fn handle_answer(
        self,
        answer: &[u8],
        now_ms: u64,
    ) -> Result<(Established<P>, BytesMut), HandshakeError> {
        let msg = wire::parse::<P>(answer)?;
        if msg.recipient.as_ref() != self.me.as_bytes() {
            return Err(HandshakeError::WrongRecipient);
        }
        if !bool::from(msg.ns_tag.ct_eq(&self.ns_tag)) {
            return Err(HandshakeError::NetworkMismatch);
        }
        if msg.sender.as_ref() != self.expected.as_bytes() {
            return Err(HandshakeError::UnexpectedPeer);
        }
        wire::check_timestamp(self.max_past_ms, self.max_future_ms, msg.timestamp, now_ms)?;
        let signature = <P::Signature as Signature>::from_bytes(&msg.signature)?;
        let signed = wire::signed_bytes(
            _P2P_HANDSHAKE_ANSWER,
            &msg.sender,
            &msg.recipient,
            &msg.ephemeral,
            msg.timestamp,
            Some(&wire::hello_hash(&self.hello)),
        );
        self.expected.verify(&self.namespace, &signed, &signature)?;
        let shared = exchange(&self.secret, &msg.ephemeral)?;
        let transcript = wire::transcript_hash(&self.namespace, &self.hello, answer);
        let keys = wire::derive_keys(&transcript, shared.as_bytes());
        let mut send = SendCipher::new(&keys.dialer_to_dialee, Role::Dialer);
        let recv = RecvCipher::new(&keys.dialee_to_dialer, Role::Dialee);
        let mut confirmation = BytesMut::with_capacity(CONFIRMATION_LEN);
        confirmation.extend_from_slice(_P2P_HANDSHAKE_CONFIRM);
        // A fresh cipher is at sequence 0 of iterator 0: sealing cannot be exhausted, and the
        // body is far below the AEAD's length limit.
        send.seal(&mut confirmation, 0)
            .expect("a fresh cipher seals a short frame");
        Ok((
            Established {
                peer: self.expected,
                send,
                recv,
            },
            confirmation,
        ))
    }

    /// The key this dialer expects to reach.
    pub const fn expected(&self) -> &P {
        &self.expected
    }
}

/// The only secret, the ephemeral x25519 secret, is a [`StaticSecret`], which wipes itself.
impl<P: Verifier> ZeroizeOnDrop for Dialer<P> {}

impl<P: Verifier> std::fmt::Debug for Dialer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

/// The dialee side: handles a dialer's first message.
#[derive(Debug)]
pub struct Dialee;

impl Dialee {
    /// Handles the dialer's first message (one frame body).
    ///
    /// Checks, in order, cheapest first: size and field lengths; recipient is me; namespace
    /// tag ([`HandshakeError::NetworkMismatch`]); dialer is not me; timestamp window;
    /// `authorize` (authorized, not blocked, not already connected); only then the dialer's
    /// key parses (point decompression and subgroup check), the signature and x25519. On
    /// success returns the state awaiting the dialer's key confirmation and the answer body to
    /// send.
    ///
    /// `authorize` gets the dialer's claimed key as raw bytes of the scheme's key length
    /// ([`Verifier::LEN`]), **not yet parsed**: it must compare them with the canonical
    /// encodings ([`Verifier::as_bytes`]) of the keys it knows, so that an unknown key is
    /// refused before any curve arithmetic is spent on it. Bytes that equal a known key's
    /// encoding are that key's canonical encoding and parse.
    pub fn handle_hello<S, R, A>(
        cfg: &Config,
        signer: &S,
        hello: &[u8],
        now_ms: u64,
        rng: &mut R,
        authorize: A,
    ) -> Result<(AwaitingConfirmation<S::PublicKey>, Vec<u8>), HandshakeError>
    where
        S: Signer,
        R: CryptoRng + ?Sized,
        A: FnOnce(&[u8]) -> Result<(), Refusal>,
    {
        let me = signer.public_key();
        let msg = wire::parse::<S::PublicKey>(hello)?;
        if msg.recipient.as_ref() != me.as_bytes() {
            return Err(HandshakeError::WrongRecipient);
        }
        let ns_tag = wire::namespace_tag(&cfg.namespace);
        if !bool::from(msg.ns_tag.ct_eq(&ns_tag)) {
            return Err(HandshakeError::NetworkMismatch);
        }
        if msg.sender.as_ref() == me.as_bytes() {
            return Err(HandshakeError::SelfConnection);
        }
        wire::check_timestamp(cfg.max_past_ms, cfg.max_future_ms, msg.timestamp, now_ms)?;
        // Authorize on the raw bytes first: parsing a BLS key costs a point decompression and a
        // subgroup check, which an unauthenticated stranger must not get for free.
        authorize(&msg.sender).map_err(HandshakeError::Refused)?;
        let dialer = S::PublicKey::from_bytes(&msg.sender)?;
        let signature =
            <<S::PublicKey as Verifier>::Signature as Signature>::from_bytes(&msg.signature)?;
        let signed = wire::signed_bytes(
            _P2P_HANDSHAKE_HELLO,
            &msg.sender,
            &msg.recipient,
            &msg.ephemeral,
            msg.timestamp,
            None,
        );
        dialer.verify(&cfg.namespace, &signed, &signature)?;
        let (secret, eph) = ephemeral(rng);
        let shared = exchange(&secret, &msg.ephemeral)?;
        let answer_signed = wire::signed_bytes(
            _P2P_HANDSHAKE_ANSWER,
            me.as_bytes(),
            dialer.as_bytes(),
            &eph,
            now_ms,
            Some(&wire::hello_hash(hello)),
        );
        let answer_sig = signer.sign(&cfg.namespace, &answer_signed);
        let answer = wire::encode(
            &ns_tag,
            dialer.as_bytes(),
            &eph,
            now_ms,
            me.as_bytes(),
            answer_sig.as_bytes(),
        );
        let transcript = wire::transcript_hash(&cfg.namespace, hello, &answer);
        let keys = wire::derive_keys(&transcript, shared.as_bytes());
        let state = AwaitingConfirmation {
            peer: dialer,
            send: SendCipher::new(&keys.dialee_to_dialer, Role::Dialee),
            recv: RecvCipher::new(&keys.dialer_to_dialee, Role::Dialer),
        };
        Ok((state, answer))
    }
}

/// The dialee after answering; expects the dialer's key-confirmation frame. Until it opens,
/// the peer is not connected (a replayed first message stops here).
pub struct AwaitingConfirmation<P> {
    peer: P,
    send: SendCipher,
    recv: RecvCipher,
}

impl<P: Verifier> AwaitingConfirmation<P> {
    /// The key the dialer claims (signature verified, but not yet proven live).
    pub const fn claimed_peer(&self) -> &P {
        &self.peer
    }

    /// Handles the dialer's first encrypted frame body; it must open under the derived key to
    /// exactly [`_P2P_HANDSHAKE_CONFIRM`](crate::_P2P_HANDSHAKE_CONFIRM).
    pub fn handle_confirmation(mut self, frame: &[u8]) -> Result<Established<P>, HandshakeError> {
        if frame.len() != CONFIRMATION_LEN {
            return Err(HandshakeError::Confirmation);
        }
        let mut buf = BytesMut::from(frame);
        self.recv
            .open(&mut buf)
            .map_err(|_| HandshakeError::Confirmation)?;
        if !bool::from(buf.as_ref().ct_eq(_P2P_HANDSHAKE_CONFIRM)) {
            return Err(HandshakeError::Confirmation);
        }
        Ok(Established {
            peer: self.peer,
            send: self.send,
            recv: self.recv,
        })
    }
}

impl<P: Verifier> std::fmt::Debug for AwaitingConfirmation<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitingConfirmation")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
