//! The discrete-event network simulation (`p2p_session::simulation`) at small sizes: convergence,
//! reconvergence after churn, adversaries, determinism. Larger runs: `cargo xtask simulate`
//! (docs/discovery.md).

use p2p_identity::ed25519;
use p2p_session::simulation::{SimConfig, SimReport, run};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn simulate(cfg: SimConfig, seed: u64) -> SimReport {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let report = run::<ed25519::PrivateKey, _>(cfg, &mut rng).unwrap();
    eprintln!("{report:#?}");
    report
}

#[test]
fn converges_reconverges_and_resists_adversaries() {
    let mut cfg = SimConfig::new(40);
    cfg.churn_percent = 10;
    cfg.adversarial_percent = 10;
    let r = simulate(cfg, 7);
    assert_eq!(r.adversarial, 4);
    assert_eq!(r.restarted, 4);
    // Every honest node learns every honest record and connects to every honest node.
    let knowledge = r.initial.full_knowledge_ms.unwrap();
    let mesh = r.initial.full_mesh_ms.unwrap();
    assert!(knowledge <= mesh, "{r:?}");
    // Within a few ping intervals (5 s each) of the start.
    assert!(mesh <= 30_000, "{r:?}");
    let churn = r.churn.as_ref().unwrap();
    assert!(churn.full_knowledge_ms.is_some(), "{r:?}");
    assert!(churn.full_mesh_ms.is_some(), "{r:?}");
    // The forger's garbage signatures closed its connections, and no honest node stored a
    // record that its key never signed.
    assert!(
        r.initial.misbehaviour_closes + churn.misbehaviour_closes > 0,
        "{r:?}"
    );
    assert_eq!(r.bad_records, 0);
    // Gossip answers stay within `max_gossip_records` (32 ed25519 records of at most 120
    // encoded bytes, with the message and frame overhead).
    assert!(r.initial.max_answer_bytes <= 32 * 120 + 40, "{r:?}");
    assert!(r.max_connections < 40);
}

#[test]
fn a_seed_fixes_the_run() {
    let a = simulate(SimConfig::new(24), 3);
    let b = simulate(SimConfig::new(24), 3);
    assert_eq!(a, b);
    assert!(a.initial.full_mesh_ms.is_some());
    assert_eq!(a.verifications, 24);
    let c = simulate(SimConfig::new(24), 4);
    assert_ne!(a.initial, c.initial);
}

#[test]
fn capped_connections_still_reach_full_knowledge() {
    let mut cfg = SimConfig::new(64);
    cfg.max_outbound = Some(6);
    let r = simulate(cfg, 5);
    assert!(r.initial.full_knowledge_ms.is_some(), "{r:?}");
    // No full mesh is expected (nor measured) with a cap.
    assert_eq!(r.initial.full_mesh_ms, None);
    assert!(r.initial.connections < 64 * 63 / 2, "{r:?}");
}

#[test]
fn refuses_bad_parameters() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert!(run::<ed25519::PrivateKey, _>(SimConfig::new(1), &mut rng).is_err());
    let mut cfg = SimConfig::new(10);
    cfg.churn_percent = 101;
    assert!(run::<ed25519::PrivateKey, _>(cfg, &mut rng).is_err());
}

/// Nodes restarted at the same time on new ports learn each other's *old* records from the
/// bootstrapper. With the bit of a failed address cleared at the first failed dial
/// (`unknown_after_failed_dials` = 1, every preset), their peers send the new records at the
/// next ping: reconvergence takes about one ping interval (5 s). When the bit stayed set until
/// the address was stale (8 failures, about 137 s of backoff), it took 27 ping intervals.
#[test]
fn simultaneous_restarts_reconverge_within_about_one_ping_interval() {
    let mut cfg = SimConfig::new(60);
    cfg.churn_percent = 10;
    let r = simulate(cfg, 7);
    assert_eq!(r.restarted, 6);
    let churn = r.churn.as_ref().unwrap();
    let knowledge = churn.full_knowledge_ms.unwrap();
    assert!(knowledge <= 10_000, "{r:?}");
    assert!(churn.full_mesh_ms.unwrap() <= 15_000, "{r:?}");
}
