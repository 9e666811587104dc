//! Parses arbitrary bytes as keys, signatures and peer URLs of every scheme.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_identity::fuzzing::parse_everything(data);
});
