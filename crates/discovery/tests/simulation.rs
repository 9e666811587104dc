//! Convergence of the seeded discovery simulation (see `p2p_discovery::simulation`).

use p2p_discovery::simulation::{SimConfig, SimReport, run};
use p2p_identity::ed25519;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn simulate(nodes: usize, seed: u64) -> SimReport {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let report = run::<ed25519::PrivateKey, _>(SimConfig::new(nodes), &mut rng);
    eprintln!("{report:#?}");
    report
}

#[test]
fn converges_100() {
    let r = simulate(100, 1);
    assert!(r.initial.rounds.is_some_and(|x| x <= 10), "{r:?}");
    assert!(r.churn.rounds.is_some_and(|x| x <= 10), "{r:?}");
}

#[test]
#[ignore = "measurement"]
fn converges_1000() {
    let r = simulate(1000, 1);
    assert!(r.initial.rounds.is_some_and(|x| x <= 12), "{r:?}");
    assert!(r.churn.rounds.is_some_and(|x| x <= 12), "{r:?}");
}
