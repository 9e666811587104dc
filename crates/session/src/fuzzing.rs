//! Fuzzing harness (feature `fuzzing`): a session driven by an arbitrary sequence of frame
//! plaintexts and clock steps, against a real manager, tracker and mux.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use governor::Quota;
use p2p_discovery::{Config as DiscoveryConfig, Tracker};
use p2p_identity::{Signer, Verifier, ed25519};
use p2p_mux::{Mux, MuxConfig};
use p2p_proto::message::Payload;
use p2p_proto::{BitVec, Chunk, Peer, Peers, Signature, VersionInfo};
use rand::SeedableRng;

use crate::decode::encode;
use crate::{Event, Manager, ManagerConfig, Now, Session, SessionConfig};

const NAMESPACE: &[u8] = b"_P2P_FUZZ";

/// One step of the harness.
#[derive(Arbitrary, Debug)]
enum Op {
    /// Raw plaintext bytes.
    Raw(Vec<u8>),
    /// A well-formed version info, possibly incompatible.
    Version { major: u8, other_namespace: bool },
    /// A bit vector.
    BitVec { index: u8, bits: Vec<u8> },
    /// Records with arbitrary fields, keys from a small pool.
    Peers(Vec<(u8, u8, u64, Vec<u8>)>),
    /// A chunk on channel 0 or 1.
    Chunk {
        channel: u8,
        part: u8,
        total: u8,
        content: Vec<u8>,
    },
    /// A batch frame: single-part chunks `(channel, content)` back to back.
    Batch(Vec<(u8, Vec<u8>)>),
    /// The clock moves forward.
    Advance(u16),
    /// The session's timer fires.
    Timeout,
    /// The application drains the channel.
    Drain,
}

/// Runs the session over the operations decoded from `data`. Never panics on any input.
pub fn session_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else {
        return;
    };
    let keys: Vec<ed25519::PrivateKey> = (0..4)
        .map(ed25519::PrivateKey::insecure_from_seed)
        .collect();
    let me = &keys[0];
    let peer = keys[1].public_key();
    let mut discovery = DiscoveryConfig::local(NAMESPACE.to_vec());
    discovery.max_peer_set_size = NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN);
    let socket = std::net::SocketAddr::from(([127, 0, 0, 1], 9000));
    let t0 = Instant::now();
    let Ok(tracker) = Tracker::with_signer(discovery.clone(), me, socket, 1_000_000, vec![]) else {
        return;
    };
    let manager: Arc<Manager<ed25519::PublicKey, u32>> = Arc::new(Manager::new(
        ManagerConfig {
            max_inbound: NonZeroUsize::MIN,
            max_inbound_handshakes: NonZeroUsize::MIN,
            max_dials: NonZeroUsize::MIN,
            handshakes_per_ip_per_minute: NonZeroU32::MIN,
            handshakes_per_prefix_per_minute: NonZeroU32::MIN,
            max_handshakes_per_prefix: NonZeroUsize::MIN,
            max_tracked_ips: NonZeroUsize::MIN,
            block_duration: Duration::from_secs(60),
            max_observer_inbound: 0,
        },
        tracker,
        t0,
    ));
    let _ = manager.handle_peer_set(0, keys.iter().map(Signer::public_key).collect());
    let mut mux = Mux::new(MuxConfig {
        max_frame_plaintext: 1024,
        ..MuxConfig::recommended()
    });
    let quota = Quota::per_second(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN));
    let Ok((_tx0, mut rx0)) = mux.register(0, quota, 4096, 2, None) else {
        return;
    };
    let Ok((_tx1, mut rx1)) = mux.register(1, quota, 4096, 2, Some(1)) else {
        return;
    };
    let ours = VersionInfo {
        protocol_major: 1,
        protocol_minor: 0,
        namespace: Bytes::from_static(NAMESPACE),
        software_version: "fuzz".into(),
        channels: vec![0, 1],
    };
    let config = SessionConfig::new(&discovery, Duration::from_secs(2), Duration::from_secs(5));
    let mut session = Session::new(peer, false, ours, config, t0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut clock = Duration::ZERO;
    let mut cx = Context::from_waker(Waker::noop());
    let mut waiting = false;
    for op in ops {
        let now = Now {
            instant: t0 + clock,
            unix_ms: 1_000_000 + clock.as_millis() as u64,
        };
        let body = match op {
            Op::Advance(ms) => {
                clock += Duration::from_millis(u64::from(ms));
                continue;
            }
            Op::Timeout => {
                if session.handle_timeout(now.instant).is_err() {
                    return;
                }
                continue;
            }
            Op::Drain => {
                while rx0.try_recv().is_some() || rx1.try_recv().is_some() {}
                if waiting && session.poll_deliver(&mut cx) == Poll::Ready(()) {
                    waiting = false;
                    // The rest of a batch frame, if the wait was inside one.
                    let Some(next) = session.handle_rest(now, &manager, &mut rng) else {
                        continue;
                    };
                    match drive(&mut session, next, now, &manager, &mux, &mut rng) {
                        Flow::Closed => return,
                        Flow::Waiting => waiting = true,
                        Flow::Done => {}
                    }
                }
                continue;
            }
            Op::Batch(chunks) => Bytes::from(
                chunks
                    .into_iter()
                    .map(|(channel, content)| {
                        encode(&Payload::Chunk(Chunk {
                            channel: u32::from(channel % 3),
                            part: 0,
                            total_parts: 1,
                            content: Bytes::from(content),
                        }))
                    })
                    .collect::<Vec<_>>()
                    .concat(),
            ),
            Op::Raw(bytes) => Bytes::from(bytes),
            Op::Version {
                major,
                other_namespace,
            } => encode(&Payload::Version(VersionInfo {
                protocol_major: u32::from(major % 3),
                protocol_minor: 0,
                namespace: if other_namespace {
                    Bytes::from_static(b"other")
                } else {
                    Bytes::from_static(NAMESPACE)
                },
                software_version: "\u{1b}[31mpeer".into(),
                channels: vec![0],
            })),
            Op::BitVec { index, bits } => encode(&Payload::BitVec(BitVec {
                index: u64::from(index % 2),
                bits: Bytes::from(bits),
            })),
            Op::Peers(records) => encode(&Payload::Peers(Peers {
                peers: records
                    .into_iter()
                    .map(|(k, port, timestamp, signature)| {
                        let key = &keys[usize::from(k) % keys.len()];
                        let mut record = p2p_discovery::sign_record(
                            key,
                            NAMESPACE,
                            std::net::SocketAddr::from(([127, 0, 0, 1], u16::from(port) + 1)),
                            timestamp % 2_000_000,
                        );
                        if !signature.is_empty() {
                            record.signature = Some(Signature {
                                public_key: Bytes::copy_from_slice(key.public_key().as_bytes()),
                                signature: Bytes::from(signature),
                            });
                        }
                        record
                    })
                    .collect::<Vec<Peer>>(),
            })),
            Op::Chunk {
                channel,
                part,
                total,
                content,
            } => encode(&Payload::Chunk(Chunk {
                channel: u32::from(channel % 3),
                part: u32::from(part % 4),
                total_parts: u32::from(total % 4),
                content: Bytes::from(content),
            })),
        };
        if waiting {
            // The driver never hands a frame over while a delivery is pending.
            continue;
        }
        let first = session.handle_frame(body, now, &manager, &mut rng);
        match drive(&mut session, first, now, &manager, &mux, &mut rng) {
            Flow::Closed => return,
            Flow::Waiting => waiting = true,
            Flow::Done => {}
        }
        while session.poll_transmit().is_some() {}
        let _ = session.poll_read(now.instant);
    }
}

/// Where [`drive`] stopped.
enum Flow {
    /// The session closed the connection.
    Closed,
    /// A delivery waits for room (the rest of the frame, if any, after it).
    Waiting,
    /// Every envelope of the frame was handled.
    Done,
}

type Key = ed25519::PublicKey;

/// Acts on one frame's events, as the facade does: admission, waiting for room, and the rest
/// of a batch frame envelope by envelope.
fn drive(
    session: &mut Session<Key>,
    mut result: Result<Event, crate::Error>,
    now: Now,
    manager: &Manager<Key, u32>,
    mux: &Mux<Key>,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Flow {
    loop {
        match result {
            Err(_) => return Flow::Closed,
            Ok(Event::Admit) => {
                let peer = session.peer().clone();
                let Ok(admitted) = manager.admit(&peer, false, 1, now.unix_ms, rng) else {
                    return Flow::Closed;
                };
                let registered = session.handle_admitted(&admitted, |opening| {
                    mux.peer_connected_with(peer, opening).map(|h| h.inbound)
                });
                if registered.is_err() {
                    return Flow::Closed;
                }
            }
            Ok(Event::WaitForRoom) => return Flow::Waiting,
            Ok(Event::Continue | Event::Ignored(_)) => {}
        }
        match session.handle_rest(now, manager, rng) {
            None => return Flow::Done,
            Some(next) => result = next,
        }
    }
}
