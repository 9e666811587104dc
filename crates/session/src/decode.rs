//! Bounded pre-decoding of a frame plaintext.
//!
//! prost allocates while it decodes: one `Peer` per entry of a `Peers` message (2 bytes on the
//! wire, about 100 in memory) and one `u32` per channel id of a `VersionInfo` (1 byte on the
//! wire when packed). A frame of empty entries would therefore make prost allocate about 50
//! times the frame's length before any count limit could be checked. This module walks the
//! protobuf wire format first, without allocating: it finds the payload kind (exactly one
//! payload field), counts the repeated entries and checks the lengths against [`Limits`], and
//! only then hands the bytes to prost. The peak allocation of decoding any frame is then at most
//! a small constant times the frame's length (the `Vec`s prost grows, bounded by the counts).
//!
//! Wire format walked (see `docs/protocol.md`): a key varint `field << 3 | wire_type`, then a
//! varint (type 0), 8 bytes (type 1), a varint length and that many bytes (type 2) or 4 bytes
//! (type 5). Groups (types 3 and 4) are refused.

use bytes::Bytes;
use p2p_framing::envelope;
use p2p_proto::message::Payload;

/// Field numbers of the `Message.payload` oneof.
const FIELD_CHUNK: u32 = 1;
const FIELD_BIT_VEC: u32 = 2;
const FIELD_PEERS: u32 = 3;
const FIELD_VERSION: u32 = 4;
/// `Peers.peers`.
const FIELD_PEERS_ENTRY: u32 = 1;
/// `BitVec.bits`.
const FIELD_BITS: u32 = 2;
/// `VersionInfo.software_version` and `VersionInfo.channels`.
const FIELD_SOFTWARE_VERSION: u32 = 4;
const FIELD_CHANNELS: u32 = 5;

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// The kind of a frame's payload, known before it is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `Chunk` of a channel message.
    Chunk,
    /// A `BitVec` (discovery knowledge, keep-alive ping).
    BitVec,
    /// A `Peers` message (signed address records).
    Peers,
    /// A `VersionInfo`.
    Version,
}

/// Counts and lengths checked before prost sees a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most records in one `Peers` message (discovery's `max_records_per_message`).
    pub max_records: usize,
    /// Most channel ids in one `VersionInfo`.
    pub max_channels: usize,
    /// Longest `VersionInfo.software_version`, in bytes.
    pub max_software_version: usize,
    /// Longest `BitVec.bits`, in bytes (`ceil(max_peer_set_size / 8)`).
    pub max_bit_vec_bytes: usize,
}

/// Why a frame plaintext was refused before or while decoding. All are fatal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The protobuf wire format is broken (truncated, bad varint, group, wrong wire type).
    #[error("malformed frame plaintext: {0}")]
    Malformed(&'static str),
    /// No known payload field.
    #[error("frame without a known payload")]
    MissingPayload,
    /// More than one payload field (an honest encoder writes exactly one).
    #[error("frame with more than one payload field")]
    MultiplePayloads,
    /// A `Peers` message with more records than allowed.
    #[error("peers message with {got} records, at most {max} allowed")]
    TooManyRecords {
        /// Records counted on the wire.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A `VersionInfo` with more channel ids than allowed.
    #[error("version info with {got} channel ids, at most {max} allowed")]
    TooManyChannels {
        /// Ids counted on the wire.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A `VersionInfo.software_version` longer than allowed.
    #[error("software version of {got} bytes, at most {max} allowed")]
    SoftwareVersionTooLong {
        /// Its length.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A `BitVec.bits` longer than any tracked set allows.
    #[error("bit vector of {got} bytes, at most {max} allowed")]
    BitVecTooLong {
        /// Its length.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// prost refused the bytes after the walk (e.g. invalid UTF-8).
    #[error(transparent)]
    Envelope(#[from] envelope::EnvelopeError),
}

/// A cursor over protobuf wire bytes.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    const fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    const fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(DecodeError::Malformed("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed("varint longer than 10 bytes"))
    }

    /// The next key: (field number, wire type).
    fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| DecodeError::Malformed("field number"))?;
        if field == 0 {
            return Err(DecodeError::Malformed("field number 0"));
        }
        // The wire type is the key's low three bits.
        Ok((field, (key & 7) as u8))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Malformed("length beyond the frame"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Malformed("length"))?;
        self.take(len)
    }

    /// Skips the value of a field of `wire` type (returns a length-delimited value's bytes).
    fn skip(&mut self, wire: u8) -> Result<Option<&'a [u8]>, DecodeError> {
        match wire {
            WIRE_VARINT => self.varint().map(|_| None),
            WIRE_FIXED64 => self.take(8).map(|_| None),
            WIRE_LEN => self.len_delimited().map(Some),
            WIRE_FIXED32 => self.take(4).map(|_| None),
            _ => Err(DecodeError::Malformed("group or unknown wire type")),
        }
    }
}

/// Finds the payload kind of a frame plaintext without decoding it: exactly one payload field
/// (unknown fields are skipped, as protobuf requires). Returns the kind and the payload's bytes.
pub fn peek(body: &[u8]) -> Result<(Kind, &[u8]), DecodeError> {
    let mut wire = Wire::new(body);
    let mut found: Option<(Kind, &[u8])> = None;
    while !wire.done() {
        let (field, wt) = wire.key()?;
        let kind = match field {
            FIELD_CHUNK => Some(Kind::Chunk),
            FIELD_BIT_VEC => Some(Kind::BitVec),
            FIELD_PEERS => Some(Kind::Peers),
            FIELD_VERSION => Some(Kind::Version),
            _ => None,
        };
        match kind {
            Some(kind) => {
                if wt != WIRE_LEN {
                    return Err(DecodeError::Malformed(
                        "payload field is not length-delimited",
                    ));
                }
                let inner = wire.len_delimited()?;
                if found.is_some() {
                    return Err(DecodeError::MultiplePayloads);
                }
                found = Some((kind, inner));
            }
            None => {
                wire.skip(wt)?;
            }
        }
    }
    found.ok_or(DecodeError::MissingPayload)
}

/// The key byte of a `Chunk` payload field (field 1, length-delimited).
const CHUNK_KEY: u8 = 0x0A;

/// Whether `body` is a batch frame: two or more top-level fields, each a `Chunk` payload
/// (key byte `0x0A`), and nothing else (protocol minor 1, see `docs/protocol.md`, "Batch
/// frames"). A single envelope is not a batch.
///
/// Errors: a frame with several payload fields that are not all chunks (or with unknown fields
/// beside them) is [`DecodeError::MultiplePayloads`]; broken wire bytes are
/// [`DecodeError::Malformed`].
pub fn is_batch(body: &[u8]) -> Result<bool, DecodeError> {
    let mut wire = Wire::new(body);
    let mut chunks = 0usize;
    let mut other = false;
    while !wire.done() {
        let at = wire.pos;
        let (field, wt) = wire.key()?;
        wire.skip(wt)?;
        // A chunk field written with its one-byte key, as every encoder does (a batch is split
        // by that byte).
        if field == FIELD_CHUNK && wt == WIRE_LEN && body.get(at) == Some(&CHUNK_KEY) {
            chunks += 1;
        } else {
            other = true;
        }
    }
    match (chunks, other) {
        (0 | 1, _) => Ok(false),
        (_, false) => Ok(true),
        (_, true) => Err(DecodeError::MultiplePayloads),
    }
}

/// Splits the first envelope off a batch frame checked by [`is_batch`]: returns
/// `0x0A len chunk` as a standalone frame plaintext (decode it with [`decode`]) and leaves the
/// rest in `batch`. `None` once `batch` is empty.
pub fn split_batch(batch: &mut Bytes) -> Option<Result<Bytes, DecodeError>> {
    if batch.is_empty() {
        return None;
    }
    let mut wire = Wire::new(batch);
    let end = wire
        .key()
        .and_then(|_| wire.len_delimited())
        .map(|_| wire.pos);
    Some(match end {
        Ok(end) => Ok(batch.split_to(end)),
        Err(e) => {
            batch.clear();
            Err(e)
        }
    })
}

/// Checks the counts and lengths inside a payload of `kind` (see [`Limits`]).
fn check_inner(kind: Kind, inner: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    if kind == Kind::Chunk {
        // No count or length of a chunk is bounded here (its content is one slice of the
        // frame, and prost checks the wire format as it decodes): nothing to walk.
        return Ok(());
    }
    let mut wire = Wire::new(inner);
    let mut records = 0usize;
    let mut channels = 0usize;
    while !wire.done() {
        let (field, wt) = wire.key()?;
        let value = wire.skip(wt)?;
        match (kind, field) {
            (Kind::Peers, FIELD_PEERS_ENTRY) => {
                records += 1;
                if records > limits.max_records {
                    return Err(DecodeError::TooManyRecords {
                        got: records,
                        max: limits.max_records,
                    });
                }
            }
            (Kind::BitVec, FIELD_BITS) => {
                let got = value.map_or(0, <[u8]>::len);
                if got > limits.max_bit_vec_bytes {
                    return Err(DecodeError::BitVecTooLong {
                        got,
                        max: limits.max_bit_vec_bytes,
                    });
                }
            }
            (Kind::Version, FIELD_SOFTWARE_VERSION) => {
                let got = value.map_or(0, <[u8]>::len);
                if got > limits.max_software_version {
                    return Err(DecodeError::SoftwareVersionTooLong {
                        got,
                        max: limits.max_software_version,
                    });
                }
            }
            (Kind::Version, FIELD_CHANNELS) => {
                // Packed: one varint per id (every byte without the continuation bit ends one).
                channels += match value {
                    Some(packed) => packed.iter().filter(|b| *b & 0x80 == 0).count(),
                    None => 1,
                };
                if channels > limits.max_channels {
                    return Err(DecodeError::TooManyChannels {
                        got: channels,
                        max: limits.max_channels,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Decodes a frame plaintext after the bounded walk: [`peek`], the checks of [`Limits`], then
/// prost. Byte fields are slices of `body` (no copy).
pub fn decode(body: Bytes, limits: &Limits) -> Result<(Kind, Payload), DecodeError> {
    let (kind, inner) = peek(&body)?;
    check_inner(kind, inner, limits)?;
    let payload = envelope::decode(body)?;
    Ok((kind, payload))
}

/// The length of [`encode`]'s output for `payload`, without encoding it.
pub fn encoded_len(payload: &Payload) -> usize {
    envelope::encoded_len(payload)
}

/// Encodes a payload into a frame plaintext.
pub fn encode(payload: &Payload) -> Bytes {
    let mut out = bytes::BytesMut::with_capacity(envelope::encoded_len(payload));
    envelope::encode(payload, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::{BitVec, Peer, Peers, VersionInfo};

    const LIMITS: Limits = Limits {
        max_records: 4,
        max_channels: 3,
        max_software_version: 8,
        max_bit_vec_bytes: 2,
    };

    #[test]
    fn kinds_round_trip() {
        let bv = Payload::BitVec(BitVec {
            index: 7,
            bits: Bytes::from_static(&[1]),
        });
        let (kind, payload) = decode(encode(&bv), &LIMITS).unwrap();
        assert_eq!(kind, Kind::BitVec);
        assert_eq!(payload, bv);
    }

    #[test]
    fn counts_are_checked_before_prost() {
        let peers = Payload::Peers(Peers {
            peers: vec![Peer::default(); 5],
        });
        assert_eq!(
            decode(encode(&peers), &LIMITS),
            Err(DecodeError::TooManyRecords { got: 5, max: 4 })
        );
        let version = Payload::Version(VersionInfo {
            channels: vec![1, 2, 300, 4],
            ..Default::default()
        });
        assert_eq!(
            decode(encode(&version), &LIMITS),
            Err(DecodeError::TooManyChannels { got: 4, max: 3 })
        );
        let version = Payload::Version(VersionInfo {
            software_version: "123456789".into(),
            ..Default::default()
        });
        assert!(matches!(
            decode(encode(&version), &LIMITS),
            Err(DecodeError::SoftwareVersionTooLong { got: 9, .. })
        ));
        let bv = Payload::BitVec(BitVec {
            index: 0,
            bits: Bytes::from_static(&[0, 0, 0]),
        });
        assert!(matches!(
            decode(encode(&bv), &LIMITS),
            Err(DecodeError::BitVecTooLong { got: 3, max: 2 })
        ));
    }

    #[test]
    fn malformed_wire_is_refused() {
        // Two payload fields.
        let mut two = encode(&Payload::BitVec(BitVec::default())).to_vec();
        two.extend_from_slice(&encode(&Payload::Peers(Peers::default())));
        assert_eq!(peek(&two), Err(DecodeError::MultiplePayloads));
        // Empty, truncated, group, field 0, unterminated varint.
        assert_eq!(peek(&[]), Err(DecodeError::MissingPayload));
        assert!(matches!(
            peek(&[0x1a, 5, 0]),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(peek(&[0x0b]), Err(DecodeError::Malformed(_))));
        assert!(matches!(peek(&[0x02, 0]), Err(DecodeError::Malformed(_))));
        assert!(matches!(peek(&[0xff; 11]), Err(DecodeError::Malformed(_))));
        // A payload field with a varint wire type.
        assert!(matches!(peek(&[0x08, 1]), Err(DecodeError::Malformed(_))));
        // Unknown fields alone: no payload.
        assert_eq!(peek(&[0x28, 1]), Err(DecodeError::MissingPayload));
    }
}
