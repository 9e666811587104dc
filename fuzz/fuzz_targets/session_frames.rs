//! Drives one session with an arbitrary sequence of frame plaintexts and clock steps.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_session::fuzzing::session_ops(data);
});
