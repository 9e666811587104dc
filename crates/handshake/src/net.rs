//! The tokio adapter (feature `tokio`): runs the handshake over any `AsyncRead + AsyncWrite`
//! and moves whole encrypted frames afterwards.
//!
//! A driver calls [`dial`] or [`accept`], then either takes the [`Connection`]'s parts to run
//! its own batched writer and reader, or [`Connection::into_frames`] for simple
//! [`FrameSender`]/[`FrameReceiver`] halves.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use ::tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use bytes::{BufMut, BytesMut};
use p2p_cipher::{CipherError, RecvCipher, SendCipher, TAG_LEN};
use p2p_framing::frame::{self, FrameError};
use p2p_identity::Signer;

use crate::{Config, Dialee, Dialer, HandshakeError, MAX_MESSAGE_LEN, Refusal};

/// How many bytes a reader asks the socket for at least, per read.
const READ_CHUNK: usize = 16 * 1024;

/// A connection attempt or an established connection failed. All variants are fatal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The handshake itself failed (see [`HandshakeError`]).
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The handshake did not finish before [`Config::deadline`].
    #[error("handshake deadline passed")]
    Timeout,
    /// The dialer's first message did not arrive before [`Config::first_message_deadline`].
    #[error("no first handshake message within its deadline")]
    FirstMessageTimeout,
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// A frame header announced more than the configured maximum (nothing was allocated).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame failed to seal or open (tampered, reordered, replayed, exhausted).
    #[error(transparent)]
    Cipher(#[from] CipherError),
    /// A body to send does not fit in one frame (local misuse; nothing was sent or consumed).
    #[error("body of {len} bytes exceeds the maximum of {max} per frame")]
    BodyTooLarge {
        /// Body length.
        len: usize,
        /// Largest body ([`Config::max_frame_len`] minus the tag).
        max: usize,
    },
    /// Reading or writing the stream failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// An established, authenticated connection, in parts.
///
/// The facade takes the parts to run its own batched writer and reader; tests and simple
/// users call [`Connection::into_frames`].
pub struct Connection<T, P> {
    /// The peer's authenticated public key.
    pub peer: P,
    /// Read half of the stream.
    pub reader: ReadHalf<T>,
    /// Write half of the stream.
    pub writer: WriteHalf<T>,
    /// Seals the frames this side sends.
    pub send: SendCipher,
    /// Opens the frames the peer sends.
    pub recv: RecvCipher,
    /// Bytes already read past the handshake (the start of the peer's first frames): feed
    /// them to the frame decoder before reading the stream again.
    pub read_buf: BytesMut,
    /// The configured maximum frame body length ([`Config::max_frame_len`]).
    pub max_frame_len: u32,
}

impl Error {
    /// A short, stable label for metrics and logs (one meaning per label).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Handshake(h) => h.label(),
            Self::Timeout => "handshake_timeout",
            Self::FirstMessageTimeout => "first_message_timeout",
            Self::Closed => "closed",
            Self::Frame(_) => "oversized_frame",
            Self::Cipher(_) => "cipher",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::Io(_) => "io",
        }
    }
}

impl<T: AsyncRead + AsyncWrite, P> Connection<T, P> {
    /// Simple frame halves over this connection.
    pub fn into_frames(self) -> (P, FrameSender<WriteHalf<T>>, FrameReceiver<ReadHalf<T>>) {
        (
            self.peer,
            FrameSender::new(self.writer, self.send, self.max_frame_len),
            FrameReceiver::new(self.reader, self.recv, self.read_buf, self.max_frame_len),
        )
    }
}

impl<T, P: std::fmt::Debug> std::fmt::Debug for Connection<T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("buffered", &self.read_buf.len())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch by the local clock (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reads one frame body of at most `max` bytes, keeping what follows in `buf`.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    max: u32,
) -> Result<BytesMut, Error> {
    loop {
        if let Some(body) = frame::decode(buf, max)? {
            return Ok(body);
        }
        buf.reserve(READ_CHUNK);
        if reader.read_buf(buf).await? == 0 {
            return Err(Error::Closed);
        }
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, body: &[u8]) -> Result<(), Error> {
    let mut out = BytesMut::with_capacity(frame::HEADER_LEN + body.len());
    // Handshake bodies are below MAX_MESSAGE_LEN by construction.
    frame::encode(&mut out, body, MAX_MESSAGE_LEN as u32)?;
    writer.write_all(&out).await?;
    Ok(())
}

/// Dials: runs the dialer's side of the handshake on `stream`, expecting `expected` at the
/// other end, within [`Config::deadline`].
pub async fn dial<T, S>(
    stream: T,
    signer: &S,
    expected: S::PublicKey,
    cfg: &Config,
) -> Result<Connection<T, S::PublicKey>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Signer,
{
    ::tokio::time::timeout(cfg.deadline, dial_inner(stream, signer, expected, cfg))
        .await
        .map_err(|_| Error::Timeout)?
}

async fn dial_inner<T, S>(
    mut stream: T,
    signer: &S,
    expected: S::PublicKey,
    cfg: &Config,
) -> Result<Connection<T, S::PublicKey>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Signer,
{
    let (state, hello) = Dialer::new(cfg, signer, expected, now_ms(), &mut rand::rng());
    write_frame(&mut stream, &hello).await?;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let answer = read_frame(&mut stream, &mut buf, MAX_MESSAGE_LEN as u32).await?;
    let (established, confirmation) = state.handle_answer(&answer, now_ms())?;
    write_frame(&mut stream, &confirmation).await?;
    let (reader, writer) = ::tokio::io::split(stream);
    Ok(Connection {
        peer: established.peer,
        reader,
        writer,
        send: established.send,
        recv: established.recv,
        read_buf: buf,
        max_frame_len: cfg.max_frame_len,
    })
}

/// Accepts: runs the dialee's side of the handshake on `stream` within [`Config::deadline`].
///
/// `authorize` is called with the dialer's claimed key bytes (not yet parsed, see
/// [`Dialee::handle_hello`]) after the cheap checks and before the key is parsed or any
/// signature verified; it refuses unknown, blocked and already-connected peers. The
/// connection is returned only after the dialer's key confirmation opened.
pub async fn accept<T, S, A>(
    stream: T,
    signer: &S,
    authorize: A,
    cfg: &Config,
) -> Result<Connection<T, S::PublicKey>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Signer,
    A: FnOnce(&[u8]) -> Result<(), Refusal>,
{
    ::tokio::time::timeout(cfg.deadline, accept_inner(stream, signer, authorize, cfg))
        .await
        .map_err(|_| Error::Timeout)?
}

async fn accept_inner<T, S, A>(
    mut stream: T,
    signer: &S,
    authorize: A,
    cfg: &Config,
) -> Result<Connection<T, S::PublicKey>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Signer,
    A: FnOnce(&[u8]) -> Result<(), Refusal>,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let hello = ::tokio::time::timeout(
        cfg.first_message_deadline,
        read_frame(&mut stream, &mut buf, MAX_MESSAGE_LEN as u32),
    )
    .await
    .map_err(|_| Error::FirstMessageTimeout)??;
    let (state, answer) =
        Dialee::handle_hello(cfg, signer, &hello, now_ms(), &mut rand::rng(), authorize)?;
    write_frame(&mut stream, &answer).await?;
    let confirmation = read_frame(&mut stream, &mut buf, MAX_MESSAGE_LEN as u32).await?;
    let established = state.handle_confirmation(&confirmation)?;
    let (reader, writer) = ::tokio::io::split(stream);
    Ok(Connection {
        peer: established.peer,
        reader,
        writer,
        send: established.send,
        recv: established.recv,
        read_buf: buf,
        max_frame_len: cfg.max_frame_len,
    })
}

/// Sends whole encrypted frames: one per [`FrameSender::send`], or several in one write with
/// [`FrameSender::send_many`]. Any error is fatal for the connection.
pub struct FrameSender<W> {
    writer: W,
    cipher: SendCipher,
    buf: BytesMut,
    max_frame_len: u32,
}

impl<W: AsyncWrite + Unpin> FrameSender<W> {
    /// A sender over `writer` sealing with `cipher`; frame bodies (ciphertext and tag) are at
    /// most `max_frame_len` bytes.
    pub fn new(writer: W, cipher: SendCipher, max_frame_len: u32) -> Self {
        Self {
            writer,
            cipher,
            buf: BytesMut::new(),
            max_frame_len,
        }
    }

    /// The largest plaintext body that fits in one frame.
    pub fn max_body_len(&self) -> usize {
        (self.max_frame_len as usize).saturating_sub(TAG_LEN)
    }

    /// Seals `body` as one frame and writes it.
    pub async fn send(&mut self, body: &[u8]) -> Result<(), Error> {
        self.send_many(&[body]).await
    }

    /// Seals each body as one frame and writes them all with one `write_all`.
    pub async fn send_many(&mut self, bodies: &[&[u8]]) -> Result<(), Error> {
        let max = self.max_body_len();
        if let Some(body) = bodies.iter().find(|b| b.len() > max) {
            return Err(Error::BodyTooLarge {
                len: body.len(),
                max,
            });
        }
        self.buf.clear();
        let total: usize = bodies
            .iter()
            .map(|b| frame::HEADER_LEN + b.len() + TAG_LEN)
            .sum();
        self.buf.reserve(total);
        for body in bodies {
            let start = frame::begin(&mut self.buf);
            self.buf.put_slice(body);
            self.cipher.seal(&mut self.buf, start.body_offset())?;
            frame::finish(&mut self.buf, start, self.max_frame_len)?;
        }
        self.writer.write_all(&self.buf).await?;
        Ok(())
    }

    /// Flushes and shuts down the write side.
    pub async fn shutdown(&mut self) -> Result<(), Error> {
        self.writer.shutdown().await?;
        Ok(())
    }

    /// The cipher (e.g. to inspect its nonce position).
    pub const fn cipher(&self) -> &SendCipher {
        &self.cipher
    }

    /// Mutable access to the cipher (tests move it near the end of the nonce space).
    pub const fn cipher_mut(&mut self) -> &mut SendCipher {
        &mut self.cipher
    }

    /// The writer and the cipher.
    pub fn into_parts(self) -> (W, SendCipher) {
        (self.writer, self.cipher)
    }
}

impl<W> std::fmt::Debug for FrameSender<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSender")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// Receives whole encrypted frames, one at a time, into a reusable buffer. Any error is fatal
/// for the connection.
pub struct FrameReceiver<R> {
    reader: R,
    cipher: RecvCipher,
    buf: BytesMut,
    max_frame_len: u32,
    /// Set by the first error: the stream position is then unknown, so nothing more is read.
    failed: bool,
}

impl<R: AsyncRead + Unpin> FrameReceiver<R> {
    /// A receiver over `reader` opening with `cipher`, starting with the bytes in `buf` (the
    /// leftover of the handshake); frame bodies above `max_frame_len` are refused before any
    /// allocation.
    pub fn new(reader: R, cipher: RecvCipher, buf: BytesMut, max_frame_len: u32) -> Self {
        Self {
            reader,
            cipher,
            buf,
            max_frame_len,
            failed: false,
        }
    }

    /// Reads, verifies and decrypts the next frame; returns its plaintext (a view split off
    /// the reusable buffer: drop it before the next call to let the buffer reuse the space).
    ///
    /// After any failure the receiver is poisoned and returns
    /// [`CipherError::Poisoned`] at once, without reading.
    pub async fn recv(&mut self) -> Result<BytesMut, Error> {
        if self.failed || self.cipher.is_poisoned() {
            return Err(Error::Cipher(CipherError::Poisoned));
        }
        let result = self.recv_inner().await;
        self.failed = result.is_err();
        result
    }

    async fn recv_inner(&mut self) -> Result<BytesMut, Error> {
        let mut body = read_frame(&mut self.reader, &mut self.buf, self.max_frame_len).await?;
        self.cipher.open(&mut body)?;
        Ok(body)
    }

    /// Mutable access to the cipher (tests move it near the end of the nonce space).
    pub const fn cipher_mut(&mut self) -> &mut RecvCipher {
        &mut self.cipher
    }

    /// The reader, the cipher and the buffered bytes.
    pub fn into_parts(self) -> (R, RecvCipher, BytesMut) {
        (self.reader, self.cipher, self.buf)
    }
}

impl<R> std::fmt::Debug for FrameReceiver<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReceiver")
            .field("cipher", &self.cipher)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}
