//! The dialee fed an arbitrary first message (raw, and XOR-ed onto a genuine one).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_handshake::fuzzing::dialee_hello(data);
});
