//! The version exchange that follows the handshake: each side's first encrypted message is a
//! `VersionInfo` (protocol version, namespace, software version, channel ids), and a peer whose
//! major version or namespace differs is refused with a reason both sides log.

use p2p_proto::VersionInfo;

/// Longest software version string accepted (it only goes to logs).
pub const MAX_SOFTWARE_VERSION_LEN: usize = 256;
/// Most channel ids accepted in one version info.
pub const MAX_CHANNELS: usize = 4096;

/// Why a peer's version info is refused. Fatal for the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The peer speaks another protocol major version.
    #[error("incompatible protocol version: ours is {ours}.x, the peer's is {theirs}.x")]
    IncompatibleMajor {
        /// Our major version.
        ours: u32,
        /// The peer's major version.
        theirs: u32,
    },
    /// The peer is on another network (namespace).
    #[error("network mismatch: the peer is on another namespace")]
    NetworkMismatch,
    /// The software version string is longer than [`MAX_SOFTWARE_VERSION_LEN`].
    #[error("software version of {0} bytes is too long")]
    SoftwareVersionTooLong(usize),
    /// More than [`MAX_CHANNELS`] channel ids.
    #[error("{0} channel ids is too many")]
    TooManyChannels(usize),
}

/// Checks the peer's version info against ours.
///
/// Refuses another major version, another namespace, and oversized fields. Differences in the
/// minor version, the software version or the channel lists are allowed (messages on a channel
/// the other side lacks are refused by its mux as unknown-channel errors).
pub fn check(ours: &VersionInfo, theirs: &VersionInfo) -> Result<(), VersionError> {
    if theirs.software_version.len() > MAX_SOFTWARE_VERSION_LEN {
        return Err(VersionError::SoftwareVersionTooLong(
            theirs.software_version.len(),
        ));
    }
    if theirs.channels.len() > MAX_CHANNELS {
        return Err(VersionError::TooManyChannels(theirs.channels.len()));
    }
    if theirs.protocol_major != ours.protocol_major {
        return Err(VersionError::IncompatibleMajor {
            ours: ours.protocol_major,
            theirs: theirs.protocol_major,
        });
    }
    if theirs.namespace != ours.namespace {
        return Err(VersionError::NetworkMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: u32, namespace: &'static [u8]) -> VersionInfo {
        VersionInfo {
            protocol_major: major,
            protocol_minor: 3,
            namespace: bytes::Bytes::from_static(namespace),
            software_version: "test/1".into(),
            channels: vec![1, 2],
        }
    }

    #[test]
    fn compatible_versions_pass() {
        let mut theirs = info(1, b"net");
        theirs.protocol_minor = 9;
        theirs.channels = vec![7];
        assert_eq!(check(&info(1, b"net"), &theirs), Ok(()));
    }

    #[test]
    fn each_refusal_has_its_error() {
        let ours = info(1, b"net");
        assert_eq!(
            check(&ours, &info(2, b"net")),
            Err(VersionError::IncompatibleMajor { ours: 1, theirs: 2 })
        );
        assert_eq!(
            check(&ours, &info(1, b"other")),
            Err(VersionError::NetworkMismatch)
        );
        let mut long = info(1, b"net");
        long.software_version = "x".repeat(MAX_SOFTWARE_VERSION_LEN + 1);
        assert_eq!(
            check(&ours, &long),
            Err(VersionError::SoftwareVersionTooLong(
                MAX_SOFTWARE_VERSION_LEN + 1
            ))
        );
        let mut many = info(1, b"net");
        many.channels = vec![0; MAX_CHANNELS + 1];
        assert_eq!(
            check(&ours, &many),
            Err(VersionError::TooManyChannels(MAX_CHANNELS + 1))
        );
    }
}
