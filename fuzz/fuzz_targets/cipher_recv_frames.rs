//! A frame receiver fed a mix of genuine, tampered and arbitrary frames.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_cipher::fuzzing::recv_arbitrary_frames(data);
});
