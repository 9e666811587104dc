//! `mux::schedule`: send + schedule + frame messages across 4 channels and 2 priorities, beside
//! the raw primitive (chunking and framing the same messages without the mux).

use std::{
    hint::black_box,
    num::{NonZeroU32, NonZeroUsize},
    time::Instant,
};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::Quota;
use p2p_framing::{chunk::Chunker, frame};
use p2p_mux::{Mux, MuxConfig, PollFrame, Priority, Recipients, SendReport};

const CHANNELS: u32 = 4;
const FRAME_PLAINTEXT: u32 = 64 * 1024 - 16;
const MAX_FRAME: u32 = 64 * 1024;
/// Messages per iteration: one per channel and priority.
const BATCH: u64 = CHANNELS as u64 * 2;

fn schedule(c: &mut Criterion, size: usize) {
    let config = MuxConfig {
        max_frame_plaintext: FRAME_PLAINTEXT,
        control_backlog: NonZeroUsize::new(8).unwrap(),
        gross_violation_factor: NonZeroU32::new(4).unwrap(),
    };
    let mut mux = Mux::<u64>::new(config);
    let quota = Quota::per_second(NonZeroU32::new(u32::MAX).unwrap());
    let senders: Vec<_> = (0..CHANNELS)
        .map(|ch| mux.register(ch, quota, 1 << 20, 1024, None).unwrap())
        .collect();
    let mut handles = mux.peer_connected(1).unwrap();
    let message = Bytes::from(vec![0xA5u8; size]);
    let now = Instant::now();
    let mut out = BytesMut::with_capacity(4 * MAX_FRAME as usize);
    let mut report = SendReport::new();

    let mut group = c.benchmark_group("mux");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(format!("schedule/size={size}"), |b| {
        b.iter(|| {
            for (tx, _) in &senders {
                for priority in [Priority::High, Priority::Low] {
                    tx.send_into(Recipients::One(1), message.clone(), priority, &mut report)
                        .unwrap();
                }
            }
            loop {
                let start = frame::begin(&mut out);
                match handles.scheduler.poll_frame(now, &mut out) {
                    PollFrame::Chunk { .. } | PollFrame::Control => {
                        frame::finish(&mut out, start, MAX_FRAME).unwrap();
                        if out.len() >= 2 * MAX_FRAME as usize {
                            black_box(&out);
                            out.clear();
                        }
                    }
                    _ => {
                        out.truncate(out.len() - frame::HEADER_LEN);
                        break;
                    }
                }
            }
            black_box(&out);
            out.clear();
        })
    });
    group.bench_function(format!("raw_chunk_frame/size={size}"), |b| {
        b.iter(|| {
            for ch in 0..CHANNELS {
                for _ in 0..2 {
                    let mut chunker = Chunker::new(ch, message.clone(), FRAME_PLAINTEXT).unwrap();
                    loop {
                        let start = frame::begin(&mut out);
                        if !chunker.write_next(&mut out) {
                            out.truncate(out.len() - frame::HEADER_LEN);
                            break;
                        }
                        frame::finish(&mut out, start, MAX_FRAME).unwrap();
                        if out.len() >= 2 * MAX_FRAME as usize {
                            black_box(&out);
                            out.clear();
                        }
                    }
                }
            }
            black_box(&out);
            out.clear();
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    schedule(c, 100);
    schedule(c, 64 * 1024);
}

criterion_group!(mux, benches);
criterion_main!(mux);
