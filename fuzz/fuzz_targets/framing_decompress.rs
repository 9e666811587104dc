//! Decompresses arbitrary input under an arbitrary limit.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_framing::fuzzing::decompress(data);
});
