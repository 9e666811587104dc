//! The byte encoding of a socket address in `Peer.socket`.
//!
//! ```text
//! IPv4 (7 bytes):   +------+---------------+-----------+
//!                   | 0x04 | address (4 B) | port u16  |
//!                   +------+---------------+-----------+
//! IPv6 (19 bytes):  +------+----------------+----------+
//!                   | 0x06 | address (16 B) | port u16 |
//!                   +------+----------------+----------+
//! ```
//!
//! The port is big-endian. IPv6 flow info and scope id are not encoded (decoded as 0). Every other
//! length, an unknown tag, port 0 and the unspecified address are rejected with a
//! [`SocketError`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::SocketError;

/// Family tag of an IPv4 socket.
pub const SOCKET_TAG_IPV4: u8 = 4;
/// Family tag of an IPv6 socket.
pub const SOCKET_TAG_IPV6: u8 = 6;
/// Encoded length of an IPv4 socket (tag, 4 address bytes, port).
pub const SOCKET_LEN_IPV4: usize = 1 + 4 + 2;
/// Encoded length of an IPv6 socket (tag, 16 address bytes, port).
pub const SOCKET_LEN_IPV6: usize = 1 + 16 + 2;

/// An encoded socket: at most [`SOCKET_LEN_IPV6`] bytes, on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedSocket {
    buf: [u8; SOCKET_LEN_IPV6],
    len: u8,
}

impl EncodedSocket {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// Encodes `socket` (see the module docs).
pub fn encode_socket(socket: &SocketAddr) -> EncodedSocket {
    let mut buf = [0u8; SOCKET_LEN_IPV6];
    let len = match socket {
        SocketAddr::V4(v4) => {
            buf[0] = SOCKET_TAG_IPV4;
            buf[1..5].copy_from_slice(&v4.ip().octets());
            buf[5..7].copy_from_slice(&v4.port().to_be_bytes());
            SOCKET_LEN_IPV4
        }
        SocketAddr::V6(v6) => {
            buf[0] = SOCKET_TAG_IPV6;
            buf[1..17].copy_from_slice(&v6.ip().octets());
            buf[17..19].copy_from_slice(&v6.port().to_be_bytes());
            SOCKET_LEN_IPV6
        }
    };
    EncodedSocket {
        buf,
        // Both lengths are below 256.
        len: len as u8,
    }
}

/// Decodes a socket (see the module docs), rejecting anything that is not exactly one encoding
/// of a dialable address.
pub fn decode_socket(bytes: &[u8]) -> Result<SocketAddr, SocketError> {
    let (&tag, rest) = bytes.split_first().ok_or(SocketError::Empty)?;
    let socket = match tag {
        SOCKET_TAG_IPV4 => {
            let arr: [u8; 6] = rest.try_into().map_err(|_| SocketError::WrongLength {
                family: tag,
                expected: SOCKET_LEN_IPV4,
                got: bytes.len(),
            })?;
            let ip = Ipv4Addr::new(arr[0], arr[1], arr[2], arr[3]);
            SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be_bytes([arr[4], arr[5]])))
        }
        SOCKET_TAG_IPV6 => {
            let arr: [u8; 18] = rest.try_into().map_err(|_| SocketError::WrongLength {
                family: tag,
                expected: SOCKET_LEN_IPV6,
                got: bytes.len(),
            })?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&arr[..16]);
            let port = u16::from_be_bytes([arr[16], arr[17]]);
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0))
        }
        other => return Err(SocketError::UnknownFamily(other)),
    };
    if socket.port() == 0 {
        return Err(SocketError::PortZero);
    }
    if socket.ip().is_unspecified() {
        return Err(SocketError::Unspecified);
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_v4_and_v6() {
        let v4: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let enc = encode_socket(&v4);
        assert_eq!(enc.as_bytes(), &[4, 127, 0, 0, 1, 0x0b, 0xb8]);
        assert_eq!(decode_socket(enc.as_bytes()), Ok(v4));
        let v6: SocketAddr = "[::1]:65535".parse().unwrap();
        let enc = encode_socket(&v6);
        assert_eq!(enc.as_bytes().len(), SOCKET_LEN_IPV6);
        assert_eq!(enc.as_bytes()[0], SOCKET_TAG_IPV6);
        assert_eq!(&enc.as_bytes()[17..], &[0xff, 0xff]);
        assert_eq!(decode_socket(enc.as_bytes()), Ok(v6));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(decode_socket(&[]), Err(SocketError::Empty));
        assert_eq!(
            decode_socket(&[5, 1, 2, 3, 4, 0, 1]),
            Err(SocketError::UnknownFamily(5))
        );
        assert_eq!(
            decode_socket(&[4, 1, 2, 3, 4, 0]),
            Err(SocketError::WrongLength {
                family: 4,
                expected: 7,
                got: 6
            })
        );
        assert_eq!(
            decode_socket(&[4, 1, 2, 3, 4, 0, 1, 9]),
            Err(SocketError::WrongLength {
                family: 4,
                expected: 7,
                got: 8
            })
        );
        assert_eq!(
            decode_socket(&[6; 7]),
            Err(SocketError::WrongLength {
                family: 6,
                expected: 19,
                got: 7
            })
        );
        assert_eq!(
            decode_socket(&[4, 127, 0, 0, 1, 0, 0]),
            Err(SocketError::PortZero)
        );
        assert_eq!(
            decode_socket(&[4, 0, 0, 0, 0, 0, 1]),
            Err(SocketError::Unspecified)
        );
    }
}
