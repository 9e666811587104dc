//! The frame plaintext envelope: every payload kind, zero-copy decoding, typed errors.

use bytes::{Bytes, BytesMut};
use p2p_framing::envelope::{self, EnvelopeError};
use p2p_proto::{BitVec, Chunk, Peer, Peers, Signature, VersionInfo, message::Payload};

fn round_trip(payload: Payload) {
    let mut out = BytesMut::from(&b"prefix"[..]);
    envelope::encode(&payload, &mut out);
    assert_eq!(out.len(), 6 + envelope::encoded_len(&payload));
    let frame = out.freeze().slice(6..);
    assert_eq!(envelope::decode(frame).unwrap(), payload);
}

#[test]
fn every_payload_kind_round_trips() {
    round_trip(Payload::Chunk(Chunk {
        channel: 3,
        part: 0,
        total_parts: 1,
        content: Bytes::from_static(b"hello"),
    }));
    round_trip(Payload::Chunk(Chunk::default()));
    round_trip(Payload::BitVec(BitVec {
        index: 42,
        bits: Bytes::from_static(&[0b1011]),
    }));
    round_trip(Payload::Peers(Peers {
        peers: vec![Peer {
            socket: Bytes::from_static(&[127, 0, 0, 1, 0x1f, 0x90]),
            timestamp: 1_700_000_000_000,
            signature: Some(Signature {
                public_key: Bytes::from_static(&[1; 32]),
                signature: Bytes::from_static(&[2; 64]),
            }),
        }],
    }));
    round_trip(Payload::Version(VersionInfo {
        protocol_major: 1,
        protocol_minor: 0,
        namespace: Bytes::from_static(b"chain-1"),
        software_version: "p2p/0.1.0".into(),
        channels: vec![0, 1, 7],
    }));
}

#[test]
fn decoding_slices_the_frame() {
    let mut out = BytesMut::new();
    envelope::encode_chunk(
        &Chunk {
            channel: 1,
            part: 0,
            total_parts: 1,
            content: Bytes::from(vec![9u8; 1000]),
        },
        &mut out,
    );
    let frame = out.freeze();
    let range = frame.as_ptr_range();
    let Payload::Chunk(chunk) = envelope::decode(frame).unwrap() else {
        panic!("a chunk was encoded");
    };
    assert!(
        range.contains(&chunk.content.as_ptr()),
        "content is a slice of the frame"
    );
}

#[test]
fn empty_frame_has_no_payload() {
    assert_eq!(
        envelope::decode(Bytes::new()),
        Err(EnvelopeError::MissingPayload)
    );
}

#[test]
fn unknown_payload_kind_is_refused() {
    // Field 5 (length-delimited, 2 bytes): a payload kind from a future version.
    let frame = Bytes::from_static(&[0x2A, 0x02, 0x08, 0x01]);
    assert_eq!(envelope::decode(frame), Err(EnvelopeError::MissingPayload));
}

#[test]
fn malformed_frames_are_refused() {
    for bad in [
        &[0x0A][..],         // key without length
        &[0x0A, 0x05, 0x08], // length past the end
        &[
            0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
        ], // varint overflow
        &[0x0B, 0x00],       // wire type 3 (start group) is not supported
        &[0x0A, 0x02, 0x22, 0x05], // chunk content length past the end of the chunk
    ] {
        assert!(
            matches!(
                envelope::decode(Bytes::copy_from_slice(bad)),
                Err(EnvelopeError::Malformed(_))
            ),
            "{bad:02x?}"
        );
    }
}
