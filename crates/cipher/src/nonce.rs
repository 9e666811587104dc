//! The 12-byte nonce: dialer bit, u16 iterator, u64 sequence.

use crate::{CipherError, Role};

/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 12;

/// Bit of byte 0 that is set in every nonce of frames sent by the dialer.
pub const NONCE_DIALER_BIT: u8 = 0x80;

/// Position of one direction of a connection in its nonce space.
///
/// ```text
///  byte:  0        1        2        3        4                               11
///        +--------+--------+--------+--------+--------+-- ... --+--------+
///        |D0000000|00000000| iterator (u16) |        sequence (u64)        |
///        +--------+--------+--------+--------+--------+-- ... --+--------+
///  D = 1 for frames sent by the dialer, 0 for frames sent by the dialee
///  iterator and sequence are big-endian
/// ```
///
/// Each frame uses the current nonce, then the sequence is incremented; when the sequence
/// would wrap, it restarts at 0 and the iterator is incremented; when the iterator would wrap,
/// the direction is exhausted (2^80 frames in all) and every later use fails with
/// [`CipherError::Exhausted`]. Nonces are never sent on the wire: both ends count frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nonce {
    role: Role,
    iterator: u16,
    sequence: u64,
}

impl Nonce {
    /// The first nonce of frames sent by `sender`.
    pub const fn first(sender: Role) -> Self {
        Self {
            role: sender,
            iterator: 0,
            sequence: 0,
        }
    }

    /// A nonce at an arbitrary position (for tests that reach the wrap and the end for real).
    ///
    /// **Never use in production**: restarting a direction at an earlier position reuses nonces.
    #[cfg(any(test, feature = "testing"))]
    pub const fn starting_at(sender: Role, iterator: u16, sequence: u64) -> Self {
        Self {
            role: sender,
            iterator,
            sequence,
        }
    }

    /// Which side sends the frames this nonce is for.
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The iterator (incremented each time the sequence wraps).
    pub const fn iterator(&self) -> u16 {
        self.iterator
    }

    /// The sequence number of the frame within the current iterator.
    pub const fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The 12 bytes given to the AEAD.
    pub fn to_bytes(&self) -> [u8; NONCE_LEN] {
        let mut out = [0u8; NONCE_LEN];
        if self.role == Role::Dialer {
            out[0] = NONCE_DIALER_BIT;
        }
        out[2..4].copy_from_slice(&self.iterator.to_be_bytes());
        out[4..12].copy_from_slice(&self.sequence.to_be_bytes());
        out
    }

    /// The nonce of the next frame, or [`CipherError::Exhausted`] after the 2^80-th frame.
    pub fn next(&self) -> Result<Self, CipherError> {
        match self.sequence.checked_add(1) {
            Some(sequence) => Ok(Self { sequence, ..*self }),
            None => match self.iterator.checked_add(1) {
                Some(iterator) => Ok(Self {
                    iterator,
                    sequence: 0,
                    ..*self
                }),
                None => Err(CipherError::Exhausted),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_exact() {
        let n = Nonce::starting_at(Role::Dialer, 0x0102, 0x0304_0506_0708_090a);
        assert_eq!(
            n.to_bytes(),
            [
                0x80, 0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a
            ]
        );
        let n = Nonce::starting_at(Role::Dialee, 0xffff, u64::MAX);
        assert_eq!(
            n.to_bytes(),
            [
                0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]
        );
        assert_eq!(Nonce::first(Role::Dialee).to_bytes(), [0u8; 12]);
    }

    #[test]
    fn sequence_wrap_bumps_iterator() {
        let n = Nonce::starting_at(Role::Dialer, 7, u64::MAX)
            .next()
            .unwrap();
        assert_eq!((n.iterator(), n.sequence()), (8, 0));
        let n = Nonce::starting_at(Role::Dialer, 7, 41).next().unwrap();
        assert_eq!((n.iterator(), n.sequence()), (7, 42));
    }

    #[test]
    fn iterator_wrap_is_exhaustion() {
        let last = Nonce::starting_at(Role::Dialee, u16::MAX, u64::MAX);
        assert_eq!(last.next(), Err(CipherError::Exhausted));
    }
}
