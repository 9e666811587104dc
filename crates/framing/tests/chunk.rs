//! Chunking and reassembly: exact capacities, round trips of every size, one test per rule.

use bytes::{Bytes, BytesMut};
use p2p_framing::chunk::{
    ChunkError, Chunker, Reassembler, ReassemblyError, chunk_capacity, envelope_len,
    total_parts_for,
};
use p2p_framing::envelope;
use p2p_proto::{Chunk, Message, ProstMessage, message::Payload};
use proptest::prelude::*;

/// Deterministic test message.
fn message(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Chunks `msg` into frames' plaintexts, checking each against `max` and the fullness rule.
fn chunk_all(channel: u32, msg: &Bytes, max: u32) -> Vec<Bytes> {
    let mut chunker = Chunker::new(channel, msg.clone(), max).unwrap();
    let total = chunker.total_parts();
    let mut frames = Vec::new();
    let mut out = BytesMut::new();
    while chunker.write_next(&mut out) {
        let frame = out.split().freeze();
        assert!(
            frame.len() as u64 <= u64::from(max),
            "envelope fits the frame"
        );
        frames.push(frame);
    }
    assert!(chunker.is_finished());
    assert!(!chunker.write_next(&mut out), "nothing after the last part");
    assert!(out.is_empty());
    assert_eq!(frames.len() as u32, total);
    frames
}

fn decode_chunk(frame: Bytes) -> Chunk {
    match envelope::decode(frame).unwrap() {
        Payload::Chunk(chunk) => chunk,
        other => panic!("not a chunk: {other:?}"),
    }
}

/// Chunks and reassembles `msg`, returning the reassembled message and the chunks.
fn round_trip(channel: u32, msg: &Bytes, max: u32) -> (Bytes, Vec<Chunk>) {
    let frames = chunk_all(channel, msg, max);
    let mut reassembler = Reassembler::new(max);
    let mut result = None;
    let mut chunks = Vec::new();
    let n = frames.len();
    for (i, frame) in frames.into_iter().enumerate() {
        let chunk = decode_chunk(frame);
        chunks.push(chunk.clone());
        let got = reassembler.handle_chunk(chunk, Some(msg.len())).unwrap();
        if i + 1 < n {
            assert!(got.is_none());
            assert!(reassembler.buffered_len() > 0);
        } else {
            result = got;
        }
    }
    assert_eq!(reassembler.buffered_len(), 0);
    let (got_channel, got) = result.expect("last part completes the message");
    assert_eq!(got_channel, channel);
    (got, chunks)
}

fn check_chunks(chunks: &[Chunk], max: u32, len: usize) {
    let total = chunks.len() as u32;
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.part, i as u32);
        assert_eq!(c.total_parts, total);
        let cap = chunk_capacity(max, c.channel, c.part, total).unwrap() as usize;
        if c.part + 1 < total {
            assert_eq!(c.content.len(), cap, "non-final part {i} full");
        } else {
            assert!(c.content.len() <= cap);
            assert!(total == 1 || !c.content.is_empty(), "final part non-empty");
        }
    }
    // Minimal: the parts before the last could not hold the message.
    if total > 1 {
        let before: usize = chunks[..chunks.len() - 1]
            .iter()
            .map(|c| c.content.len())
            .sum();
        assert!(before < len);
    }
}

#[test]
fn envelope_len_matches_prost_and_writer() {
    for channel in [0, 1, 127, 128, 16_384, u32::MAX] {
        for part in [0, 1, 127, 128, 20_000, 3_000_000, u32::MAX - 1] {
            for total in [1, 2, 128, 16_384, u32::MAX] {
                for len in [0usize, 1, 127, 128, 300, 16_383, 16_384] {
                    let chunk = Chunk {
                        channel,
                        part,
                        total_parts: total,
                        content: message(len),
                    };
                    let msg = Message {
                        payload: Some(Payload::Chunk(chunk.clone())),
                    };
                    assert_eq!(
                        envelope_len(channel, part, total, len as u64),
                        msg.encoded_len() as u64
                    );
                    let mut out = BytesMut::new();
                    envelope::encode_chunk(&chunk, &mut out);
                    assert_eq!(out.freeze(), Bytes::from(msg.encode_to_vec()));
                }
            }
        }
    }
}

#[test]
fn chunker_bytes_equal_prost_encoding() {
    let msg = message(1000);
    let frames = chunk_all(300, &msg, 130);
    for frame in frames {
        let chunk = decode_chunk(frame.clone());
        let reencoded = Message {
            payload: Some(Payload::Chunk(chunk)),
        }
        .encode_to_vec();
        assert_eq!(frame, Bytes::from(reencoded));
    }
}

#[test]
fn documented_overheads() {
    // The examples quoted in docs/protocol.md.
    // 64 KiB frame, channel 1, 17 parts (a 1 MiB message): part 0 and part 16.
    assert_eq!(total_parts_for(1 << 20, 65_536, 1), Ok(17));
    assert_eq!(chunk_capacity(65_536, 1, 0, 17), Some(65_524));
    assert_eq!(chunk_capacity(65_536, 1, 1, 17), Some(65_522));
    assert_eq!(envelope_len(1, 0, 17, 65_524), 65_536);
    assert_eq!(envelope_len(1, 1, 17, 65_522), 65_536);
    // Single-part message on channel 0: 0x0A len 0x18 0x01 0x22 len content.
    assert_eq!(envelope_len(0, 0, 1, 5), 1 + 1 + 2 + 1 + 1 + 5);
    // A frame length where a full chunk cannot fill the frame exactly (varint boundary).
    let cap = chunk_capacity(135, 0, 0, 1).unwrap();
    assert_eq!(cap, 127);
    assert_eq!(envelope_len(0, 0, 1, u64::from(cap)), 134);
    assert_eq!(envelope_len(0, 0, 1, u64::from(cap) + 1), 136);
}

#[test]
fn single_part_is_zero_copy_and_may_be_empty() {
    for len in [0usize, 1, 100] {
        let msg = message(len);
        let frames = chunk_all(7, &msg, 256);
        assert_eq!(frames.len(), 1);
        let chunk = decode_chunk(frames[0].clone());
        let content_ptr = chunk.content.as_ptr();
        let mut r = Reassembler::new(256);
        let (channel, got) = r.handle_chunk(chunk, Some(len)).unwrap().unwrap();
        assert_eq!((channel, &got[..]), (7, &msg[..]));
        if len > 0 {
            // The message is the frame's own bytes: decoded and returned by slicing.
            assert_eq!(got.as_ptr(), content_ptr);
            let frame_range = frames[0].as_ptr_range();
            assert!(frame_range.contains(&got.as_ptr()));
        }
    }
}

#[test]
fn every_size_from_zero_to_several_frames() {
    for max in [16u32, 40, 131] {
        for channel in [0u32, 5, 300] {
            let cap0 = chunk_capacity(max, channel, 0, 1).unwrap() as usize;
            for len in 0..=cap0 * 6 {
                let msg = message(len);
                let (got, chunks) = round_trip(channel, &msg, max);
                assert_eq!(got, msg, "len {len} max {max} channel {channel}");
                check_chunks(&chunks, max, len);
            }
        }
    }
}

#[test]
fn part_and_total_varints_crossing_128() {
    // Tiny frames make messages of hundreds of parts, so part and total_parts cross the
    // one-byte varint boundary and capacities change mid-message.
    let max = 16;
    for len in [700usize, 1000, 1_100, 1_300, 2_000] {
        let msg = message(len);
        let (got, chunks) = round_trip(1, &msg, max);
        assert_eq!(got, msg);
        check_chunks(&chunks, max, len);
    }
    let caps: Vec<u32> = [0u32, 1, 127, 128]
        .iter()
        .map(|&p| chunk_capacity(max, 1, p, 200).unwrap())
        .collect();
    assert!(
        caps[0] > caps[1] && caps[1] == caps[2] && caps[2] > caps[3],
        "{caps:?}"
    );
}

#[test]
fn frame_too_small_is_a_chunk_error() {
    assert_eq!(chunk_capacity(3, 0, 0, 1), None);
    assert_eq!(chunk_capacity(4, 0, 0, 1), Some(0));
    assert_eq!(
        Chunker::new(0, message(1), 4).err(),
        Some(ChunkError::FrameTooSmall {
            max_plaintext_len: 4,
            channel: 0
        })
    );
    // An empty message still fits a header-only frame.
    assert_eq!(Chunker::new(0, Bytes::new(), 4).unwrap().total_parts(), 1);
    assert!(matches!(
        Chunker::new(u32::MAX, Bytes::new(), 4),
        Err(ChunkError::FrameTooSmall { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn capacity_is_the_largest_fitting_content(
        max in prop_oneof![1u32..200_000, any::<u32>()],
        channel in any::<u32>(),
        part in any::<u32>(),
        total in 1u32..=u32::MAX,
    ) {
        match chunk_capacity(max, channel, part, total) {
            None => prop_assert!(envelope_len(channel, part, total, 0) > u64::from(max)),
            Some(cap) => {
                let cap = u64::from(cap);
                let used = envelope_len(channel, part, total, cap);
                prop_assert!(used <= u64::from(max));
                prop_assert!(envelope_len(channel, part, total, cap + 1) > u64::from(max));
                // A full chunk misses the frame by at most one byte; two when not even one
                // content byte fits.
                let slack = u64::from(max) - used;
                prop_assert!(slack <= if cap > 0 { 1 } else { 2 }, "slack {}", slack);
            }
        }
    }

    #[test]
    fn round_trip_any_size(
        max in 10u32..600,
        channel in prop_oneof![Just(0u32), 1u32..200, any::<u32>()],
        len in 0usize..5_000,
    ) {
        prop_assume!(total_parts_for(len, max, channel).is_ok());
        let msg = message(len);
        let (got, chunks) = round_trip(channel, &msg, max);
        prop_assert_eq!(got, msg);
        check_chunks(&chunks, max, len);
    }
}

// ---- One test per reassembly rule. ----

const MAX: u32 = 100;

fn chunk(channel: u32, part: u32, total_parts: u32, len: usize) -> Chunk {
    Chunk {
        channel,
        part,
        total_parts,
        content: message(len),
    }
}

fn cap(channel: u32, part: u32, total: u32) -> usize {
    chunk_capacity(MAX, channel, part, total).unwrap() as usize
}

#[test]
fn rule_unknown_channel() {
    let mut r = Reassembler::new(MAX);
    assert_eq!(
        r.handle_chunk(chunk(9, 0, 1, 3), None),
        Err(ReassemblyError::UnknownChannel { channel: 9 })
    );
}

#[test]
fn rule_zero_total_parts() {
    let mut r = Reassembler::new(MAX);
    assert_eq!(
        r.handle_chunk(chunk(1, 0, 0, 3), Some(1000)),
        Err(ReassemblyError::ZeroTotalParts)
    );
}

#[test]
fn rule_part_out_of_range() {
    let mut r = Reassembler::new(MAX);
    assert_eq!(
        r.handle_chunk(chunk(1, 3, 3, 3), Some(1000)),
        Err(ReassemblyError::PartOutOfRange {
            part: 3,
            total_parts: 3
        })
    );
}

#[test]
fn rule_total_parts_bounded_before_buffering() {
    // A million 1-byte chunks: refused at the first one, nothing buffered.
    let mut r = Reassembler::new(65_536);
    let max_message = 1 << 20;
    let first = chunk(1, 0, 1_000_000, 1);
    assert_eq!(
        r.handle_chunk(first, Some(max_message)),
        Err(ReassemblyError::TooManyParts {
            channel: 1,
            total_parts: 1_000_000,
            max_parts: 17
        })
    );
    assert_eq!(r.buffered_len(), 0);
    assert!(!r.is_pending());
    // With a plausible total, a 1-byte first part is refused as not full.
    assert!(matches!(
        r.handle_chunk(chunk(1, 0, 2, 1), Some(max_message)),
        Err(ReassemblyError::NotFull {
            part: 0,
            len: 1,
            ..
        })
    ));
    assert_eq!(r.buffered_len(), 0);
    // Exactly the bound is accepted: a maximum-size message takes 17 parts.
    let ok = chunk(1, 0, 17, cap_for(65_536, 1, 0, 17));
    assert_eq!(r.handle_chunk(ok, Some(max_message)), Ok(None));
    assert_eq!(r.buffered_len(), 65_524);
}

fn cap_for(max: u32, channel: u32, part: u32, total: u32) -> usize {
    chunk_capacity(max, channel, part, total).unwrap() as usize
}

#[test]
fn rule_first_part_must_be_zero() {
    let mut r = Reassembler::new(MAX);
    assert_eq!(
        r.handle_chunk(chunk(1, 1, 3, cap(1, 1, 3)), Some(1000)),
        Err(ReassemblyError::MissingPart {
            expected: 0,
            part: 1
        })
    );
}

#[test]
fn rule_gap() {
    let mut r = Reassembler::new(MAX);
    r.handle_chunk(chunk(1, 0, 4, cap(1, 0, 4)), Some(1000))
        .unwrap();
    assert_eq!(
        r.handle_chunk(chunk(1, 2, 4, cap(1, 2, 4)), Some(1000)),
        Err(ReassemblyError::MissingPart {
            expected: 1,
            part: 2
        })
    );
    assert_eq!(r.buffered_len(), 0, "an error drops the buffer");
}

#[test]
fn rule_repeat() {
    let mut r = Reassembler::new(MAX);
    r.handle_chunk(chunk(1, 0, 4, cap(1, 0, 4)), Some(1000))
        .unwrap();
    r.handle_chunk(chunk(1, 1, 4, cap(1, 1, 4)), Some(1000))
        .unwrap();
    assert_eq!(
        r.handle_chunk(chunk(1, 1, 4, cap(1, 1, 4)), Some(1000)),
        Err(ReassemblyError::RepeatedPart {
            expected: 2,
            part: 1
        })
    );
}

#[test]
fn rule_no_interleaving() {
    let mut r = Reassembler::new(MAX);
    r.handle_chunk(chunk(1, 0, 3, cap(1, 0, 3)), Some(1000))
        .unwrap();
    // Even a complete single-part message of another channel is refused mid-message.
    assert_eq!(
        r.handle_chunk(chunk(2, 0, 1, 5), Some(1000)),
        Err(ReassemblyError::Interleaved {
            pending: 1,
            channel: 2
        })
    );
    // Another message on the same channel (a new part 0 with another total) too.
    let mut r = Reassembler::new(MAX);
    r.handle_chunk(chunk(1, 0, 3, cap(1, 0, 3)), Some(1000))
        .unwrap();
    assert_eq!(
        r.handle_chunk(chunk(1, 1, 2, cap(1, 1, 2)), Some(1000)),
        Err(ReassemblyError::TotalPartsChanged {
            pending: 3,
            total_parts: 2
        })
    );
}

#[test]
fn rule_non_final_full() {
    let mut r = Reassembler::new(MAX);
    r.handle_chunk(chunk(1, 0, 3, cap(1, 0, 3)), Some(1000))
        .unwrap();
    let short = cap(1, 1, 3) - 1;
    assert_eq!(
        r.handle_chunk(chunk(1, 1, 3, short), Some(1000)),
        Err(ReassemblyError::NotFull {
            part: 1,
            len: short,
            capacity: short as u32 + 1
        })
    );
}

#[test]
fn rule_final_non_empty() {
    let mut r = Reassembler::new(MAX);
    r.handle_chunk(chunk(1, 0, 2, cap(1, 0, 2)), Some(1000))
        .unwrap();
    assert_eq!(
        r.handle_chunk(chunk(1, 1, 2, 0), Some(1000)),
        Err(ReassemblyError::FinalEmpty { part: 1 })
    );
}

#[test]
fn rule_overfull() {
    let mut r = Reassembler::new(MAX);
    let over = cap(1, 0, 1) + 1;
    assert_eq!(
        r.handle_chunk(chunk(1, 0, 1, over), Some(1000)),
        Err(ReassemblyError::Overfull {
            part: 0,
            len: over,
            capacity: over as u32 - 1
        })
    );
    r.handle_chunk(chunk(1, 0, 2, cap(1, 0, 2)), Some(1000))
        .unwrap();
    let over = cap(1, 1, 2) + 1;
    assert!(matches!(
        r.handle_chunk(chunk(1, 1, 2, over), Some(1000)),
        Err(ReassemblyError::Overfull { part: 1, .. })
    ));
}

#[test]
fn rule_message_size() {
    // Single part above the channel's limit.
    let mut r = Reassembler::new(MAX);
    assert_eq!(
        r.handle_chunk(chunk(1, 0, 1, 50), Some(49)),
        Err(ReassemblyError::MessageTooLarge {
            channel: 1,
            max: 49
        })
    );
    // Multi-part: total_parts is within the bound but the final part overshoots it.
    let c0 = cap(1, 0, 2);
    let limit = c0 + 3;
    assert_eq!(total_parts_for(limit, MAX, 1), Ok(2));
    r.handle_chunk(chunk(1, 0, 2, c0), Some(limit)).unwrap();
    assert_eq!(
        r.handle_chunk(chunk(1, 1, 2, 4), Some(limit)),
        Err(ReassemblyError::MessageTooLarge {
            channel: 1,
            max: limit
        })
    );
    assert_eq!(r.buffered_len(), 0);
    // Exactly the limit is fine.
    r.handle_chunk(chunk(1, 0, 2, c0), Some(limit)).unwrap();
    let (_, got) = r
        .handle_chunk(chunk(1, 1, 2, 3), Some(limit))
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), limit);
}

#[test]
fn rule_frame_too_small_for_channel() {
    let mut r = Reassembler::new(4);
    assert_eq!(
        r.handle_chunk(chunk(1_000, 0, 1, 0), Some(10)),
        Err(ReassemblyError::FrameTooSmall {
            max_plaintext_len: 4,
            channel: 1_000
        })
    );
}

#[test]
fn reassembler_continues_after_a_message() {
    let mut r = Reassembler::new(MAX);
    for round in 0..3usize {
        let msg = message(250 + round);
        for frame in chunk_all(4, &msg, MAX) {
            if let Some((ch, got)) = r.handle_chunk(decode_chunk(frame), Some(1000)).unwrap() {
                assert_eq!((ch, got), (4, msg.clone()));
            }
        }
        assert!(!r.is_pending());
    }
}

/// Fuzz regression (`framing_reassembler`, crash-77f2332c): with 11-byte frames a channel's
/// 16 KiB maximum cannot be chunked at all (the part counts it needs leave chunks without room
/// for a byte), and the reassembler refused every multi-part message of that channel, even a
/// 64-byte one the chunker sends. The bound now falls back to "one byte per part".
#[test]
fn a_message_that_fits_is_accepted_when_the_channel_maximum_does_not() {
    let max = 11;
    assert!(total_parts_for(16_384, max, 65).is_err());
    let msg = message(64);
    let frames = chunk_all(65, &msg, max);
    assert!(frames.len() > 1);
    let mut r = Reassembler::new(max);
    let mut got = None;
    for frame in frames {
        got = r.handle_chunk(decode_chunk(frame), Some(16_384)).unwrap();
    }
    assert_eq!(got, Some((65, msg)));
}

/// A non-final part whose chunk has no room for a byte is refused: otherwise a peer could
/// announce up to the part bound of empty parts that never fill the buffer.
#[test]
fn rule_non_final_parts_carry_at_least_one_byte() {
    // Find a header (channel, total_parts) whose part 1 has no room for content at 11 bytes.
    let max = 11;
    let (channel, total) = (0..200u32)
        .flat_map(|c| [200u32, 20_000, 3_000_000].map(move |t| (c, t)))
        .find(|&(c, t)| {
            chunk_capacity(max, c, 1, t) == Some(0) && chunk_capacity(max, c, 0, t).unwrap_or(0) > 0
        })
        .expect("some header leaves part 1 empty");
    let first = chunk_capacity(max, channel, 0, total).unwrap() as usize;
    let mut r = Reassembler::new(max);
    let limit = Some(1usize << 31);
    assert_eq!(
        r.handle_chunk(chunk(channel, 0, total, first), limit),
        Ok(None)
    );
    assert!(matches!(
        r.handle_chunk(chunk(channel, 1, total, 0), limit),
        Err(ReassemblyError::FrameTooSmall { .. })
    ));
    assert_eq!(r.buffered_len(), 0);
}

/// The one-part shortcuts (sender: `total_parts_for`; receiver: a final part is checked by its
/// envelope length) agree with the capacity they stand for, at every length around it and at
/// every varint width of the channel.
#[test]
fn one_part_shortcuts_agree_with_the_capacity() {
    for max in [20u32, 135, 1008, 65_520, 1_048_560] {
        for channel in [0u32, 1, 127, 128, 16_384, u32::MAX] {
            let Some(cap) = chunk_capacity(max, channel, 0, 1) else {
                continue;
            };
            let cap = cap as usize;
            for len in cap.saturating_sub(3)..=cap + 3 {
                let parts = total_parts_for(len, max, channel);
                if len <= cap {
                    assert_eq!(parts, Ok(1), "max {max} channel {channel} len {len}");
                } else if let Ok(parts) = parts {
                    assert!(parts >= 2, "max {max} channel {channel} len {len}");
                }
                // The receiver accepts a single part exactly up to the capacity.
                let mut r = Reassembler::new(max);
                let chunk = Chunk {
                    channel,
                    part: 0,
                    total_parts: 1,
                    content: Bytes::from(vec![1u8; len]),
                };
                let got = r.handle_chunk(chunk, Some(usize::MAX));
                if len <= cap {
                    assert_eq!(got.unwrap().unwrap().1.len(), len);
                } else {
                    assert!(
                        matches!(got, Err(ReassemblyError::Overfull { capacity, .. }) if capacity as usize == cap),
                        "max {max} channel {channel} len {len}: {got:?}"
                    );
                }
            }
        }
    }
}
