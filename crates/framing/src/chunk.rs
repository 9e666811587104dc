//! Chunking a message into full frames, and reassembling it with hard limits.
//!
//! Every application message travels as one or more `p2p_proto::Chunk`s, each the only payload
//! of one `p2p_proto::Message` envelope, which is the plaintext of one frame:
//!
//! ```text
//! Message { chunk: Chunk { channel, part, total_parts, content } }
//!
//! +------+-----------+-------------------+----------------+--------------------+-----------------------------+
//! | 0x0A | body_len  | [0x08 channel]    | [0x10 part]    | 0x18 total_parts   | [0x22 content_len content]  |
//! | 1 B  | varint    | omitted if 0      | omitted if 0   | varint (never 0)   | omitted if empty            |
//! +------+-----------+-------------------+----------------+--------------------+-----------------------------+
//! ```
//!
//! `body_len` counts every byte after itself. Protobuf varints make the envelope overhead depend
//! on the values of `channel`, `part`, `total_parts` and the content length, so "a full chunk"
//! is defined by one function that both sides use, [`chunk_capacity`]: the largest content
//! length whose envelope ([`envelope_len`]) fits in `max_plaintext_len`. A full chunk's
//! envelope is `max_plaintext_len` or one byte less: one more content byte grows the envelope by
//! 2 bytes where the content length varint or the body length varint gains a byte, so some
//! plaintext lengths cannot be hit exactly (two bytes less only when the capacity is 0).
//!
//! Rules (checked by [`Reassembler::handle_chunk`], each with its own [`ReassemblyError`]):
//! - the channel is known (the caller passes its maximum message size, or `None`);
//! - `total_parts >= 1` and `part < total_parts`;
//! - `total_parts` is at most [`total_parts_for`] the channel's maximum message size, checked on
//!   the first part before anything is buffered;
//! - parts arrive in order `0..total_parts`, without gaps, repeats, or chunks of another message
//!   in between (another channel, or another `total_parts`);
//! - every non-final part carries exactly [`chunk_capacity`] bytes, the final part of a
//!   multi-part message carries 1 to [`chunk_capacity`] bytes;
//! - a single-part message (`total_parts == 1`) carries 0 to [`chunk_capacity`] bytes: the empty
//!   message is allowed, and is sent as a single part with no content field;
//! - the sum of the parts is at most the channel's maximum message size.

use bytes::{BufMut, Bytes, BytesMut};
use p2p_proto::Chunk;
use prost::encoding::{encode_varint, encoded_len_varint};

/// Protobuf key of `Message.chunk` (field 1, length-delimited).
pub const KEY_MESSAGE_CHUNK: u8 = 0x0A;
/// Protobuf key of `Chunk.channel` (field 1, varint).
pub const KEY_CHUNK_CHANNEL: u8 = 0x08;
/// Protobuf key of `Chunk.part` (field 2, varint).
pub const KEY_CHUNK_PART: u8 = 0x10;
/// Protobuf key of `Chunk.total_parts` (field 3, varint).
pub const KEY_CHUNK_TOTAL_PARTS: u8 = 0x18;
/// Protobuf key of `Chunk.content` (field 4, length-delimited).
pub const KEY_CHUNK_CONTENT: u8 = 0x22;

/// Encoded length of a proto3 scalar field with a one-byte key: nothing when the value is 0.
fn scalar_field_len(value: u32) -> u64 {
    if value == 0 {
        0
    } else {
        1 + encoded_len_varint(u64::from(value)) as u64
    }
}

/// Length of the `Chunk` body (the bytes after `0x0A body_len`).
fn chunk_body_len(channel: u32, part: u32, total_parts: u32, content_len: u64) -> u64 {
    let content = if content_len == 0 {
        0
    } else {
        1 + encoded_len_varint(content_len) as u64 + content_len
    };
    scalar_field_len(channel) + scalar_field_len(part) + scalar_field_len(total_parts) + content
}

/// Exact encoded length of `Message { chunk: Chunk { channel, part, total_parts, content } }`
/// with `content_len` bytes of content: the plaintext length of the frame that carries it.
pub fn envelope_len(channel: u32, part: u32, total_parts: u32, content_len: u64) -> u64 {
    let body = chunk_body_len(channel, part, total_parts, content_len);
    1 + encoded_len_varint(body) as u64 + body
}

/// The content capacity of one chunk: the largest content length whose envelope
/// ([`envelope_len`]) is at most `max_plaintext_len`.
///
/// Both the [`Chunker`] and the [`Reassembler`] use it: every non-final part of a message carries
/// exactly this many bytes. Returns `None` when not even an empty chunk with this header fits.
pub fn chunk_capacity(
    max_plaintext_len: u32,
    channel: u32,
    part: u32,
    total_parts: u32,
) -> Option<u32> {
    let max = u64::from(max_plaintext_len);
    if envelope_len(channel, part, total_parts, 0) > max {
        return None;
    }
    // Largest body with `1 + vl(body) + body <= max`, then the largest content with
    // `fixed + 1 + vl(content) + content <= body` (the envelope grows with the body, which grows
    // with the content). `max >= envelope_len(.., 0) >= 1 + 1 + 2` here, so `max - 1 >= 1`.
    let body = max_with_varint(max - 1);
    let fixed = chunk_body_len(channel, part, total_parts, 0);
    let content = match body.checked_sub(fixed + 1) {
        Some(room) if room >= 1 => max_with_varint(room),
        _ => 0,
    };
    // `content <= max <= u32::MAX`.
    Some(content as u32)
}

/// The largest `x` with `x + vl(x) <= limit` (`1 <= limit <= u32::MAX`), where `vl` is the
/// protobuf varint length: for each varint width `w`, the largest value of that width that fits
/// is `min(limit - w, 2^(7w) - 1)`; five widths cover every `u32`.
fn max_with_varint(limit: u64) -> u64 {
    let mut best = 0;
    for width in 1..=5u32 {
        let Some(x) = limit.checked_sub(u64::from(width)) else {
            break;
        };
        best = best.max(x.min((1u64 << (7 * width)) - 1));
    }
    best
}

/// Number of parts values whose varint has `width` bytes, and the smallest one.
const fn part_class(width: u32) -> (u64, u64) {
    // Smallest value with a `width`-byte varint: 128^(width-1); class 0 is part 0 alone.
    let first = if width == 0 {
        0
    } else {
        1u64 << (7 * (width - 1))
    };
    let end = if width == 0 { 1 } else { 1u64 << (7 * width) };
    // u32 parts only: cap the top class at u32::MAX.
    let end = if end > 1u64 << 32 { 1u64 << 32 } else { end };
    (end - first, first)
}

/// Minimal number of parts for a message of `message_len` bytes on `channel`, when the content of
/// every part but the last fills [`chunk_capacity`].
///
/// An empty message takes one part. Fails with [`ChunkError::FrameTooSmall`] when a chunk that
/// the message needs cannot carry a single byte, and [`ChunkError::TooManyParts`] beyond
/// `u32::MAX` parts.
pub fn total_parts_for(
    message_len: usize,
    max_plaintext_len: u32,
    channel: u32,
) -> Result<u32, ChunkError> {
    let too_small = ChunkError::FrameTooSmall {
        max_plaintext_len,
        channel,
    };
    let len = message_len as u64;
    // The common case first: the message fits one chunk (`envelope_len` grows with the
    // content, so this is `len <= chunk_capacity(.., 0, 1)`, without computing the capacity).
    if envelope_len(channel, 0, 1, len) <= u64::from(max_plaintext_len) {
        return Ok(1);
    }
    // The width of the `total_parts` varint changes the capacities, which change the number of
    // parts: try each width in turn. Capacities shrink as the width grows, so the part count
    // grows with it and the first width that holds the count is the answer.
    for width in 1..=5u32 {
        let (_, total_rep) = part_class(width);
        let total_rep = total_rep as u32;
        let Some(first_cap) = chunk_capacity(max_plaintext_len, channel, 0, total_rep) else {
            return Err(too_small);
        };
        let first_cap = u64::from(first_cap);
        if len <= first_cap {
            if len > 0 && first_cap == 0 {
                return Err(too_small);
            }
            return Ok(1);
        }
        if first_cap == 0 {
            return Err(too_small);
        }
        let mut remaining = len - first_cap;
        let mut parts: u64 = 1;
        let mut found = None;
        for class in 1..=5u32 {
            let (count, part_rep) = part_class(class);
            let cap = match chunk_capacity(max_plaintext_len, channel, part_rep as u32, total_rep) {
                Some(0) | None => return Err(too_small),
                Some(cap) => u64::from(cap),
            };
            let needed = remaining.div_ceil(cap);
            if needed <= count {
                found = Some(parts + needed);
                break;
            }
            remaining -= count * cap;
            parts += count;
        }
        let Some(total) = found else {
            return Err(ChunkError::TooManyParts { message_len });
        };
        if encoded_len_varint(total) <= width as usize {
            // `total` has a varint of at most 5 bytes here, and the class counts stop at u32::MAX.
            return u32::try_from(total).map_err(|_| ChunkError::TooManyParts { message_len });
        }
    }
    Err(ChunkError::TooManyParts { message_len })
}

/// Appends `Message { chunk: Chunk { channel, part, total_parts, content } }` to `out`.
fn write_envelope(out: &mut BytesMut, channel: u32, part: u32, total_parts: u32, content: &[u8]) {
    let content_len = content.len() as u64;
    let body = chunk_body_len(channel, part, total_parts, content_len);
    out.reserve(1 + encoded_len_varint(body) + body as usize);
    out.put_u8(KEY_MESSAGE_CHUNK);
    encode_varint(body, out);
    for (key, value) in [
        (KEY_CHUNK_CHANNEL, channel),
        (KEY_CHUNK_PART, part),
        (KEY_CHUNK_TOTAL_PARTS, total_parts),
    ] {
        if value != 0 {
            out.put_u8(key);
            encode_varint(u64::from(value), out);
        }
    }
    if !content.is_empty() {
        out.put_u8(KEY_CHUNK_CONTENT);
        encode_varint(content_len, out);
        out.put_slice(content);
    }
}

/// Local misuse when splitting a message (the message is not sent).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The frame is too small to carry a chunk header and one byte of content.
    #[error("a {max_plaintext_len}-byte frame cannot carry a chunk of channel {channel}")]
    FrameTooSmall {
        /// Maximum plaintext length of one frame.
        max_plaintext_len: u32,
        /// Channel of the message.
        channel: u32,
    },
    /// The message would need more than `u32::MAX` parts.
    #[error("a {message_len}-byte message needs more than u32::MAX parts")]
    TooManyParts {
        /// Length of the message.
        message_len: usize,
    },
}

/// Splits one message into chunks, each written as one frame's plaintext.
///
/// Sending side. The message is sliced, never copied, except into the output buffer: each call
/// to [`Chunker::write_next`] appends exactly one envelope.
#[derive(Clone, Debug)]
pub struct Chunker {
    channel: u32,
    message: Bytes,
    max_plaintext_len: u32,
    total_parts: u32,
    next_part: u32,
    offset: usize,
}

impl Chunker {
    /// Splits `message` (already compressed if the channel compresses) for `channel` into chunks
    /// whose content is [`chunk_capacity`] bytes, except the last one.
    pub fn new(channel: u32, message: Bytes, max_plaintext_len: u32) -> Result<Self, ChunkError> {
        let total_parts = total_parts_for(message.len(), max_plaintext_len, channel)?;
        Ok(Self {
            channel,
            message,
            max_plaintext_len,
            total_parts,
            next_part: 0,
            offset: 0,
        })
    }

    /// Number of chunks (frames) the message takes.
    pub fn total_parts(&self) -> u32 {
        self.total_parts
    }

    /// Whether every chunk has been written.
    pub fn is_finished(&self) -> bool {
        self.next_part >= self.total_parts
    }

    /// The length of the envelope [`Chunker::write_next`] would append next, and whether that
    /// chunk ends the message; `None` once every part has been written.
    pub fn peek_next(&self) -> Option<(usize, bool)> {
        if self.is_finished() {
            return None;
        }
        let (part, take) = self.next_take();
        let len = envelope_len(self.channel, part, self.total_parts, take as u64);
        Some((
            usize::try_from(len).unwrap_or(usize::MAX),
            part + 1 == self.total_parts,
        ))
    }

    /// The next part's index and content length.
    fn next_take(&self) -> (u32, usize) {
        let part = self.next_part;
        let rest = self.message.len().saturating_sub(self.offset);
        if part + 1 == self.total_parts {
            return (part, rest);
        }
        // `Chunker::new` checked (through `total_parts_for`) that every part has a capacity.
        let cap = chunk_capacity(self.max_plaintext_len, self.channel, part, self.total_parts)
            .unwrap_or(0) as usize;
        (part, cap.min(rest))
    }

    /// Appends the next chunk, encoded as one `p2p_proto::Message { chunk }`, to `out`; returns
    /// false (appending nothing) once every part has been written.
    ///
    /// The appended envelope is at most `max_plaintext_len` bytes.
    pub fn write_next(&mut self, out: &mut BytesMut) -> bool {
        if self.is_finished() {
            return false;
        }
        let (part, take) = self.next_take();
        let rest = &self.message[self.offset..];
        write_envelope(out, self.channel, part, self.total_parts, &rest[..take]);
        self.offset += take;
        self.next_part += 1;
        true
    }
}

/// A chunk broke a reassembly rule. Every variant is peer misbehaviour and fatal for the
/// connection; after an error the [`Reassembler`] holds nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReassemblyError {
    /// The chunk names a channel that is not registered.
    #[error("chunk on unknown channel {channel}")]
    UnknownChannel {
        /// The channel named by the chunk.
        channel: u32,
    },
    /// `total_parts` is 0.
    #[error("chunk with total_parts = 0")]
    ZeroTotalParts,
    /// `part` is not below `total_parts`.
    #[error("part {part} out of range for {total_parts} parts")]
    PartOutOfRange {
        /// The part index.
        part: u32,
        /// The announced number of parts.
        total_parts: u32,
    },
    /// `total_parts` exceeds what the channel's maximum message size needs at this frame size.
    #[error("{total_parts} parts exceed the maximum of {max_parts} for channel {channel}")]
    TooManyParts {
        /// The channel.
        channel: u32,
        /// The announced number of parts.
        total_parts: u32,
        /// Parts needed by a message of the channel's maximum size.
        max_parts: u32,
    },
    /// A part was skipped (including a first chunk whose part is not 0).
    #[error("expected part {expected}, got part {part} (gap)")]
    MissingPart {
        /// The part that should have come.
        expected: u32,
        /// The part that came.
        part: u32,
    },
    /// A part came again.
    #[error("expected part {expected}, got part {part} again")]
    RepeatedPart {
        /// The part that should have come.
        expected: u32,
        /// The part that came.
        part: u32,
    },
    /// A chunk of another channel arrived while a message was incomplete.
    #[error("chunk of channel {channel} interleaved with the message on channel {pending}")]
    Interleaved {
        /// The channel of the incomplete message.
        pending: u32,
        /// The channel of the chunk.
        channel: u32,
    },
    /// A chunk announced a different `total_parts` than the earlier parts of its message.
    #[error("total_parts changed from {pending} to {total_parts} within a message")]
    TotalPartsChanged {
        /// The count announced by the first part.
        pending: u32,
        /// The count in this chunk.
        total_parts: u32,
    },
    /// A non-final part does not carry exactly the chunk capacity.
    #[error("part {part} carries {len} bytes, a non-final part must carry {capacity}")]
    NotFull {
        /// The part index.
        part: u32,
        /// Its content length.
        len: usize,
        /// The chunk capacity for this part.
        capacity: u32,
    },
    /// The final part of a multi-part message is empty.
    #[error("final part {part} is empty")]
    FinalEmpty {
        /// The part index.
        part: u32,
    },
    /// A part carries more than fits in a frame.
    #[error("part {part} carries {len} bytes, more than the capacity {capacity}")]
    Overfull {
        /// The part index.
        part: u32,
        /// Its content length.
        len: usize,
        /// The chunk capacity for this part.
        capacity: u32,
    },
    /// The message grows past the channel's maximum message size.
    #[error("message on channel {channel} exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// The channel.
        channel: u32,
        /// The channel's maximum message size.
        max: usize,
    },
    /// The configured frame size cannot carry a chunk of this channel (local configuration).
    #[error("a {max_plaintext_len}-byte frame cannot carry a chunk of channel {channel}")]
    FrameTooSmall {
        /// Maximum plaintext length of one frame.
        max_plaintext_len: u32,
        /// The channel.
        channel: u32,
    },
}

/// The message being reassembled.
#[derive(Debug)]
struct Pending {
    channel: u32,
    total_parts: u32,
    next_part: u32,
    max_message_len: usize,
    buffer: BytesMut,
}

/// Reassembles chunked messages on the receiving side of one connection.
///
/// Feed it every `Chunk` in arrival order with [`Reassembler::handle_chunk`]; it returns each
/// complete message. A single-part message is returned as a slice of the chunk's content (no
/// copy); a multi-part message is copied once, into a buffer reserved on its first part for
/// `min(max_message_len, total_parts * capacity)` bytes.
#[derive(Debug)]
pub struct Reassembler {
    max_plaintext_len: u32,
    pending: Option<Pending>,
}

impl Reassembler {
    /// A reassembler for frames of at most `max_plaintext_len` plaintext bytes (must equal the
    /// sender's value: it defines which chunks are full).
    pub fn new(max_plaintext_len: u32) -> Self {
        Self {
            max_plaintext_len,
            pending: None,
        }
    }

    /// Handles one received chunk.
    ///
    /// `max_message_len`: the channel's maximum message size (as sent, i.e. compressed if the
    /// channel compresses), or `None` when the channel is unknown. Returns
    /// `Some((channel, message))` when the last part of a message arrives. Every error is fatal
    /// for the connection and drops whatever was buffered.
    pub fn handle_chunk(
        &mut self,
        chunk: Chunk,
        max_message_len: Option<usize>,
    ) -> Result<Option<(u32, Bytes)>, ReassemblyError> {
        let result = self.check_and_buffer(chunk, max_message_len);
        if result.is_err() {
            self.pending = None;
        }
        result
    }

    /// Bytes of the incomplete message buffered so far.
    pub fn buffered_len(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.buffer.len())
    }

    /// Whether a multi-part message is incomplete.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn capacity(&self, channel: u32, part: u32, total_parts: u32) -> Result<u32, ReassemblyError> {
        chunk_capacity(self.max_plaintext_len, channel, part, total_parts).ok_or(
            ReassemblyError::FrameTooSmall {
                max_plaintext_len: self.max_plaintext_len,
                channel,
            },
        )
    }

    /// Bounds the `total_parts` of a new message by what a message of the channel's maximum size
    /// needs at this frame size.
    fn check_total_parts(
        &self,
        channel: u32,
        total_parts: u32,
        max_message_len: usize,
    ) -> Result<(), ReassemblyError> {
        let max_parts = match total_parts_for(max_message_len, self.max_plaintext_len, channel) {
            Ok(max_parts) => max_parts,
            // The channel's maximum message cannot be sent at this frame size (too many parts,
            // or a part count whose chunks cannot carry a byte), but smaller messages can. Every
            // part carries at least one byte (checked per part), so a message of at most
            // `max_message_len` bytes has at most that many parts.
            Err(ChunkError::TooManyParts { .. } | ChunkError::FrameTooSmall { .. }) => {
                u32::try_from(max_message_len).unwrap_or(u32::MAX)
            }
        };
        if total_parts > max_parts {
            return Err(ReassemblyError::TooManyParts {
                channel,
                total_parts,
                max_parts,
            });
        }
        Ok(())
    }

    fn check_and_buffer(
        &mut self,
        chunk: Chunk,
        max_message_len: Option<usize>,
    ) -> Result<Option<(u32, Bytes)>, ReassemblyError> {
        let Chunk {
            channel,
            part,
            total_parts,
            content,
        } = chunk;
        let Some(max_message_len) = max_message_len else {
            return Err(ReassemblyError::UnknownChannel { channel });
        };
        if let Some(pending) = &self.pending {
            if channel != pending.channel {
                return Err(ReassemblyError::Interleaved {
                    pending: pending.channel,
                    channel,
                });
            }
            if total_parts != pending.total_parts {
                return Err(ReassemblyError::TotalPartsChanged {
                    pending: pending.total_parts,
                    total_parts,
                });
            }
            if part < pending.next_part {
                return Err(ReassemblyError::RepeatedPart {
                    expected: pending.next_part,
                    part,
                });
            }
            if part > pending.next_part {
                return Err(ReassemblyError::MissingPart {
                    expected: pending.next_part,
                    part,
                });
            }
        } else {
            if total_parts == 0 {
                return Err(ReassemblyError::ZeroTotalParts);
            }
            if part >= total_parts {
                return Err(ReassemblyError::PartOutOfRange { part, total_parts });
            }
            if part != 0 {
                return Err(ReassemblyError::MissingPart { expected: 0, part });
            }
            if total_parts > 1 {
                self.check_total_parts(channel, total_parts, max_message_len)?;
            }
        }
        let len = content.len();
        let is_final = part + 1 == total_parts;
        // A final part only has to fit its frame: `envelope_len <= max_plaintext_len` is
        // `len <= capacity` (the envelope grows with the content), checked without computing
        // the capacity, which the error path and the non-final parts still do.
        let fits = envelope_len(channel, part, total_parts, len as u64)
            <= u64::from(self.max_plaintext_len);
        if is_final && fits {
            return self.buffer(channel, part, total_parts, content, max_message_len, None);
        }
        let capacity = self.capacity(channel, part, total_parts)?;
        if len > capacity as usize {
            return Err(ReassemblyError::Overfull {
                part,
                len,
                capacity,
            });
        }
        if !is_final && capacity == 0 {
            // A sender never needs a part that cannot carry a byte; accepting one would let a
            // peer announce billions of empty parts.
            return Err(ReassemblyError::FrameTooSmall {
                max_plaintext_len: self.max_plaintext_len,
                channel,
            });
        }
        if !is_final && len != capacity as usize {
            return Err(ReassemblyError::NotFull {
                part,
                len,
                capacity,
            });
        }
        self.buffer(
            channel,
            part,
            total_parts,
            content,
            max_message_len,
            Some(capacity),
        )
    }

    /// Buffers (or hands out) a chunk that passed the order and fullness checks; `capacity` is
    /// the part's capacity if it was computed.
    fn buffer(
        &mut self,
        channel: u32,
        part: u32,
        total_parts: u32,
        content: Bytes,
        max_message_len: usize,
        capacity: Option<u32>,
    ) -> Result<Option<(u32, Bytes)>, ReassemblyError> {
        let len = content.len();
        let is_final = part + 1 == total_parts;
        if is_final && total_parts > 1 && len == 0 {
            return Err(ReassemblyError::FinalEmpty { part });
        }
        let too_large = ReassemblyError::MessageTooLarge {
            channel,
            max: max_message_len,
        };

        // Single-part message: hand out the content slice itself.
        if total_parts == 1 {
            if len > max_message_len {
                return Err(too_large);
            }
            return Ok(Some((channel, content)));
        }

        if let Some(pending) = &mut self.pending {
            if pending.buffer.len() + len > pending.max_message_len {
                return Err(too_large);
            }
            pending.buffer.extend_from_slice(&content);
            pending.next_part += 1;
        } else {
            if len > max_message_len {
                return Err(too_large);
            }
            // Part 0 has the largest capacity (its `part` field is omitted), so this bounds the
            // message; `max_message_len` bounds the reservation.
            let capacity = match capacity {
                Some(c) => c,
                None => self.capacity(channel, part, total_parts)?,
            };
            let bound =
                (u64::from(total_parts) * u64::from(capacity)).min(max_message_len as u64) as usize;
            let mut buffer = BytesMut::with_capacity(bound);
            buffer.extend_from_slice(&content);
            self.pending = Some(Pending {
                channel,
                total_parts,
                next_part: 1,
                max_message_len,
                buffer,
            });
        }

        if is_final {
            // The `if let` above ran on `Some`, so `pending` is set; `take` yields it.
            return Ok(self
                .pending
                .take()
                .map(|pending| (channel, pending.buffer.freeze())));
        }
        Ok(None)
    }
}
