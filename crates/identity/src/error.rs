//! Typed errors of the identity crate.

/// A key (public or private) could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The encoding has the wrong length.
    #[error("wrong key length: expected {expected} bytes, got {got}")]
    WrongLength {
        /// Expected length in bytes.
        expected: usize,
        /// Length that was given.
        got: usize,
    },
    /// The text is not valid hex.
    #[error("key is not valid hex")]
    InvalidHex,
    /// The bytes do not decode to a point, or decode from a non-canonical encoding.
    #[error("key is not a canonical encoding of a curve point")]
    NonCanonical,
    /// The point is the identity or of small order (a key anyone could sign for).
    #[error("key is the identity or a small-order point")]
    WeakKey,
    /// The point is not in the prime-order subgroup.
    #[error("key is not in the prime-order subgroup")]
    NotInSubgroup,
    /// A secret scalar is zero or not reduced.
    #[error("secret key is zero or out of range")]
    InvalidSecret,
}

/// A signature could not be parsed or did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The encoding has the wrong length.
    #[error("wrong signature length: expected {expected} bytes, got {got}")]
    WrongLength {
        /// Expected length in bytes.
        expected: usize,
        /// Length that was given.
        got: usize,
    },
    /// The bytes are not a canonical signature encoding.
    #[error("signature is not canonically encoded")]
    NonCanonical,
    /// The signature is well-formed but does not verify for this key, namespace and message.
    #[error("signature does not verify")]
    Invalid,
}

/// A peer URL (`<key-or-id>@<host>:<port>`) could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerUrlError {
    /// There is no `@` between the key (or id) and the address.
    #[error("peer URL has no '@' separating the key or id from the address")]
    MissingAt,
    /// The part before `@` is empty.
    #[error("peer URL has no key or id before '@'")]
    MissingKey,
    /// The part before `@` is not hex.
    #[error("peer URL key or id is not valid hex")]
    InvalidKeyHex,
    /// The part before `@` has an odd number or too few hex digits to be a key or an id.
    #[error("peer URL key or id has {0} hex digits; expected 40 (peer id) or a full public key")]
    InvalidKeyLength(usize),
    /// The address has no `:port`.
    #[error("peer URL address has no port")]
    MissingPort,
    /// The port is not a number in 1..=65535.
    #[error("peer URL port is not a number in 1..=65535")]
    InvalidPort,
    /// The host is empty.
    #[error("peer URL host is empty")]
    MissingHost,
    /// An IPv6 address is not enclosed in brackets, or the brackets are unbalanced.
    #[error("IPv6 hosts must be written in brackets, like [::1]:26656")]
    UnbracketedIpv6,
    /// The bracketed host is not a valid IPv6 address.
    #[error("bracketed host is not a valid IPv6 address")]
    InvalidIpv6,
    /// The host is neither an IPv4 address nor a valid DNS name.
    #[error("host is neither an IPv4 address nor a valid DNS name")]
    InvalidHost,
    /// The key given in the URL is not a valid key of the expected scheme.
    #[error("peer URL key is invalid: {0}")]
    InvalidKey(#[from] KeyError),
}
