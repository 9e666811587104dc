//! One connection: the session's version step, then a reader and a writer task around the
//! layers' state machines. Every decision is the session's or the manager's; this module moves
//! bytes, waits and counts.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use p2p_cipher::{RecvCipher, SendCipher};
use p2p_framing::frame;
use p2p_handshake::Connection;
use p2p_identity::{Signer, Verifier};
use p2p_mux::{ControlSender, Mux, PollFrame, Scheduler};
use p2p_session::{Event, InboundPermit, Now, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::metrics::{ConnDirection, DirectionLabel, IgnoredLabel};
use crate::network::{CloseHandle, Family, Key, Shared, close, now_ms};

/// Bytes reserved per read from the socket while traffic flows.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes reserved per read while the connection is quiet (see [`ReadBuffer`]): room for pings
/// and gossip without holding [`READ_CHUNK`] per idle connection.
const QUIET_READ_CHUNK: usize = 2 * 1024;
/// How long an empty read buffer larger than [`QUIET_READ_CHUNK`] (or a write buffer larger
/// than [`IDLE_WRITE_BUFFER`]) is kept waiting for traffic.
const READ_BUFFER_RELEASE: std::time::Duration = std::time::Duration::from_millis(100);
/// Largest write buffer kept while the connection has nothing to send.
const IDLE_WRITE_BUFFER: usize = 16 * 1024;
/// Envelopes handled from one read before the reader yields to other tasks.
const FRAMES_PER_YIELD: u32 = 32;

/// What every connection task needs.
pub(crate) struct Ctx<S: Signer> {
    pub(crate) shared: Arc<Shared<S>>,
    pub(crate) mux: Mux<Key<S>>,
    pub(crate) control: ControlSender<Key<S>>,
    pub(crate) version: p2p_proto::VersionInfo,
}

/// Why a connection ended (a metric label and a log line).
#[derive(Debug)]
enum Close {
    /// Our side asked (block, eviction, replaced by another connection, the other task ended).
    Local,
    /// The node is shutting down.
    Shutdown,
    /// The peer closed the socket.
    PeerClosed,
    /// A write made no progress within the write timeout.
    WriteStalled,
    /// The session's verdict.
    Session(p2p_session::Error),
    /// A layer or I/O error, with its label.
    Error(&'static str, String),
}

impl Close {
    fn label(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Shutdown => "shutdown",
            Self::PeerClosed => "peer_closed",
            Self::WriteStalled => "write_stalled",
            Self::Session(e) => e.label(),
            Self::Error(label, _) => label,
        }
    }
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Session(e) => write!(f, "{e}"),
            Self::Error(label, detail) => write!(f, "{label}: {detail}"),
            other => f.write_str(other.label()),
        }
    }
}

impl From<p2p_session::Error> for Close {
    fn from(e: p2p_session::Error) -> Self {
        Self::Session(e)
    }
}

fn err<E: std::fmt::Display>(label: &'static str) -> impl FnOnce(E) -> Close {
    move |e| Close::Error(label, e.to_string())
}

/// The receiving side of one connection.
struct ReadSide<S: Signer> {
    ctx: Arc<Ctx<S>>,
    session: Session<Key<S>>,
    reader: ReadHalf<TcpStream>,
    cipher: RecvCipher,
    buf: ReadBuffer,
    close: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
}

/// An admitted connection's registration.
struct Admission {
    id: u64,
    writer_done: oneshot::Receiver<Result<(), Close>>,
}

/// Runs an established connection until it ends. `_inbound` holds the inbound cap's place.
pub(crate) async fn run_connection<S: Signer>(
    ctx: Arc<Ctx<S>>,
    conn: Connection<TcpStream, Key<S>>,
    dialed_by_me: bool,
    _inbound: Option<InboundPermit<Key<S>, CloseHandle>>,
) {
    let shared = Arc::clone(&ctx.shared);
    let direction = if dialed_by_me {
        ConnDirection::Outbound
    } else {
        ConnDirection::Inbound
    };
    let Connection {
        peer,
        reader,
        mut writer,
        send: mut send_cipher,
        recv,
        read_buf,
        ..
    } = conn;
    let short = peer.to_string();
    let span = info_span!("peer", peer = %&short[..16.min(short.len())], ?direction);
    let (close_tx, close_rx) = watch::channel(false);
    let handle: CloseHandle = Arc::new(close_tx);
    let session = Session::new(
        peer.clone(),
        dialed_by_me,
        ctx.version.clone(),
        shared.session.clone(),
        Instant::now(),
    );
    let mut side = ReadSide {
        ctx: Arc::clone(&ctx),
        session,
        reader,
        cipher: recv,
        buf: ReadBuffer::new(read_buf),
        close: close_rx.clone(),
        shutdown: shared.shutdown.subscribe(),
    };

    // The version step: our version info goes out at once, theirs must come first.
    let step = async {
        while let Some(body) = side.session.poll_transmit() {
            write_direct(&shared, &mut writer, &mut send_cipher, &body).await?;
        }
        side.run(None).await
    }
    .instrument(span.clone())
    .await;
    if let Err(close) = step {
        shared
            .manager
            .handle_not_admitted(&peer, dialed_by_me, now_ms(), &mut rand::rng());
        shared.count(Family::Handshakes, direction, close.label());
        debug!(parent: &span, reason = close.label(), detail = %close, "version step failed");
        return;
    }
    if let Some(v) = side.session.peer_version() {
        debug!(parent: &span, software = %v.software, major = v.major, minor = v.minor, "version accepted");
    }

    // Admission: atomic in the manager, then the mux.
    let admitted = match shared.manager.admit(
        &peer,
        dialed_by_me,
        Arc::clone(&handle),
        now_ms(),
        &mut rand::rng(),
    ) {
        Ok(a) => a,
        Err(reason) => {
            shared.count(Family::Handshakes, direction, reason.label());
            debug!(parent: &span, %reason, "connection refused after the version step");
            return;
        }
    };
    // A replaced connection's disconnect event.
    shared.publish_events();
    if let Some(old) = &admitted.replaced {
        close(old);
        // The replaced connection stays registered in the mux until its tasks end; take it
        // out now so this one can register (its release then finds a newer id and skips it).
        ctx.mux.peer_disconnected(&peer);
    }
    let mut scheduler = None;
    let registered = side.session.handle_admitted(&admitted, |opening| {
        ctx.mux
            .peer_connected_as(peer.clone(), opening, admitted.role)
            .map(|h| {
                scheduler = Some(h.scheduler);
                h.inbound
            })
    });
    let Some(mut scheduler) = scheduler.filter(|_| registered.is_ok()) else {
        if let Err(e) = registered {
            warn!(parent: &span, error = %e, "mux refused the peer");
        }
        shared.count(Family::Handshakes, direction, "mux_refused");
        shared.manager.release(
            &peer,
            admitted.id,
            "mux_refused",
            now_ms(),
            &mut rand::rng(),
        );
        return;
    };
    scheduler.set_coalesce_limit(side.session.coalesce_limit());
    shared.count(Family::Handshakes, direction, "ok");
    let gauge = shared
        .metrics
        .connections
        .get_or_create(&DirectionLabel { direction })
        .clone();
    gauge.inc();
    info!(parent: &span, "connected");
    shared.manager.handle_established(&peer, admitted.id);
    shared.publish_events();

    let (done_tx, writer_done) = oneshot::channel();
    let writer_handle = Arc::clone(&handle);
    let write_ctx = Arc::clone(&ctx);
    let spawned = shared.spawn(
        async move {
            let result = write_loop(write_ctx, scheduler, writer, send_cipher, close_rx).await;
            // Either task's end closes the other.
            close(&writer_handle);
            let _ = done_tx.send(result);
        }
        .instrument(span.clone()),
    );
    let admission = Admission {
        id: admitted.id,
        writer_done,
    };
    let read_result = if spawned {
        side.run(Some(&peer)).instrument(span.clone()).await
    } else {
        Err(Close::Shutdown)
    };
    // The reader ended: stop the writer, unless shutting down (it flushes first).
    let read_close = match read_result {
        Ok(()) => Close::Local,
        Err(c) => c,
    };
    if !matches!(read_close, Close::Shutdown) {
        close(&handle);
    }
    let write_close = match admission.writer_done.await {
        Ok(Ok(())) | Err(_) => None,
        Ok(Err(c)) => Some(c),
    };
    let reason = match (read_close, write_close) {
        (Close::Local, Some(w)) => w,
        (r, _) => r,
    };
    gauge.dec();
    if shared.manager.release(
        &peer,
        admission.id,
        reason.label(),
        now_ms(),
        &mut rand::rng(),
    ) {
        ctx.mux.peer_disconnected(&peer);
    }
    shared.publish_events();
    shared.count(Family::Disconnects, direction, reason.label());
    info!(parent: &span, reason = reason.label(), detail = %reason, "disconnected");
}

/// Seals and writes one frame before the writer task exists (the version step), within the
/// write timeout and against shutdown.
async fn write_direct<S: Signer>(
    shared: &Shared<S>,
    writer: &mut WriteHalf<TcpStream>,
    cipher: &mut SendCipher,
    body: &[u8],
) -> Result<(), Close> {
    let max = shared.handshake.max_frame_len;
    let mut out = BytesMut::with_capacity(frame::HEADER_LEN + body.len() + p2p_cipher::TAG_LEN);
    let start = frame::begin(&mut out);
    out.extend_from_slice(body);
    cipher
        .seal(&mut out, start.body_offset())
        .map_err(err("cipher"))?;
    frame::finish(&mut out, start, max).map_err(err("frame"))?;
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        r = tokio::time::timeout(shared.write_timeout, writer.write_all(&out)) => match r {
            Err(_) => Err(Close::WriteStalled),
            Ok(r) => r.map_err(err("io")),
        },
        _ = shutdown.wait_for(|s| *s) => Err(Close::Shutdown),
    }
}

impl<S: Signer> ReadSide<S> {
    /// Reads and hands frames to the session. Before admission (`peer` is `None`) it returns
    /// `Ok` as soon as the session asks for admission; after, it runs until the connection
    /// ends (`Ok` on shutdown).
    async fn run(&mut self, peer: Option<&Key<S>>) -> Result<(), Close> {
        let shared = Arc::clone(&self.ctx.shared);
        let max = shared.handshake.max_frame_len;
        loop {
            if let Some(peer) = peer.filter(|p| !shared.link_up(p.as_bytes())) {
                return Err(Close::Error(
                    "io",
                    format!("link to {peer} cut for testing"),
                ));
            }
            let mut handled = 0u32;
            while let Some(mut body) =
                frame::decode(&mut self.buf.buf, max).map_err(err("oversized_frame"))?
            {
                self.cipher.open(&mut body).map_err(err("cipher"))?;
                let mut now = Now {
                    instant: Instant::now(),
                    unix_ms: now_ms(),
                };
                let body = body.freeze();
                let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
                    == tokio::runtime::RuntimeFlavor::MultiThread;
                let event = if multi_thread && self.session.is_costly(&body) {
                    // Signature checks: let the runtime move other tasks off this worker.
                    let session = &mut self.session;
                    tokio::task::block_in_place(|| {
                        session.handle_frame(body, now, &shared.manager, &mut rand::rng())
                    })
                } else {
                    self.session
                        .handle_frame(body, now, &shared.manager, &mut rand::rng())
                }?;
                let mut event = Some(event);
                // One event per envelope: a batch frame's envelopes one after another.
                while let Some(ev) = event.take() {
                    match ev {
                        Event::Admit => return Ok(()),
                        Event::Continue => {}
                        Event::Ignored(e) => {
                            if let Some((reason, records)) = e.records_ignored() {
                                shared
                                    .metrics
                                    .records_ignored
                                    .get_or_create(&IgnoredLabel { reason })
                                    .inc_by(records as u64);
                            }
                            debug!(error = %e, "discovery input ignored");
                        }
                        Event::WaitForRoom => {
                            let session = &mut self.session;
                            tokio::select! {
                                () = std::future::poll_fn(|cx| session.poll_deliver(cx)) => {}
                                _ = self.close.wait_for(|c| *c) => return Err(Close::Local),
                            }
                            now = Now {
                                instant: Instant::now(),
                                unix_ms: now_ms(),
                            };
                        }
                    }
                    if peer.is_some() {
                        self.flush_transmit();
                    }
                    handled += 1;
                    if handled.is_multiple_of(FRAMES_PER_YIELD) {
                        tokio::task::yield_now().await;
                    }
                    event = self
                        .session
                        .handle_rest(now, &shared.manager, &mut rand::rng())
                        .transpose()?;
                }
            }
            if let Some(until) = self.session.poll_read(Instant::now()) {
                tokio::select! {
                    () = tokio::time::sleep_until(until.into()) => {}
                    _ = self.close.wait_for(|c| *c) => return Err(Close::Local),
                }
            }
            self.buf.reserve(max);
            let release = self.buf.release_at();
            let deadline = tokio::time::Instant::from_std(self.session.poll_timeout());
            let read = tokio::select! {
                r = self.reader.read_buf(&mut self.buf.buf) => r,
                () = sleep_until_opt(release) => {
                    // Quiet: give the large buffer back (`read_buf` is cancel-safe).
                    self.buf.release();
                    continue;
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.session.handle_timeout(Instant::now())?;
                    continue;
                }
                _ = self.close.wait_for(|c| *c) => return Err(Close::Local),
                _ = self.shutdown.wait_for(|s| *s) => return Err(Close::Shutdown),
            };
            match read {
                Err(e) => return Err(Close::Error("io", e.to_string())),
                Ok(0) => return Err(Close::PeerClosed),
                Ok(n) => {
                    self.buf.handle_read();
                    self.session.handle_bytes_received(Instant::now());
                    shared.metrics.wire_bytes_received.inc_by(n as u64);
                }
            }
        }
    }

    /// Queues the session's control frames (after admission) for the writer.
    fn flush_transmit(&mut self) {
        while let Some(frame) = self.session.poll_transmit() {
            if let Err(e) = self.ctx.control.send(self.session.peer(), frame) {
                // A full control queue: the peer is not reading; its timers will end it.
                debug!(error = %e, "control frame not queued");
            }
        }
    }
}

/// Drains the scheduler into batched writes, each raced against close, shutdown and the
/// write timeout.
async fn write_loop<S: Signer>(
    ctx: Arc<Ctx<S>>,
    mut scheduler: Scheduler<Key<S>>,
    mut writer: WriteHalf<TcpStream>,
    mut cipher: SendCipher,
    mut close: watch::Receiver<bool>,
) -> Result<(), Close> {
    let shared = &ctx.shared;
    let max = shared.handshake.max_frame_len;
    let batch = shared.write_batch_bytes;
    // Grown on demand, and given back when the connection goes quiet, so an idle connection
    // holds no batch buffer (it was ~1.25 MiB up front).
    let mut out = BytesMut::new();
    let mut shutdown = shared.shutdown.subscribe();
    let mut flush_deadline: Option<tokio::time::Instant> = None;
    loop {
        let now = Instant::now();
        let mut retry_at = None;
        let mut closed = false;
        let mut frames = 0u64;
        while out.len() < batch {
            let start = frame::begin(&mut out);
            match scheduler.poll_frame(now, &mut out) {
                polled @ (PollFrame::Control
                | PollFrame::Chunk { .. }
                | PollFrame::Batch { .. }) => {
                    cipher
                        .seal(&mut out, start.body_offset())
                        .map_err(err("cipher"))?;
                    frame::finish(&mut out, start, max).map_err(err("frame"))?;
                    frames += 1;
                    if let PollFrame::Batch { chunks } = polled {
                        shared.metrics.batched_messages.inc_by(u64::from(chunks));
                    }
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
            write_batch(
                shared,
                &mut writer,
                &out,
                &mut close,
                &mut shutdown,
                &mut flush_deadline,
            )
            .await?;
            shared.metrics.wire_bytes_sent.inc_by(out.len() as u64);
            shared.metrics.write_batches.inc();
            shared.metrics.frames_sent.inc_by(frames);
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
            let _ = tokio::time::timeout(shared.write_timeout, writer.shutdown()).await;
            return Ok(());
        }
        // A large batch buffer is kept while messages keep coming (reallocating it per batch
        // costs its page faults every time) and given back once the connection is quiet.
        let release = (out.capacity() > IDLE_WRITE_BUFFER)
            .then(|| tokio::time::Instant::now() + READ_BUFFER_RELEASE);
        let retry = retry_at.map(tokio::time::Instant::from_std);
        tokio::select! {
            () = scheduler.ready() => {}
            () = sleep_until_opt(retry) => {}
            () = sleep_until_opt(release) => out = BytesMut::new(),
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

/// Writes one batch. Ends with `Close::WriteStalled` if it does not complete within the write
/// timeout, `Close::Local` when the connection is closed meanwhile, and `Ok`-less
/// `Close::Shutdown` when the shutdown flush time runs out first.
async fn write_batch<S: Signer>(
    shared: &Shared<S>,
    writer: &mut WriteHalf<TcpStream>,
    out: &[u8],
    close: &mut watch::Receiver<bool>,
    shutdown: &mut watch::Receiver<bool>,
    flush_deadline: &mut Option<tokio::time::Instant>,
) -> Result<(), Close> {
    let stall = tokio::time::Instant::now() + shared.write_timeout;
    let write = writer.write_all(out);
    tokio::pin!(write);
    loop {
        let deadline = flush_deadline.map_or(stall, |f| f.min(stall));
        tokio::select! {
            r = &mut write => return r.map_err(err("io")),
            () = tokio::time::sleep_until(deadline) => {
                return Err(if flush_deadline.is_some_and(|f| f <= stall) {
                    Close::Shutdown
                } else {
                    Close::WriteStalled
                });
            }
            _ = close.wait_for(|c| *c) => return Err(Close::Local),
            _ = shutdown.wait_for(|s| *s), if flush_deadline.is_none() => {
                *flush_deadline = Some(tokio::time::Instant::now() + shared.shutdown_flush);
            }
        }
    }
}

/// A connection's read buffer, sized by its traffic.
///
/// While traffic flows each read has room for [`READ_CHUNK`] bytes and all of a partly read
/// frame, and a large buffer is kept and reused: once a frame is consumed (and, for a part of a
/// multi-part message, copied into the reassembler) `reserve` reclaims the allocation in place.
/// Giving it back after every frame cost a fresh allocation, and its page faults, per frame
/// (about a quarter of the throughput of 1 MiB messages).
///
/// When no byte arrives for [`READ_BUFFER_RELEASE`] the buffer is given back and the connection
/// becomes *quiet*: reads get [`QUIET_READ_CHUNK`] bytes of room, enough for pings and gossip,
/// until a read fills that room (more is coming) and traffic flows again. Kept at
/// [`READ_CHUNK`] while idle, the buffer was most of an idle connection's memory.
struct ReadBuffer {
    buf: BytesMut,
    quiet: bool,
}

impl ReadBuffer {
    fn new(buf: BytesMut) -> Self {
        Self { buf, quiet: false }
    }

    /// Makes room for the next read.
    fn reserve(&mut self, max_frame_len: u32) {
        // A partly read frame: room for all of it, so a large frame takes one read instead of
        // one per chunk. `frame::decode` refuses a length above the maximum before this runs;
        // the bound is applied here too, so a peer's length prefix can never size the buffer
        // beyond one maximal frame.
        let rest = match self.buf.get(..frame::HEADER_LEN) {
            Some(&[a, b, c, d]) => {
                let len = u32::from_be_bytes([a, b, c, d]).min(max_frame_len) as usize;
                (frame::HEADER_LEN + len).saturating_sub(self.buf.len())
            }
            _ => 0,
        };
        let chunk = if self.quiet {
            QUIET_READ_CHUNK
        } else {
            READ_CHUNK
        };
        self.buf.reserve(chunk.max(rest));
    }

    /// When to give the buffer back: if it holds nothing, is larger than a quiet read, and no
    /// byte arrives within [`READ_BUFFER_RELEASE`]. Kept for the connection's life, a large
    /// buffer would cost every connection that ever received one large frame about a frame of
    /// memory (the soak saw ~1 MiB per connection).
    fn release_at(&self) -> Option<tokio::time::Instant> {
        (!self.quiet && self.buf.is_empty() && self.buf.capacity() > QUIET_READ_CHUNK)
            .then(|| tokio::time::Instant::now() + READ_BUFFER_RELEASE)
    }

    /// Nothing arrived within [`READ_BUFFER_RELEASE`]: the connection is quiet.
    fn release(&mut self) {
        self.buf = BytesMut::new();
        self.quiet = true;
    }

    /// A read returned bytes: if it filled the room it had, traffic flows again.
    fn handle_read(&mut self) {
        if self.quiet && self.buf.len() == self.buf.capacity() {
            self.quiet = false;
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read of `n` bytes into the spare room.
    fn read(b: &mut ReadBuffer, n: usize, byte: u8) {
        assert!(b.buf.capacity() - b.buf.len() >= n, "room for the read");
        b.buf.extend_from_slice(&vec![byte; n]);
        b.handle_read();
    }

    #[test]
    fn a_large_read_buffer_is_reused_while_busy_and_released_when_quiet() {
        let mut b = ReadBuffer::new(BytesMut::new());
        b.reserve(1 << 20);
        assert!(b.buf.capacity() >= READ_CHUNK);
        // A 1 MiB frame is read and consumed (split off, handled, dropped).
        read(&mut b, READ_CHUNK, 7);
        b.buf.extend_from_slice(&vec![7u8; (1 << 20) - READ_CHUNK]);
        drop(b.buf.split_to(b.buf.len()));
        // The next read reuses the allocation...
        b.reserve(1 << 20);
        assert!(
            b.buf.capacity() >= 1 << 20,
            "kept {} bytes",
            b.buf.capacity()
        );
        // ...and the buffer is given back if the connection stays quiet.
        assert!(b.release_at().is_some());
        // The start of a 1 MiB frame: room for all of it, so the rest comes in one read.
        let mut start = ReadBuffer::new(BytesMut::with_capacity(READ_CHUNK));
        start.buf.extend_from_slice(&(1u32 << 20).to_be_bytes());
        start.buf.extend_from_slice(&[0u8; 1000]);
        start.reserve(1 << 20);
        assert!(start.buf.capacity() >= frame::HEADER_LEN + (1 << 20));
        assert!(start.release_at().is_none(), "a partial frame is kept");
        // A length prefix above the maximum never sizes the buffer beyond one maximal frame.
        let mut huge = ReadBuffer::new(BytesMut::with_capacity(READ_CHUNK));
        huge.buf.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.reserve(1 << 20);
        assert!(
            huge.buf.capacity() < 2 << 20,
            "reserved {} bytes",
            huge.buf.capacity()
        );
    }

    #[test]
    fn a_quiet_connection_reads_into_a_small_buffer_until_traffic_fills_it() {
        let mut b = ReadBuffer::new(BytesMut::with_capacity(READ_CHUNK));
        b.reserve(1 << 20);
        assert!(b.release_at().is_some(), "an idle large buffer is released");
        b.release();
        assert_eq!(b.buf.capacity(), 0);
        // Quiet: pings and gossip fit a small buffer, which is never "released" again.
        for _ in 0..3 {
            b.reserve(1 << 20);
            assert!(
                b.buf.capacity() < 2 * QUIET_READ_CHUNK,
                "{}",
                b.buf.capacity()
            );
            assert!(b.release_at().is_none());
            read(&mut b, 40, 1);
            drop(b.buf.split_to(40));
        }
        // A read that fills the room: traffic flows, reads get the full chunk again.
        b.reserve(1 << 20);
        let room = b.buf.capacity() - b.buf.len();
        read(&mut b, room, 2);
        drop(b.buf.split_to(b.buf.len()));
        b.reserve(1 << 20);
        assert!(b.buf.capacity() >= READ_CHUNK);
        // A large frame announced while quiet still gets room for all of it.
        let mut q = ReadBuffer::new(BytesMut::new());
        q.release();
        q.reserve(1 << 20);
        q.buf.extend_from_slice(&(100_000u32).to_be_bytes());
        q.reserve(1 << 20);
        assert!(q.buf.capacity() >= frame::HEADER_LEN + 100_000);
    }
}
