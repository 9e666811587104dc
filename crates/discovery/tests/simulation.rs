//! Convergence of the seeded discovery simulation (see `p2p_discovery::simulation`).
//!
//! Normal tests: N = 100 with 10% churn, N = 1,000 from one bootstrapper. Ignored (run in
//! release, figures in docs/discovery.md): N = 1,000 and N = 10,000 with churn.

use p2p_discovery::simulation::{SimConfig, SimReport, run};
use p2p_identity::ed25519;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn simulate(nodes: usize, churn_percent: usize, seed: u64) -> SimReport {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cfg = SimConfig::new(nodes);
    cfg.churn_percent = churn_percent;
    let start = std::time::Instant::now();
    let report = run::<ed25519::PrivateKey, _>(cfg, &mut rng);
    eprintln!("{report:#?}\nwall time: {:?}", start.elapsed());
    report
}

/// Traffic bound of one connection in one round: per direction at most two vectors (the one
/// after the handshake and the ping) and two answers of `max_gossip_records` records.
fn check_answer_bound(r: &SimReport) {
    // 32 ed25519 records of at most 120 encoded bytes each, plus the message framing.
    assert!(r.initial.max_answer_bytes <= 32 * 120 + 8, "{r:?}");
    assert!(r.churn.max_answer_bytes <= 32 * 120 + 8, "{r:?}");
}

#[test]
fn converges_and_reconverges_100() {
    let r = simulate(100, 10, 1);
    // Measured: 2 rounds, then 5 rounds after 10 restarts.
    assert!(r.initial.rounds.is_some_and(|x| x <= 4), "{r:?}");
    assert_eq!(r.restarted, 10);
    assert!(r.churn.rounds.is_some_and(|x| x <= 8), "{r:?}");
    // Each distinct record (100 initial + 10 restarted) was verified exactly once.
    assert_eq!(r.verifications, 110);
    check_answer_bound(&r);
}

#[test]
fn converges_1000() {
    let r = simulate(1000, 0, 1);
    // Measured: 2 rounds (target: at most 12).
    assert!(r.initial.rounds.is_some_and(|x| x <= 4), "{r:?}");
    assert_eq!(r.verifications, 1000);
    check_answer_bound(&r);
}

#[test]
#[ignore = "slow in debug builds: run with --release (docs/discovery.md)"]
fn converges_and_reconverges_1000() {
    let r = simulate(1000, 10, 1);
    // Measured: 2 rounds, then 5 after 100 restarts.
    assert!(r.initial.rounds.is_some_and(|x| x <= 4), "{r:?}");
    assert!(r.churn.rounds.is_some_and(|x| x <= 8), "{r:?}");
    check_answer_bound(&r);
}

#[test]
#[ignore = "minutes and several GiB in release: run with --release (docs/discovery.md)"]
fn converges_and_reconverges_10000() {
    let r = simulate(10_000, 10, 1);
    assert!(r.initial.rounds.is_some_and(|x| x <= 12), "{r:?}");
    assert!(r.churn.rounds.is_some_and(|x| x <= 12), "{r:?}");
    check_answer_bound(&r);
}
