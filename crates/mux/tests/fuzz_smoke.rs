//! Runs the scheduler fuzz harness on a few hundred seeded inputs (`--features fuzzing`).
#![cfg(feature = "fuzzing")]

use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn scheduler_invariants_hold(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut u = Unstructured::new(&data);
        if let Ok(ops) = Vec::<p2p_mux::fuzzing::SchedulerOp>::arbitrary(&mut u) {
            p2p_mux::fuzzing::scheduler(ops);
        }
    }
}
