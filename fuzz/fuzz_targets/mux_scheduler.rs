//! Drives the mux scheduler with an arbitrary sequence of sends, polls, control frames, time
//! steps and (dis)connections, checking its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|ops: Vec<p2p_mux::fuzzing::SchedulerOp>| {
    p2p_mux::fuzzing::scheduler(ops);
});
