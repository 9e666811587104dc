//! Decodes arbitrary bytes as a record's address (socket or host name) and as `host:port` text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_discovery::fuzzing::address(data);
});
