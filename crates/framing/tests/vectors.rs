//! Checked-in vectors: a multi-chunk zstd-compressed message, and malformed chunk sequences.
//!
//! `regenerate_vectors` (ignored; run with `P2P_REGENERATE_VECTORS=1`, as `cargo xtask vectors`
//! does) writes `tests/vectors/*.txt` from fixed seeds; the other tests check them.

use bytes::{Bytes, BytesMut};
use p2p_framing::chunk::{Chunker, Reassembler, ReassemblyError, chunk_capacity};
use p2p_framing::{compress, envelope, frame};
use p2p_proto::{Chunk, message::Payload};
use std::path::PathBuf;

const MAX_PLAINTEXT: u32 = 128;
const CHANNEL: u32 = 300;
const LEVEL: i32 = 3;
const SEED: u64 = 0x5eed_0004;
const MAX_MESSAGE: usize = 1 << 16;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Deterministic, compressible message from `seed`.
fn message(seed: u64, len: usize) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"alpha ",
        b"bravo ",
        b"charlie ",
        b"delta ",
        b"echo ",
        b"fox ",
    ];
    let mut state = seed;
    let mut out = Vec::new();
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(words[(state % 6) as usize]);
        if state.is_multiple_of(4) {
            out.push(b'0' + (state % 10) as u8);
        }
    }
    out.truncate(len);
    out
}

/// Frames (length prefix + unencrypted envelope) of `compressed`, chunked.
fn frames_of(compressed: &Bytes) -> Vec<Vec<u8>> {
    let mut chunker = Chunker::new(CHANNEL, compressed.clone(), MAX_PLAINTEXT).unwrap();
    let mut frames = Vec::new();
    loop {
        let mut out = BytesMut::new();
        let start = frame::begin(&mut out);
        if !chunker.write_next(&mut out) {
            break;
        }
        frame::finish(&mut out, start, MAX_PLAINTEXT).unwrap();
        frames.push(out.to_vec());
    }
    frames
}

struct Vector {
    fields: Vec<(String, String)>,
}

impl Vector {
    fn parse(text: &str) -> Self {
        let fields = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').expect("key: value");
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        Self { fields }
    }

    fn get(&self, key: &str) -> &str {
        &self.fields.iter().find(|(k, _)| k == key).expect(key).1
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn compressed_vector() -> String {
    let msg = message(SEED, 3000);
    let compressed = compress::compress(&msg, LEVEL).unwrap();
    let frames = frames_of(&compressed);
    let mut text = String::new();
    text.push_str(
        "# A 3000-byte message on channel 300, zstd level 3, chunked for 128-byte frame\n",
    );
    text.push_str(
        "# plaintexts. Each `frame` is the u32 big-endian length prefix followed by the\n",
    );
    text.push_str(
        "# unencrypted envelope `Message { chunk }` (on the wire the envelope is sealed\n",
    );
    text.push_str("# first and the prefix counts the tag too). Frames are a function of\n");
    text.push_str("# `compressed` alone; `compressed` itself depends on the zstd version.\n");
    text.push_str(&format!("max_plaintext_len: {MAX_PLAINTEXT}\n"));
    text.push_str(&format!("channel: {CHANNEL}\n"));
    text.push_str(&format!("level: {LEVEL}\n"));
    text.push_str(&format!("seed: {SEED:#x}\n"));
    text.push_str(&format!("message: {}\n", hex::encode(&msg)));
    text.push_str(&format!("compressed: {}\n", hex::encode(&compressed)));
    for f in &frames {
        text.push_str(&format!("frame: {}\n", hex::encode(f)));
    }
    text
}

/// `(channel, part, total_parts, content_len)` of a chunk in a malformed sequence.
type ChunkShape = (u32, u32, u32, usize);

/// Malformed chunk sequences: each line `chunk: channel part total_parts content_len`, then
/// `error:` the first error (its Debug form), at the last chunk.
fn malformed_vectors() -> Vec<(&'static str, String)> {
    let cap = |part, total| chunk_capacity(MAX_PLAINTEXT, CHANNEL, part, total).unwrap() as usize;
    let cases: Vec<(&'static str, Vec<ChunkShape>)> = vec![
        ("not_full", vec![(CHANNEL, 0, 3, cap(0, 3) - 1)]),
        ("gap", vec![(CHANNEL, 0, 3, cap(0, 3)), (CHANNEL, 2, 3, 5)]),
        (
            "repeat",
            vec![(CHANNEL, 0, 3, cap(0, 3)), (CHANNEL, 0, 3, cap(0, 3))],
        ),
        (
            "interleaved",
            vec![(CHANNEL, 0, 3, cap(0, 3)), (1, 0, 1, 5)],
        ),
        (
            "final_empty",
            vec![(CHANNEL, 0, 2, cap(0, 2)), (CHANNEL, 1, 2, 0)],
        ),
        ("million_parts", vec![(CHANNEL, 0, 1_000_000, 1)]),
        ("unknown_channel", vec![(7, 0, 1, 5)]),
    ];
    cases
        .into_iter()
        .map(|(name, chunks)| {
            let mut r = Reassembler::new(MAX_PLAINTEXT);
            let mut text = format!(
                "# Malformed sequence `{name}`: max_plaintext_len {MAX_PLAINTEXT}, channels {CHANNEL} and 1 known\n# (max message {MAX_MESSAGE}); every chunk but the last is accepted.\n"
            );
            let mut error = None;
            for (channel, part, total_parts, len) in chunks {
                let chunk = Chunk {
                    channel,
                    part,
                    total_parts,
                    content: Bytes::from(vec![0xAB; len]),
                };
                let mut env = BytesMut::new();
                envelope::encode_chunk(&chunk, &mut env);
                text.push_str(&format!("envelope: {}\n", hex::encode(&env)));
                error = r.handle_chunk(chunk, limit(channel)).err();
            }
            text.push_str(&format!("error: {:?}\n", error.expect("the last chunk fails")));
            (name, text)
        })
        .collect()
}

fn limit(channel: u32) -> Option<usize> {
    (channel == CHANNEL || channel == 1).then_some(MAX_MESSAGE)
}

#[test]
#[ignore = "writes the vectors; run with P2P_REGENERATE_VECTORS=1"]
fn regenerate_vectors() {
    if std::env::var("P2P_REGENERATE_VECTORS").as_deref() != Ok("1") {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    std::fs::write(dir().join("multi_chunk_zstd.txt"), compressed_vector()).unwrap();
    for (name, text) in malformed_vectors() {
        std::fs::write(dir().join(format!("malformed_{name}.txt")), text).unwrap();
    }
}

#[test]
fn multi_chunk_compressed_vector() {
    let text = std::fs::read_to_string(dir().join("multi_chunk_zstd.txt")).unwrap();
    let v = Vector::parse(&text);
    let max: u32 = v.get("max_plaintext_len").parse().unwrap();
    let channel: u32 = v.get("channel").parse().unwrap();
    assert_eq!((max, channel), (MAX_PLAINTEXT, CHANNEL));
    let msg = hex::decode(v.get("message")).unwrap();
    assert_eq!(msg, message(SEED, 3000), "message from the seed");
    let compressed = Bytes::from(hex::decode(v.get("compressed")).unwrap());
    let frames: Vec<Vec<u8>> = v
        .all("frame")
        .iter()
        .map(|f| hex::decode(f).unwrap())
        .collect();
    assert!(frames.len() > 3, "a multi-chunk vector");

    // Sending side: chunking the compressed bytes gives exactly these frames.
    assert_eq!(frames_of(&compressed), frames);

    // Receiving side: the frames, as one stream, reassemble and decompress to the message.
    let mut stream = BytesMut::from(&frames.concat()[..]);
    let mut r = Reassembler::new(max);
    let mut got = None;
    while let Some(body) = frame::decode(&mut stream, max).unwrap() {
        assert!(
            body.len() as u32 >= max - 1 || stream.is_empty(),
            "non-final frames are full"
        );
        let Payload::Chunk(chunk) = envelope::decode(body.freeze()).unwrap() else {
            panic!("chunk expected");
        };
        if let Some((ch, m)) = r.handle_chunk(chunk, limit(channel)).unwrap() {
            assert_eq!(ch, channel);
            got = Some(m);
        }
    }
    let got = got.expect("complete message");
    assert_eq!(got, compressed);
    assert_eq!(compress::decompress(&got, msg.len()).unwrap(), msg);
}

#[test]
fn malformed_vectors_fail_as_recorded() {
    for (name, _) in malformed_vectors() {
        let text = std::fs::read_to_string(dir().join(format!("malformed_{name}.txt"))).unwrap();
        let v = Vector::parse(&text);
        let envelopes = v.all("envelope");
        let mut r = Reassembler::new(MAX_PLAINTEXT);
        let mut last: Result<_, ReassemblyError> = Ok(None);
        for (i, env) in envelopes.iter().enumerate() {
            let Payload::Chunk(chunk) =
                envelope::decode(Bytes::from(hex::decode(env).unwrap())).unwrap()
            else {
                panic!("chunk expected");
            };
            let channel = chunk.channel;
            last = r.handle_chunk(chunk, limit(channel));
            if i + 1 < envelopes.len() {
                assert!(last.is_ok(), "{name}: chunk {i} accepted");
            }
        }
        let err = last.expect_err(name);
        assert_eq!(format!("{err:?}"), v.get("error"), "{name}");
    }
}
