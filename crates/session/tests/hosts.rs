//! Host-name records and the protocol minor: a peer older than `HOST_MINOR` never receives one
//! (neither our own record nor a gossiped one), a newer peer does.

mod common;

use bytes::Bytes;
use common::*;
use p2p_discovery::Address;
use p2p_identity::Signer;
use p2p_proto::message::Payload;
use p2p_proto::{BitVec, Peer, Peers};
use p2p_session::decode::{Kind, decode, encode};
use p2p_session::{BATCH_MINOR, Event, HOST_MINOR, Session};

/// Node 0 of four keys, whose own record advertises `node0.example.com:7000` when `host`.
fn node_advertising(host: bool) -> Node {
    let address: Address = if host {
        "node0.example.com:7000".parse().unwrap()
    } else {
        "127.0.0.1:7000".parse().unwrap()
    };
    node_at(4, manager_config(), address)
}

/// `node` learns `record` from the key it describes (`from`).
fn learn(node: &mut Node, from: usize, record: Peer) {
    node.manager
        .handle_peers(
            &node.key(from),
            Peers {
                peers: vec![record],
            },
            UNIX0,
        )
        .unwrap();
}

/// Runs the version step with peer `i` announcing `minor`, admits it, and returns the session
/// and the kinds of the opening frames queued for it.
fn admit_with_minor(node: &mut Node, i: usize, minor: u32) -> (Session<P>, Vec<Kind>) {
    let mut s = node.session(i);
    assert!(s.poll_transmit().is_some());
    let mut theirs = version(NAMESPACE);
    theirs.protocol_minor = minor;
    let event = node
        .frame(&mut s, encode(&Payload::Version(theirs)), 0)
        .unwrap();
    assert!(matches!(event, Event::Admit));
    let admitted = node
        .manager
        .admit(&node.key(i), false, i as u32, UNIX0, &mut node.rng)
        .unwrap();
    let mut kinds = Vec::new();
    let limits = node.config().limits;
    let mux = &node.mux;
    let mut scheduler = None;
    s.handle_admitted(&admitted, |opening| {
        for frame in &opening {
            kinds.push(decode(frame.clone(), &limits).unwrap().0);
        }
        mux.peer_connected_with(node.keys[i].public_key(), opening)
            .map(|h| {
                scheduler = Some(h.scheduler);
                h.inbound
            })
    })
    .unwrap();
    node.schedulers.extend(scheduler);
    (s, kinds)
}

#[test]
fn host_minor_follows_batch_minor() {
    assert_eq!(HOST_MINOR, BATCH_MINOR + 1);
}

#[test]
fn an_older_peer_does_not_receive_our_host_record() {
    let mut node = node_advertising(true);
    let (s, kinds) = admit_with_minor(&mut node, 1, HOST_MINOR - 1);
    assert!(!s.accepts_host_records());
    assert_eq!(kinds, vec![Kind::BitVec], "record left out");
    let (s, kinds) = admit_with_minor(&mut node, 2, HOST_MINOR);
    assert!(s.accepts_host_records());
    assert_eq!(kinds, vec![Kind::Peers, Kind::BitVec]);
    // A socket record goes to everyone, as before.
    let mut node = node_advertising(false);
    let (_, kinds) = admit_with_minor(&mut node, 1, 0);
    assert_eq!(kinds, vec![Kind::Peers, Kind::BitVec]);
}

fn host_record(i: u64) -> Peer {
    let address: Address = format!("node{i}.example.com:700{i}").parse().unwrap();
    p2p_discovery::sign_record_for(&K::insecure_from_seed(i), NAMESPACE, &address, UNIX0)
}

fn socket_record(i: u64) -> Peer {
    p2p_discovery::sign_record(
        &K::insecure_from_seed(i),
        NAMESPACE,
        ([127, 0, 0, 1], 7000 + i as u16).into(),
        UNIX0,
    )
}

/// The records of the gossip answer that `s` queued after a bit vector with only the
/// sender's own bit set, or `None` if nothing was queued.
fn answer_to_empty_vector(node: &mut Node, s: &mut Session<P>, i: usize) -> Option<Vec<Peer>> {
    while s.poll_transmit().is_some() {}
    let mut keys: Vec<P> = (0..4).map(|k| node.key(k)).collect();
    keys.sort();
    let pos = keys.binary_search(&node.key(i)).unwrap();
    let bv = encode(&Payload::BitVec(BitVec {
        index: 0,
        bits: Bytes::from(vec![1u8 << pos]),
    }));
    let event = node.frame(s, bv, 10).unwrap();
    assert!(matches!(event, Event::Continue), "{event:?}");
    let frame = s.poll_transmit()?;
    let Payload::Peers(Peers { peers }) = decode(frame, &node.config().limits).unwrap().1 else {
        panic!("not a Peers answer");
    };
    Some(peers)
}

#[test]
fn gossip_to_an_older_peer_leaves_host_records_out() {
    let mut node = node_advertising(false);
    // Key 2 advertises a name, key 3 a socket; both learnt from key 2 and key 3 themselves.
    learn(&mut node, 2, host_record(2));
    learn(&mut node, 3, socket_record(3));
    let (mut old, _) = admit_with_minor(&mut node, 1, 1);
    let sent = answer_to_empty_vector(&mut node, &mut old, 1).unwrap();
    assert!(sent.iter().all(|p| p.socket[0] != 0x48), "{sent:?}");
    assert!(sent.contains(&socket_record(3)));
    let mut node2 = node_advertising(false);
    learn(&mut node2, 2, host_record(2));
    let (mut new, _) = admit_with_minor(&mut node2, 1, HOST_MINOR);
    let sent = answer_to_empty_vector(&mut node2, &mut new, 1).unwrap();
    assert!(sent.contains(&host_record(2)), "{sent:?}");
}

#[test]
fn an_answer_of_only_host_records_is_not_sent_to_an_older_peer() {
    let mut node = node_advertising(true);
    learn(&mut node, 2, host_record(2));
    // Our own record (a name) and key 2's (a name) are all we know beyond the asker.
    let (mut old, _) = admit_with_minor(&mut node, 1, 0);
    assert_eq!(answer_to_empty_vector(&mut node, &mut old, 1), None);
}
