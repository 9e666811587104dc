//! Drives a reassembler with an arbitrary sequence of chunks, honest messages and frames.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: p2p_framing::fuzzing::ReassemblerInput| {
    p2p_framing::fuzzing::reassembler(input);
});
