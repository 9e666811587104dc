//! The tokio adapter over real loopback TCP: both schemes, every refusal, replays, silent
//! peers, tampered/reordered/replayed frames, nonce wrap and exhaustion.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use p2p_cipher::CipherError;
use p2p_framing::frame;
use p2p_handshake::{Config, Connection, Error, HandshakeError, Malformed, Refusal, accept, dial};
use p2p_identity::{Signer, bls12381, ed25519};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Ed = ed25519::PrivateKey;

/// Bounds every test's own time.
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test finished in time")
}

fn cfg() -> Config {
    Config::local(&b"_P2P_TEST_NET"[..])
}

async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

type Conn<S> = Connection<TcpStream, <S as Signer>::PublicKey>;

/// Dials `dialee` from `dialer` over loopback; returns both results.
async fn run<S: Signer>(
    dialer: &S,
    expected: S::PublicKey,
    dialer_cfg: &Config,
    dialee: &S,
    dialee_cfg: &Config,
    authorize: impl FnOnce(&[u8]) -> Result<(), Refusal>,
) -> (Result<Conn<S>, Error>, Result<Conn<S>, Error>) {
    let (l, addr) = listener().await;
    let accepting = async {
        let (stream, _) = l.accept().await.unwrap();
        accept(stream, dialee, authorize, dialee_cfg).await
    };
    let dialing = async {
        let stream = TcpStream::connect(addr).await.unwrap();
        dial(stream, dialer, expected, dialer_cfg).await
    };
    let (d, a) = tokio::join!(dialing, accepting);
    (d, a)
}

async fn connected<S: Signer>() -> (Conn<S>, Conn<S>) {
    let (d, e) = (S::insecure_from_seed(1), S::insecure_from_seed(2));
    let (dr, ar) = run(&d, e.public_key(), &cfg(), &e, &cfg(), |_| Ok(())).await;
    (dr.unwrap(), ar.unwrap())
}

async fn both_ways<S: Signer>() {
    let (dc, ac) = connected::<S>().await;
    assert_eq!(dc.peer, S::insecure_from_seed(2).public_key());
    assert_eq!(ac.peer, S::insecure_from_seed(1).public_key());
    let (_, mut d_tx, mut d_rx) = dc.into_frames();
    let (_, mut a_tx, mut a_rx) = ac.into_frames();
    d_tx.send(b"hello dialee").await.unwrap();
    d_tx.send_many(&[b"one", b"", &[7u8; 40_000]])
        .await
        .unwrap();
    assert_eq!(&a_rx.recv().await.unwrap()[..], b"hello dialee");
    assert_eq!(&a_rx.recv().await.unwrap()[..], b"one");
    assert_eq!(&a_rx.recv().await.unwrap()[..], b"");
    assert_eq!(&a_rx.recv().await.unwrap()[..], &[7u8; 40_000][..]);
    a_tx.send(b"hello dialer").await.unwrap();
    assert_eq!(&d_rx.recv().await.unwrap()[..], b"hello dialer");
    // Oversized bodies are refused locally, before sealing.
    let max = d_tx.max_body_len();
    assert!(matches!(
        d_tx.send(&vec![0u8; max + 1]).await,
        Err(Error::BodyTooLarge { .. })
    ));
    d_tx.send(&vec![1u8; max]).await.unwrap();
    assert_eq!(a_rx.recv().await.unwrap().len(), max);
    // Closing one side ends the other's receive with `Closed`.
    d_tx.shutdown().await.unwrap();
    assert!(matches!(a_rx.recv().await, Err(Error::Closed)));
}

#[tokio::test]
async fn ed25519_connects_and_exchanges_frames() {
    bounded(both_ways::<Ed>()).await;
}

#[tokio::test]
async fn bls_connects_and_exchanges_frames() {
    bounded(both_ways::<bls12381::PrivateKey>()).await;
}

fn handshake_err<T: std::fmt::Debug>(r: Result<T, Error>) -> HandshakeError {
    match r {
        Err(Error::Handshake(e)) => e,
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

/// The side that did not fail sees its peer hang up (or the deadline), never a connection.
fn dropped<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::Closed | Error::Io(_) | Error::Timeout)),
        "{r:?}"
    );
}

#[tokio::test]
async fn refusals_over_tcp() {
    bounded(async {
        let (d, e) = (Ed::insecure_from_seed(1), Ed::insecure_from_seed(2));
        let other = Ed::insecure_from_seed(3);

        let (dr, ar) = run(&d, other.public_key(), &cfg(), &e, &cfg(), |_| Ok(())).await;
        assert_eq!(handshake_err(ar), HandshakeError::WrongRecipient);
        dropped(dr);

        let (dr, ar) = run(&d, e.public_key(), &cfg(), &e, &cfg(), |_| {
            Err(Refusal::NotAuthorized)
        })
        .await;
        assert_eq!(
            handshake_err(ar),
            HandshakeError::Refused(Refusal::NotAuthorized)
        );
        dropped(dr);

        let (dr, ar) = run(&d, e.public_key(), &cfg(), &e, &cfg(), |_| {
            Err(Refusal::Blocked)
        })
        .await;
        assert_eq!(handshake_err(ar), HandshakeError::Refused(Refusal::Blocked));
        dropped(dr);

        let other_net = Config::local(&b"_P2P_OTHER_NET"[..]);
        let (dr, ar) = run(&d, e.public_key(), &other_net, &e, &cfg(), |_| Ok(())).await;
        assert_eq!(handshake_err(ar), HandshakeError::NetworkMismatch);
        dropped(dr);

        // Dialing our own key at another node's address: that node is not the recipient.
        // (Timestamp windows are covered exactly, at both edges, by the sans-IO tests, which
        // control the clock.)
        let (dr, ar) = run(&d, e.public_key(), &cfg(), &d, &cfg(), |_| Ok(())).await;
        assert_eq!(handshake_err(ar), HandshakeError::WrongRecipient);
        dropped(dr);
    })
    .await;
}

#[tokio::test]
async fn silent_peer_is_dropped_at_the_deadline() {
    bounded(async {
        let e = Ed::insecure_from_seed(2);
        let mut short = cfg();
        short.deadline = Duration::from_millis(200);
        let (l, addr) = listener().await;
        let _silent = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = l.accept().await.unwrap();
        let started = tokio::time::Instant::now();
        let r = accept(stream, &e, |_| Ok(()), &short).await;
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));

        // A dialee that accepts and says nothing: the dialer gives up at its deadline too.
        let (l, addr) = listener().await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (_held, _) = l.accept().await.unwrap();
        let r = dial(stream, &Ed::insecure_from_seed(1), e.public_key(), &short).await;
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    })
    .await;
}

#[tokio::test]
async fn a_silent_connection_gives_its_slot_back_at_the_first_message_deadline() {
    bounded(async {
        let e = Ed::insecure_from_seed(2);
        let mut c = cfg();
        c.deadline = Duration::from_secs(5);
        c.first_message_deadline = Duration::from_millis(100);
        let (l, addr) = listener().await;
        let _silent = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = l.accept().await.unwrap();
        let started = tokio::time::Instant::now();
        let r = accept(stream, &e, |_| Ok(()), &c).await;
        assert!(matches!(r, Err(Error::FirstMessageTimeout)), "{r:?}");
        assert_eq!(r.err().map(|e| e.label()), Some("first_message_timeout"));
        // Well before the whole handshake's deadline.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

/// Sends raw bytes to an acceptor and returns its result.
async fn accept_raw(bytes: Vec<u8>, then_close: bool) -> Result<Conn<Ed>, Error> {
    let e = Ed::insecure_from_seed(2);
    let (l, addr) = listener().await;
    let client = async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        if then_close {
            s.shutdown().await.unwrap();
        }
        // Keep the socket open until the acceptor is done reading.
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    };
    let server = async {
        let (stream, _) = l.accept().await.unwrap();
        accept(stream, &e, |_| Ok(()), &cfg()).await
    };
    let (_, r) = tokio::join!(client, server);
    r
}

#[tokio::test]
async fn truncated_oversized_and_garbage_first_messages() {
    bounded(async {
        // Oversized: the header alone is refused, before any allocation for the body.
        let r = accept_raw((1u32 << 20).to_be_bytes().to_vec(), false).await;
        assert!(
            matches!(r, Err(Error::Frame(frame::FrameError::TooLarge { .. }))),
            "{r:?}"
        );
        // Truncated: a header announcing 100 bytes, then 10 bytes and EOF.
        let mut t = 100u32.to_be_bytes().to_vec();
        t.extend_from_slice(&[0u8; 10]);
        let r = accept_raw(t, true).await;
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
        // Garbage inside a well-sized frame.
        let mut g = BytesMut::new();
        frame::encode(&mut g, &[0xffu8; 60], 1024).unwrap();
        let r = accept_raw(g.to_vec(), false).await;
        assert_eq!(
            handshake_err(r),
            HandshakeError::Malformed(Malformed::Protobuf)
        );
    })
    .await;
}

/// A TCP relay between a dialer and the real listener that records each direction.
async fn recorded_session() -> (Vec<u8>, Vec<u8>) {
    let (d, e) = (Ed::insecure_from_seed(1), Ed::insecure_from_seed(2));
    let (server, server_addr) = listener().await;
    let (relay, relay_addr) = listener().await;
    let up = Arc::new(Mutex::new(Vec::new()));
    let down = Arc::new(Mutex::new(Vec::new()));
    let (up2, down2) = (up.clone(), down.clone());
    let relaying = async move {
        let (client, _) = relay.accept().await.unwrap();
        let upstream = TcpStream::connect(server_addr).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut ur, mut uw) = upstream.into_split();
        let a = async {
            let mut buf = [0u8; 4096];
            loop {
                let n = cr.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    let _ = uw.shutdown().await;
                    break;
                }
                up2.lock().unwrap().extend_from_slice(&buf[..n]);
                uw.write_all(&buf[..n]).await.unwrap();
            }
        };
        let b = async {
            let mut buf = [0u8; 4096];
            loop {
                let n = ur.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    let _ = cw.shutdown().await;
                    break;
                }
                down2.lock().unwrap().extend_from_slice(&buf[..n]);
                cw.write_all(&buf[..n]).await.unwrap();
            }
        };
        tokio::join!(a, b);
    };
    let accepting = async {
        let (s, _) = server.accept().await.unwrap();
        let c = accept(s, &e, |_| Ok(()), &cfg()).await.unwrap();
        let (_, _tx, mut rx) = c.into_frames();
        assert_eq!(&rx.recv().await.unwrap()[..], b"app data");
        drop(rx);
    };
    let dialing = async {
        let s = TcpStream::connect(relay_addr).await.unwrap();
        let c = dial(s, &d, e.public_key(), &cfg()).await.unwrap();
        let (_, mut tx, _rx) = c.into_frames();
        tx.send(b"app data").await.unwrap();
        tx.shutdown().await.unwrap();
        // Keep the read half alive until the acceptor is done.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::join!(relaying, accepting, dialing);
    let up = up.lock().unwrap().clone();
    let down = down.lock().unwrap().clone();
    (up, down)
}

#[tokio::test]
async fn replayed_first_message_never_yields_a_connection() {
    bounded(async {
        let (up, _) = recorded_session().await;
        // Replay everything the dialer sent (hello, confirmation, app frame) in a new session:
        // the acceptor answers under a fresh ephemeral, so the recorded confirmation fails.
        let r = accept_raw(up.clone(), false).await;
        assert_eq!(handshake_err(r), HandshakeError::Confirmation);
        // Replay only the hello, then hang up: no connection either.
        let mut buf = BytesMut::from(&up[..]);
        let hello = frame::decode(&mut buf, 1024).unwrap().unwrap();
        let mut only_hello = BytesMut::new();
        frame::encode(&mut only_hello, &hello, 1024).unwrap();
        let r = accept_raw(only_hello.to_vec(), true).await;
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    })
    .await;
}

#[tokio::test]
async fn replayed_answer_is_rejected_by_another_session() {
    bounded(async {
        let (_, down) = recorded_session().await;
        let mut buf = BytesMut::from(&down[..]);
        let answer = frame::decode(&mut buf, 1024).unwrap().unwrap();
        let mut wire = BytesMut::new();
        frame::encode(&mut wire, &answer, 1024).unwrap();
        // A fake dialee that plays back the recorded answer to a new dial.
        let (l, addr) = listener().await;
        let fake = async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut hello = [0u8; 64];
            let _ = s.read(&mut hello).await.unwrap();
            s.write_all(&wire).await.unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        };
        let dialing = async {
            let s = TcpStream::connect(addr).await.unwrap();
            let d = Ed::insecure_from_seed(1);
            dial(s, &d, Ed::insecure_from_seed(2).public_key(), &cfg()).await
        };
        let (_, r) = tokio::join!(fake, dialing);
        assert!(
            matches!(handshake_err(r), HandshakeError::BadSignature(_)),
            "answer bound to another hello"
        );
    })
    .await;
}

/// Seals `bodies` with the dialer's cipher into separate wire frames.
fn seal_frames(c: &mut Conn<Ed>, bodies: &[&[u8]]) -> Vec<Vec<u8>> {
    bodies
        .iter()
        .map(|b| {
            let mut out = BytesMut::new();
            let start = frame::begin(&mut out);
            out.extend_from_slice(b);
            c.send.seal(&mut out, start.body_offset()).unwrap();
            frame::finish(&mut out, start, c.max_frame_len).unwrap();
            out.to_vec()
        })
        .collect()
}

async fn deliver(order: impl FnOnce(Vec<Vec<u8>>) -> Vec<u8>) -> (Vec<Vec<u8>>, Error) {
    let (mut dc, ac) = connected::<Ed>().await;
    let frames = seal_frames(&mut dc, &[b"first", b"second", b"third"]);
    dc.writer.write_all(&order(frames)).await.unwrap();
    let (_, _tx, mut rx) = ac.into_frames();
    let mut got = Vec::new();
    loop {
        match rx.recv().await {
            Ok(f) => got.push(f.to_vec()),
            Err(e) => {
                // The receiver is poisoned: nothing more ever opens.
                assert!(matches!(
                    rx.recv().await,
                    Err(Error::Cipher(CipherError::Poisoned))
                ));
                return (got, e);
            }
        }
    }
}

#[tokio::test]
async fn tampered_reordered_and_replayed_frames_close_the_connection() {
    bounded(async {
        let (got, err) = deliver(|mut f| {
            f[1][6] ^= 1;
            f.concat()
        })
        .await;
        assert_eq!(got, vec![b"first".to_vec()]);
        assert!(matches!(err, Error::Cipher(CipherError::Authentication)));

        let (got, err) = deliver(|f| [&f[0][..], &f[2][..], &f[1][..]].concat()).await;
        assert_eq!(got, vec![b"first".to_vec()]);
        assert!(matches!(err, Error::Cipher(CipherError::Authentication)));

        let (got, err) = deliver(|f| [&f[0][..], &f[1][..], &f[1][..]].concat()).await;
        assert_eq!(got, vec![b"first".to_vec(), b"second".to_vec()]);
        assert!(matches!(err, Error::Cipher(CipherError::Authentication)));

        // An oversized frame header after the handshake is refused before allocation.
        let (got, err) = deliver(|f| {
            let mut w = f[0].clone();
            w.extend_from_slice(&u32::MAX.to_be_bytes());
            w
        })
        .await;
        assert_eq!(got, vec![b"first".to_vec()]);
        assert!(matches!(
            err,
            Error::Frame(frame::FrameError::TooLarge { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn sequence_wrap_and_exhaustion_over_tcp() {
    bounded(async {
        let (dc, ac) = connected::<Ed>().await;
        let (_, mut tx, _) = dc.into_frames();
        let (_, _, mut rx) = ac.into_frames();
        // Wrap: sequence u64::MAX of iterator 5, then sequence 0 of iterator 6.
        tx.cipher_mut().set_position_for_testing(5, u64::MAX);
        rx.cipher_mut().set_position_for_testing(5, u64::MAX);
        tx.send_many(&[b"a", b"b"]).await.unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"a");
        assert_eq!(&rx.recv().await.unwrap()[..], b"b");
        let next = tx.cipher().next_nonce().unwrap();
        assert_eq!((next.iterator(), next.sequence()), (6, 1));
        // Exhaustion: the last frame of the 2^80 goes through, the next one is refused.
        tx.cipher_mut().set_position_for_testing(u16::MAX, u64::MAX);
        rx.cipher_mut().set_position_for_testing(u16::MAX, u64::MAX);
        tx.send(b"last").await.unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"last");
        assert!(matches!(
            tx.send(b"one too many").await,
            Err(Error::Cipher(CipherError::Exhausted))
        ));
        assert!(matches!(
            tx.send(b"again").await,
            Err(Error::Cipher(CipherError::Exhausted))
        ));
    })
    .await;
}
