//! Node key files: which identity scheme a node uses and its secret key.
//!
//! A key file is a two-line TOML document:
//!
//! ```toml
//! scheme = "ed25519"          # or "bls12381" ("bls" is accepted as an alias)
//! secret_key = "<hex of Signer::secret_bytes>"
//! ```
//!
//! Comment lines (starting with `#`) are allowed; any other key is rejected. `p2p-node keygen`
//! creates the file with mode `0600` (owner read/write only) and refuses to overwrite an existing
//! file.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use p2p_identity::{KeyError, PeerId, PeerUrl, SchemeKind, Signer, Verifier, bls12381, ed25519};
use serde::Deserialize;
use zeroize::Zeroizing;

/// A node's private key, of either supported scheme.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per process, built once at start-up"
)]
pub enum NodeKey {
    /// An Ed25519 key.
    Ed25519(ed25519::PrivateKey),
    /// A BLS12-381 (min-pk) key.
    Bls12381(bls12381::PrivateKey),
}

/// Why a key file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("cannot access key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid key file document (bad TOML, missing or unknown fields).
    #[error("key file is not valid: {0}")]
    Syntax(String),
    /// The `scheme` names no supported identity scheme.
    #[error("unknown scheme {0:?} (expected \"ed25519\" or \"bls12381\")")]
    UnknownScheme(String),
    /// The `secret_key` is not hex.
    #[error("secret_key is not valid hex")]
    SecretNotHex,
    /// The `secret_key` is not a valid secret of the scheme.
    #[error("secret_key is not a valid {scheme} secret key: {source}")]
    BadSecret {
        /// The scheme of the file.
        scheme: SchemeKind,
        /// Why the identity crate rejected it.
        #[source]
        source: KeyError,
    },
}

/// The on-disk document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileDoc {
    scheme: String,
    secret_key: String,
}

/// Parses a scheme name as written on the command line or in a key file.
///
/// Accepts `ed25519`, `bls12381` and the alias `bls`.
pub fn parse_scheme(name: &str) -> Result<SchemeKind, KeyFileError> {
    match name {
        "ed25519" => Ok(SchemeKind::Ed25519),
        "bls12381" | "bls" => Ok(SchemeKind::Bls12381),
        other => Err(KeyFileError::UnknownScheme(other.to_owned())),
    }
}

impl NodeKey {
    /// A fresh key of `scheme` from the operating system's secure RNG (via `rand::rng`).
    pub fn generate(scheme: SchemeKind) -> Result<Self, KeyFileError> {
        let mut rng = rand::rng();
        match scheme {
            SchemeKind::Ed25519 => Ok(Self::Ed25519(ed25519::PrivateKey::generate(&mut rng))),
            SchemeKind::Bls12381 => Ok(Self::Bls12381(bls12381::PrivateKey::generate(&mut rng))),
            other => Err(KeyFileError::UnknownScheme(other.name().to_owned())),
        }
    }

    /// The scheme of the key.
    pub fn scheme(&self) -> SchemeKind {
        match self {
            Self::Ed25519(_) => SchemeKind::Ed25519,
            Self::Bls12381(_) => SchemeKind::Bls12381,
        }
    }

    /// Lowercase hex of the canonical public key.
    pub fn public_key_hex(&self) -> String {
        match self {
            Self::Ed25519(k) => k.public_key().to_string(),
            Self::Bls12381(k) => k.public_key().to_string(),
        }
    }

    /// The peer id of the public key.
    pub fn peer_id(&self) -> PeerId {
        match self {
            Self::Ed25519(k) => k.public_key().peer_id(),
            Self::Bls12381(k) => k.public_key().peer_id(),
        }
    }

    /// The secret key bytes.
    fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        match self {
            Self::Ed25519(k) => k.secret_bytes(),
            Self::Bls12381(k) => k.secret_bytes(),
        }
    }

    /// The peer URL of this key at `addr`.
    pub fn peer_url(&self, addr: std::net::SocketAddr) -> PeerUrl {
        match self {
            Self::Ed25519(k) => PeerUrl::new(&k.public_key(), addr),
            Self::Bls12381(k) => PeerUrl::new(&k.public_key(), addr),
        }
    }

    /// The key file document for this key.
    pub fn to_file_contents(&self) -> Zeroizing<String> {
        let secret = Zeroizing::new(hex::encode(self.secret_bytes().as_slice()));
        Zeroizing::new(format!(
            "# p2p-node key file. Keep it secret: whoever holds it can act as this node.\n\
             # public key: {}\n\
             scheme = \"{}\"\n\
             secret_key = \"{}\"\n",
            self.public_key_hex(),
            self.scheme().name(),
            secret.as_str(),
        ))
    }

    /// Parses a key file document.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let doc: KeyFileDoc =
            toml::from_str(text).map_err(|e| KeyFileError::Syntax(e.message().to_owned()))?;
        let scheme = parse_scheme(&doc.scheme)?;
        let secret_hex = Zeroizing::new(doc.secret_key);
        let secret =
            Zeroizing::new(hex::decode(secret_hex.trim()).map_err(|_| KeyFileError::SecretNotHex)?);
        let bad = |source| KeyFileError::BadSecret { scheme, source };
        match scheme {
            SchemeKind::Ed25519 => ed25519::PrivateKey::from_secret_bytes(&secret)
                .map(Self::Ed25519)
                .map_err(bad),
            SchemeKind::Bls12381 => bls12381::PrivateKey::from_secret_bytes(&secret)
                .map(Self::Bls12381)
                .map_err(bad),
            other => Err(KeyFileError::UnknownScheme(other.name().to_owned())),
        }
    }

    /// Reads and parses the key file at `path`.
    ///
    /// On Unix, a file readable by group or others is accepted but logged as a warning.
    pub fn read(path: &Path) -> Result<Self, KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        };
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "key file is readable by other users; run chmod 600 on it"
                );
            }
        }
        Self::parse(&text)
    }

    /// Writes the key to a new file at `path` with mode `0600`; fails if the file exists.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(self.to_file_contents().as_bytes())
            .map_err(io)?;
        file.sync_all().map_err(io)
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("scheme", &self.scheme())
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_both_schemes() {
        for scheme in [SchemeKind::Ed25519, SchemeKind::Bls12381] {
            let key = NodeKey::generate(scheme).unwrap();
            let text = key.to_file_contents();
            let back = NodeKey::parse(&text).unwrap();
            assert_eq!(back.scheme(), scheme);
            assert_eq!(back.public_key_hex(), key.public_key_hex());
            assert_eq!(back.peer_id(), key.peer_id());
        }
    }

    #[test]
    fn unknown_scheme() {
        let err = NodeKey::parse("scheme = \"rsa\"\nsecret_key = \"00\"\n").unwrap_err();
        assert!(
            matches!(err, KeyFileError::UnknownScheme(ref s) if s == "rsa"),
            "{err}"
        );
        assert!(matches!(
            parse_scheme("secp256k1"),
            Err(KeyFileError::UnknownScheme(_))
        ));
        assert_eq!(parse_scheme("bls").unwrap(), SchemeKind::Bls12381);
    }

    #[test]
    fn bad_hex_and_bad_secret() {
        let err = NodeKey::parse("scheme = \"ed25519\"\nsecret_key = \"zz\"\n").unwrap_err();
        assert!(matches!(err, KeyFileError::SecretNotHex), "{err}");
        let err = NodeKey::parse("scheme = \"ed25519\"\nsecret_key = \"0011\"\n").unwrap_err();
        assert!(
            matches!(
                err,
                KeyFileError::BadSecret {
                    scheme: SchemeKind::Ed25519,
                    source: KeyError::WrongLength { .. }
                }
            ),
            "{err}"
        );
        // A zero BLS scalar is not a valid secret.
        let zero = "0".repeat(64);
        let err = NodeKey::parse(&format!("scheme = \"bls12381\"\nsecret_key = \"{zero}\"\n"))
            .unwrap_err();
        assert!(
            matches!(
                err,
                KeyFileError::BadSecret {
                    scheme: SchemeKind::Bls12381,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_and_missing_field() {
        let err = NodeKey::parse("scheme = \"ed25519\"\nsecret = \"00\"\n").unwrap_err();
        assert!(
            matches!(err, KeyFileError::Syntax(ref m) if m.contains("secret")),
            "{err}"
        );
        let err = NodeKey::parse("scheme = \"ed25519\"\n").unwrap_err();
        assert!(
            matches!(err, KeyFileError::Syntax(ref m) if m.contains("secret_key")),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn write_new_is_private_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = NodeKey::generate(SchemeKind::Ed25519).unwrap();
        key.write_new(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            NodeKey::read(&path).unwrap().public_key_hex(),
            key.public_key_hex()
        );
        let err = key.write_new(&path).unwrap_err();
        assert!(
            matches!(err, KeyFileError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{err}"
        );
    }
}
