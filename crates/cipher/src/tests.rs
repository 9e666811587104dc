use super::*;
use bytes::BufMut;
use proptest::prelude::*;

const KEY: [u8; KEY_LEN] = [0x42; KEY_LEN];

fn sealed(send: &mut SendCipher, body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(body.len() + TAG_LEN);
    buf.put_slice(body);
    send.seal(&mut buf, 0).unwrap();
    buf
}

#[test]
fn round_trip_leaves_header_alone() {
    let mut send = SendCipher::new(&KEY, Role::Dialee);
    let mut recv = RecvCipher::new(&KEY, Role::Dialee);
    let mut buf = BytesMut::new();
    buf.put_slice(b"HDR!");
    buf.put_slice(b"some body");
    buf.reserve(TAG_LEN);
    send.seal(&mut buf, 4).unwrap();
    assert_eq!(&buf[..4], b"HDR!");
    assert_eq!(buf.len(), 4 + 9 + TAG_LEN);
    assert_ne!(&buf[4..13], b"some body");
    let mut frame = buf.split_off(4);
    recv.open(&mut frame).unwrap();
    assert_eq!(&frame[..], b"some body");
    // An empty body still carries a tag.
    let mut frame = sealed(&mut send, b"");
    assert_eq!(frame.len(), TAG_LEN);
    recv.open(&mut frame).unwrap();
    assert!(frame.is_empty());
}

/// Known-answer frames (computed independently with OpenSSL's ChaCha20-Poly1305 through
/// Python's `cryptography`, nonces built by hand from the documented layout): identical on both backends (CI runs this with and without the
/// `aws-lc-rs` feature), so the wire format does not depend on the backend.
#[test]
fn known_answer_frames_match_on_every_backend() {
    let mut send = SendCipher::new(&KEY, Role::Dialer);
    let f0 = sealed(&mut send, b"p2p-cipher vector");
    let f1 = sealed(&mut send, b"p2p-cipher vector");
    let mut dialee = SendCipher::new(&KEY, Role::Dialee);
    let g0 = sealed(&mut dialee, b"p2p-cipher vector");
    let mut late = SendCipher::starting_at(&KEY, Role::Dialer, 0x0102, 0x0304_0506_0708_090a);
    let h0 = sealed(&mut late, b"p2p-cipher vector");
    assert_eq!(hex::encode(&f0), KAT_DIALER_0, "backend {BACKEND}");
    assert_eq!(hex::encode(&f1), KAT_DIALER_1, "backend {BACKEND}");
    assert_eq!(hex::encode(&g0), KAT_DIALEE_0, "backend {BACKEND}");
    assert_eq!(hex::encode(&h0), KAT_DIALER_LATE, "backend {BACKEND}");
}

const KAT_DIALER_0: &str = "08d2b08d674330b6e1295aa25c61beda90aaa216b7e570ef8e4c76e261cce221a5";
const KAT_DIALER_1: &str = "00eba7e468d1b103e3f50def9da4b7fd74c5839cad50a4a49b85a62cd83baaac0b";
const KAT_DIALEE_0: &str = "295494067edd43a589d374429a4cdcd7cc75c763ff71e63da46513600c0c2b1a77";
const KAT_DIALER_LATE: &str = "04319bdb976d1d798b8daa66b4d8436a17bff3280aabbd659fed0487ee4bc93caf";

#[test]
fn tampered_frame_fails_and_poisons() {
    let mut send = SendCipher::new(&KEY, Role::Dialer);
    let mut recv = RecvCipher::new(&KEY, Role::Dialer);
    let mut f0 = sealed(&mut send, b"first");
    let mut f1 = sealed(&mut send, b"second");
    f0[2] ^= 1;
    assert_eq!(recv.open(&mut f0), Err(CipherError::Authentication));
    assert!(recv.is_poisoned());
    // Even a genuine frame is refused afterwards.
    assert_eq!(recv.open(&mut f1), Err(CipherError::Poisoned));
}

#[test]
fn tampered_tag_fails() {
    let mut send = SendCipher::new(&KEY, Role::Dialer);
    let mut recv = RecvCipher::new(&KEY, Role::Dialer);
    let mut f0 = sealed(&mut send, b"first");
    let last = f0.len() - 1;
    f0[last] ^= 0x80;
    assert_eq!(recv.open(&mut f0), Err(CipherError::Authentication));
}

#[test]
fn reordered_frames_fail() {
    let mut send = SendCipher::new(&KEY, Role::Dialer);
    let mut recv = RecvCipher::new(&KEY, Role::Dialer);
    let _f0 = sealed(&mut send, b"first");
    let mut f1 = sealed(&mut send, b"second");
    assert_eq!(recv.open(&mut f1), Err(CipherError::Authentication));
}

#[test]
fn replayed_frame_fails() {
    let mut send = SendCipher::new(&KEY, Role::Dialer);
    let mut recv = RecvCipher::new(&KEY, Role::Dialer);
    let f0 = sealed(&mut send, b"first");
    let mut copy = f0.clone();
    let mut f0 = f0;
    recv.open(&mut f0).unwrap();
    assert_eq!(recv.open(&mut copy), Err(CipherError::Authentication));
}

#[test]
fn reflected_frame_fails() {
    // Same key both ways (never the case after a handshake, but even then the dialer bit keeps
    // a frame from being reflected back to its sender).
    let mut send = SendCipher::new(&KEY, Role::Dialer);
    let mut recv_as_from_dialee = RecvCipher::new(&KEY, Role::Dialee);
    let mut f0 = sealed(&mut send, b"first");
    assert_eq!(
        recv_as_from_dialee.open(&mut f0),
        Err(CipherError::Authentication)
    );
}

#[test]
fn wrong_key_fails() {
    let mut send = SendCipher::new(&KEY, Role::Dialer);
    let mut recv = RecvCipher::new(&[0x43; KEY_LEN], Role::Dialer);
    let mut f0 = sealed(&mut send, b"first");
    assert_eq!(recv.open(&mut f0), Err(CipherError::Authentication));
}

#[test]
fn short_frame_fails() {
    let mut recv = RecvCipher::new(&KEY, Role::Dialer);
    let mut frame = BytesMut::from(&[0u8; TAG_LEN - 1][..]);
    assert_eq!(
        recv.open(&mut frame),
        Err(CipherError::TooShort { len: TAG_LEN - 1 })
    );
    assert_eq!(recv.open(&mut frame), Err(CipherError::Poisoned));
}

#[test]
fn body_start_past_end_is_misuse_and_consumes_nothing() {
    let mut send = SendCipher::new(&KEY, Role::Dialer);
    let mut recv = RecvCipher::new(&KEY, Role::Dialer);
    let mut buf = BytesMut::from(&b"abc"[..]);
    assert_eq!(
        send.seal(&mut buf, 4),
        Err(CipherError::BodyStartOutOfRange {
            body_start: 4,
            len: 3
        })
    );
    assert_eq!(&buf[..], b"abc");
    // The nonce did not advance: the receiver still opens the next frame at sequence 0.
    let mut f0 = sealed(&mut send, b"x");
    recv.open(&mut f0).unwrap();
}

#[test]
fn sequence_wrap_bumps_iterator_end_to_end() {
    let mut send = SendCipher::starting_at(&KEY, Role::Dialee, 3, u64::MAX - 1);
    let mut recv = RecvCipher::starting_at(&KEY, Role::Dialee, 3, u64::MAX - 1);
    for body in [&b"a"[..], b"b", b"c"] {
        let mut f = sealed(&mut send, body);
        recv.open(&mut f).unwrap();
        assert_eq!(&f[..], body);
    }
    let next = send.next_nonce().unwrap();
    assert_eq!((next.iterator(), next.sequence()), (4, 1));
    assert_eq!(recv.next_nonce(), Some(next));
    assert_eq!(next.to_bytes()[2..4], [0, 4]);
}

#[test]
fn exhaustion_is_typed_and_final() {
    let mut send = SendCipher::starting_at(&KEY, Role::Dialer, u16::MAX, u64::MAX - 1);
    let mut recv = RecvCipher::starting_at(&KEY, Role::Dialer, u16::MAX, u64::MAX - 1);
    // The last two frames of the 2^80 go through.
    for _ in 0..2 {
        let mut f = sealed(&mut send, b"late");
        recv.open(&mut f).unwrap();
    }
    assert_eq!(send.next_nonce(), None);
    let mut buf = BytesMut::from(&b"one too many"[..]);
    assert_eq!(send.seal(&mut buf, 0), Err(CipherError::Exhausted));
    assert_eq!(&buf[..], b"one too many", "nothing sealed after exhaustion");
    assert_eq!(send.seal(&mut buf, 0), Err(CipherError::Exhausted));
    // The receiver refuses a further frame too (it cannot have been sealed legitimately).
    let mut forged = BytesMut::from(&[0u8; 32][..]);
    assert_eq!(recv.open(&mut forged), Err(CipherError::Exhausted));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_bodies_round_trip_in_order(bodies in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..300), 1..8)) {
        let mut send = SendCipher::new(&KEY, Role::Dialer);
        let mut recv = RecvCipher::new(&KEY, Role::Dialer);
        for body in &bodies {
            let mut f = sealed(&mut send, body);
            prop_assert_eq!(f.len(), body.len() + TAG_LEN);
            recv.open(&mut f).unwrap();
            prop_assert_eq!(&f[..], &body[..]);
        }
    }

    #[test]
    fn any_single_bit_flip_fails(body in proptest::collection::vec(any::<u8>(), 0..100),
                                 bit in any::<usize>()) {
        let mut send = SendCipher::new(&KEY, Role::Dialer);
        let mut recv = RecvCipher::new(&KEY, Role::Dialer);
        let mut f = sealed(&mut send, &body);
        let bit = bit % (f.len() * 8);
        f[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(recv.open(&mut f), Err(CipherError::Authentication));
    }
}

/// Compiles only for types that promise to wipe their secrets when dropped.
#[cfg(not(feature = "aws-lc-rs"))]
fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}

#[test]
#[cfg(not(feature = "aws-lc-rs"))]
fn cipher_halves_wipe_their_keys_on_drop() {
    // The default backend keeps the key in `chacha20poly1305::ChaCha20Poly1305`, which wipes it
    // on drop (its `zeroize` feature); aws-lc-rs's key schedule is out of this crate's reach.
    assert_zeroize_on_drop::<SendCipher>();
    assert_zeroize_on_drop::<RecvCipher>();
}

#[test]
fn key_is_borrowed_and_stays_with_the_caller() {
    // The constructors take the key by reference, so the caller's (zeroizing) buffer is the
    // only copy outside the AEAD: no by-value copy is left behind on the stack.
    let key = zeroize::Zeroizing::new(KEY);
    let mut send = SendCipher::new(&key, Role::Dialer);
    let mut recv = RecvCipher::new(&key, Role::Dialer);
    let mut buf = sealed(&mut send, b"borrowed");
    recv.open(&mut buf).unwrap();
    assert_eq!(&buf[..], b"borrowed");
}
