//! Decodes an arbitrary byte stream as frames, whole and split at arbitrary points.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_framing::fuzzing::frame_stream(data);
});
