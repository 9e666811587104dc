//! `framing::chunk_reassemble` (with and without zstd) beside a plain memcpy and zstd's own bulk
//! compress + decompress of the same bytes.

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use p2p_framing::{Chunker, Reassembler, compress, envelope, frame};
use p2p_proto::message::Payload;
use std::hint::black_box;

/// A 64 KiB frame minus the 16-byte AEAD tag.
const MAX_PLAINTEXT: u32 = 65_536 - 16;
const MAX_FRAME: u32 = 65_536;
const LEVEL: i32 = 3;
const SIZES: [(usize, &str); 4] = [
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
    (16 << 20, "16MiB"),
];

/// Compressible, not trivial: words from a small vocabulary in a pseudo-random order.
fn data(len: usize) -> Bytes {
    let words: [&[u8]; 8] = [
        b"block ", b"vote ", b"height ", b"round ", b"0x9a3f ", b"commit ", b"peer ", b"sig ",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(words[(state % 8) as usize]);
        if state.is_multiple_of(5) {
            out.extend_from_slice(&state.to_le_bytes()[..3]);
        }
    }
    out.truncate(len);
    out.into()
}

/// Writes every chunk of `message` as a frame into `wire`, reads each frame back, decodes its
/// envelope and feeds the reassembler: the framing layer's whole data path minus the AEAD.
fn chunk_reassemble(
    message: &Bytes,
    wire: &mut BytesMut,
    reassembler: &mut Reassembler,
    max_message: usize,
) -> Bytes {
    let mut chunker = Chunker::new(1, message.clone(), MAX_PLAINTEXT).expect("frame fits a chunk");
    loop {
        let start = frame::begin(wire);
        let wrote = chunker.write_next(wire);
        assert!(
            wrote,
            "the reassembler returns the message at the last part"
        );
        frame::finish(wire, start, MAX_FRAME).expect("envelope fits the frame");
        let body = frame::decode(wire, MAX_FRAME)
            .expect("valid frame")
            .expect("whole frame");
        let Ok(Payload::Chunk(chunk)) = envelope::decode(body.freeze()) else {
            unreachable!("the chunker writes chunk envelopes");
        };
        if let Some((_, got)) = reassembler
            .handle_chunk(chunk, Some(max_message))
            .expect("honest chunks")
        {
            return got;
        }
    }
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");
    for (len, name) in SIZES {
        let message = data(len);
        group.throughput(Throughput::Bytes(len as u64));
        if len >= 1 << 20 {
            group.sample_size(10);
        } else {
            group.sample_size(50);
        }

        let mut dst = vec![0u8; len];
        group.bench_function(BenchmarkId::new("memcpy", format!("size={name}")), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&message));
                black_box(&dst);
            })
        });

        let mut wire = BytesMut::with_capacity(MAX_FRAME as usize + 4);
        let mut reassembler = Reassembler::new(MAX_PLAINTEXT);
        group.bench_function(
            BenchmarkId::new("chunk_reassemble", format!("size={name}")),
            |b| {
                b.iter(|| {
                    let got =
                        chunk_reassemble(black_box(&message), &mut wire, &mut reassembler, len);
                    debug_assert_eq!(got.len(), len);
                    black_box(got)
                })
            },
        );

        let mut compressor = zstd::bulk::Compressor::new(LEVEL).expect("level 3");
        let mut decompressor = zstd::bulk::Decompressor::new().expect("context");
        group.bench_function(
            BenchmarkId::new("zstd_bulk_level3", format!("size={name}")),
            |b| {
                b.iter(|| {
                    let packed = compressor.compress(black_box(&message)).expect("compress");
                    let plain = decompressor.decompress(&packed, len).expect("decompress");
                    black_box(plain)
                })
            },
        );

        let compressed_len = compress::compress(&message, LEVEL).expect("compress").len();
        group.bench_function(
            BenchmarkId::new("chunk_reassemble_zstd3", format!("size={name}")),
            |b| {
                b.iter(|| {
                    let packed = compress::compress(black_box(&message), LEVEL).expect("compress");
                    let got =
                        chunk_reassemble(&packed, &mut wire, &mut reassembler, compressed_len);
                    let plain = compress::decompress(&got, len).expect("decompress");
                    black_box(plain)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(framing, benches);
criterion_main!(framing);
