//! The payload of a soak message: who sent it, its sequence number for every recipient, a
//! checksum, and filler.
//!
//! ```text
//! +-------+----+----+--------+-------------+-------+---------------------------+----------+--------+
//! | magic | ch | pr | sender | incarnation | count | count x (recipient, seq)  | checksum | filler |
//! | 4 B   | 1  | 1  | u16    | u32         | u16   | count x (u16, u64)        | u64      | ...    |
//! +-------+----+----+--------+-------------+-------+---------------------------+----------+--------+
//! ```
//!
//! Integers are big-endian. `seq` numbers the messages of one stream: (sender, incarnation,
//! recipient, channel, priority), from 0, one per send attempt. `checksum` is FNV-1a (64 bit)
//! over every other byte of the message, so corruption is detected, not only loss.

/// The first four bytes of every soak message.
pub const MAGIC: &[u8; 4] = b"SOAK";
/// Bytes before the entries.
const FIXED: usize = 4 + 1 + 1 + 2 + 4 + 2;
/// Bytes per (recipient, seq) entry.
const ENTRY: usize = 2 + 8;
/// Bytes of the checksum.
const CHECKSUM: usize = 8;

/// The header of a soak message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The channel the message was sent on.
    pub channel: u8,
    /// 0 for high priority, 1 for low.
    pub priority: u8,
    /// The sender's node index.
    pub sender: u16,
    /// The sender's incarnation (0 for the first process of that node, +1 per restart).
    pub incarnation: u32,
    /// (recipient node index, sequence number on that recipient's stream).
    pub entries: Vec<(u16, u64)>,
}

/// Why a received message is not a valid probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Too short, wrong magic, or an entry count that does not fit.
    #[error("not a soak message")]
    Malformed,
    /// The checksum does not match the bytes.
    #[error("checksum mismatch")]
    Corrupt,
}

impl Probe {
    /// The header length of a probe with `entries` entries (the smallest message size).
    pub const fn header_len(entries: usize) -> usize {
        FIXED + entries * ENTRY + CHECKSUM
    }

    /// Encodes the probe into a message of at least `size` bytes. The filler is text of
    /// 16 symbols when `compressible` (zstd roughly halves it), pseudo-random bytes otherwise;
    /// `salt` varies it between messages.
    pub fn encode(&self, size: usize, compressible: bool, salt: u64) -> Vec<u8> {
        let header = Self::header_len(self.entries.len());
        let mut out = Vec::with_capacity(size.max(header));
        out.extend_from_slice(MAGIC);
        out.push(self.channel);
        out.push(self.priority);
        out.extend_from_slice(&self.sender.to_be_bytes());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        let count = u16::try_from(self.entries.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for &(to, seq) in self.entries.iter().take(usize::from(count)) {
            out.extend_from_slice(&to.to_be_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
        }
        let at = out.len();
        out.extend_from_slice(&[0; CHECKSUM]);
        fill(&mut out, size, compressible, salt);
        let sum = checksum(&out, at);
        out[at..at + CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        out
    }

    /// Decodes and checks a message.
    pub fn decode(message: &[u8]) -> Result<Self, ProbeError> {
        if message.len() < FIXED || &message[..4] != MAGIC {
            return Err(ProbeError::Malformed);
        }
        let u16_at = |i: usize| u16::from_be_bytes([message[i], message[i + 1]]);
        let count = usize::from(u16_at(12));
        let at = FIXED + count * ENTRY;
        let Some(stored) = message.get(at..at + CHECKSUM) else {
            return Err(ProbeError::Malformed);
        };
        let mut sum = [0u8; CHECKSUM];
        sum.copy_from_slice(stored);
        if u64::from_be_bytes(sum) != checksum(message, at) {
            return Err(ProbeError::Corrupt);
        }
        let mut incarnation = [0u8; 4];
        incarnation.copy_from_slice(&message[8..12]);
        let entries = (0..count)
            .map(|k| {
                let i = FIXED + k * ENTRY;
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&message[i + 2..i + ENTRY]);
                (u16_at(i), u64::from_be_bytes(seq))
            })
            .collect();
        Ok(Self {
            channel: message[4],
            priority: message[5],
            sender: u16_at(6),
            incarnation: u32::from_be_bytes(incarnation),
            entries,
        })
    }

    /// The sequence number of recipient `to`, if the message is addressed to it.
    pub fn seq_for(&self, to: u16) -> Option<u64> {
        self.entries.iter().find(|e| e.0 == to).map(|e| e.1)
    }
}

/// FNV-1a over `message`, skipping the checksum's own bytes at `at`.
fn checksum(message: &[u8], at: usize) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let (before, rest) = message.split_at(at.min(message.len()));
    let after = rest.get(CHECKSUM..).unwrap_or_default();
    let mut h = OFFSET;
    for &b in before.iter().chain(after) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// Appends filler up to `size` bytes (xorshift64*, not for security).
fn fill(out: &mut Vec<u8>, size: usize, compressible: bool, salt: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut x = salt ^ 0x9e37_79b9_7f4a_7c15;
    if x == 0 {
        x = 1;
    }
    while out.len() < size {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        let take = v.len().min(size - out.len());
        if compressible {
            out.extend(v[..take].iter().map(|b| HEX[usize::from(b & 15)]));
        } else {
            out.extend_from_slice(&v[..take]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let probe = Probe {
            channel: 3,
            priority: 1,
            sender: 7,
            incarnation: 2,
            entries: vec![(1, 10), (4, 0)],
        };
        for compressible in [false, true] {
            let bytes = probe.encode(300, compressible, 42);
            assert_eq!(bytes.len(), 300);
            let back = Probe::decode(&bytes).unwrap();
            assert_eq!(back, probe);
            assert_eq!(back.seq_for(4), Some(0));
            assert_eq!(back.seq_for(5), None);
            let mut bad = bytes.clone();
            bad[299] ^= 1;
            assert_eq!(Probe::decode(&bad), Err(ProbeError::Corrupt));
        }
        // Shorter than asked: the header alone.
        let small = probe.encode(0, false, 0);
        assert_eq!(small.len(), Probe::header_len(2));
        assert!(Probe::decode(&small).is_ok());
        assert_eq!(Probe::decode(b"SOAK"), Err(ProbeError::Malformed));
        assert_eq!(Probe::decode(&small[..20]), Err(ProbeError::Malformed));
    }
}
