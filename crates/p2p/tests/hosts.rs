//! Host names on real loopback sockets: records and bootstrappers that name a host are
//! resolved at every dial through an injected resolver (no DNS is ever asked), and every way a
//! resolution fails is a failed dial.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use p2p::discovery::AddressPolicy;
use p2p::identity::{PeerUrl, Signer, ed25519};
use p2p::{HostName, Resolver};
use prometheus_client::registry::Registry;

type K = ed25519::PrivateKey;

/// What the test resolver answers for a name.
#[derive(Clone, Debug)]
enum Answer {
    /// These addresses.
    To(Vec<SocketAddr>),
    /// An error (like NXDOMAIN).
    Fail,
    /// Nothing, ever.
    Hang,
}

/// A resolver whose answers the test changes while the nodes run; records every question.
#[derive(Clone, Default)]
struct Names {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Names {
    fn set(&self, name: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(name.to_owned(), answer);
    }

    fn asked(&self, name: &str) -> usize {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == name)
            .count()
    }

    fn resolver(&self) -> Resolver {
        let names = self.clone();
        Resolver::new(move |name: &HostName, _port: u16| -> p2p::ResolveFuture {
            names.asked.lock().unwrap().push(name.to_string());
            let answer = names.answers.lock().unwrap().get(name.as_str()).cloned();
            Box::pin(async move {
                match answer {
                    Some(Answer::To(addrs)) => Ok(addrs),
                    Some(Answer::Hang) => std::future::pending().await,
                    Some(Answer::Fail) | None => Err(std::io::Error::other("no such host")),
                }
            })
        })
    }
}

fn ip(s: &str) -> SocketAddr {
    format!("{s}:0").parse().unwrap()
}

fn keys(n: u64) -> Vec<Key<K>> {
    (0..n)
        .map(|i| K::insecure_from_seed(i).public_key())
        .collect()
}

/// A URL for `key` at `host:port` (a name).
fn url_by_name(key: &Key<K>, host: &str, port: u16) -> PeerUrl {
    format!("{key}@{host}:{port}").parse().unwrap()
}

/// `p2p_resolutions_total{result=...}`.
fn resolutions(registry: &Registry, result: &str) -> f64 {
    metric_value(
        registry,
        &format!("p2p_resolutions_total{{result=\"{result}\"}}"),
    )
}

fn handshakes_failed(registry: &Registry, reason: &str) -> f64 {
    metric_value(
        registry,
        &format!("p2p_handshakes_total{{direction=\"Outbound\",reason=\"{reason}\"}}"),
    )
}

/// A node with the test resolver and fast redials.
fn config_with(seed: u64, boots: Vec<PeerUrl>, names: &Names) -> p2p::Config<K> {
    let mut cfg = config::<K>(seed, boots);
    cfg.resolver = names.resolver();
    cfg.resolve_timeout = Duration::from_millis(200);
    cfg.connect_timeout = Duration::from_millis(500);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_record_names_a_host_is_dialed_through_resolution() {
    let names = Names::default();
    let set = keys(3);
    // B is everyone's bootstrapper; A advertises "node-a.test"; C advertises an address
    // where nothing listens, so it is C that must dial A, by the name it learns from B.
    let b = start(config_with(1, vec![], &names), 1, &[(0, set.clone())]);
    let b_url = PeerUrl::new(&b.key, b.oracle.local_addr());
    names.set(
        "node-a.test",
        Answer::To(vec![ip("127.0.0.1"), ip("[::1]")]),
    );
    let mut a_cfg = config_with(0, vec![b_url.clone()], &names);
    a_cfg.dialable_host = Some("Node-A.test".parse().unwrap());
    let a = start(a_cfg, 0, &[(0, set.clone())]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mut c_cfg = config_with(2, vec![b_url], &names);
    c_cfg.dialable = dead_addr;
    let c = start(c_cfg, 2, &[(0, set.clone())]);
    wait_for(
        || c.oracle.connected().contains(&a.key),
        Duration::from_secs(5),
        "C connected to A",
    )
    .await;
    assert!(names.asked("node-a.test") >= 1);
    assert!(resolutions(&c.registry, "ok") >= 1.0);
    shutdown(vec![a, b, c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrapper_name_is_resolved_at_each_dial_and_may_change_ip() {
    let names = Names::default();
    let set = keys(2);
    let a = start(config_with(0, vec![], &names), 0, &[(0, set.clone())]);
    let port = a.oracle.local_addr().port();
    // First the name points at 127.0.0.2, where nothing listens: failed dials.
    names.set("moving.test", Answer::To(vec![ip("127.0.0.2")]));
    let b = start(
        config_with(1, vec![url_by_name(&a.key, "moving.test", port)], &names),
        1,
        &[(0, set.clone())],
    );
    wait_for(
        || handshakes_failed(&b.registry, "connect_failed") >= 1.0,
        Duration::from_secs(3),
        "a failed dial to the old IP",
    )
    .await;
    assert!(b.oracle.connected().is_empty());
    // Then it moves to the node's real IP: the next dial resolves again and connects.
    names.set("moving.test", Answer::To(vec![ip("127.0.0.1")]));
    wait_for(
        || b.oracle.connected() == vec![a.key.clone()],
        Duration::from_secs(3),
        "connected after the name moved",
    )
    .await;
    assert!(names.asked("moving.test") >= 2, "resolved at each dial");
    assert!(resolutions(&b.registry, "ok") >= 2.0);
    shutdown(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_stops_resolving_or_hangs_is_a_failed_dial() {
    let names = Names::default();
    let set = keys(3);
    let a = start(config_with(0, vec![], &names), 0, &[(0, set.clone())]);
    let port = a.oracle.local_addr().port();
    names.set("gone.test", Answer::Fail);
    names.set("slow.test", Answer::Hang);
    let mut b_cfg = config_with(1, vec![url_by_name(&a.key, "gone.test", port)], &names);
    b_cfg.discovery.dial_backoff_base = Duration::from_millis(20);
    let b = start(b_cfg, 1, &[(0, set.clone())]);
    // A third node dials A through a name whose resolver never answers.
    let c = start(
        config_with(2, vec![url_by_name(&a.key, "slow.test", port)], &names),
        2,
        &[(0, set.clone())],
    );
    wait_for(
        || {
            resolutions(&b.registry, "failed") >= 2.0
                && handshakes_failed(&b.registry, "resolve_failed") >= 2.0
        },
        Duration::from_secs(3),
        "B counts failed resolutions as failed dials, and retries",
    )
    .await;
    wait_for(
        || {
            resolutions(&c.registry, "timeout") >= 1.0
                && handshakes_failed(&c.registry, "resolve_timeout") >= 1.0
        },
        Duration::from_secs(3),
        "C times the hanging resolver out",
    )
    .await;
    assert!(b.oracle.connected().is_empty() && c.oracle.connected().is_empty());
    // The names resolve again: both connect (the bootstrapper is never given up).
    names.set("gone.test", Answer::To(vec![ip("127.0.0.1")]));
    names.set("slow.test", Answer::To(vec![ip("127.0.0.1")]));
    wait_for(
        || b.oracle.connected().contains(&a.key) && c.oracle.connected().contains(&a.key),
        Duration::from_secs(5),
        "both connected once the names resolve",
    )
    .await;
    shutdown(vec![a, b, c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_a_refused_address_is_never_connected() {
    let names = Names::default();
    let set = keys(2);
    let a = start(config_with(0, vec![], &names), 0, &[(0, set.clone())]);
    let port = a.oracle.local_addr().port();
    // The name points at loopback, which this node's policy refuses, and at a multicast
    // address, which every policy refuses.
    names.set(
        "evil.test",
        Answer::To(vec![ip("127.0.0.1"), ip("224.0.0.1"), ip("0.0.0.0")]),
    );
    let mut b_cfg = config_with(1, vec![url_by_name(&a.key, "evil.test", port)], &names);
    b_cfg.discovery.address_policy = AddressPolicy::recommended();
    let b = start(b_cfg, 1, &[(0, set.clone())]);
    wait_for(
        || {
            resolutions(&b.registry, "refused") >= 2.0
                && handshakes_failed(&b.registry, "resolve_refused") >= 2.0
        },
        Duration::from_secs(3),
        "refused resolutions counted as failed dials",
    )
    .await;
    assert!(b.oracle.connected().is_empty());
    // No connection ever reached A.
    assert_eq!(
        metric_value(&a.registry, "p2p_handshakes_total{direction=\"Inbound\""),
        0.0
    );
    assert!(a.oracle.connected().is_empty());
    shutdown(vec![a, b]).await;
}

#[test]
fn a_malformed_bootstrapper_name_is_a_typed_error() {
    let key = K::insecure_from_seed(1).public_key();
    // PeerUrl accepts it (a DNS name whose last label is numeric-led), the host-name rules
    // do not.
    let url: PeerUrl = format!("{key}@host.9lives:1").parse().unwrap();
    let cfg = config::<K>(0, vec![url]);
    let err = p2p::Network::new(cfg, &mut Registry::default()).unwrap_err();
    assert!(
        matches!(
            err,
            p2p::Error::BootstrapperHost {
                source: p2p::HostError::NumericName,
                ..
            }
        ),
        "{err}"
    );
}
