//! `cipher::seal` and `cipher::open` of one frame for 1 KiB to 1 MiB, each beside the raw AEAD
//! backend doing the same in-place work with the same nonce layout.
//!
//! The backend is p2p-cipher's compiled-in one: run once plainly (chacha20poly1305) and once
//! with `--features aws-lc-rs` (aws-lc-rs).

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use p2p_cipher::{BACKEND, RecvCipher, Role, SendCipher, TAG_LEN};
use std::hint::black_box;

const KEY: [u8; 32] = [0x42; 32];
const SIZES: [(usize, &str); 4] = [
    (1 << 10, "1KiB"),
    (16 << 10, "16KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[0] = 0x80;
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// The raw backend primitive: in-place seal returning a detached tag, and in-place open.
#[cfg(not(feature = "aws-lc-rs"))]
mod raw {
    use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};

    pub(crate) struct Raw(ChaCha20Poly1305);

    impl Raw {
        pub(crate) fn new(key: &[u8; 32]) -> Self {
            Self(ChaCha20Poly1305::new(&Key::from(*key)))
        }
        pub(crate) fn seal(&self, nonce: &[u8; 12], data: &mut [u8]) -> [u8; 16] {
            self.0
                .encrypt_inout_detached(&Nonce::from(*nonce), &[], data.into())
                .expect("bench frames are within limits")
                .into()
        }
        pub(crate) fn open(&self, nonce: &[u8; 12], data: &mut [u8], tag: &[u8; 16]) {
            self.0
                .decrypt_inout_detached(&Nonce::from(*nonce), &[], data.into(), &Tag::from(*tag))
                .expect("bench frames are genuine");
        }
    }
}

#[cfg(feature = "aws-lc-rs")]
mod raw {
    use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

    pub(crate) struct Raw(LessSafeKey);

    impl Raw {
        pub(crate) fn new(key: &[u8; 32]) -> Self {
            Self(LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key"),
            ))
        }
        pub(crate) fn seal(&self, nonce: &[u8; 12], data: &mut [u8]) -> [u8; 16] {
            let tag = self
                .0
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::empty(),
                    data,
                )
                .expect("bench frames are within limits");
            let mut out = [0u8; 16];
            out.copy_from_slice(tag.as_ref());
            out
        }
        pub(crate) fn open(&self, nonce: &[u8; 12], data: &mut [u8], tag: &[u8; 16]) {
            self.0
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::empty(),
                    tag,
                    data,
                )
                .expect("bench frames are genuine");
        }
    }
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("cipher");
    for (size, label) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            group.sample_size(20);
        } else {
            group.sample_size(50);
        }

        // Seal: encrypt `size` bytes in place and append the tag.
        let mut send = SendCipher::new(&KEY, Role::Dialer);
        let mut buf = BytesMut::zeroed(size + TAG_LEN);
        group.bench_function(format!("seal/backend={BACKEND},size={label}"), |b| {
            b.iter(|| {
                buf.truncate(size);
                send.seal(black_box(&mut buf), 0).expect("not exhausted");
            })
        });
        let raw = raw::Raw::new(&KEY);
        let mut counter = 0u64;
        let mut rbuf = vec![0u8; size + TAG_LEN];
        group.bench_function(format!("raw_seal/backend={BACKEND},size={label}"), |b| {
            b.iter(|| {
                let tag = raw.seal(&nonce(counter), black_box(&mut rbuf[..size]));
                rbuf[size..].copy_from_slice(&tag);
                counter += 1;
            })
        });

        // Open: frames sealed in the (untimed) setup, in order, then opened in place.
        let mut send = SendCipher::new(&KEY, Role::Dialer);
        let mut recv = RecvCipher::new(&KEY, Role::Dialer);
        let batch = if size >= 1 << 20 {
            BatchSize::LargeInput
        } else {
            BatchSize::SmallInput
        };
        group.bench_function(format!("open/backend={BACKEND},size={label}"), |b| {
            b.iter_batched(
                || {
                    let mut f = BytesMut::zeroed(size);
                    f.reserve(TAG_LEN);
                    send.seal(&mut f, 0).expect("not exhausted");
                    f
                },
                |mut f| {
                    recv.open(black_box(&mut f)).expect("genuine frame");
                    f
                },
                batch,
            )
        });
        let mut seal_counter = 0u64;
        let mut open_counter = 0u64;
        group.bench_function(format!("raw_open/backend={BACKEND},size={label}"), |b| {
            b.iter_batched(
                || {
                    let mut f = vec![0u8; size + TAG_LEN];
                    let tag = raw.seal(&nonce(seal_counter), &mut f[..size]);
                    f[size..].copy_from_slice(&tag);
                    seal_counter += 1;
                    f
                },
                |mut f| {
                    let (data, tag) = f.split_at_mut(size);
                    let tag: [u8; 16] = (&*tag).try_into().expect("16-byte tag");
                    raw.open(&nonce(open_counter), black_box(data), &tag);
                    open_counter += 1;
                    f
                },
                batch,
            )
        });
    }
    group.finish();
}

criterion_group!(cipher, benches);
criterion_main!(cipher);
