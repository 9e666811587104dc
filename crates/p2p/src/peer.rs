//! One connection: a reader task and a writer task around the layers' state machines.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use p2p_cipher::{RecvCipher, SendCipher};
use p2p_framing::frame;
use p2p_handshake::Connection;
use p2p_identity::Signer;
use p2p_mux::{ControlSender, Inbound, InboundPeer, Mux, PollFrame, Scheduler};
use p2p_proto::message::Payload;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::metrics::{ConnDirection, DirectionLabel, ReasonLabel};
use crate::network::{Key, Shared, count_handshake, encode_payload, lock, now_ms};

/// Bytes reserved per read from the socket.
const READ_CHUNK: usize = 64 * 1024;

/// What every connection task needs.
pub(crate) struct Ctx<S: Signer> {
    pub(crate) shared: Arc<Shared<S>>,
    pub(crate) mux: Mux<Key<S>>,
    pub(crate) control: ControlSender<Key<S>>,
    pub(crate) version: p2p_proto::VersionInfo,
    pub(crate) version_frame: bytes::Bytes,
}

/// Why a connection ended (a metric label and a log line).
#[derive(Debug)]
enum Close {
    /// Our side asked (block, eviction, duplicate, shutdown).
    Local,
    /// The peer closed the socket.
    PeerClosed,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// A typed error from a layer, or an I/O error.
    Error(&'static str, String),
}

impl Close {
    fn label(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::PeerClosed => "peer_closed",
            Self::Idle => "idle_timeout",
            Self::Error(label, _) => label,
        }
    }
}

fn err<E: std::fmt::Display>(label: &'static str) -> impl FnOnce(E) -> Close {
    move |e| Close::Error(label, e.to_string())
}

/// Runs an established connection until it ends.
pub(crate) async fn run_connection<S: Signer>(
    ctx: Arc<Ctx<S>>,
    conn: Connection<TcpStream, Key<S>>,
    dialed_by_me: bool,
) {
    let shared = &ctx.shared;
    let direction = if dialed_by_me {
        ConnDirection::Outbound
    } else {
        ConnDirection::Inbound
    };
    let peer = conn.peer.clone();
    let (id, close_rx) = match shared.admit(&peer, dialed_by_me) {
        Ok(x) => x,
        Err(reason) => {
            count_handshake(shared, direction, reason);
            debug!(%peer, reason, "connection refused after handshake");
            return;
        }
    };
    // A connection replaced by the simultaneous-dial rule is still registered in the mux
    // until its tasks end; take it out now so the new one can register.
    if ctx.mux.is_connected(&peer) {
        ctx.mux.peer_disconnected(&peer);
    }
    let handles = match ctx.mux.peer_connected(peer.clone()) {
        Ok(h) => h,
        Err(e) => {
            warn!(%peer, error = %e, "mux refused the peer");
            shared.release(&peer, id);
            return;
        }
    };
    count_handshake(shared, direction, "ok");
    let gauge = shared
        .metrics
        .connections
        .get_or_create(&DirectionLabel { direction })
        .clone();
    gauge.inc();
    let short = peer.to_string();
    let span = info_span!("peer", peer = %&short[..16.min(short.len())], ?direction);
    info!(parent: &span, "connected");

    let Connection {
        reader,
        writer,
        send,
        recv,
        read_buf,
        ..
    } = conn;
    // Discovery messages that follow the version info: our record, then a bit vector.
    let record = encode_payload(&Payload::Peers(p2p_proto::Peers {
        peers: vec![lock(&shared.tracker).my_record()],
    }));
    let bit_vec = lock(&shared.tracker).random_bit_vec(&mut rand::rng());
    let mut first = vec![ctx.version_frame.clone(), record];
    if let Some(bv) = bit_vec {
        first.push(encode_payload(&Payload::BitVec(bv)));
    }

    let writer_task = tokio::spawn(
        write_loop(
            Arc::clone(&ctx),
            handles.scheduler,
            writer,
            send,
            first,
            close_rx.clone(),
        )
        .instrument(span.clone()),
    );
    let read_result = read_loop(
        Arc::clone(&ctx),
        peer.clone(),
        handles.inbound,
        reader,
        recv,
        read_buf,
        close_rx,
    )
    .instrument(span.clone())
    .await;
    // The reader ended: stop the writer (on shutdown it flushes first).
    if let Some(entry) = lock(&shared.state).peers.get(&peer)
        && entry.id == id
        && !shared.shutting_down()
    {
        entry.close.send_replace(true);
    }
    let write_result = match writer_task.await {
        Ok(r) => r,
        Err(_) => Err(Close::Error("writer_panicked", String::new())),
    };
    let close = match (read_result, write_result) {
        (Err(Close::Local), Err(w)) => w,
        (Err(r), _) => r,
        (Ok(()), Err(w)) => w,
        (Ok(()), Ok(())) => Close::Local,
    };
    gauge.dec();
    if shared.release(&peer, id) {
        ctx.mux.peer_disconnected(&peer);
    }
    shared
        .metrics
        .disconnects
        .get_or_create(&ReasonLabel {
            direction,
            reason: close.label().to_owned(),
        })
        .inc();
    match &close {
        Close::Error(label, detail) => {
            info!(parent: &span, reason = label, detail = %detail, "disconnected")
        }
        other => info!(parent: &span, reason = other.label(), "disconnected"),
    }
}

/// Drains the scheduler into batched writes.
async fn write_loop<S: Signer>(
    ctx: Arc<Ctx<S>>,
    mut scheduler: Scheduler<Key<S>>,
    mut writer: WriteHalf<TcpStream>,
    mut cipher: SendCipher,
    first: Vec<bytes::Bytes>,
    mut close: watch::Receiver<bool>,
) -> Result<(), Close> {
    let shared = &ctx.shared;
    let max = shared.handshake.max_frame_len;
    let batch = shared.write_batch_bytes;
    let mut out = BytesMut::with_capacity(batch + max as usize + frame::HEADER_LEN);
    for body in &first {
        let start = frame::begin(&mut out);
        out.extend_from_slice(body);
        cipher
            .seal(&mut out, start.body_offset())
            .map_err(err("cipher"))?;
        frame::finish(&mut out, start, max).map_err(err("frame"))?;
    }
    let mut shutdown = shared.shutdown.subscribe();
    let mut flush_deadline: Option<tokio::time::Instant> = None;
    loop {
        let now = Instant::now();
        let mut retry_at = None;
        let mut closed = false;
        while out.len() < batch {
            let start = frame::begin(&mut out);
            match scheduler.poll_frame(now, &mut out) {
                PollFrame::Control | PollFrame::Chunk { .. } => {
                    cipher
                        .seal(&mut out, start.body_offset())
                        .map_err(err("cipher"))?;
                    frame::finish(&mut out, start, max).map_err(err("frame"))?;
                }
                PollFrame::Idle { retry_at: r } => {
                    out.truncate(start.body_offset() - frame::HEADER_LEN);
                    retry_at = r;
                    break;
                }
                PollFrame::Closed => {
                    out.truncate(start.body_offset() - frame::HEADER_LEN);
                    closed = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            writer.write_all(&out).await.map_err(err("io"))?;
            shared.metrics.wire_bytes_sent.inc_by(out.len() as u64);
            shared.metrics.write_batches.inc();
            out.clear();
            if !closed {
                continue;
            }
        }
        if closed {
            return Err(Close::Local);
        }
        if flush_deadline.is_some() {
            // Shutting down and nothing left to send now: done.
            let _ = writer.shutdown().await;
            return Ok(());
        }
        let retry = retry_at.map(tokio::time::Instant::from_std);
        tokio::select! {
            () = scheduler.ready() => {}
            () = sleep_until_opt(retry) => {}
            _ = close.wait_for(|c| *c) => return Err(Close::Local),
            _ = shutdown.wait_for(|s| *s), if flush_deadline.is_none() => {
                flush_deadline = Some(tokio::time::Instant::now() + shared.shutdown_flush);
            }
        }
        if let Some(deadline) = flush_deadline
            && tokio::time::Instant::now() >= deadline
        {
            return Ok(());
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads frames, opens them and routes their messages.
#[allow(clippy::too_many_arguments, reason = "the parts of one connection")]
async fn read_loop<S: Signer>(
    ctx: Arc<Ctx<S>>,
    peer: Key<S>,
    mut inbound: InboundPeer<Key<S>>,
    mut reader: ReadHalf<TcpStream>,
    mut cipher: RecvCipher,
    mut buf: BytesMut,
    mut close: watch::Receiver<bool>,
) -> Result<(), Close> {
    let shared = &ctx.shared;
    let max = shared.handshake.max_frame_len;
    let mut got_version = false;
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let mut pause_until: Option<Instant> = None;
        while let Some(mut body) = frame::decode(&mut buf, max).map_err(err("oversized_frame"))? {
            cipher.open(&mut body).map_err(err("cipher"))?;
            let payload = p2p_framing::envelope::decode(body.freeze()).map_err(err("malformed"))?;
            if !got_version {
                let Payload::Version(theirs) = payload else {
                    return Err(Close::Error(
                        "protocol",
                        "first message after the handshake is not the version info".into(),
                    ));
                };
                p2p_handshake::version::check(&ctx.version, &theirs)
                    .map_err(err("incompatible"))?;
                debug!(software = %theirs.software_version, "version accepted");
                got_version = true;
                continue;
            }
            match payload {
                Payload::Version(_) => {
                    return Err(Close::Error("protocol", "second version info".into()));
                }
                Payload::Chunk(chunk) => {
                    match inbound
                        .handle_chunk(chunk, Instant::now())
                        .map_err(err("mux"))?
                    {
                        Inbound::Incomplete | Inbound::Delivered => {}
                        Inbound::Throttled { until } => {
                            pause_until = Some(pause_until.map_or(until, |p| p.max(until)));
                        }
                        Inbound::Backpressured => {
                            let wait = tokio::select! {
                                w = inbound.deliver() => w,
                                _ = close.wait_for(|c| *c) => return Err(Close::Local),
                            };
                            if let Some(until) = wait {
                                pause_until = Some(pause_until.map_or(until, |p| p.max(until)));
                            }
                        }
                    }
                }
                Payload::BitVec(bit_vec) => {
                    let answer =
                        lock(&shared.tracker).handle_bit_vec(&peer, &bit_vec, &mut rand::rng());
                    match answer {
                        Ok(Some(peers)) => {
                            let _ = ctx
                                .control
                                .send(&peer, encode_payload(&Payload::Peers(peers)));
                        }
                        Ok(None) => {}
                        Err(e) if e.is_fatal() => {
                            return Err(Close::Error("discovery", e.to_string()));
                        }
                        Err(e) => debug!(error = %e, "bit vector ignored"),
                    }
                }
                Payload::Peers(peers) => {
                    let outcome = lock(&shared.tracker).handle_peers(&peer, peers, now_ms());
                    match outcome {
                        Ok(o) => {
                            for dropped in o.dropped {
                                debug!(error = %dropped, "peer record dropped");
                            }
                        }
                        Err(e) if e.is_fatal() => {
                            return Err(Close::Error("discovery", e.to_string()));
                        }
                        Err(e) => debug!(error = %e, "peer records ignored"),
                    }
                }
            }
        }
        if let Some(until) = pause_until {
            let until = tokio::time::Instant::from_std(until);
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                _ = close.wait_for(|c| *c) => return Err(Close::Local),
            }
        }
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            r = tokio::time::timeout(shared.idle_timeout, reader.read_buf(&mut buf)) => r,
            _ = close.wait_for(|c| *c) => return Err(Close::Local),
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        match read {
            Err(_) => return Err(Close::Idle),
            Ok(Err(e)) => return Err(Close::Error("io", e.to_string())),
            Ok(Ok(0)) => return Err(Close::PeerClosed),
            Ok(Ok(n)) => {
                shared.metrics.wire_bytes_received.inc_by(n as u64);
            }
        }
    }
}
