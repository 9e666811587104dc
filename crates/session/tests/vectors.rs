//! Test vectors of a whole connection after the handshake, from fixed seeds.
//!
//! One dialer and one dialee run the real handshake (`p2p_handshake::{Dialer, Dialee}`, the same
//! seeds and clocks as `crates/handshake/tests/vectors/`), then the real session, manager and
//! mux of each side exchange, in the order the facade sends them: the version info, the own
//! record, the bit vector, a gossip answer each way, application messages (single-chunk,
//! multi-chunk, exactly one frame plaintext long, zstd-compressed, three in one batch frame) and
//! a ping. Every frame is written as its plaintext, its nonce and the sealed frame; the header
//! says how every key is derived from its seed, and the traffic keys are re-derived here
//! independently of the handshake crate (x25519, SHA-256, HKDF) and checked to seal exactly the
//! same frames.
//!
//! `regenerate_vectors` (ignored; run by `cargo xtask vectors` with `P2P_REGENERATE_VECTORS=1`)
//! writes `tests/vectors/connection_<scheme>.txt`; `vectors_match` checks that the code still
//! produces exactly the checked-in bytes; `seed_derivations_follow_the_header` checks the
//! derivations the header describes (PCG32 seed expansion, ChaCha20 keystream, key seeds) with
//! code written from their specifications.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use governor::Quota;
use hkdf::Hkdf;
use p2p_cipher::{RecvCipher, Role, SendCipher, TAG_LEN};
use p2p_discovery::Tracker;
use p2p_framing::frame;
use p2p_handshake::{
    _P2P_HANDSHAKE_CONFIRM, _P2P_HANDSHAKE_KEY_DIALEE, _P2P_HANDSHAKE_KEY_DIALER,
    _P2P_HANDSHAKE_NAMESPACE_TAG, _P2P_HANDSHAKE_TRANSCRIPT, Dialee, Dialer, Established,
};
use p2p_identity::{Signer, Verifier, bls12381, ed25519};
use p2p_mux::{Mux, MuxConfig, PollFrame, Priority, Receiver, Recipients, Scheduler, Sender};
use p2p_proto::{Handshake, Peers, VersionInfo};
use p2p_session::{Event, Manager, ManagerConfig, Now, Session, SessionConfig};
use prost::Message as _;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

const NAMESPACE: &[u8] = b"_P2P_VECTORS";
/// Key seeds (`Signer::insecure_from_seed`): dialer, dialee, and two more members of the set.
const DIALER_SEED: u64 = 1;
const DIALEE_SEED: u64 = 2;
const THIRD_SEED: u64 = 3;
const FOURTH_SEED: u64 = 4;
/// Handshake RNGs (`ChaCha20Rng::seed_from_u64`): each draws one 32-byte ephemeral secret.
const DIALER_RNG_SEED: u64 = 1001;
const DIALEE_RNG_SEED: u64 = 1002;
/// Session and manager RNGs: only choose among equal candidates (one here), see the header.
const DIALER_NODE_RNG_SEED: u64 = 2001;
const DIALEE_NODE_RNG_SEED: u64 = 2002;
/// The clocks at the end of the handshake (ms since the Unix epoch).
const NOW_DIALER: u64 = 1_700_000_000_000;
const NOW_DIALEE: u64 = 1_700_000_000_040;
/// When each node signed its record (its start time), and the third peer's record.
const DIALER_RECORD_MS: u64 = NOW_DIALER - 60_000;
const DIALEE_RECORD_MS: u64 = NOW_DIALEE - 120_000;
const THIRD_RECORD_MS: u64 = 1_699_999_900_000;
const DIALER_SOCKET: &str = "127.0.0.1:3001";
const DIALEE_SOCKET: &str = "127.0.0.1:3002";
const THIRD_SOCKET: &str = "127.0.0.1:3003";
/// The peer set every node registers, as `p2p-node run` does.
const PEER_SET_INDEX: u64 = 0;
/// Frame body limit of these vectors: small, so multi-chunk messages stay short. The presets use
/// 1 MiB (`Network::new` refuses less than the largest control frame); the rules are the same.
const MAX_FRAME_LEN: u32 = 1024;
const MAX_PLAINTEXT: u32 = MAX_FRAME_LEN - TAG_LEN as u32;
const CHANNEL_PLAIN: u32 = 1;
const CHANNEL_ZSTD: u32 = 2;
const ZSTD_LEVEL: i32 = 3;
const MAX_MESSAGE: usize = 1 << 16;
/// The facade's `p2p::PROTOCOL_MAJOR` / `PROTOCOL_MINOR`, and a fixed software version.
const PROTOCOL_MAJOR: u32 = 1;
const PROTOCOL_MINOR: u32 = 1;
const SOFTWARE_VERSION: &str = "p2p/0.1.0";
/// Tags of `insecure_from_seed` (crates/identity/src/{ed25519,bls12381}.rs).
const ED25519_SEED_TAG: &[u8] = b"_P2P_IDENTITY_INSECURE_ED25519_SEED";
const BLS12381_SEED_TAG: &[u8] = b"_P2P_IDENTITY_INSECURE_BLS12381_SEED";

/// One sealed frame as sent.
#[derive(Clone)]
struct Sent {
    label: String,
    nonce: [u8; 12],
    plaintext: Vec<u8>,
    frame: Vec<u8>,
}

/// One side of the connection: its node (manager, mux, channels) and the session.
struct Side<S: Signer> {
    role: &'static str,
    peer: S::PublicKey,
    dialed_by_me: bool,
    clock0: u64,
    t0: Instant,
    manager: Manager<S::PublicKey, u32>,
    mux: Mux<S::PublicKey>,
    senders: Vec<Sender<S::PublicKey>>,
    receivers: Vec<Receiver<S::PublicKey>>,
    session: Session<S::PublicKey>,
    scheduler: Option<Scheduler<S::PublicKey>>,
    send: SendCipher,
    recv: RecvCipher,
    rng: ChaCha20Rng,
    sent: Vec<Sent>,
}

/// The facade's `recommended` admission limits.
fn manager_config() -> ManagerConfig {
    ManagerConfig {
        max_inbound: NonZeroUsize::new(1024).unwrap(),
        max_inbound_handshakes: NonZeroUsize::new(64).unwrap(),
        max_dials: NonZeroUsize::new(64).unwrap(),
        handshakes_per_ip_per_minute: NonZeroU32::new(30).unwrap(),
        handshakes_per_prefix_per_minute: NonZeroU32::new(120).unwrap(),
        max_handshakes_per_prefix: NonZeroUsize::new(8).unwrap(),
        max_tracked_ips: NonZeroUsize::new(1 << 16).unwrap(),
        block_duration: Duration::from_secs(60),
        max_observer_inbound: 0,
    }
}

fn socket(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct SideSetup<'a, S: Signer> {
    role: &'static str,
    signer: &'a S,
    peer: S::PublicKey,
    dialed_by_me: bool,
    clock0: u64,
    record_ms: u64,
    socket: &'static str,
    set: Vec<S::PublicKey>,
    known: Vec<(S::PublicKey, p2p_proto::Peer)>,
    rng_seed: u64,
    established: Established<S::PublicKey>,
}

impl<S: Signer> Side<S> {
    fn new(setup: SideSetup<'_, S>, t0: Instant) -> Self {
        let mut discovery = p2p_discovery::Config::recommended(NAMESPACE.to_vec());
        // The vectors' records advertise loopback addresses.
        discovery.address_policy = p2p_discovery::AddressPolicy::local();
        let mut tracker = Tracker::with_signer(
            discovery.clone(),
            setup.signer,
            socket(setup.socket),
            setup.record_ms,
            vec![],
        )
        .unwrap();
        tracker.handle_peer_set(PEER_SET_INDEX, setup.set).unwrap();
        for (from, record) in setup.known {
            let outcome = tracker
                .handle_peers(
                    &from,
                    Peers {
                        peers: vec![record],
                    },
                    setup.clock0,
                )
                .unwrap();
            assert_eq!(outcome.accepted, 1);
        }
        let manager = Manager::new(manager_config(), tracker, t0);
        let mut mux = Mux::new(MuxConfig {
            max_frame_plaintext: MAX_PLAINTEXT,
            ..MuxConfig::recommended()
        });
        let quota = Quota::per_second(NonZeroU32::new(1000).unwrap());
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for (channel, compression) in [(CHANNEL_PLAIN, None), (CHANNEL_ZSTD, Some(ZSTD_LEVEL))] {
            let (tx, rx) = mux
                .register(channel, quota, MAX_MESSAGE, 16, compression)
                .unwrap();
            senders.push(tx);
            receivers.push(rx);
        }
        let version = VersionInfo {
            protocol_major: PROTOCOL_MAJOR,
            protocol_minor: PROTOCOL_MINOR,
            namespace: Bytes::from_static(NAMESPACE),
            software_version: SOFTWARE_VERSION.to_owned(),
            channels: mux.channel_ids().collect(),
        };
        let config =
            SessionConfig::new(&discovery, Duration::from_secs(5), Duration::from_secs(30));
        let session = Session::new(setup.peer.clone(), setup.dialed_by_me, version, config, t0);
        Self {
            role: setup.role,
            peer: setup.peer,
            dialed_by_me: setup.dialed_by_me,
            clock0: setup.clock0,
            t0,
            manager,
            mux,
            senders,
            receivers,
            session,
            scheduler: None,
            send: setup.established.send,
            recv: setup.established.recv,
            rng: ChaCha20Rng::seed_from_u64(setup.rng_seed),
            sent: Vec::new(),
        }
    }

    fn now(&self, ms: u64) -> Now {
        Now {
            instant: self.t0 + Duration::from_millis(ms),
            unix_ms: self.clock0 + ms,
        }
    }

    /// Seals one plaintext into a frame at the next nonce, as the facade's writer does.
    fn seal(&mut self, plaintext: &[u8], label: String) {
        let nonce = self.send.next_nonce().expect("not exhausted").to_bytes();
        let mut out = BytesMut::new();
        let start = frame::begin(&mut out);
        out.extend_from_slice(plaintext);
        self.send
            .seal(&mut out, start.body_offset())
            .expect("not exhausted");
        frame::finish(&mut out, start, MAX_FRAME_LEN).expect("frame within the limit");
        self.sent.push(Sent {
            label,
            nonce,
            plaintext: plaintext.to_vec(),
            frame: out.to_vec(),
        });
    }

    /// Before admission: the session's frames are written directly (the version info).
    fn transmit_direct(&mut self) {
        while let Some(body) = self.session.poll_transmit() {
            self.seal(
                &body,
                "VersionInfo (first frame, written directly)".to_owned(),
            );
        }
    }

    /// Drains the mux scheduler (control frames first), expecting exactly `labels.len()` frames.
    fn drain(&mut self, ms: u64, labels: &[&str]) {
        let mut scheduler = self.scheduler.take().expect("admitted");
        let now = self.t0 + Duration::from_millis(ms);
        let mut n = 0;
        loop {
            let mut out = BytesMut::new();
            match scheduler.poll_frame(now, &mut out) {
                PollFrame::Control | PollFrame::Chunk { .. } | PollFrame::Batch { .. } => {
                    let label = labels.get(n).expect("no more frames than expected");
                    self.seal(&out, (*label).to_owned());
                    n += 1;
                }
                PollFrame::Idle { .. } => break,
                PollFrame::Closed => panic!("scheduler closed"),
            }
        }
        assert_eq!(n, labels.len(), "{} sent fewer frames", self.role);
        self.scheduler = Some(scheduler);
    }

    /// Opens and handles the peer's frames, as the facade's reader does.
    fn receive(&mut self, frames: &[Sent], ms: u64) {
        for f in frames {
            let mut buf = BytesMut::from(&f.frame[..]);
            let mut body = frame::decode(&mut buf, MAX_FRAME_LEN)
                .unwrap()
                .expect("a whole frame");
            assert!(buf.is_empty());
            self.recv.open(&mut body).expect("the frame opens");
            assert_eq!(&body[..], &f.plaintext[..]);
            let now = self.now(ms);
            let event = self
                .session
                .handle_frame(body.freeze(), now, &self.manager, &mut self.rng)
                .unwrap_or_else(|e| panic!("{} refused {}: {e}", self.role, f.label));
            match event {
                Event::Admit => self.admit(now),
                Event::Continue => {}
                other => panic!("{} got {other:?} for {}", self.role, f.label),
            }
            // The other envelopes of a batch frame.
            while let Some(event) = self.session.handle_rest(now, &self.manager, &mut self.rng) {
                match event {
                    Ok(Event::Continue) => {}
                    other => panic!("{} got {other:?} in {}", self.role, f.label),
                }
            }
            if self.session.is_admitted() {
                let control = self.mux.control_sender();
                while let Some(frame) = self.session.poll_transmit() {
                    control.send(&self.peer, frame).unwrap();
                }
            }
        }
    }

    fn admit(&mut self, now: Now) {
        let admitted = self
            .manager
            .admit(&self.peer, self.dialed_by_me, 1, now.unix_ms, &mut self.rng)
            .expect("admitted");
        let mut scheduler = None;
        let mux = &self.mux;
        let peer = self.peer.clone();
        self.session
            .handle_admitted(&admitted, |opening| {
                mux.peer_connected_with(peer, opening).map(|h| {
                    scheduler = Some(h.scheduler);
                    h.inbound
                })
            })
            .expect("registered");
        // As the facade does: batch frames for a peer of protocol minor 1 or later.
        if let Some(s) = scheduler.as_mut() {
            s.set_coalesce_limit(self.session.coalesce_limit());
        }
        self.scheduler = scheduler;
    }

    fn send_message(&mut self, channel_index: usize, message: &[u8]) {
        let report = self.senders[channel_index]
            .send(
                Recipients::One(self.peer.clone()),
                Bytes::copy_from_slice(message),
                Priority::High,
            )
            .unwrap();
        assert_eq!(report.queued.len(), 1);
    }

    fn expect_message(&mut self, channel_index: usize, message: &[u8]) {
        let (from, got) = self.receivers[channel_index]
            .try_recv()
            .expect("message delivered");
        assert_eq!(from, self.peer);
        assert_eq!(&got[..], message);
    }
}

/// `lp(x) = u32_be(len(x)) || x`.
fn put_lp(out: &mut Vec<u8>, x: &[u8]) {
    out.extend_from_slice(&(x.len() as u32).to_be_bytes());
    out.extend_from_slice(x);
}

/// The first `n` bytes a `ChaCha20Rng::seed_from_u64(seed)` produces.
fn rng_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}

/// Deterministic message bytes.
fn pattern(len: usize, step: usize) -> Vec<u8> {
    (0..len).map(|i| (i * step % 251) as u8).collect()
}

fn compressible_text() -> Vec<u8> {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 3000 {
        writeln!(text, "line {i}: the dialee sends compressible text").unwrap();
        i += 1;
    }
    text.truncate(3000);
    text.into_bytes()
}

/// The text of one vector file.
struct Text(String);

impl Text {
    fn comment(&mut self, c: &str) {
        for line in c.lines() {
            if line.is_empty() {
                self.0.push_str("#\n");
            } else {
                writeln!(self.0, "# {line}").unwrap();
            }
        }
    }

    fn line(&mut self, k: &str, v: impl std::fmt::Display) {
        writeln!(self.0, "{k} = {v}").unwrap();
    }

    fn frames(&mut self, role: &str, sent: &[Sent]) {
        for f in sent {
            let seq = u64::from_be_bytes(f.nonce[4..12].try_into().unwrap());
            self.0.push('\n');
            self.comment(&format!("{role} frame, sequence {seq}: {}", f.label));
            self.line(&format!("{role}_{seq}_nonce"), hex::encode(f.nonce));
            self.line(
                &format!("{role}_{seq}_plaintext"),
                hex::encode(&f.plaintext),
            );
            self.line(&format!("{role}_{seq}_frame"), hex::encode(&f.frame));
        }
    }
}

const HEADER: &str = "\
Post-handshake vectors: one connection, after the handshake of
crates/handshake/tests/vectors/ (same keys, RNGs, clocks, so the same hello, answer and
confirmation), as the p2p facade runs it. Generated by crates/session/tests/vectors.rs
(`cargo xtask vectors`), checked by `cargo test -p p2p-session --test vectors`.

Derivations (`||` is concatenation, u64_be big-endian, SHA-256 everywhere):
- key seed n (Signer::insecure_from_seed(n)):
  ed25519: secret key (RFC 8032 32-byte seed) = SHA-256(\"_P2P_IDENTITY_INSECURE_ED25519_SEED\" || u64_be(n));
  bls12381: IKM = SHA-256(\"_P2P_IDENTITY_INSECURE_BLS12381_SEED\" || u64_be(n)),
  secret = KeyGen(IKM, key_info = \"\") of draft-irtf-cfrg-bls-signature-05 section 2.3,
  written as a 32-byte big-endian scalar. Public keys: ed25519 RFC 8032, BLS SkToPk (G1
  compressed). Both signature schemes are deterministic, so every signature below can be
  regenerated from the secret keys. Peer id = SHA-256(public key)[0..20], lowercase hex.
- ChaCha20Rng(n) (rand_chacha 0.9 ChaCha20Rng::seed_from_u64(n)): a 32-byte key made of eight
  PCG32 outputs, each written little-endian: state = n; repeat 8 times { state = state *
  6364136223846793005 + 11634580027462260723 (mod 2^64); x = u32(((state >> 18) ^ state) >> 27)
  rotated right by (state >> 59) }. The RNG's output is the ChaCha20 keystream (RFC 8439 block
  function, 20 rounds) under that key with block counter 0 and an all-zero nonce, in order.
- The handshake RNGs ChaCha20Rng(1001) (dialer) and ChaCha20Rng(1002) (dialee) are used for one
  thing only: their first 32 output bytes are the x25519 ephemeral secret (clamped by X25519
  as RFC 7748 says). Traffic keys: TH = SHA-256(lp(\"_P2P_HANDSHAKE_TRANSCRIPT\") ||
  lp(namespace) || lp(hello body) || lp(answer body)), DH = X25519(ephemeral secret, peer
  ephemeral public), PRK = HKDF-Extract(salt = TH, IKM = DH), key_dialer =
  HKDF-Expand(PRK, \"_P2P_HANDSHAKE_KEY_DIALER\", 32), key_dialee = HKDF-Expand(PRK,
  \"_P2P_HANDSHAKE_KEY_DIALEE\", 32) (lp(x) = u32_be(len(x)) || x). The test re-derives them
  this way and checks that they seal exactly these frames.
- The nodes' RNGs ChaCha20Rng(2001) / ChaCha20Rng(2002) only choose the bit vector's peer set
  among the tracked ones and the gossip records among the candidates; here there is one set and
  one candidate, so no byte below depends on them.

Scenario: both nodes track peer set 0 = the keys of seeds 1 to 4, sorted by their bytes. The
dialer signed its record at its start and already holds the dialee's record; the dialee holds
the third key's record; nobody knows the fourth. Channels 1 (plain) and 2 (zstd level 3), both
with a maximum message size of 65536. max_frame_len is 1024 (plaintext 1008 per frame) to keep
the multi-chunk messages short; the presets use 1 MiB and the rules do not change.

Nonces: 12 bytes, byte 0 = 0x80 for the dialer's frames and 0x00 for the dialee's, bytes 2..4
the iterator (0 here), bytes 4..12 the sequence, big-endian. The dialer's sequence 0 is the key
confirmation, so its first frame below is sequence 1; the dialee's first frame is sequence 0.
Each frame is u32_be(len(plaintext) + 16) || ChaCha20-Poly1305(key, nonce, aad = empty,
plaintext) || tag. The timeline (ms after the end of the handshake): 0 both send their version
info; 10 each admits the other and sends its record then its bit vector; 20 each answers the
other's bit vector; 1000 application messages; 5000 the dialer's ping. Frames are listed per
direction in sending order.

The zstd bytes of the compressed message are what the zstd version locked in Cargo.lock
produces; a receiver only has to decompress them (any zstd frame that declares its content
size is valid), and the frames are a function of those bytes.
";

fn render<S: Signer>() -> String {
    let hs = p2p_handshake::Config::recommended(NAMESPACE);
    let d = S::insecure_from_seed(DIALER_SEED);
    let e = S::insecure_from_seed(DIALEE_SEED);
    let third = S::insecure_from_seed(THIRD_SEED);
    let fourth = S::insecure_from_seed(FOURTH_SEED);

    // The handshake, exactly as in crates/handshake/tests/vectors.rs.
    let (dialer, hello) = Dialer::new(
        &hs,
        &d,
        e.public_key(),
        NOW_DIALER,
        &mut ChaCha20Rng::seed_from_u64(DIALER_RNG_SEED),
    );
    let (waiting, answer) = Dialee::handle_hello(
        &hs,
        &e,
        &hello,
        NOW_DIALEE,
        &mut ChaCha20Rng::seed_from_u64(DIALEE_RNG_SEED),
        |_| Ok(()),
    )
    .expect("vector hello accepted");
    let (at_dialer, confirmation) = dialer
        .handle_answer(&answer, NOW_DIALEE)
        .expect("vector answer accepted");
    let at_dialee = waiting
        .handle_confirmation(&confirmation)
        .expect("vector confirmation accepted");

    // The traffic keys, re-derived from the documented schedule.
    let eph_d_secret: [u8; 32] = rng_bytes(DIALER_RNG_SEED, 32).try_into().unwrap();
    let eph_e_secret: [u8; 32] = rng_bytes(DIALEE_RNG_SEED, 32).try_into().unwrap();
    let hello_msg = Handshake::decode(&hello[8..]).unwrap();
    let answer_msg = Handshake::decode(&answer[8..]).unwrap();
    let eph_d_public: [u8; 32] = hello_msg.ephemeral_public_key[..].try_into().unwrap();
    let eph_e_public: [u8; 32] = answer_msg.ephemeral_public_key[..].try_into().unwrap();
    let secret_d = x25519_dalek::StaticSecret::from(eph_d_secret);
    let secret_e = x25519_dalek::StaticSecret::from(eph_e_secret);
    assert_eq!(
        x25519_dalek::PublicKey::from(&secret_d).to_bytes(),
        eph_d_public
    );
    assert_eq!(
        x25519_dalek::PublicKey::from(&secret_e).to_bytes(),
        eph_e_public
    );
    let dh = secret_d
        .diffie_hellman(&x25519_dalek::PublicKey::from(eph_e_public))
        .to_bytes();
    assert_eq!(
        dh,
        secret_e
            .diffie_hellman(&x25519_dalek::PublicKey::from(eph_d_public))
            .to_bytes()
    );
    let mut ns_input = Vec::new();
    put_lp(&mut ns_input, _P2P_HANDSHAKE_NAMESPACE_TAG);
    put_lp(&mut ns_input, NAMESPACE);
    let ns_tag = &Sha256::digest(&ns_input)[..8];
    assert_eq!(&hello[..8], ns_tag);
    let mut th_input = Vec::new();
    put_lp(&mut th_input, _P2P_HANDSHAKE_TRANSCRIPT);
    put_lp(&mut th_input, NAMESPACE);
    put_lp(&mut th_input, &hello);
    put_lp(&mut th_input, &answer);
    let th = Sha256::digest(&th_input);
    let hk = Hkdf::<Sha256>::new(Some(&th), &dh);
    let mut key_dialer = [0u8; 32];
    let mut key_dialee = [0u8; 32];
    hk.expand(_P2P_HANDSHAKE_KEY_DIALER, &mut key_dialer)
        .unwrap();
    hk.expand(_P2P_HANDSHAKE_KEY_DIALEE, &mut key_dialee)
        .unwrap();

    // The nodes.
    let set: Vec<S::PublicKey> = [&d, &e, &third, &fourth]
        .iter()
        .map(|k| k.public_key())
        .collect();
    let dialee_record =
        p2p_discovery::sign_record(&e, NAMESPACE, socket(DIALEE_SOCKET), DIALEE_RECORD_MS);
    let third_record =
        p2p_discovery::sign_record(&third, NAMESPACE, socket(THIRD_SOCKET), THIRD_RECORD_MS);
    let t0 = Instant::now();
    let mut dialer = Side::<S>::new(
        SideSetup {
            role: "dialer",
            signer: &d,
            peer: e.public_key(),
            dialed_by_me: true,
            clock0: NOW_DIALER,
            record_ms: DIALER_RECORD_MS,
            socket: DIALER_SOCKET,
            set: set.clone(),
            known: vec![(e.public_key(), dialee_record)],
            rng_seed: DIALER_NODE_RNG_SEED,
            established: at_dialer,
        },
        t0,
    );
    let mut dialee = Side::<S>::new(
        SideSetup {
            role: "dialee",
            signer: &e,
            peer: d.public_key(),
            dialed_by_me: false,
            clock0: NOW_DIALEE,
            record_ms: DIALEE_RECORD_MS,
            socket: DIALEE_SOCKET,
            set: set.clone(),
            known: vec![(third.public_key(), third_record)],
            rng_seed: DIALEE_NODE_RNG_SEED,
            established: at_dialee,
        },
        t0,
    );

    // 0 ms: the version infos.
    dialer.transmit_direct();
    dialee.transmit_direct();
    // 10 ms: each admits the other; the opening frames.
    let (d_sent, e_sent) = (dialer.sent.len(), dialee.sent.len());
    dialee.receive(&dialer.sent[..d_sent], 10);
    dialer.receive(&dialee.sent[..e_sent], 10);
    let opening = ["Peers: own record", "BitVec: set 0, sent at admission"];
    dialee.drain(10, &opening);
    dialer.drain(10, &opening);
    // 20 ms: each handles the other's record and bit vector and answers it.
    let (d_from, e_from) = (d_sent, e_sent);
    let (d_sent, e_sent) = (dialer.sent.len(), dialee.sent.len());
    dialee.receive(&dialer.sent[d_from..d_sent], 20);
    dialer.receive(&dialee.sent[e_from..e_sent], 20);
    dialee.drain(
        20,
        &["Peers: gossip answer to the dialer's bit vector (the third key's record)"],
    );
    dialer.drain(
        20,
        &["Peers: gossip answer to the dialee's bit vector (the dialer's own record)"],
    );
    let (d_from, e_from) = (d_sent, e_sent);
    let (d_sent, e_sent) = (dialer.sent.len(), dialee.sent.len());
    dialee.receive(&dialer.sent[d_from..d_sent], 30);
    dialer.receive(&dialee.sent[e_from..e_sent], 30);
    let third_key = third.public_key();
    assert!(dialer.manager.with_tracker(|t| {
        t.record(&third_key)
            .is_some_and(|r| r.timestamp() == THIRD_RECORD_MS)
    }));

    // 1000 ms: application messages.
    let single = b"hello from the dialer".to_vec();
    let multi = pattern(2500, 7);
    let frame_sized = pattern(MAX_PLAINTEXT as usize, 3);
    let text = compressible_text();
    dialer.send_message(0, &single);
    dialer.drain(1000, &["Chunk: single-part message on channel 1"]);
    dialer.send_message(0, &multi);
    dialer.drain(
        1000,
        &[
            "Chunk: part 0 of 3 of the 2500-byte message on channel 1 (full)",
            "Chunk: part 1 of 3 (full)",
            "Chunk: part 2 of 3 (the rest)",
        ],
    );
    dialee.send_message(0, &frame_sized);
    dialee.drain(
        1000,
        &[
            "Chunk: part 0 of 2 of a message exactly one frame plaintext (1008 bytes) long (full)",
            "Chunk: part 1 of 2 (the rest)",
        ],
    );
    dialee.send_message(1, &text);
    let compressed_parts = {
        let compressed = p2p_framing::compress::compress(&text, ZSTD_LEVEL).unwrap();
        p2p_framing::chunk::total_parts_for(compressed.len(), MAX_PLAINTEXT, CHANNEL_ZSTD).unwrap()
    };
    let labels: Vec<String> = (0..compressed_parts)
        .map(|p| match compressed_parts {
            1 => "Chunk: single-part message on channel 2, the zstd-compressed 3000-byte text"
                .to_owned(),
            n => {
                format!("Chunk: part {p} of {n} of the zstd-compressed 3000-byte text on channel 2")
            }
        })
        .collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    dialee.drain(1000, &labels);
    // Three small messages queued at once: one batch frame (protocol minor 1).
    let batch: [&[u8]; 3] = [b"first", b"second, on channel 1", b"third"];
    for m in batch {
        dialee.send_message(0, m);
    }
    dialee.drain(
        1000,
        &["Batch: three single-part messages on channel 1 in one frame (5, 20 and 5 bytes)"],
    );
    let (d_from, e_from) = (d_sent, e_sent);
    let (d_sent, e_sent) = (dialer.sent.len(), dialee.sent.len());
    dialee.receive(&dialer.sent[d_from..d_sent], 1000);
    dialee.expect_message(0, &single);
    dialee.expect_message(0, &multi);
    dialer.receive(&dialee.sent[e_from..e_sent], 1000);
    dialer.expect_message(0, &frame_sized);
    dialer.expect_message(1, &text);
    for m in batch {
        dialer.expect_message(0, m);
    }

    // 5000 ms: the dialer's housekeeping ping.
    let now = dialer.now(5000);
    let work = dialer
        .manager
        .poll_housekeeping(now.unix_ms, now.instant, &mut dialer.rng);
    let (ping, to) = work.ping.expect("a ping is due");
    assert_eq!(to, vec![dialer.peer.clone()]);
    dialer
        .mux
        .control_sender()
        .send(&dialer.peer, ping)
        .unwrap();
    dialer.drain(5000, &["BitVec: set 0, the housekeeping ping"]);
    dialee.receive(&dialer.sent[d_sent..], 5000);

    // The independently derived keys seal exactly these frames.
    let mut check_d = SendCipher::new(&key_dialer, Role::Dialer);
    let mut check_e = SendCipher::new(&key_dialee, Role::Dialee);
    let mut confirm = BytesMut::from(_P2P_HANDSHAKE_CONFIRM);
    check_d.seal(&mut confirm, 0).unwrap();
    assert_eq!(&confirm[..], &confirmation[..]);
    for (cipher, sent) in [(&mut check_d, &dialer.sent), (&mut check_e, &dialee.sent)] {
        for f in sent {
            let mut out =
                BytesMut::from(&u32::to_be_bytes((f.plaintext.len() + TAG_LEN) as u32)[..]);
            out.extend_from_slice(&f.plaintext);
            cipher.seal(&mut out, frame::HEADER_LEN).unwrap();
            assert_eq!(&out[..], &f.frame[..], "{}", f.label);
        }
    }

    // The text.
    let mut t = Text(String::new());
    t.comment(HEADER);
    t.0.push('\n');
    t.line("scheme", S::PublicKey::SCHEME);
    t.line("namespace", hex::encode(NAMESPACE));
    t.line(
        "seeds",
        format!(
            "dialer key {DIALER_SEED}, dialee key {DIALEE_SEED}, third key {THIRD_SEED}, fourth key {FOURTH_SEED}, dialer rng ChaCha20Rng({DIALER_RNG_SEED}), dialee rng ChaCha20Rng({DIALEE_RNG_SEED}), dialer node rng ChaCha20Rng({DIALER_NODE_RNG_SEED}), dialee node rng ChaCha20Rng({DIALEE_NODE_RNG_SEED})"
        ),
    );
    let tag = match S::PublicKey::SCHEME {
        p2p_identity::SchemeKind::Ed25519 => ED25519_SEED_TAG,
        _ => BLS12381_SEED_TAG,
    };
    for (name, seed, key) in [
        ("dialer", DIALER_SEED, &d),
        ("dialee", DIALEE_SEED, &e),
        ("third", THIRD_SEED, &third),
        ("fourth", FOURTH_SEED, &fourth),
    ] {
        let mut h = Sha256::new();
        h.update(tag);
        h.update(seed.to_be_bytes());
        t.line(&format!("{name}_seed_hash"), hex::encode(h.finalize()));
        t.line(
            &format!("{name}_secret_key"),
            hex::encode(&*key.secret_bytes()),
        );
        t.line(
            &format!("{name}_public_key"),
            hex::encode(key.public_key().as_bytes()),
        );
        t.line(&format!("{name}_peer_id"), key.public_key().peer_id());
    }
    let mut sorted = set.clone();
    sorted.sort();
    t.line("peer_set_index", PEER_SET_INDEX);
    for (i, k) in sorted.iter().enumerate() {
        let who = ["dialer", "dialee", "third", "fourth"][set.iter().position(|x| x == k).unwrap()];
        t.line(
            &format!("peer_set_key_{i}"),
            format!("{} ({who})", hex::encode(k.as_bytes())),
        );
    }
    t.line("dialer_record_ms", DIALER_RECORD_MS);
    t.line("dialer_socket", DIALER_SOCKET);
    t.line("dialee_record_ms", DIALEE_RECORD_MS);
    t.line("dialee_socket", DIALEE_SOCKET);
    t.line("third_record_ms", THIRD_RECORD_MS);
    t.line("third_socket", THIRD_SOCKET);
    t.line("now_dialer_ms", NOW_DIALER);
    t.line("now_dialee_ms", NOW_DIALEE);
    t.line("max_frame_len", MAX_FRAME_LEN);
    t.line("max_plaintext_len", MAX_PLAINTEXT);
    t.line(
        "channels",
        format!("{CHANNEL_PLAIN} (plain), {CHANNEL_ZSTD} (zstd level {ZSTD_LEVEL}); max_message_size {MAX_MESSAGE}"),
    );
    t.line(
        "dialer_rng_key",
        hex::encode(ChaCha20Rng::seed_from_u64(DIALER_RNG_SEED).get_seed()),
    );
    t.line("dialer_ephemeral_secret", hex::encode(eph_d_secret));
    t.line("dialer_ephemeral_public", hex::encode(eph_d_public));
    t.line(
        "dialee_rng_key",
        hex::encode(ChaCha20Rng::seed_from_u64(DIALEE_RNG_SEED).get_seed()),
    );
    t.line("dialee_ephemeral_secret", hex::encode(eph_e_secret));
    t.line("dialee_ephemeral_public", hex::encode(eph_e_public));
    t.line("namespace_tag", hex::encode(ns_tag));
    t.line("hello_body", hex::encode(&hello));
    t.line("answer_body", hex::encode(&answer));
    t.line(
        "confirmation_frame (dialer sequence 0)",
        format!("{:08x}{}", confirmation.len(), hex::encode(&confirmation)),
    );
    t.line("transcript_hash", hex::encode(th));
    t.line("x25519_shared_secret", hex::encode(dh));
    t.line("key_dialer", hex::encode(key_dialer));
    t.line("key_dialee", hex::encode(key_dialee));
    t.line("message_single (channel 1, dialer)", hex::encode(&single));
    t.line("message_multi (channel 1, dialer)", hex::encode(&multi));
    t.line(
        "message_frame_sized (channel 1, dialee)",
        hex::encode(&frame_sized),
    );
    t.line(
        "message_text (channel 2, dialee, before compression)",
        hex::encode(&text),
    );
    t.frames("dialer", &dialer.sent);
    t.frames("dialee", &dialee.sent);
    t.0
}

fn path(scheme: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("connection_{scheme}.txt"))
}

fn all() -> [(&'static str, String); 2] {
    [
        ("ed25519", render::<ed25519::PrivateKey>()),
        ("bls12381", render::<bls12381::PrivateKey>()),
    ]
}

#[test]
#[ignore = "writes the vectors; run by `cargo xtask vectors`"]
fn regenerate_vectors() {
    if std::env::var("P2P_REGENERATE_VECTORS").as_deref() != Ok("1") {
        eprintln!("set P2P_REGENERATE_VECTORS=1 to write the vectors");
        return;
    }
    std::fs::create_dir_all(path("x").parent().unwrap()).unwrap();
    for (scheme, text) in all() {
        std::fs::write(path(scheme), text).expect("vectors directory is writable");
    }
}

#[test]
fn vectors_match() {
    for (scheme, text) in all() {
        let stored = std::fs::read_to_string(path(scheme)).expect("vectors are checked in");
        assert_eq!(
            stored, text,
            "{scheme} connection vectors differ from the code's output"
        );
        // The connection continues the handshake of the handshake crate's vectors.
        let handshake = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../handshake/tests/vectors")
                .join(format!("{scheme}.txt")),
        )
        .expect("handshake vectors are checked in");
        let value = |text: &str, key: &str| -> String {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(" = ").map(str::to_owned))
                .unwrap_or_else(|| panic!("{key} in the {scheme} vectors"))
        };
        for key in [
            "hello_body",
            "answer_body",
            "dialer_public_key",
            "dialee_public_key",
        ] {
            assert_eq!(value(&text, key), value(&handshake, key), "{scheme} {key}");
        }
        assert_eq!(
            value(&text, "confirmation_frame (dialer sequence 0)"),
            value(&handshake, "confirmation_frame"),
            "{scheme} confirmation"
        );
    }
}

/// PCG32 as `rand_core::SeedableRng::seed_from_u64` specifies it: eight outputs, little-endian.
fn pcg32_seed(mut state: u64) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_exact_mut(4) {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(11_634_580_027_462_260_723);
        let xorshifted = (((state >> 18) ^ state) >> 27) as u32;
        let x = xorshifted.rotate_right((state >> 59) as u32);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    seed
}

/// The ChaCha20 block function of RFC 8439 (section 2.3), with a 32-bit counter and a 96-bit
/// nonce.
fn chacha20_block(key: &[u8; 32], counter: u32, nonce: &[u8; 12]) -> [u8; 64] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for i in 0..8 {
        s[4 + i] = u32::from_le_bytes(key[4 * i..4 * i + 4].try_into().unwrap());
    }
    s[12] = counter;
    for i in 0..3 {
        s[13 + i] = u32::from_le_bytes(nonce[4 * i..4 * i + 4].try_into().unwrap());
    }
    let mut w = s;
    let qr = |w: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize| {
        w[a] = w[a].wrapping_add(w[b]);
        w[d] = (w[d] ^ w[a]).rotate_left(16);
        w[c] = w[c].wrapping_add(w[d]);
        w[b] = (w[b] ^ w[c]).rotate_left(12);
        w[a] = w[a].wrapping_add(w[b]);
        w[d] = (w[d] ^ w[a]).rotate_left(8);
        w[c] = w[c].wrapping_add(w[d]);
        w[b] = (w[b] ^ w[c]).rotate_left(7);
    };
    for _ in 0..10 {
        qr(&mut w, 0, 4, 8, 12);
        qr(&mut w, 1, 5, 9, 13);
        qr(&mut w, 2, 6, 10, 14);
        qr(&mut w, 3, 7, 11, 15);
        qr(&mut w, 0, 5, 10, 15);
        qr(&mut w, 1, 6, 11, 12);
        qr(&mut w, 2, 7, 8, 13);
        qr(&mut w, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for i in 0..16 {
        out[4 * i..4 * i + 4].copy_from_slice(&w[i].wrapping_add(s[i]).to_le_bytes());
    }
    out
}

#[test]
fn seed_derivations_follow_the_header() {
    for seed in [
        DIALER_RNG_SEED,
        DIALEE_RNG_SEED,
        DIALER_NODE_RNG_SEED,
        0,
        u64::MAX,
    ] {
        let key = pcg32_seed(seed);
        assert_eq!(ChaCha20Rng::seed_from_u64(seed).get_seed(), key);
        // The RNG's output is the keystream from block 0 with an all-zero nonce.
        let mut stream = Vec::new();
        for counter in 0..3 {
            stream.extend_from_slice(&chacha20_block(&key, counter, &[0; 12]));
        }
        assert_eq!(rng_bytes(seed, stream.len()), stream);
    }
    for seed in [DIALER_SEED, DIALEE_SEED, THIRD_SEED, FOURTH_SEED] {
        let mut h = Sha256::new();
        h.update(ED25519_SEED_TAG);
        h.update(seed.to_be_bytes());
        let secret = h.finalize();
        assert_eq!(
            &ed25519::PrivateKey::insecure_from_seed(seed).secret_bytes()[..],
            &secret[..]
        );
        let mut h = Sha256::new();
        h.update(BLS12381_SEED_TAG);
        h.update(seed.to_be_bytes());
        let ikm = h.finalize();
        assert_eq!(
            bls12381::PrivateKey::key_gen(&ikm).unwrap().secret_bytes(),
            bls12381::PrivateKey::insecure_from_seed(seed).secret_bytes()
        );
    }
}
