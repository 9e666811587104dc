//! The adversarial test peer: it speaks the real protocol from raw sockets, from any loopback
//! source address, and can misbehave at every step (before the handshake, in it, in the
//! version step, in framing, chunking, compression, channels, rate and discovery).
//!
//! An [`Arena`] is the network under attack: a victim node, an honest node connected to it,
//! and checks that the victim still serves honest peers and closed the offender with the
//! expected reason.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use p2p::handshake::{FrameReceiver, FrameSender};
use p2p::identity::{PeerUrl, Signer, ed25519};
use p2p::{Config, Network, Priority, Quota, Recipients};
use p2p_proto::message::Payload;
use p2p_proto::{Chunk, VersionInfo};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use super::{NAMESPACE, Node, PLAIN, ZSTD, config, quota, recv};

pub(crate) type K = ed25519::PrivateKey;
pub(crate) type PK = <K as Signer>::PublicKey;

/// A channel with a small inbound quota (6 messages per minute, burst 6).
pub(crate) const LIMITED: u32 = 3;
/// Seeds: 0 the victim, 1 the honest peer, 2 the honest newcomer, 3..=7 keys the adversary
/// holds (authorized: an insider), 1000.. unauthorized keys.
pub(crate) const SET: u64 = 8;

/// The network under attack.
pub(crate) struct Arena {
    pub(crate) victim: Node<K>,
    pub(crate) limited_rx: p2p::Receiver<PK>,
    pub(crate) honest: Node<K>,
}

impl Arena {
    /// A victim with `tweak` applied to its config (seed 0) and an honest node (seed 1)
    /// connected to it; both track keys 0..SET.
    pub(crate) async fn new(tweak: impl FnOnce(&mut Config<K>)) -> Self {
        let keys: Vec<PK> = (0..SET)
            .map(|i| K::insecure_from_seed(i).public_key())
            .collect();
        let mut cfg = config::<K>(0, vec![]);
        tweak(&mut cfg);
        let mut registry = Registry::default();
        let (mut network, oracle) = Network::new(cfg, &mut registry).unwrap();
        oracle.register(0, keys.clone()).unwrap();
        let (plain, plain_rx) = network
            .register(PLAIN, quota(), 32 << 20, 1024, None)
            .unwrap();
        let (zstd, zstd_rx) = network
            .register(ZSTD, quota(), 32 << 20, 1024, Some(3))
            .unwrap();
        let limited = Quota::per_minute(NonZeroU32::new(6).unwrap());
        let (_limited_tx, limited_rx) = network
            .register(LIMITED, limited, 1024, 1024, None)
            .unwrap();
        let key = oracle.public_key();
        let handle = tokio::spawn(network.run());
        let victim = Node {
            key,
            oracle,
            plain,
            plain_rx,
            zstd,
            zstd_rx,
            handle,
            registry,
            seed: 0,
        };
        let boot = PeerUrl::new(&victim.key, victim.oracle.local_addr());
        let honest = super::start::<K>(config(1, vec![boot]), 1, &[(0, keys)]);
        let arena = Self {
            victim,
            limited_rx,
            honest,
        };
        arena
            .wait("the honest peer connects", Duration::from_secs(10), |a| {
                a.victim.oracle.connected().contains(&a.honest.key)
            })
            .await;
        arena
    }

    /// The victim's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.victim.oracle.local_addr()
    }

    /// Sum of the victim's metric lines of `family` whose labels contain `reason="<reason>"`.
    pub(crate) fn count(&self, family: &str, reason: &str) -> f64 {
        let mut out = String::new();
        encode(&mut out, &self.victim.registry).unwrap();
        let label = format!("reason=\"{reason}\"");
        out.lines()
            .filter(|l| l.starts_with(family) && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until `cond` holds, or panics naming `what`.
    pub(crate) async fn wait(&self, what: &str, within: Duration, cond: impl Fn(&Self) -> bool) {
        let t = Instant::now();
        while !cond(self) {
            assert!(t.elapsed() < within, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the victim no longer lists `key` as connected.
    pub(crate) async fn wait_gone(&self, key: &PK) {
        self.wait("the connection is gone", Duration::from_secs(5), |a| {
            !a.victim.oracle.connected().contains(key)
        })
        .await;
    }

    /// Waits until the victim counted `family{reason}` at least `n` times.
    pub(crate) async fn expect(&self, family: &str, reason: &str, n: f64) {
        let what = format!("{family}{{reason=\"{reason}\"}} >= {n}");
        self.wait(&what, Duration::from_secs(10), |a| {
            a.count(family, reason) >= n
        })
        .await;
    }

    /// The victim still serves honest peers: a ping-pong with the connected honest peer both
    /// ways, and a new authorized peer (seed 2, from 127.0.0.1) completes a handshake and the
    /// version step and is admitted. Returns the round trip and the time to admission.
    pub(crate) async fn assert_serving(&mut self, tag: &str) -> (Duration, Duration) {
        let t = Instant::now();
        let sent = self
            .honest
            .plain
            .send(
                Recipients::One(self.victim.key.clone()),
                Bytes::from(format!("ping {tag}")),
                Priority::High,
            )
            .unwrap();
        assert_eq!(sent.queued.len(), 1, "{tag}: the honest peer is connected");
        let (from, msg) = recv(&mut self.victim.plain_rx, Duration::from_secs(5)).await;
        assert_eq!(from, self.honest.key);
        assert_eq!(&msg[..], format!("ping {tag}").as_bytes());
        let sent = self
            .victim
            .plain
            .send(
                Recipients::One(self.honest.key.clone()),
                Bytes::from(format!("pong {tag}")),
                Priority::High,
            )
            .unwrap();
        assert_eq!(sent.queued.len(), 1);
        let (_, msg) = recv(&mut self.honest.plain_rx, Duration::from_secs(5)).await;
        assert_eq!(&msg[..], format!("pong {tag}").as_bytes());
        let round_trip = t.elapsed();

        let t = Instant::now();
        let newcomer = Adversary::new(2, [127, 0, 0, 1].into());
        let link = newcomer
            .connect(self)
            .await
            .unwrap_or_else(|e| panic!("{tag}: an honest handshake fails: {e}"));
        let key = newcomer.signer.public_key();
        self.wait(
            &format!("{tag}: the newcomer is admitted"),
            Duration::from_secs(5),
            |a| a.victim.oracle.connected().contains(&key),
        )
        .await;
        let admitted = t.elapsed();
        drop(link);
        self.wait(
            &format!("{tag}: the newcomer's departure is seen"),
            Duration::from_secs(5),
            |a| !a.victim.oracle.connected().contains(&key),
        )
        .await;
        (round_trip, admitted)
    }

    /// Shuts both nodes down.
    pub(crate) async fn end(self) {
        super::shutdown(vec![self.victim, self.honest]).await;
    }
}

/// The adversary: a key and a loopback source address.
pub(crate) struct Adversary {
    pub(crate) signer: K,
    pub(crate) from: IpAddr,
}

impl Adversary {
    pub(crate) fn new(seed: u64, from: IpAddr) -> Self {
        Self {
            signer: K::insecure_from_seed(seed),
            from,
        }
    }

    /// A TCP connection to `to` from this adversary's source address.
    pub(crate) async fn tcp(&self, to: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(self.from, 0))?;
        socket.connect(to).await
    }

    /// A handshake with the victim, without the version step.
    pub(crate) async fn handshake(&self, arena: &Arena) -> Result<Link, p2p::handshake::Error> {
        let stream = self.tcp(arena.addr()).await?;
        let mut cfg = p2p::handshake::Config::local(NAMESPACE.to_vec());
        cfg.max_frame_len = 64 * 1024;
        let conn =
            p2p::handshake::dial(stream, &self.signer, arena.victim.key.clone(), &cfg).await?;
        let (_, tx, rx) = conn.into_frames();
        Ok(Link { tx, rx })
    }

    /// A handshake whose clock runs `skew_ms` ahead of (negative: behind) the real one, driven
    /// through the sans-IO dialer, then the version info. `Err` carries the failure's label.
    pub(crate) async fn connect_skewed(
        &self,
        arena: &Arena,
        skew_ms: i64,
    ) -> Result<Link, &'static str> {
        let mut stream = self.tcp(arena.addr()).await.map_err(|_| "connect")?;
        let mut cfg = p2p::handshake::Config::local(NAMESPACE.to_vec());
        cfg.max_frame_len = 64 * 1024;
        let now = || p2p::handshake::now_ms().saturating_add_signed(skew_ms);
        let (dialer, hello) = p2p::handshake::Dialer::new(
            &cfg,
            &self.signer,
            arena.victim.key.clone(),
            now(),
            &mut rand::rng(),
        );
        stream
            .write_all(&raw_frame(&hello))
            .await
            .map_err(|_| "io")?;
        let mut len = [0u8; 4];
        let read = async {
            stream.read_exact(&mut len).await?;
            let mut answer = vec![0u8; u32::from_be_bytes(len) as usize];
            stream.read_exact(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(Duration::from_secs(3), read)
            .await
            .map_err(|_| "timeout")?
            .map_err(|_| "closed")?;
        let (established, confirmation) = dialer
            .handle_answer(&answer, now())
            .map_err(|e| e.label())?;
        stream
            .write_all(&raw_frame(&confirmation))
            .await
            .map_err(|_| "io")?;
        let (r, w) = tokio::io::split(stream);
        let mut link = Link {
            tx: FrameSender::new(w, established.send, cfg.max_frame_len),
            rx: FrameReceiver::new(r, established.recv, BytesMut::new(), cfg.max_frame_len),
        };
        link.send(&Payload::Version(version()))
            .await
            .map_err(|e| e.label())?;
        Ok(link)
    }

    /// A handshake and a valid version info: the adversary is admitted.
    pub(crate) async fn connect(&self, arena: &Arena) -> Result<Link, p2p::handshake::Error> {
        let mut link = self.handshake(arena).await?;
        link.send(&Payload::Version(version())).await?;
        Ok(link)
    }
}

/// Our version info, listing the arena's channels.
pub(crate) fn version() -> VersionInfo {
    VersionInfo {
        protocol_major: p2p::PROTOCOL_MAJOR,
        protocol_minor: 0,
        namespace: Bytes::from_static(NAMESPACE),
        software_version: "adversary".into(),
        channels: vec![PLAIN, ZSTD, LIMITED],
    }
}

/// One single-part chunk as a payload.
pub(crate) fn chunk(channel: u32, part: u32, total_parts: u32, content: &[u8]) -> Payload {
    Payload::Chunk(Chunk {
        channel,
        part,
        total_parts,
        content: Bytes::copy_from_slice(content),
    })
}

/// An authenticated connection of the adversary.
pub(crate) struct Link {
    pub(crate) tx: FrameSender<WriteHalf<TcpStream>>,
    pub(crate) rx: FrameReceiver<ReadHalf<TcpStream>>,
}

impl Link {
    /// Sends one payload as one frame.
    pub(crate) async fn send(&mut self, payload: &Payload) -> Result<(), p2p::handshake::Error> {
        let mut body = BytesMut::new();
        p2p::framing::envelope::encode(payload, &mut body);
        self.tx.send(&body).await
    }

    /// Sends an arbitrary frame plaintext.
    pub(crate) async fn send_plaintext(
        &mut self,
        plaintext: &[u8],
    ) -> Result<(), p2p::handshake::Error> {
        self.tx.send(plaintext).await
    }

    /// Writes raw bytes past the cipher (a length prefix the victim reads before opening).
    pub(crate) async fn write_raw(self, bytes: &[u8]) -> Self {
        let Self { tx, rx } = self;
        let (mut w, cipher) = tx.into_parts();
        let _ = w.write_all(bytes).await;
        let _ = w.flush().await;
        Self {
            tx: FrameSender::new(w, cipher, 64 * 1024),
            rx,
        }
    }

    /// Whether the victim closes the connection within `within` (frames it sends, such as
    /// pings, are read and discarded meanwhile).
    pub(crate) async fn closed_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async { while self.rx.recv().await.is_ok() {} })
            .await
            .is_ok()
    }
}

/// Whether the peer of `stream` closes it within `within` (anything it sends is discarded).
pub(crate) async fn stream_closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A length-prefixed frame around `body`, as the handshake reads it.
pub(crate) fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_u32(body.len() as u32);
    out.extend_from_slice(body);
    out.to_vec()
}
