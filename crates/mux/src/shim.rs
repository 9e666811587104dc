//! TEMPORARY local stand-in for `p2p_framing::{chunk, compress}` with the agreed API, so this
//! crate builds and tests before the `framing` branch lands. Removed on merge.
#![allow(missing_docs, reason = "temporary stand-in for p2p-framing, removed on merge")]

pub mod chunk {
    use bytes::{Bytes, BytesMut};
    use p2p_proto::{Chunk, Message, ProstMessage, message::Payload};

    const OVERHEAD: u32 = 32;

    #[derive(Debug, thiserror::Error)]
    #[error("chunk error")]
    pub struct ChunkError;

    #[derive(Debug, thiserror::Error)]
    #[error("reassembly error: {0}")]
    pub struct ReassemblyError(&'static str);

    #[derive(Debug)]
    pub struct Chunker {
        channel: u32,
        message: Bytes,
        per: usize,
        total: u32,
        next: u32,
    }

    impl Chunker {
        pub fn new(channel: u32, message: Bytes, max: u32) -> Result<Self, ChunkError> {
            let per = max.checked_sub(OVERHEAD).filter(|p| *p > 0).ok_or(ChunkError)? as usize;
            let total = message.len().div_ceil(per).max(1);
            let total = u32::try_from(total).map_err(|_| ChunkError)?;
            Ok(Self {
                channel,
                message,
                per,
                total,
                next: 0,
            })
        }
        pub fn write_next(&mut self, out: &mut BytesMut) -> bool {
            if self.next >= self.total {
                return false;
            }
            let start = self.next as usize * self.per;
            let end = (start + self.per).min(self.message.len());
            let msg = Message {
                payload: Some(Payload::Chunk(Chunk {
                    channel: self.channel,
                    part: self.next,
                    total_parts: self.total,
                    content: self.message.slice(start..end),
                })),
            };
            out.reserve(msg.encoded_len());
            msg.encode(out).map_err(|_| ()).ok();
            self.next += 1;
            true
        }
        pub fn is_finished(&self) -> bool {
            self.next >= self.total
        }
    }

    #[derive(Debug)]
    pub struct Reassembler {
        per: usize,
        cur: Option<(u32, u32, u32, BytesMut)>,
    }

    impl Reassembler {
        pub fn new(max: u32) -> Self {
            Self {
                per: max.saturating_sub(OVERHEAD) as usize,
                cur: None,
            }
        }
        pub fn handle_chunk(
            &mut self,
            chunk: Chunk,
            max_message_len: Option<usize>,
        ) -> Result<Option<(u32, Bytes)>, ReassemblyError> {
            let max = max_message_len.unwrap_or(usize::MAX);
            if chunk.total_parts == 0 || chunk.part >= chunk.total_parts {
                return Err(ReassemblyError("bad part"));
            }
            if (chunk.total_parts as usize - 1).saturating_mul(self.per) > max {
                return Err(ReassemblyError("too many parts"));
            }
            match self.cur.take() {
                None => {
                    if chunk.part != 0 {
                        return Err(ReassemblyError("out of order"));
                    }
                    if chunk.total_parts == 1 {
                        if chunk.content.len() > max {
                            return Err(ReassemblyError("too large"));
                        }
                        return Ok(Some((chunk.channel, chunk.content)));
                    }
                    let mut buf = BytesMut::new();
                    buf.extend_from_slice(&chunk.content);
                    self.cur = Some((chunk.channel, 1, chunk.total_parts, buf));
                    Ok(None)
                }
                Some((ch, next, total, mut buf)) => {
                    if ch != chunk.channel || next != chunk.part || total != chunk.total_parts {
                        return Err(ReassemblyError("interleaved"));
                    }
                    buf.extend_from_slice(&chunk.content);
                    if buf.len() > max {
                        return Err(ReassemblyError("too large"));
                    }
                    if next + 1 == total {
                        Ok(Some((ch, buf.freeze())))
                    } else {
                        self.cur = Some((ch, next + 1, total, buf));
                        Ok(None)
                    }
                }
            }
        }
    }
}

pub mod compress {
    use bytes::Bytes;

    #[derive(Debug, thiserror::Error)]
    #[error("compression error")]
    pub struct CompressError;

    pub fn compress(data: &[u8], level: i32) -> Result<Bytes, CompressError> {
        zstd::bulk::compress(data, level)
            .map(Bytes::from)
            .map_err(|_| CompressError)
    }

    pub fn decompress(data: &[u8], max_len: usize) -> Result<Bytes, CompressError> {
        zstd::bulk::decompress(data, max_len)
            .map(Bytes::from)
            .map_err(|_| CompressError)
    }
}
