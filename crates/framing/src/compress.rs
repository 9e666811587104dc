//! Optional per-channel zstd, applied to a whole message before chunking.
//!
//! [`compress`] writes standard zstd frames that declare their content size. [`decompress`]
//! requires that declaration: it sums the declared sizes of every frame in the input, refuses
//! more than `max_len` before allocating anything, then decompresses in one shot into a buffer of
//! exactly the declared size, so a frame that lies about its size fails with a "too large"
//! error instead of growing the buffer. One-shot decompression decodes into the output buffer
//! itself, so the decoder allocates no window for attacker-chosen window sizes either.
//!
//! Only frames of the current zstd format (magic number [`ZSTD_MAGIC`]) are accepted: the
//! workspace builds zstd without its `legacy` feature, so the v0.1-v0.7 decoders are not even
//! linked, and [`decompress`] refuses every other magic number (legacy and skippable frames
//! with [`CompressError::UnsupportedFrame`]) before zstd looks at the input.
//!
//! Compression and decompression contexts are cached per thread (created on first use), so a
//! small message does not pay for context setup.

use bytes::Bytes;
use std::cell::RefCell;
use zstd::zstd_safe::{self, CCtx, CParameter, DCtx};

/// A message could not be compressed or decompressed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressError {
    /// The compression level is outside zstd's range (local misuse).
    #[error("zstd level {level} is outside {min}..={max}")]
    InvalidLevel {
        /// The requested level.
        level: i32,
        /// zstd's minimum level.
        min: i32,
        /// zstd's maximum level.
        max: i32,
    },
    /// The input is not a sequence of zstd frames (peer misbehaviour, fatal).
    #[error("malformed zstd input")]
    Malformed,
    /// A frame starts with the magic number of a zstd format that is refused: a legacy
    /// (v0.1-v0.7) frame or a skippable frame (peer misbehaviour, fatal). Any other magic
    /// number is [`CompressError::Malformed`].
    #[error("zstd frame with magic number {magic:#010x} is a legacy or skippable frame")]
    UnsupportedFrame {
        /// The first four bytes of the frame, little-endian.
        magic: u32,
    },
    /// A frame does not declare its decompressed size (peer misbehaviour, fatal).
    #[error("zstd frame without a declared content size")]
    UnknownContentSize,
    /// The decompressed message would exceed the limit: either the declared sizes add up to more
    /// than `max`, or a frame produced more than it declared (peer misbehaviour, fatal; nothing
    /// larger than `max` was allocated).
    #[error("decompressed size {declared:?} exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The declared total, when known (`None` when a frame overran its declaration).
        declared: Option<u64>,
        /// The limit.
        max: usize,
    },
    /// zstd failed for another reason (its error code name).
    #[error("zstd error: {0}")]
    Zstd(&'static str),
    /// zstd could not allocate a context.
    #[error("zstd context allocation failed")]
    OutOfMemory,
}

/// The magic number of a current zstd frame (RFC 8878), little-endian on the wire. Every frame
/// that [`decompress`] accepts starts with it.
pub const ZSTD_MAGIC: u32 = 0xfd2f_b528;

/// zstd's name for `ZSTD_error_dstSize_tooSmall` (the error code enum needs `unsafe` FFI to read,
/// the name does not; the bomb tests fail if zstd ever renames it).
const ZSTD_DST_TOO_SMALL: &str = "Destination buffer is too small";

thread_local! {
    static CCTX: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// Compresses `data` into one zstd frame at `level` (zstd's levels; 3 is a good default, 0
/// means zstd's default).
pub fn compress(data: &[u8], level: i32) -> Result<Bytes, CompressError> {
    let (min, max) = (zstd_safe::min_c_level(), zstd_safe::max_c_level());
    if !(min..=max).contains(&level) {
        return Err(CompressError::InvalidLevel { level, min, max });
    }
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(data.len()));
    CCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(CCtx::try_create().ok_or(CompressError::OutOfMemory)?);
        }
        let Some(cctx) = slot.as_mut() else {
            return Err(CompressError::OutOfMemory);
        };
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .map_err(zstd_error)?;
        // Declared content size is what `decompress` relies on; it is zstd's default, set it
        // explicitly anyway.
        cctx.set_parameter(CParameter::ContentSizeFlag(true))
            .map_err(zstd_error)?;
        cctx.compress2(&mut out, data).map_err(zstd_error)
    })?;
    Ok(Bytes::from(out))
}

/// Decompresses `data` (one or more zstd frames, each declaring its content size) into at most
/// `max_len` bytes.
///
/// Never allocates more than `max_len` bytes (nor more than the declared size) for the output.
pub fn decompress(data: &[u8], max_len: usize) -> Result<Bytes, CompressError> {
    let mut out = Vec::new();
    decompress_into(data, max_len, &mut out)?;
    Ok(Bytes::from(out))
}

/// Like [`decompress`], into `out` (cleared first), whose capacity grows to at most the declared
/// size, which is at most `max_len`.
pub fn decompress_into(
    data: &[u8],
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), CompressError> {
    out.clear();
    let declared = declared_size(data)?;
    if declared > max_len as u64 {
        return Err(CompressError::TooLarge {
            declared: Some(declared),
            max: max_len,
        });
    }
    // `declared <= max_len`, a usize.
    let declared = declared as usize;
    out.reserve_exact(declared);
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(DCtx::try_create().ok_or(CompressError::OutOfMemory)?);
        }
        let Some(dctx) = slot.as_mut() else {
            return Err(CompressError::OutOfMemory);
        };
        // One-shot decoding writes at most `out.capacity()` bytes and reports `dstSize_tooSmall`
        // when the frames produce more. The capacity can exceed `declared` (a reused `out`), so
        // the length is checked again below.
        match dctx.decompress(out, data) {
            Ok(_) => Ok(()),
            Err(code) if zstd_safe::get_error_name(code) == ZSTD_DST_TOO_SMALL => {
                Err(CompressError::TooLarge {
                    declared: None,
                    max: max_len,
                })
            }
            Err(code) => Err(zstd_error(code)),
        }
    })?;
    if out.len() != declared {
        let overran = out.len() > declared;
        out.clear();
        return Err(if overran {
            CompressError::TooLarge {
                declared: None,
                max: max_len,
            }
        } else {
            CompressError::Malformed
        });
    }
    Ok(())
}

/// Sum of the declared content sizes of the zstd frames in `data`.
fn declared_size(mut data: &[u8]) -> Result<u64, CompressError> {
    if data.is_empty() {
        return Err(CompressError::Malformed);
    }
    let mut total: u64 = 0;
    while !data.is_empty() {
        // Only the current format: the library is built without its legacy decoders, and this
        // check also refuses skippable frames and keeps the error precise.
        let Some(magic) = data.first_chunk::<4>().map(|m| u32::from_le_bytes(*m)) else {
            return Err(CompressError::Malformed);
        };
        if magic != ZSTD_MAGIC {
            return Err(if is_legacy_or_skippable(magic) {
                CompressError::UnsupportedFrame { magic }
            } else {
                CompressError::Malformed
            });
        }
        let size = match zstd_safe::get_frame_content_size(data) {
            Ok(Some(size)) => size,
            Ok(None) => return Err(CompressError::UnknownContentSize),
            Err(_) => return Err(CompressError::Malformed),
        };
        let frame_len =
            zstd_safe::find_frame_compressed_size(data).map_err(|_| CompressError::Malformed)?;
        if frame_len == 0 || frame_len > data.len() {
            return Err(CompressError::Malformed);
        }
        total = total.saturating_add(size);
        data = &data[frame_len..];
    }
    Ok(total)
}

/// Magic numbers of the zstd v0.1 (`0x1EB52FFD`) to v0.7 (`0xFD2FB522..=0xFD2FB527`) formats
/// and of skippable frames (`0x184D2A50..=0x184D2A5F`).
fn is_legacy_or_skippable(magic: u32) -> bool {
    magic == 0x1eb5_2ffd
        || (0xfd2f_b522..=0xfd2f_b527).contains(&magic)
        || magic & 0xffff_fff0 == 0x184d_2a50
}

fn zstd_error(code: usize) -> CompressError {
    CompressError::Zstd(zstd_safe::get_error_name(code))
}
