//! Decoding any frame allocates at most a small constant times its length (measured with a
//! counting global allocator; one test per binary, so no other test allocates meanwhile).

mod common;

use common::*;
use p2p_proto::VersionInfo;
use p2p_proto::message::Payload;
use p2p_session::decode::encode;
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &PeakMemAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Peak bytes allocated while `f` runs, above what was allocated before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    GLOBAL.reset_peak_memory();
    let out = f();
    (out, GLOBAL.get_peak_memory())
}

#[test]
fn decoding_allocates_at_most_a_small_constant_times_the_frame() {
    let mut node = node(4);
    let frame = empty_records(512 * 1024); // a 1 MiB frame
    let len = frame.len();

    // What the facade did before: prost first. This is the cost the session avoids.
    let (_, unbounded) = peak_during(|| p2p_framing::envelope::decode(frame.clone()));
    assert!(
        unbounded > 20 * len,
        "prost alone: {unbounded} bytes for {len}"
    );

    // As the first frame: refused for its kind.
    let mut s = node.session(1);
    let (r, first) = peak_during(|| node.frame(&mut s, frame.clone(), 0));
    assert_eq!(r.unwrap_err().label(), "first_frame_not_version");
    assert!(first <= 4096, "first frame: {first} bytes");

    // After admission: refused by count before prost.
    let mut s = node.admitted(1, 1);
    let (r, admitted) = peak_during(|| node.frame(&mut s, frame.clone(), 1));
    assert_eq!(r.unwrap_err().label(), "too_many_records");
    assert!(admitted <= 4096, "admitted: {admitted} bytes");

    // The largest allowed version info (4096 channel ids, one byte each on the wire).
    let version = encode(&Payload::Version(VersionInfo {
        channels: vec![1; 4096],
        ..version(NAMESPACE)
    }));
    let vlen = version.len();
    let mut s = node.session(2);
    let (r, peak) = peak_during(|| node.frame(&mut s, version, 0));
    assert!(r.is_ok());
    assert!(peak <= 16 * vlen, "version info: {peak} bytes for {vlen}");
    println!(
        "peak for a {len} B frame of empty records: prost alone {unbounded} B, session as first \
         frame {first} B, admitted {admitted} B; version info of {vlen} B: {peak} B"
    );
}
