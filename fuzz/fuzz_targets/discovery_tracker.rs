//! Feeds the discovery tracker an arbitrary sequence of peer sets, vectors, records and events.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    p2p_discovery::fuzzing::tracker_ops(data);
});
