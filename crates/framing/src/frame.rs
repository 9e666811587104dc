//! The frame codec: `u32` big-endian length, then that many bytes.
//!
//! ```text
//! +---------------------+----------------------------+
//! | length: u32 (BE)    | body: `length` bytes       |
//! +---------------------+----------------------------+
//! ```
//!
//! Encoding writes the header first and patches it once the body is in place, so a body can be
//! produced (and sealed) directly in the output buffer, and several frames can be appended to one
//! buffer and written with one syscall.

use bytes::{Buf, BufMut, BytesMut};

/// Size of the length prefix in bytes.
pub const HEADER_LEN: usize = 4;

/// A frame could not be decoded or encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces a body larger than the configured maximum (fatal for the
    /// connection; nothing was allocated for it).
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced (or, when encoding, actual) body length.
        len: u64,
        /// Configured maximum body length.
        max: u32,
    },
    /// [`finish`] was called with a start that does not belong to this buffer.
    #[error("frame start does not match the buffer (local misuse)")]
    BadStart,
}

/// Tries to take one frame body off the front of `buf`.
///
/// Returns `Ok(Some(body))` when a whole frame is buffered (the header and body are removed from
/// `buf`), `Ok(None)` when more bytes are needed (after reserving room for the rest of the frame,
/// which is bounded by `max_len`), and [`FrameError::TooLarge`] as soon as the header announces a
/// body above `max_len`, before any allocation for it.
pub fn decode(buf: &mut BytesMut, max_len: u32) -> Result<Option<BytesMut>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len > max_len {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max: max_len,
        });
    }
    // `len <= max_len <= u32::MAX` fits in usize on every supported (>= 32-bit) target.
    let total = HEADER_LEN + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    Ok(Some(buf.split_to(len as usize)))
}

/// Where a frame being encoded starts in its output buffer (see [`begin`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a begun frame must be finished"]
pub struct FrameStart(usize);

impl FrameStart {
    /// Offset in the output buffer where the body begins (right after the header), for sealing
    /// the body in place before [`finish`].
    pub const fn body_offset(self) -> usize {
        self.0 + HEADER_LEN
    }
}

/// Appends a placeholder header to `out`; append the body, then call [`finish`].
pub fn begin(out: &mut BytesMut) -> FrameStart {
    let start = out.len();
    out.put_u32(0);
    FrameStart(start)
}

/// Patches the header written by [`begin`] with the length of everything appended since.
///
/// Fails with [`FrameError::TooLarge`] (leaving `out` truncated back to `start`) when the body
/// exceeds `max_len`.
pub fn finish(out: &mut BytesMut, start: FrameStart, max_len: u32) -> Result<(), FrameError> {
    let body_start = start.0 + HEADER_LEN;
    if out.len() < body_start {
        return Err(FrameError::BadStart);
    }
    let body_len = out.len() - body_start;
    match u32::try_from(body_len) {
        Ok(len) if len <= max_len => {
            out[start.0..body_start].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start.0);
            Err(FrameError::TooLarge {
                len: body_len as u64,
                max: max_len,
            })
        }
    }
}

/// Appends one whole frame with `body` to `out`.
pub fn encode(out: &mut BytesMut, body: &[u8], max_len: u32) -> Result<(), FrameError> {
    if body.len() as u64 > u64::from(max_len) {
        return Err(FrameError::TooLarge {
            len: body.len() as u64,
            max: max_len,
        });
    }
    out.reserve(HEADER_LEN + body.len());
    let start = begin(out);
    out.put_slice(body);
    finish(out, start, max_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_several_frames_in_one_buffer() {
        let mut out = BytesMut::new();
        encode(&mut out, b"hello", 16).unwrap();
        encode(&mut out, b"", 16).unwrap();
        let start = begin(&mut out);
        out.put_slice(b"in place");
        finish(&mut out, start, 16).unwrap();
        assert_eq!(decode(&mut out, 16).unwrap().unwrap(), &b"hello"[..]);
        assert_eq!(decode(&mut out, 16).unwrap().unwrap(), &b""[..]);
        assert_eq!(decode(&mut out, 16).unwrap().unwrap(), &b"in place"[..]);
        assert_eq!(decode(&mut out, 16).unwrap(), None);
    }

    #[test]
    fn oversized_header_is_refused_before_allocation() {
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        let cap = buf.capacity();
        assert_eq!(
            decode(&mut buf, 1024),
            Err(FrameError::TooLarge {
                len: u64::from(u32::MAX),
                max: 1024
            })
        );
        assert_eq!(buf.capacity(), cap, "no allocation for a refused frame");
    }

    #[test]
    fn oversized_body_is_refused_when_encoding() {
        let mut out = BytesMut::from(&b"xy"[..]);
        let start = begin(&mut out);
        out.put_slice(&[0u8; 9]);
        assert_eq!(
            finish(&mut out, start, 8),
            Err(FrameError::TooLarge { len: 9, max: 8 })
        );
        assert_eq!(&out[..], b"xy", "a refused frame leaves nothing behind");
        assert!(matches!(
            encode(&mut out, &[0u8; 9], 8),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let mut wire = BytesMut::new();
        encode(&mut wire, b"abc", 64).unwrap();
        encode(&mut wire, &[9u8; 40], 64).unwrap();
        let wire = wire.freeze();
        for cut in 0..=wire.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(part);
                while let Some(frame) = decode(&mut buf, 64).unwrap() {
                    got.push(frame.to_vec());
                }
            }
            assert_eq!(got, vec![b"abc".to_vec(), vec![9u8; 40]], "cut at {cut}");
        }
    }

    /// Decodes everything `pieces` deliver, fed one piece at a time.
    fn decode_pieces<'a>(
        pieces: impl IntoIterator<Item = &'a [u8]>,
        max: u32,
    ) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            while let Some(frame) = decode(&mut buf, max)? {
                got.push(frame.to_vec());
            }
        }
        assert!(buf.is_empty(), "a whole stream leaves nothing buffered");
        Ok(got)
    }

    #[test]
    fn byte_by_byte_and_every_pair_of_cuts() {
        let bodies: Vec<Vec<u8>> = vec![vec![], vec![1], vec![2; 7], vec![], vec![3; 20]];
        let mut wire = BytesMut::new();
        for body in &bodies {
            encode(&mut wire, body, 32).unwrap();
        }
        let wire = wire.freeze();
        assert_eq!(decode_pieces(wire.chunks(1), 32).unwrap(), bodies);
        for a in 0..=wire.len() {
            for b in a..=wire.len() {
                let pieces = [&wire[..a], &wire[a..b], &wire[b..]];
                assert_eq!(decode_pieces(pieces, 32).unwrap(), bodies, "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn oversized_header_split_across_reads() {
        let header = 1025u32.to_be_bytes();
        let mut buf = BytesMut::new();
        for (i, byte) in header.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let result = decode(&mut buf, 1024);
            if i + 1 < HEADER_LEN {
                assert_eq!(result, Ok(None), "no verdict before the whole header");
            } else {
                assert_eq!(
                    result,
                    Err(FrameError::TooLarge {
                        len: 1025,
                        max: 1024
                    })
                );
            }
        }
    }

    #[test]
    fn waiting_reserves_at_most_one_frame() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&1000u32.to_be_bytes());
        buf.extend_from_slice(&[0u8; 10]);
        assert_eq!(decode(&mut buf, 1000), Ok(None));
        assert!(
            buf.capacity() >= HEADER_LEN + 1000,
            "room for the rest of the frame"
        );
        assert!(
            buf.capacity() <= 2 * (HEADER_LEN + 1000),
            "{}",
            buf.capacity()
        );
        // A maximum-size frame is accepted; one byte more is not.
        let mut out = BytesMut::new();
        encode(&mut out, &[5u8; 1000], 1000).unwrap();
        assert_eq!(decode(&mut out, 1000).unwrap().unwrap().len(), 1000);
        let mut out = BytesMut::from(&1001u32.to_be_bytes()[..]);
        assert!(decode(&mut out, 1000).is_err());
    }

    #[test]
    fn finish_with_a_foreign_start_is_misuse() {
        let mut other = BytesMut::new();
        other.put_slice(&[0u8; 64]);
        let start = begin(&mut other);
        let mut out = BytesMut::new();
        assert_eq!(finish(&mut out, start, 16), Err(FrameError::BadStart));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn any_frames_any_cuts(
                bodies in proptest::collection::vec(
                    proptest::collection::vec(any::<u8>(), 0..300), 0..8),
                cuts in proptest::collection::vec(any::<usize>(), 0..12),
            ) {
                let mut wire = BytesMut::new();
                for body in &bodies {
                    encode(&mut wire, body, 300).unwrap();
                }
                let wire = wire.freeze();
                let mut points: Vec<usize> =
                    cuts.iter().map(|c| c % (wire.len() + 1)).collect();
                points.sort_unstable();
                let mut pieces = Vec::new();
                let mut last = 0;
                for p in points {
                    pieces.push(&wire[last..p]);
                    last = p;
                }
                pieces.push(&wire[last..]);
                prop_assert_eq!(decode_pieces(pieces, 300).unwrap(), bodies);
            }

            #[test]
            fn oversized_frames_are_refused_wherever_the_stream_is_cut(
                len in 301u32..,
                cut in 0usize..4,
            ) {
                let header = len.to_be_bytes();
                let result = decode_pieces([&header[..cut], &header[cut..]], 300);
                prop_assert_eq!(
                    result,
                    Err(FrameError::TooLarge { len: u64::from(len), max: 300 })
                );
            }
        }
    }
}
