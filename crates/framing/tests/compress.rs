//! Bounded zstd: round trips, bombs refused without allocating, malformed input.

use p2p_framing::compress::{CompressError, compress, decompress, decompress_into};

fn text(len: usize) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"block ", b"vote ", b"peer ", b"height ", b"0x1f2e ", b"commit ",
    ];
    let mut out = Vec::with_capacity(len);
    let mut i = 0usize;
    while out.len() < len {
        out.extend_from_slice(words[(i * 7 + i / 3) % words.len()]);
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn round_trip_sizes_and_levels() {
    for len in [0usize, 1, 100, 4096, 300_000] {
        let data = text(len);
        for level in [1, 3, 19] {
            let packed = compress(&data, level).unwrap();
            assert_eq!(
                decompress(&packed, len).unwrap(),
                data,
                "len {len} level {level}"
            );
        }
    }
}

#[test]
fn exact_limit_passes_one_less_fails() {
    let data = text(10_000);
    let packed = compress(&data, 3).unwrap();
    assert_eq!(decompress(&packed, 10_000).unwrap().len(), 10_000);
    assert_eq!(
        decompress(&packed, 9_999),
        Err(CompressError::TooLarge {
            declared: Some(10_000),
            max: 9_999
        })
    );
}

#[test]
fn invalid_level_is_refused() {
    assert!(matches!(
        compress(b"x", 1_000),
        Err(CompressError::InvalidLevel { level: 1_000, .. })
    ));
}

#[test]
fn one_kib_bomb_is_refused_without_allocating() {
    // 32 MiB of zeros compresses to about 1 KiB.
    let expanded = 32 << 20;
    let bomb = compress(&vec![0u8; expanded], 3).unwrap();
    assert!(bomb.len() <= 2048, "bomb is {} bytes", bomb.len());
    let max = 1 << 20;
    let mut out = Vec::new();
    assert_eq!(
        decompress_into(&bomb, max, &mut out),
        Err(CompressError::TooLarge {
            declared: Some(expanded as u64),
            max
        })
    );
    // Peak output buffer: nothing was allocated.
    assert_eq!(out.capacity(), 0);
}

#[test]
fn frame_lying_about_its_size_is_refused_at_the_declared_size() {
    // Compress 1 MiB of zeros, then patch the declared content size down to 1000 bytes.
    let bomb = compress(&vec![0u8; 1 << 20], 3).unwrap().to_vec();
    let patched = patch_content_size(&bomb, 1000);
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&patched).ok(),
        Some(Some(1000))
    );
    let mut out = Vec::new();
    let err = decompress_into(&patched, 1 << 30, &mut out).unwrap_err();
    assert_eq!(
        err,
        CompressError::TooLarge {
            declared: None,
            max: 1 << 30
        }
    );
    // Never more than the (lying) declared size was allocated.
    assert!(out.capacity() <= 1000, "peak {}", out.capacity());
    assert!(out.is_empty());
}

/// Rewrites the 4-byte frame content size of a single zstd frame (without dictionary id).
fn patch_content_size(frame: &[u8], size: u32) -> Vec<u8> {
    let descriptor = frame[4];
    assert_eq!(descriptor >> 6, 2, "4-byte content size field");
    assert_eq!(descriptor & 3, 0, "no dictionary id");
    let single_segment = descriptor & 0x20 != 0;
    let at = if single_segment { 5 } else { 6 };
    let mut out = frame.to_vec();
    out[at..at + 4].copy_from_slice(&size.to_le_bytes());
    out
}

#[test]
fn frame_without_declared_size_is_refused() {
    use std::io::Write;
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_contentsize(false).unwrap();
    encoder.write_all(&text(1000)).unwrap();
    let packed = encoder.finish().unwrap();
    assert_eq!(
        decompress(&packed, 1 << 20),
        Err(CompressError::UnknownContentSize)
    );
}

#[test]
fn several_frames_are_summed_against_the_limit() {
    let a = compress(&text(600), 3).unwrap();
    let b = compress(&text(500), 3).unwrap();
    let both = [&a[..], &b[..]].concat();
    assert_eq!(decompress(&both, 1100).unwrap().len(), 1100);
    assert_eq!(
        decompress(&both, 1099),
        Err(CompressError::TooLarge {
            declared: Some(1100),
            max: 1099
        })
    );
}

#[test]
fn malformed_input_is_refused() {
    assert_eq!(decompress(b"", 100), Err(CompressError::Malformed));
    assert_eq!(
        decompress(b"not zstd at all", 100),
        Err(CompressError::Malformed)
    );
    let packed = compress(&text(5000), 3).unwrap();
    // Truncated frame.
    assert!(decompress(&packed[..packed.len() - 3], 10_000).is_err());
    // Trailing garbage after a valid frame.
    let trailing = [&packed[..], b"xyz"].concat();
    assert_eq!(decompress(&trailing, 10_000), Err(CompressError::Malformed));
    // Corrupted body (checksum-less frames may decode to wrong bytes of the right length, or fail).
    let mut corrupt = packed.to_vec();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    if let Ok(out) = decompress(&corrupt, 10_000) {
        assert_eq!(out.len(), 5000);
    }
}

/// A complete, valid frame of the legacy zstd v0.7 format that decodes to `hello` with a
/// decoder built with legacy support: magic `0xFD2FB527` (little-endian), frame header
/// descriptor `0x20` (single segment, 1-byte content size, no dictionary id, no checksum),
/// content size 5, one raw block of 5 bytes (`0x40 0x00 0x05`), the end block (`0xC0 0 0`).
const LEGACY_V07_HELLO: [u8; 17] = [
    0x27, 0xb5, 0x2f, 0xfd, // v0.7 magic
    0x20, // frame header descriptor
    0x05, // frame content size
    0x40, 0x00, 0x05, // raw block, 5 bytes
    b'h', b'e', b'l', b'l', b'o', //
    0xc0, 0x00, 0x00, // end of frame
];

#[test]
fn legacy_v07_frame_is_refused() {
    assert_eq!(
        decompress(&LEGACY_V07_HELLO, 100),
        Err(CompressError::UnsupportedFrame { magic: 0xfd2f_b527 })
    );
    // Also after a valid current frame: every frame of the input is checked.
    let current = compress(b"hi", 3).unwrap();
    let both = [&current[..], &LEGACY_V07_HELLO[..]].concat();
    assert_eq!(
        decompress(&both, 100),
        Err(CompressError::UnsupportedFrame { magic: 0xfd2f_b527 })
    );
}

#[test]
fn zstd_library_is_built_without_legacy_decoders() {
    // Below `decompress`'s own magic check: the library itself must not decode the frame, so
    // no legacy decoder is linked in (the workspace builds zstd without default features).
    let mut out = Vec::with_capacity(100);
    let mut dctx = zstd::zstd_safe::DCtx::create();
    assert!(
        dctx.decompress(&mut out, &LEGACY_V07_HELLO[..]).is_err(),
        "the legacy frame decoded to {out:?}"
    );
}

#[test]
fn skippable_frames_are_refused() {
    // A skippable frame (magic 0x184D2A50..=0x184D2A5F) of 3 bytes, then a current frame.
    let skippable = [0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
    let current = compress(b"hi", 3).unwrap();
    let both = [&skippable[..], &current[..]].concat();
    assert_eq!(
        decompress(&both, 100),
        Err(CompressError::UnsupportedFrame { magic: 0x184d_2a50 })
    );
}
