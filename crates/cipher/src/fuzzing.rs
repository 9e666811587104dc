//! Harnesses for the cargo-fuzz targets in `fuzz/` (enabled by the `fuzzing` feature).

use crate::{CipherError, RecvCipher, Role, SendCipher};
use bytes::BytesMut;

const FUZZ_KEY: [u8; 32] = [0x5a; 32];

/// Feeds a receiver a mix of genuine frames and arbitrary bytes, as encoded in `data`:
/// each step reads one control byte `c` and a length `n = c & 0x7f`; if `c`'s top bit is set the
/// next `n` bytes are sealed by the matching sender and delivered (possibly with one byte
/// flipped, chosen by the byte after), otherwise they are delivered raw as a frame.
///
/// Panics only on a broken invariant: a genuine frame that fails to open before any failure, a
/// forged frame that opens, or a receiver that accepts anything after a failure.
pub fn recv_arbitrary_frames(data: &[u8]) {
    let mut send = SendCipher::new(&FUZZ_KEY, Role::Dialer);
    let mut recv = RecvCipher::new(&FUZZ_KEY, Role::Dialer);
    let mut failed = false;
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        let n = usize::from(control & 0x7f).min(tail.len());
        let (body, tail) = tail.split_at(n);
        rest = tail;
        let mut frame = BytesMut::from(body);
        let genuine = control & 0x80 != 0;
        let mut intact = genuine;
        if genuine {
            if send.seal(&mut frame, 0).is_err() {
                return;
            }
            if let Some((&flip, tail)) = rest.split_first() {
                rest = tail;
                if flip != 0 {
                    let at = usize::from(flip) % frame.len();
                    frame[at] ^= flip;
                    intact = false;
                }
            }
        }
        let result = recv.open(&mut frame);
        match (failed, intact) {
            (true, _) => assert_eq!(result, Err(CipherError::Poisoned)),
            (false, true) => {
                assert_eq!(result, Ok(()));
                assert_eq!(&frame[..], body);
            }
            (false, false) => {
                assert!(result.is_err(), "a frame not sealed by the sender opened");
                failed = true;
            }
        }
    }
}
