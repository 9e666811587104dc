//! The node configuration file (`p2p-node run --config node.toml`).
//!
//! The file is TOML; unknown fields are rejected. [`NodeConfig::load`] reads it, reads the key
//! file it names, and checks every field, so that a node that starts has a configuration that
//! makes sense as a whole (its own key is in the peer set, every bootstrapper is in the peer set,
//! channel ids are unique, ...). Every problem is reported as a [`ConfigError::Field`] naming the
//! field (`bootstrappers[1]`, `channels[2].id`, ...) and a [`FieldError`] saying what is wrong.
//! The full reference of the fields is in `docs/operations.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};

use p2p_identity::{
    KeyError, PeerUrl, PeerUrlError, SchemeKind, Signer, Verifier, bls12381, ed25519,
};
use serde::Deserialize;

use crate::keyfile::{KeyFileError, NodeKey};

/// Lowest accepted zstd compression level.
pub const MIN_COMPRESSION_LEVEL: i32 = 1;
/// Highest accepted zstd compression level.
pub const MAX_COMPRESSION_LEVEL: i32 = 22;

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has a field of the wrong type, lacks a required field or has
    /// a field that does not exist. The message names the field and its line.
    #[error("config file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's description, with the location.
        message: String,
    },
    /// A field has a value that is not acceptable.
    #[error("config field `{field}`: {problem}")]
    Field {
        /// The field, as a path into the document (`channels[1].id`).
        field: String,
        /// What is wrong with it.
        problem: FieldError,
    },
}

/// What is wrong with one field of the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// The key file could not be read or is invalid (this includes an unknown scheme).
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The value is not a socket address, or not one that can be used here.
    #[error("bad address {value:?}: {reason}")]
    BadAddress {
        /// The value given.
        value: String,
        /// Why it is not acceptable.
        reason: &'static str,
    },
    /// The value is not a valid peer URL (`<key-or-id>@<host>:<port>`).
    #[error("bad peer URL {value:?}: {source}")]
    BadPeerUrl {
        /// The value given.
        value: String,
        /// Why the identity crate rejected it.
        #[source]
        source: PeerUrlError,
    },
    /// The value is not a public key of the node's scheme.
    #[error("bad {scheme} public key {value:?}: {source}")]
    BadPublicKey {
        /// The value given.
        value: String,
        /// The scheme of the node's key file.
        scheme: SchemeKind,
        /// Why the identity crate rejected it.
        #[source]
        source: KeyError,
    },
    /// The same public key is listed twice.
    #[error("duplicate public key {0}")]
    DuplicatePeer(String),
    /// The peer set does not contain this node's own public key.
    #[error("does not contain this node's own public key {0}")]
    SelfNotInPeers(String),
    /// A bootstrapper (by key or by peer id) is not a member of the peer set (it would be
    /// refused as unauthorized, or its id could never be resolved).
    #[error("{0} is not in `peers`")]
    NotInPeers(String),
    /// Two channels have the same id.
    #[error("duplicate channel id {id} (already used by channels[{first}])")]
    DuplicateChannel {
        /// The id.
        id: u32,
        /// Index of the first channel with this id.
        first: usize,
    },
    /// The value must be greater than zero.
    #[error("must be greater than zero")]
    Zero,
    /// The zstd compression level is out of range.
    #[error(
        "compression level {0} is out of range {MIN_COMPRESSION_LEVEL}..={MAX_COMPRESSION_LEVEL}"
    )]
    CompressionLevel(i32),
    /// The value names no configured channel.
    #[error("channel {0} is not configured in `channels`")]
    UnknownChannel(u32),
    /// The value is not one of the accepted words.
    #[error("unknown value {value:?} (expected {expected})")]
    UnknownValue {
        /// The value given.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// The value must not be empty.
    #[error("must not be empty")]
    Empty,
    /// The value is not a valid DNS host name (see `p2p::HostName` for the rules).
    #[error("bad host name {value:?}: {source}")]
    BadHostName {
        /// The value given.
        value: String,
        /// Why it is refused.
        #[source]
        source: p2p::HostError,
    },
    /// The log filter is not a valid `tracing_subscriber::EnvFilter` directive.
    #[error("bad log filter {value:?}: {reason}")]
    BadLogFilter {
        /// The value given.
        value: String,
        /// The parser's reason.
        reason: String,
    },
}

fn field_err(field: impl Into<String>, problem: FieldError) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        problem,
    }
}

/// The document as written (before validation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    key_file: PathBuf,
    listen: String,
    external: String,
    #[serde(default)]
    external_host: Option<String>,
    namespace: String,
    peers: Vec<String>,
    #[serde(default)]
    bootstrappers: Vec<String>,
    #[serde(default)]
    preset: Option<String>,
    channels: Vec<RawChannel>,
    #[serde(default)]
    chat_channel: Option<u32>,
    #[serde(default)]
    metrics: Option<String>,
    #[serde(default)]
    log_format: Option<String>,
    #[serde(default)]
    log_filter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    id: u32,
    rate: u32,
    max_message_size: usize,
    backlog: usize,
    #[serde(default)]
    compression: Option<i32>,
}

/// Which timer preset of the facade's `Config` to start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `Config::recommended`: timers for real networks.
    Recommended,
    /// `Config::aggressive`: fast timers for local clusters and tests.
    Aggressive,
}

/// How logs are written (to standard error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `human` or `json`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "human" => Some(Self::Human),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// One application channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Channel id (must match on every peer that uses the channel).
    pub id: u32,
    /// Messages per second accepted from (and sent to) each peer on this channel.
    pub rate: NonZeroU32,
    /// Largest message, in bytes, before compression (must match across peers).
    pub max_message_size: NonZeroUsize,
    /// Messages queued per peer before new ones are dropped.
    pub backlog: NonZeroUsize,
    /// zstd level, or `None` for no compression (must match across peers).
    pub compression: Option<i32>,
}

/// A node's key and peer set, both of one scheme.
#[derive(Debug)]
pub struct Keyed<S: Signer> {
    /// The node's private key.
    pub signer: S,
    /// The peer set (sorted, unique, includes the node itself).
    pub peers: Vec<S::PublicKey>,
}

/// The node's identity, of whichever scheme the key file names.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per process, built once at start-up"
)]
pub enum Identity {
    /// Ed25519 keys.
    Ed25519(Keyed<ed25519::PrivateKey>),
    /// BLS12-381 keys.
    Bls12381(Keyed<bls12381::PrivateKey>),
}

/// A validated node configuration.
#[derive(Debug)]
pub struct NodeConfig {
    /// Key and peer set.
    pub identity: Identity,
    /// Address the listener binds.
    pub listen: SocketAddr,
    /// Address other peers dial (advertised in this node's signed peer record); port 0 stands
    /// for the port the listener bound.
    pub external: SocketAddr,
    /// A DNS name advertised in the signed peer record instead of `external`'s IP (with
    /// `external`'s port), resolved by peers at every dial: for hosts whose IP changes.
    pub external_host: Option<p2p::HostName>,
    /// Network namespace (chain id); must match on every peer.
    pub namespace: String,
    /// Peers dialed first to join the network.
    pub bootstrappers: Vec<PeerUrl>,
    /// Timer preset.
    pub preset: Preset,
    /// Channels, in file order.
    pub channels: Vec<ChannelConfig>,
    /// Channel that carries the built-in chat.
    pub chat_channel: u32,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter directive (`RUST_LOG` overrides it).
    pub log_filter: String,
}

impl NodeConfig {
    /// Reads the configuration at `path` and the key file it names, and validates both.
    ///
    /// A relative `key_file` is resolved against the directory of the configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, path, base)
    }

    /// Parses and validates a configuration document; `path` is used in messages and `base`
    /// to resolve a relative `key_file`.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        raw.validate(base)
    }
}

impl RawConfig {
    fn validate(self, base: &Path) -> Result<NodeConfig, ConfigError> {
        let key_path = base.join(&self.key_file);
        let key = NodeKey::read(&key_path).map_err(|e| field_err("key_file", e.into()))?;

        let listen = parse_addr("listen", &self.listen, false)?;
        let external = parse_addr("external", &self.external, true)?;
        let external_host = match &self.external_host {
            None => None,
            Some(value) => Some(p2p::HostName::parse(value).map_err(|source| {
                field_err(
                    "external_host",
                    FieldError::BadHostName {
                        value: value.clone(),
                        source,
                    },
                )
            })?),
        };

        if self.namespace.is_empty() {
            return Err(field_err("namespace", FieldError::Empty));
        }

        let identity = match key {
            NodeKey::Ed25519(signer) => Identity::Ed25519(keyed(signer, &self.peers)?),
            NodeKey::Bls12381(signer) => Identity::Bls12381(keyed(signer, &self.peers)?),
        };

        let mut bootstrappers = Vec::with_capacity(self.bootstrappers.len());
        for (i, value) in self.bootstrappers.iter().enumerate() {
            let field = format!("bootstrappers[{i}]");
            let url = match &identity {
                Identity::Ed25519(k) => check_bootstrapper(&field, value, &k.peers)?,
                Identity::Bls12381(k) => check_bootstrapper(&field, value, &k.peers)?,
            };
            bootstrappers.push(url);
        }

        let preset = match self.preset.as_deref() {
            None | Some("recommended") => Preset::Recommended,
            Some("aggressive") => Preset::Aggressive,
            Some(other) => {
                return Err(field_err(
                    "preset",
                    FieldError::UnknownValue {
                        value: other.to_owned(),
                        expected: "\"recommended\" or \"aggressive\"",
                    },
                ));
            }
        };

        if self.channels.is_empty() {
            return Err(field_err("channels", FieldError::Empty));
        }
        let mut channels = Vec::with_capacity(self.channels.len());
        let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, ch) in self.channels.iter().enumerate() {
            if let Some(&first) = seen.get(&ch.id) {
                return Err(field_err(
                    format!("channels[{i}].id"),
                    FieldError::DuplicateChannel { id: ch.id, first },
                ));
            }
            seen.insert(ch.id, i);
            let zero = |name: &str| field_err(format!("channels[{i}].{name}"), FieldError::Zero);
            let rate = NonZeroU32::new(ch.rate).ok_or_else(|| zero("rate"))?;
            let max_message_size =
                NonZeroUsize::new(ch.max_message_size).ok_or_else(|| zero("max_message_size"))?;
            let backlog = NonZeroUsize::new(ch.backlog).ok_or_else(|| zero("backlog"))?;
            if let Some(level) = ch.compression
                && !(MIN_COMPRESSION_LEVEL..=MAX_COMPRESSION_LEVEL).contains(&level)
            {
                return Err(field_err(
                    format!("channels[{i}].compression"),
                    FieldError::CompressionLevel(level),
                ));
            }
            channels.push(ChannelConfig {
                id: ch.id,
                rate,
                max_message_size,
                backlog,
                compression: ch.compression,
            });
        }
        let chat_channel = self.chat_channel.unwrap_or(channels[0].id);
        if !seen.contains_key(&chat_channel) {
            return Err(field_err(
                "chat_channel",
                FieldError::UnknownChannel(chat_channel),
            ));
        }

        let metrics = self
            .metrics
            .as_deref()
            .map(|m| parse_addr("metrics", m, false))
            .transpose()?;

        let log_format = match self.log_format.as_deref() {
            None => LogFormat::Human,
            Some(v) => LogFormat::parse(v).ok_or_else(|| {
                field_err(
                    "log_format",
                    FieldError::UnknownValue {
                        value: v.to_owned(),
                        expected: "\"human\" or \"json\"",
                    },
                )
            })?,
        };
        let log_filter = self.log_filter.unwrap_or_else(|| "info".to_owned());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            return Err(field_err(
                "log_filter",
                FieldError::BadLogFilter {
                    value: log_filter,
                    reason: e.to_string(),
                },
            ));
        }

        Ok(NodeConfig {
            identity,
            listen,
            external,
            external_host,
            namespace: self.namespace,
            bootstrappers,
            preset,
            channels,
            chat_channel,
            metrics,
            log_format,
            log_filter,
        })
    }
}

/// Parses an `IP:PORT` address. A `dialable` address must name a specific host (port 0 means
/// "the port the listener bound").
fn parse_addr(field: &str, value: &str, dialable: bool) -> Result<SocketAddr, ConfigError> {
    let bad = |reason| {
        field_err(
            field,
            FieldError::BadAddress {
                value: value.to_owned(),
                reason,
            },
        )
    };
    let addr: SocketAddr = value
        .parse()
        .map_err(|_| bad("expected IP:PORT, like 0.0.0.0:3000 or [::1]:3000"))?;
    if dialable && addr.ip().is_unspecified() {
        return Err(bad(
            "an unspecified IP (0.0.0.0 or ::) cannot be dialed; give this host's public IP",
        ));
    }
    Ok(addr)
}

/// Parses the peer set for the scheme of `signer`, checking it is duplicate-free and contains
/// the node itself.
fn keyed<S: Signer>(signer: S, values: &[String]) -> Result<Keyed<S>, ConfigError> {
    let mut set = BTreeSet::new();
    for (i, value) in values.iter().enumerate() {
        let field = format!("peers[{i}]");
        let key = S::PublicKey::from_hex(value.trim()).map_err(|source| {
            field_err(
                &field,
                FieldError::BadPublicKey {
                    value: value.clone(),
                    scheme: <S::PublicKey as Verifier>::SCHEME,
                    source,
                },
            )
        })?;
        if !set.insert(key) {
            return Err(field_err(field, FieldError::DuplicatePeer(value.clone())));
        }
    }
    let me = signer.public_key();
    if !set.contains(&me) {
        return Err(field_err(
            "peers",
            FieldError::SelfNotInPeers(me.to_string()),
        ));
    }
    Ok(Keyed {
        signer,
        peers: set.into_iter().collect(),
    })
}

/// Parses a bootstrapper URL and checks it names a member of `peers`.
fn check_bootstrapper<V: Verifier>(
    field: &str,
    value: &str,
    peers: &[V],
) -> Result<PeerUrl, ConfigError> {
    let bad_url = |source| {
        field_err(
            field,
            FieldError::BadPeerUrl {
                value: value.to_owned(),
                source,
            },
        )
    };
    let url: PeerUrl = value.parse().map_err(bad_url)?;
    // A peer id is matched against `peers` below (and by the network at dial time).
    url.public_key::<V>()
        .map_err(|e| bad_url(PeerUrlError::InvalidKey(e)))?;
    if !peers.iter().any(|p| url.matches(p)) {
        return Err(field_err(field, FieldError::NotInPeers(url.to_string())));
    }
    Ok(url)
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Recommended => "recommended",
            Self::Aggressive => "aggressive",
        })
    }
}
