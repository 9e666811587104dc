//! Harnesses for the cargo-fuzz targets in `fuzz/` (enabled by the `fuzzing` feature).
//!
//! Each harness panics only when an invariant breaks; every bad input must end in a typed error.

use crate::chunk::{Chunker, Reassembler};
use crate::{compress, envelope, frame};
use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};
use p2p_proto::Chunk;
use p2p_proto::message::Payload;

/// Decodes `data` as a frame stream twice: whole, and cut into pieces at fuzzer-chosen points.
/// Both must yield the same frames and the same outcome, and the buffer never grows past what
/// is buffered plus one maximum frame.
pub fn frame_stream(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(max_len) = u.int_in_range(0u32..=4096) else {
        return;
    };
    let Ok(cuts) = Vec::<u16>::arbitrary(&mut u) else {
        return;
    };
    let stream = u.take_rest();

    let whole = decode_all(&[stream], max_len);
    let mut pieces = Vec::new();
    let mut rest = stream;
    for cut in cuts {
        let at = usize::from(cut) % (rest.len() + 1);
        let (head, tail) = rest.split_at(at);
        pieces.push(head);
        rest = tail;
    }
    pieces.push(rest);
    let split = decode_all(&pieces, max_len);
    assert_eq!(whole, split, "splitting the stream changed the result");
}

/// Frames decoded from `pieces` fed one after the other, and the error that stopped decoding.
fn decode_all(pieces: &[&[u8]], max_len: u32) -> (Vec<Vec<u8>>, Option<frame::FrameError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let (before, capacity_before) = (buf.len(), buf.capacity());
            match frame::decode(&mut buf, max_len) {
                Ok(Some(body)) => {
                    assert!(body.len() <= max_len as usize);
                    frames.push(body.to_vec());
                }
                Ok(None) => {
                    // Either nothing was reserved, or at most room for one maximum frame (bytes
                    // may round a reservation up to double the buffer).
                    let bound = 2 * (before + frame::HEADER_LEN + max_len as usize);
                    assert!(
                        buf.capacity() == capacity_before || buf.capacity() <= bound,
                        "reserved {} for {} buffered bytes, max {}",
                        buf.capacity(),
                        before,
                        max_len
                    );
                    break;
                }
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// One step of the reassembler harness.
#[derive(Debug, Arbitrary)]
pub enum ReassemblerOp {
    /// A raw chunk, as a hostile peer might send it.
    Chunk {
        /// Channel (channels 0..4 are known, others unknown).
        channel: u8,
        /// Part index.
        part: u32,
        /// Announced number of parts.
        total_parts: u32,
        /// Content length (content bytes are a fixed pattern).
        len: u16,
    },
    /// A raw chunk with a near-valid shape: the right capacity for its header, plus a delta.
    Shaped {
        /// Channel.
        channel: u8,
        /// Part index.
        part: u8,
        /// Announced number of parts.
        total_parts: u8,
        /// Added to the capacity (wrapping), to hit off-by-one lengths.
        delta: i8,
    },
    /// A whole honest message of this length on this channel, chunked by [`Chunker`].
    Message {
        /// Channel.
        channel: u8,
        /// Length.
        len: u16,
    },
    /// A frame plaintext decoded through the envelope first.
    Frame(Vec<u8>),
}

/// Input of the reassembler harness.
#[derive(Debug, Arbitrary)]
pub struct ReassemblerInput {
    /// Maximum plaintext length of a frame (clamped to 8..=2048).
    pub max_plaintext_len: u16,
    /// Maximum message size of the known channels (clamped to ..=16384).
    pub max_message_len: u16,
    /// The steps.
    pub ops: Vec<ReassemblerOp>,
}

/// Drives a [`Reassembler`] with an arbitrary sequence of chunks. Invariants: the buffer never
/// exceeds the channel's maximum message size, every returned message fits it, and an honest
/// message fed when nothing is pending always comes back intact.
pub fn reassembler(input: ReassemblerInput) {
    let max_plaintext_len = u32::from(input.max_plaintext_len.clamp(8, 2048));
    let max_message_len = usize::from(input.max_message_len.min(16_384));
    let limit = |channel: u32| (channel < 4).then_some(max_message_len);
    let mut r = Reassembler::new(max_plaintext_len);
    let pattern: Bytes = (0..=u16::MAX).map(|i| i as u8).collect::<Vec<u8>>().into();

    let feed = |r: &mut Reassembler, chunk: Chunk| {
        let channel = chunk.channel;
        match r.handle_chunk(chunk, limit(channel)) {
            Ok(Some((got, message))) => {
                assert_eq!(got, channel);
                assert!(message.len() <= max_message_len);
                assert!(!r.is_pending());
                Some(message)
            }
            Ok(None) => {
                assert!(r.is_pending());
                None
            }
            Err(_) => {
                assert_eq!(r.buffered_len(), 0, "an error drops the buffer");
                None
            }
        }
    };

    for op in input.ops {
        match op {
            ReassemblerOp::Chunk {
                channel,
                part,
                total_parts,
                len,
            } => {
                let chunk = Chunk {
                    channel: u32::from(channel),
                    part,
                    total_parts,
                    content: pattern.slice(..usize::from(len)),
                };
                feed(&mut r, chunk);
            }
            ReassemblerOp::Shaped {
                channel,
                part,
                total_parts,
                delta,
            } => {
                let (channel, part, total_parts) =
                    (u32::from(channel), u32::from(part), u32::from(total_parts));
                let cap =
                    crate::chunk::chunk_capacity(max_plaintext_len, channel, part, total_parts)
                        .unwrap_or(0);
                let len = (i64::from(cap) + i64::from(delta)).clamp(0, 65_535) as usize;
                feed(
                    &mut r,
                    Chunk {
                        channel,
                        part,
                        total_parts,
                        content: pattern.slice(..len),
                    },
                );
            }
            ReassemblerOp::Message { channel, len } => {
                let channel = u32::from(channel % 4);
                let len = usize::from(len).min(max_message_len);
                let message = pattern.slice(..len);
                let Ok(mut chunker) = Chunker::new(channel, message.clone(), max_plaintext_len)
                else {
                    continue;
                };
                let honest = !r.is_pending();
                let mut out = BytesMut::new();
                let mut result = None;
                while chunker.write_next(&mut out) {
                    let plaintext = out.split().freeze();
                    assert!(plaintext.len() <= max_plaintext_len as usize);
                    let Ok(Payload::Chunk(chunk)) = envelope::decode(plaintext) else {
                        panic!("the chunker wrote an invalid envelope");
                    };
                    result = feed(&mut r, chunk);
                }
                if honest {
                    assert_eq!(result, Some(message), "honest message lost");
                }
            }
            ReassemblerOp::Frame(bytes) => {
                if bytes.len() > max_plaintext_len as usize {
                    continue;
                }
                if let Ok(Payload::Chunk(chunk)) = envelope::decode(Bytes::from(bytes)) {
                    feed(&mut r, chunk);
                }
            }
        }
        assert!(r.buffered_len() <= max_message_len);
    }
}

/// Decompresses arbitrary input under a fuzzer-chosen limit. On success the output fits the
/// limit and recompresses to the same bytes; the output buffer never exceeds the limit.
pub fn decompress(data: &[u8]) {
    let (limit, input) = match data.split_first_chunk::<2>() {
        Some((limit, input)) => (usize::from(u16::from_le_bytes(*limit)) * 16, input),
        None => return,
    };
    let mut out = Vec::new();
    let result = compress::decompress_into(input, limit, &mut out);
    assert!(
        out.capacity() <= limit.max(1),
        "allocated {} > {limit}",
        out.capacity()
    );
    if result.is_ok() {
        assert!(out.len() <= limit);
        let again = compress::compress(&out, 1).expect("level 1 is valid");
        let back = compress::decompress(&again, out.len()).expect("own output decompresses");
        assert_eq!(back, out);
    }
}
