//! End-to-end workloads: two facade networks in one process over loopback TCP, and the
//! baselines they are judged against (plain tokio TCP with length-prefixed frames, the same
//! carrying frames sealed by the AEAD backend, the bare handshake, the AEAD alone).
//!
//! Every workload runs its ends in spawned tasks of a runtime the caller owns (tokio
//! multi-thread, 2 workers in the benches), and returns what it measured; the criterion bench
//! (`benches/e2e.rs`) and the report binary (`bench-report`) both call these functions.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use p2p::discovery::AddressPolicy;
use p2p::identity::{PeerUrl, Signer};
use p2p::{Config, Network, Oracle, Priority, Quota, Receiver, Recipients, Sender};
use p2p_cipher::{RecvCipher, Role, SendCipher, TAG_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

/// Namespace of the bench networks.
pub const NAMESPACE: &[u8] = b"_P2P_BENCH";
/// The one-way channel (the receiving side counts).
const ONE_WAY: u32 = 1;
/// The round-trip channel (the receiving side echoes).
const ECHO: u32 = 2;
/// Largest message of the bench channels (the 16 MiB workload plus room).
const MAX_MESSAGE: usize = 17 << 20;
/// Frame size of the bench networks and of the sealed-TCP baseline (the `recommended` one).
pub const FRAME: usize = 1 << 20;

/// The runtime every workload runs on: multi-thread, 2 workers (the machine has 2 cores).
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A job for a counting receiver: receive this many messages, then answer.
type Job = (u64, oneshot::Sender<u64>);

/// One side of a [`Pair`].
struct Side<S: Signer> {
    /// The network's metrics (read when a workload fails, to say why).
    registry: Arc<prometheus_client::registry::Registry>,
    oracle: Oracle<S>,
    key: S::PublicKey,
    one_way: Sender<S::PublicKey>,
    echo: Sender<S::PublicKey>,
}

/// Two facade networks connected over loopback: `a` sends, `b` counts (channel 1) or echoes
/// (channel 2). `a`'s echo receiver is kept for the round trip.
pub struct Pair<S: Signer> {
    a: Side<S>,
    b: Side<S>,
    count_jobs: mpsc::UnboundedSender<Job>,
    a_echo_rx: Option<Receiver<S::PublicKey>>,
    handles: Vec<tokio::task::JoinHandle<Result<(), p2p::Error>>>,
}

/// `Config::aggressive` for the bench: 1 MiB frames, and records advertising loopback refused,
/// so the listening side never dials back (the connect workload measures one dialer).
fn config<S: Signer>(signer: S, bootstrappers: Vec<PeerUrl>) -> Config<S> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let mut cfg = Config::aggressive(signer, NAMESPACE, any, any, bootstrappers);
    cfg.set_max_frame_len(FRAME as u32);
    cfg.discovery.address_policy = AddressPolicy::recommended();
    cfg
}

fn quota() -> Quota {
    Quota::per_second(NonZeroU32::MAX)
}

type Started<S> = (
    Side<S>,
    Receiver<<S as Signer>::PublicKey>,
    Receiver<<S as Signer>::PublicKey>,
    tokio::task::JoinHandle<Result<(), p2p::Error>>,
);

fn start<S: Signer>(
    rt: &Runtime,
    signer: S,
    keys: &[S::PublicKey],
    boot: Vec<PeerUrl>,
    backlog: usize,
    coalesce_limit: usize,
) -> Started<S> {
    let _guard = rt.enter();
    let mut registry = prometheus_client::registry::Registry::default();
    let mut cfg = config(signer, boot);
    cfg.coalesce_limit = coalesce_limit;
    let (mut network, oracle) = Network::new(cfg, &mut registry).expect("a bench network");
    oracle
        .register(0, keys.to_vec())
        .expect("the bench peer set");
    let (one_way, one_way_rx) = network
        .register(ONE_WAY, quota(), MAX_MESSAGE, backlog, None)
        .expect("channel 1");
    let (echo, echo_rx) = network
        .register(ECHO, quota(), MAX_MESSAGE, backlog, None)
        .expect("channel 2");
    let key = oracle.public_key();
    let handle = rt.spawn(network.run());
    let side = Side {
        registry: Arc::new(registry),
        oracle,
        key,
        one_way,
        echo,
    };
    (side, one_way_rx, echo_rx, handle)
}

impl<S: Signer> Pair<S> {
    /// Starts two networks (keys from seeds 1 and 2; `a` dials `b`) with `backlog` messages per
    /// channel and peer, and waits until they are connected. Small messages queued together
    /// go in batch frames (the presets' `coalesce_limit`).
    pub fn new(rt: &Runtime, backlog: usize) -> Self {
        Self::with_coalesce_limit(rt, backlog, p2p::session::DEFAULT_COALESCE_LIMIT)
    }

    /// [`Pair::new`] with another `Config::coalesce_limit` (0: one message per frame).
    pub fn with_coalesce_limit(rt: &Runtime, backlog: usize, coalesce_limit: usize) -> Self {
        let sa = S::insecure_from_seed(1);
        let sb = S::insecure_from_seed(2);
        let keys = vec![sa.public_key(), sb.public_key()];
        let (b, mut b_rx, mut b_echo_rx, hb) =
            start(rt, sb, &keys, vec![], backlog, coalesce_limit);
        let boot = PeerUrl::new(&b.key, b.oracle.local_addr());
        let (a, _a_rx, a_echo_rx, ha) = start(rt, sa, &keys, vec![boot], backlog, coalesce_limit);
        // b counts what arrives on channel 1, job by job.
        let (count_jobs, mut jobs) = mpsc::unbounded_channel::<Job>();
        rt.spawn(async move {
            while let Some((n, done)) = jobs.recv().await {
                let mut bytes = 0u64;
                for _ in 0..n {
                    let Some((_, m)) = b_rx.recv().await else {
                        return;
                    };
                    bytes += m.len() as u64;
                }
                let _ = done.send(bytes);
            }
        });
        // b echoes what arrives on channel 2.
        let echo = b.echo.clone();
        rt.spawn(async move {
            while let Some((from, m)) = b_echo_rx.recv().await {
                let _ = echo.send(Recipients::One(from), m, Priority::High);
            }
        });
        let pair = Self {
            a,
            b,
            count_jobs,
            a_echo_rx: Some(a_echo_rx),
            handles: vec![ha, hb],
        };
        pair.wait_connected(Duration::from_secs(10));
        pair
    }

    fn both_connected(&self) -> bool {
        self.a.oracle.connected().contains(&self.b.key)
            && self.b.oracle.connected().contains(&self.a.key)
    }

    fn neither_connected(&self) -> bool {
        self.a.oracle.connected().is_empty() && self.b.oracle.connected().is_empty()
    }

    fn wait_connected(&self, within: Duration) {
        let t = Instant::now();
        while !self.both_connected() {
            assert!(t.elapsed() < within, "the bench pair did not connect");
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    /// Sends `n` messages of `size` bytes from `a` to `b`, one `send` each (a full backlog is
    /// retried after a timer tick), and waits until `b`'s application received them all. Returns
    /// the elapsed time and the number of refused sends (backlog full).
    pub fn one_way(&self, rt: &Runtime, size: usize, n: u64) -> (Duration, u64) {
        let message = Bytes::from(vec![0xA5u8; size]);
        let (done_tx, done_rx) = oneshot::channel();
        self.count_jobs
            .send((n, done_tx))
            .expect("the counting task runs");
        let sender = self.a.one_way.clone();
        let to = self.b.key.clone();
        let registries = [Arc::clone(&self.a.registry), Arc::clone(&self.b.registry)];
        let t = Instant::now();
        let refused = rt.spawn(async move {
            let mut refused = 0u64;
            let mut report = p2p::SendReport::new();
            for _ in 0..n {
                loop {
                    sender
                        .send_into(
                            Recipients::One(to.clone()),
                            message.clone(),
                            Priority::Low,
                            &mut report,
                        )
                        .expect("a bench message fits");
                    if report.queued.is_empty() {
                        assert!(
                            report.not_connected.is_empty(),
                            "the peer disconnected: {}",
                            disconnects(&registries)
                        );
                        refused += 1;
                        // The backlog is full: wait for room (a timer tick, 1 ms) rather than
                        // spin on a worker the network's tasks need. There is no wait-for-room
                        // API yet.
                        tokio::time::sleep(Duration::from_micros(500)).await;
                    } else {
                        break;
                    }
                }
            }
            refused
        });
        let bytes = rt.block_on(done_rx).expect("the counting task answers");
        let elapsed = t.elapsed();
        assert_eq!(bytes, n * size as u64);
        let refused = rt.block_on(refused).expect("the sending task ends");
        (elapsed, refused)
    }

    /// `n` round trips of `size` bytes (`a` sends, `b` echoes); returns each one's duration.
    pub fn round_trips(&mut self, rt: &Runtime, size: usize, n: usize) -> Vec<Duration> {
        let mut rx = self.a_echo_rx.take().expect("one round-trip run at a time");
        let sender = self.a.echo.clone();
        let to = self.b.key.clone();
        let message = Bytes::from(vec![0x5Au8; size]);
        let (samples, rx) = rt
            .block_on(rt.spawn(async move {
                let mut samples = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    let r = sender
                        .send(Recipients::One(to.clone()), message.clone(), Priority::High)
                        .expect("a bench message fits");
                    assert_eq!(r.queued.len(), 1, "the echo was queued");
                    let (_, back) = rx.recv().await.expect("the echo comes back");
                    samples.push(t.elapsed());
                    assert_eq!(back.len(), size);
                }
                (samples, rx)
            }))
            .expect("the round-trip task ends");
        self.a_echo_rx = Some(rx);
        samples
    }

    /// `n` sequential reconnections: `a` blocks `b` (both close), then unblocks it and the time
    /// until both list each other again is taken. Returns each one's duration.
    pub fn reconnects(&self, n: usize) -> Vec<Duration> {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            self.a.oracle.block(self.b.key.clone());
            let t = Instant::now();
            while !self.neither_connected() {
                assert!(t.elapsed() < Duration::from_secs(10), "the block took");
                std::thread::sleep(Duration::from_micros(20));
            }
            let t = Instant::now();
            self.a.oracle.unblock(&self.b.key);
            self.wait_connected(Duration::from_secs(10));
            samples.push(t.elapsed());
        }
        samples
    }

    /// Shuts both networks down.
    pub fn shutdown(self, rt: &Runtime) {
        self.a.oracle.shutdown();
        self.b.oracle.shutdown();
        for h in self.handles {
            let _ = rt.block_on(h);
        }
    }
}

/// The `p2p_disconnects_total` lines of both sides' metrics (why a connection ended).
fn disconnects(registries: &[Arc<prometheus_client::registry::Registry>]) -> String {
    let mut out = String::new();
    for (side, r) in ["a", "b"].iter().zip(registries) {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, r);
        for line in text
            .lines()
            .filter(|l| l.starts_with("p2p_disconnects_total"))
        {
            out.push_str(&format!("{side}: {line}; "));
        }
    }
    out
}

/// One sender network and `peers` receiver networks over loopback, each receiver connected to
/// the sender only (the sender is their bootstrapper, and records advertising loopback are
/// refused, so no one learns another receiver's address), with `channels` channels: how the cost grows with the number of peers
/// (broadcast) and of channels.
pub struct Star {
    sender: Oracle<p2p::identity::ed25519::PrivateKey>,
    senders: Vec<Sender<KeyOf>>,
    receivers: Vec<Oracle<p2p::identity::ed25519::PrivateKey>>,
    delivered: Arc<std::sync::atomic::AtomicU64>,
    arrived: Arc<tokio::sync::Notify>,
    handles: Vec<tokio::task::JoinHandle<Result<(), p2p::Error>>>,
}

type KeyOf = <p2p::identity::ed25519::PrivateKey as Signer>::PublicKey;

impl Star {
    /// Starts the networks (sender seed 0, receivers 1..=peers) with `channels` channels of
    /// backlog 1024 each, and waits until every receiver is connected to the sender.
    pub fn new(rt: &Runtime, peers: usize, channels: u32) -> Self {
        use p2p::identity::ed25519::PrivateKey as K;
        use std::sync::atomic::{AtomicU64, Ordering};
        let _guard = rt.enter();
        let delivered = Arc::new(AtomicU64::new(0));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let all: Vec<KeyOf> = (0..=peers as u64)
            .map(|i| K::insecure_from_seed(i).public_key())
            .collect();
        let mut handles = Vec::new();
        let network = |seed: u64, keys: Vec<KeyOf>, boot: Vec<PeerUrl>| {
            let mut registry = prometheus_client::registry::Registry::default();
            let (mut network, oracle) =
                Network::new(config(K::insecure_from_seed(seed), boot), &mut registry)
                    .expect("a bench network");
            oracle.register(0, keys).expect("the bench peer set");
            let mut txs = Vec::new();
            let mut rxs = Vec::new();
            for c in 0..channels {
                let (tx, rx) = network
                    .register(c, quota(), MAX_MESSAGE, 1024, None)
                    .expect("a channel");
                txs.push(tx);
                rxs.push(rx);
            }
            (oracle, network, txs, rxs)
        };
        let (sender, net, senders, _rxs) = network(0, all.clone(), vec![]);
        handles.push(rt.spawn(net.run()));
        let boot = PeerUrl::new(&sender.public_key(), sender.local_addr());
        let mut receivers = Vec::new();
        for i in 1..=peers as u64 {
            // Every node tracks the same set (bit vectors must agree on its size); records
            // advertising loopback are refused, so receivers only know the sender's address.
            let (oracle, net, _txs, rxs) = network(i, all.clone(), vec![boot.clone()]);
            for mut rx in rxs {
                let (delivered, arrived) = (Arc::clone(&delivered), Arc::clone(&arrived));
                rt.spawn(async move {
                    while rx.recv().await.is_some() {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        arrived.notify_one();
                    }
                });
            }
            handles.push(rt.spawn(net.run()));
            receivers.push(oracle);
        }
        let t = Instant::now();
        while sender.connected().len() < peers {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the star did not form"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Self {
            sender,
            senders,
            receivers,
            delivered,
            arrived,
            handles,
        }
    }

    /// Sends `n` messages of `size` bytes to every peer (`Recipients::All`), cycling through
    /// the channels, and waits until every receiver got all of them. A full backlog is retried
    /// for the peers that refused. Returns the elapsed time.
    pub fn broadcast(&self, rt: &Runtime, size: usize, n: u64) -> Duration {
        use std::sync::atomic::Ordering;
        let want = self.delivered.load(Ordering::Relaxed) + n * self.receivers.len() as u64;
        let message = Bytes::from(vec![0xA5u8; size]);
        let senders = self.senders.clone();
        let t = Instant::now();
        rt.spawn(async move {
            let mut report = p2p::SendReport::new();
            for i in 0..n {
                let sender = &senders[(i % senders.len() as u64) as usize];
                let mut to = Recipients::All;
                loop {
                    sender
                        .send_into(to, message.clone(), Priority::Low, &mut report)
                        .expect("a bench message fits");
                    assert!(report.not_connected.is_empty(), "a peer disconnected");
                    if report.backlog_full.is_empty() {
                        break;
                    }
                    to = Recipients::List(std::mem::take(&mut report.backlog_full));
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            }
        });
        let (delivered, arrived) = (Arc::clone(&self.delivered), Arc::clone(&self.arrived));
        rt.block_on(async move {
            while delivered.load(Ordering::Relaxed) < want {
                let _ = tokio::time::timeout(Duration::from_millis(1), arrived.notified()).await;
            }
        });
        t.elapsed()
    }

    /// Shuts every network down.
    pub fn shutdown(self, rt: &Runtime) {
        self.sender.shutdown();
        for r in &self.receivers {
            r.shutdown();
        }
        for h in self.handles {
            let _ = rt.block_on(h);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Baselines
// ---------------------------------------------------------------------------------------------

/// A connected loopback TCP pair (`TCP_NODELAY` on both, as the network sets it).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback listener");
    let addr = listener.local_addr().expect("its address");
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let a = a.expect("connected");
    let (b, _) = b.expect("accepted");
    a.set_nodelay(true).expect("nodelay");
    b.set_nodelay(true).expect("nodelay");
    (a, b)
}

/// Plain TCP: `n` messages of `size` bytes, each one length-prefixed write, read back with
/// `read_exact` by a task on the other end. Returns the elapsed time.
pub fn tcp_one_way(rt: &Runtime, size: usize, n: u64) -> Duration {
    rt.block_on(async move {
        let (mut a, b) = tcp_pair().await;
        let reader = tokio::spawn(async move {
            let mut b = BufReader::with_capacity(256 * 1024, b);
            let mut buf = vec![0u8; size];
            for _ in 0..n {
                let len = b.read_u32().await.expect("a prefix") as usize;
                b.read_exact(&mut buf[..len]).await.expect("a body");
            }
        });
        let t = Instant::now();
        let writer = tokio::spawn(async move {
            let message = vec![0xA5u8; size];
            let mut w = BufWriter::with_capacity(256 * 1024, &mut a);
            for _ in 0..n {
                w.write_u32(size as u32).await.expect("written");
                w.write_all(&message).await.expect("written");
            }
            w.flush().await.expect("flushed");
        });
        writer.await.expect("writer");
        reader.await.expect("reader");
        t.elapsed()
    })
}

/// TCP carrying the same bytes sealed by the same AEAD backend: the writer task cuts each
/// message into frames of at most [`FRAME`] bytes and seals them in place, batching up to
/// 256 KiB per write; the reader task decodes and opens them. Returns the elapsed time.
pub fn sealed_tcp_one_way(rt: &Runtime, size: usize, n: u64) -> Duration {
    rt.block_on(async move {
        let (mut a, mut b) = tcp_pair().await;
        let key = [7u8; 32];
        let reader = tokio::spawn(async move {
            let mut cipher = RecvCipher::new(&key, Role::Dialer);
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut got = 0u64;
            let want = n * size as u64;
            while got < want {
                while let Some(mut body) =
                    p2p_framing::frame::decode(&mut buf, (FRAME + TAG_LEN) as u32).expect("a frame")
                {
                    cipher.open(&mut body).expect("genuine");
                    got += body.len() as u64;
                }
                if got >= want {
                    break;
                }
                buf.reserve(64 * 1024);
                let r = b.read_buf(&mut buf).await.expect("read");
                assert!(r > 0, "early end");
            }
        });
        let t = Instant::now();
        let writer = tokio::spawn(async move {
            let mut cipher = SendCipher::new(&key, Role::Dialer);
            let message = vec![0xA5u8; size];
            let mut out = BytesMut::new();
            for _ in 0..n {
                for part in message.chunks(FRAME) {
                    let start = p2p_framing::frame::begin(&mut out);
                    out.extend_from_slice(part);
                    cipher.seal(&mut out, start.body_offset()).expect("sealed");
                    p2p_framing::frame::finish(&mut out, start, (FRAME + TAG_LEN) as u32)
                        .expect("framed");
                    if out.len() >= 256 * 1024 {
                        a.write_all(&out).await.expect("written");
                        out.clear();
                    }
                }
            }
            a.write_all(&out).await.expect("written");
        });
        writer.await.expect("writer");
        reader.await.expect("reader");
        t.elapsed()
    })
}

/// Plain TCP round trips of `size` bytes (length-prefixed, both ends in spawned tasks, the
/// far end echoing). Returns each one's duration.
pub fn tcp_round_trips(rt: &Runtime, size: usize, n: usize) -> Vec<Duration> {
    rt.block_on(async move {
        let (mut a, mut b) = tcp_pair().await;
        tokio::spawn(async move {
            let mut buf = vec![0u8; size];
            for _ in 0..n {
                let len = b.read_u32().await.expect("a prefix") as usize;
                b.read_exact(&mut buf[..len]).await.expect("a body");
                let mut out = Vec::with_capacity(4 + len);
                out.extend_from_slice(&(len as u32).to_be_bytes());
                out.extend_from_slice(&buf[..len]);
                b.write_all(&out).await.expect("echoed");
            }
        });
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(n);
            let mut out = Vec::with_capacity(4 + size);
            out.extend_from_slice(&(size as u32).to_be_bytes());
            out.extend_from_slice(&vec![0x5Au8; size]);
            let mut buf = vec![0u8; size];
            for _ in 0..n {
                let t = Instant::now();
                a.write_all(&out).await.expect("sent");
                let len = a.read_u32().await.expect("a prefix") as usize;
                a.read_exact(&mut buf[..len]).await.expect("a body");
                samples.push(t.elapsed());
            }
            samples
        })
        .await
        .expect("the round-trip task ends")
    })
}

/// `n` bare handshakes over fresh loopback TCP connections, one after another, each until
/// both ends hold their ciphers. Returns each one's duration (connect included).
pub fn bare_handshakes<S: Signer>(rt: &Runtime, n: usize) -> Vec<Duration> {
    rt.block_on(async move {
        let dialer = Arc::new(S::insecure_from_seed(1));
        let dialee = Arc::new(S::insecure_from_seed(2));
        let dialee_key = dialee.public_key();
        let cfg = Arc::new(p2p::handshake::Config::recommended(NAMESPACE.to_vec()));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener");
        let addr = listener.local_addr().expect("its address");
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let (dialee, cfg2) = (Arc::clone(&dialee), Arc::clone(&cfg));
            let accepted = async {
                let (stream, _) = listener.accept().await.expect("accepted");
                stream.set_nodelay(true).expect("nodelay");
                p2p::handshake::accept(stream, &*dialee, |_: &[u8]| Ok(()), &cfg2)
                    .await
                    .map(|_| ())
            };
            let (dialer, cfg3, key) = (Arc::clone(&dialer), Arc::clone(&cfg), dialee_key.clone());
            let dialed = tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.expect("connected");
                stream.set_nodelay(true).expect("nodelay");
                p2p::handshake::dial(stream, &*dialer, key, &cfg3)
                    .await
                    .map(|_| ())
            });
            accepted.await.expect("the dialee finished");
            dialed
                .await
                .expect("the dial task")
                .expect("the dialer finished");
            samples.push(t.elapsed());
        }
        samples
    })
}

/// The AEAD backend sealing `n` frames of `size` bytes on one core, in place, the way the
/// writer does (length prefix, body, tag appended). Returns the elapsed time.
pub fn seal(size: usize, n: u64) -> Duration {
    let mut cipher = SendCipher::new(&[7u8; 32], Role::Dialer);
    let body = vec![0xA5u8; size];
    let mut out = BytesMut::with_capacity(size + 64);
    let t = Instant::now();
    for _ in 0..n {
        out.clear();
        let start = p2p_framing::frame::begin(&mut out);
        out.extend_from_slice(&body);
        cipher.seal(&mut out, start.body_offset()).expect("sealed");
        std::hint::black_box(&out);
    }
    t.elapsed()
}

/// The `q`-quantile (0..=1) of `samples` (sorted in place).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[i.min(samples.len().saturating_sub(1))]
}
