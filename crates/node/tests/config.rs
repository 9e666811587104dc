//! Configuration file tests: the valid fixture loads, and every documented error is reported
//! with the field it concerns (fixtures under `tests/fixtures/`).

use std::path::{Path, PathBuf};

use p2p_identity::{KeyError, PeerUrlError, SchemeKind, Signer, Verifier, ed25519};
use p2p_node::config::{ConfigError, FieldError, Identity, LogFormat, NodeConfig, Preset};
use p2p_node::keyfile::KeyFileError;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(name: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::load(&fixtures().join(name))
}

/// Loads a fixture that must fail with a field error; returns the field and the problem.
fn field_error(name: &str) -> (String, FieldError) {
    match load(name) {
        Err(ConfigError::Field { field, problem }) => (field, problem),
        Err(other) => panic!("{name}: expected a field error, got {other}"),
        Ok(_) => panic!("{name}: expected an error, got a valid config"),
    }
}

fn valid_text() -> String {
    std::fs::read_to_string(fixtures().join("valid.toml")).unwrap()
}

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(text, Path::new("inline.toml"), &fixtures())
}

#[test]
fn valid_config_loads() {
    let cfg = load("valid.toml").unwrap();
    let Identity::Ed25519(keyed) = &cfg.identity else {
        panic!("expected an ed25519 identity");
    };
    assert_eq!(keyed.peers.len(), 3);
    assert!(
        keyed.peers.windows(2).all(|w| w[0] < w[1]),
        "peer set is sorted"
    );
    assert_eq!(cfg.listen, "127.0.0.1:30301".parse().unwrap());
    assert_eq!(cfg.external, "127.0.0.1:30301".parse().unwrap());
    assert_eq!(cfg.namespace, "p2p-node-test");
    assert_eq!(cfg.bootstrappers.len(), 1);
    assert_eq!(cfg.bootstrappers[0].port, 30302);
    assert_eq!(cfg.preset, Preset::Aggressive);
    assert_eq!(cfg.channels.len(), 2);
    assert_eq!(cfg.channels[0].compression, None);
    assert_eq!(cfg.channels[1].compression, Some(3));
    assert_eq!(cfg.channels[1].max_message_size.get(), 1 << 20);
    assert_eq!(cfg.chat_channel, 1);
    assert_eq!(cfg.metrics, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(cfg.log_format, LogFormat::Json);
}

#[test]
fn defaults_apply() {
    let text = valid_text()
        .lines()
        .filter(|l| {
            ![
                "preset",
                "chat_channel",
                "metrics",
                "log_format",
                "log_filter",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = parse(&text).unwrap();
    assert_eq!(cfg.preset, Preset::Recommended);
    assert_eq!(cfg.chat_channel, 1, "defaults to the first channel");
    assert_eq!(cfg.metrics, None);
    assert_eq!(cfg.log_format, LogFormat::Human);
    assert_eq!(cfg.log_filter, "info");
}

#[test]
fn bls_identity() {
    let bls = std::fs::read_to_string(fixtures().join("bls.key")).unwrap();
    let pk = bls
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    let text = format!(
        "key_file = \"bls.key\"\nlisten = \"[::1]:4000\"\nexternal = \"[::1]:4000\"\n\
         namespace = \"n\"\npeers = [\"{pk}\"]\n\
         [[channels]]\nid = 0\nrate = 1\nmax_message_size = 1\nbacklog = 1\n"
    );
    let cfg = parse(&text).unwrap();
    assert!(matches!(cfg.identity, Identity::Bls12381(ref k) if k.peers.len() == 1));
}

#[test]
fn unknown_scheme() {
    let (field, problem) = field_error("unknown_scheme.toml");
    assert_eq!(field, "key_file");
    assert!(
        matches!(problem, FieldError::KeyFile(KeyFileError::UnknownScheme(ref s)) if s == "rsa"),
        "{problem}"
    );
}

#[test]
fn bad_key_file() {
    let (field, problem) = field_error("bad_key_file.toml");
    assert_eq!(field, "key_file");
    assert!(
        matches!(
            problem,
            FieldError::KeyFile(KeyFileError::BadSecret {
                scheme: SchemeKind::Ed25519,
                source: KeyError::WrongLength {
                    expected: 32,
                    got: 31
                }
            })
        ),
        "{problem}"
    );
}

#[test]
fn missing_key_file() {
    let (field, problem) = field_error("missing_key_file.toml");
    assert_eq!(field, "key_file");
    assert!(
        matches!(problem, FieldError::KeyFile(KeyFileError::Io { ref source, .. })
            if source.kind() == std::io::ErrorKind::NotFound),
        "{problem}"
    );
}

#[test]
fn bad_peer_url() {
    let (field, problem) = field_error("bad_peer_url.toml");
    assert_eq!(field, "bootstrappers[1]");
    assert!(
        matches!(
            problem,
            FieldError::BadPeerUrl {
                source: PeerUrlError::MissingPort,
                ..
            }
        ),
        "{problem}"
    );
}

#[test]
fn peer_url_with_key_of_wrong_scheme() {
    // A 96-digit (BLS-length) key in a bootstrapper of an ed25519 node.
    let bls = "ab".repeat(48);
    let text = valid_text().replace(
        "bootstrappers = [\"",
        &format!("bootstrappers = [\"{bls}@127.0.0.1:1\", \""),
    );
    let Err(ConfigError::Field { field, problem }) = parse(&text) else {
        panic!("expected a field error");
    };
    assert_eq!(field, "bootstrappers[0]");
    assert!(
        matches!(
            problem,
            FieldError::BadPeerUrl {
                source: PeerUrlError::InvalidKey(KeyError::WrongLength { .. }),
                ..
            }
        ),
        "{problem}"
    );
}

#[test]
fn bootstrapper_by_peer_id() {
    // The id of a key in `peers` is accepted (the network resolves it when it dials)...
    let listed = "524ffe83c62eb736f4a848d856869bb517b0be5f674a2c6226616bd065055ddc";
    let id = p2p_identity::PeerId::of_key_bytes(&hex::decode(listed).unwrap());
    let text = valid_text().replace(
        &format!("bootstrappers = [\"{listed}@"),
        &format!("bootstrappers = [\"{id}@"),
    );
    assert!(text.contains(&id.to_string()));
    parse(&text).unwrap();
    // ...the id of a key that is not is refused, since it could never be resolved.
    let other = ed25519::PrivateKey::insecure_from_seed(99).public_key();
    let text = valid_text().replace(
        "bootstrappers = [\"",
        &format!(
            "bootstrappers = [\"{}@127.0.0.1:30303\", \"",
            other.peer_id()
        ),
    );
    let Err(ConfigError::Field { field, problem }) = parse(&text) else {
        panic!("expected a field error");
    };
    assert_eq!(field, "bootstrappers[0]");
    assert!(matches!(problem, FieldError::NotInPeers(_)), "{problem}");
}

#[test]
fn bootstrapper_not_in_peers() {
    let other = ed25519::PrivateKey::insecure_from_seed(99).public_key();
    let text = valid_text().replace(
        "bootstrappers = [\"",
        &format!("bootstrappers = [\"{other}@127.0.0.9:26656\", \""),
    );
    let Err(ConfigError::Field { field, problem }) = parse(&text) else {
        panic!("expected a field error");
    };
    assert_eq!(field, "bootstrappers[0]");
    assert!(matches!(problem, FieldError::NotInPeers(_)), "{problem}");
}

#[test]
fn duplicate_channel() {
    let (field, problem) = field_error("duplicate_channel.toml");
    assert_eq!(field, "channels[1].id");
    assert!(
        matches!(problem, FieldError::DuplicateChannel { id: 1, first: 0 }),
        "{problem}"
    );
}

#[test]
fn bad_address() {
    let (field, problem) = field_error("bad_address.toml");
    assert_eq!(field, "listen");
    assert!(
        matches!(problem, FieldError::BadAddress { ref value, .. } if value == "localhost:30301"),
        "{problem}"
    );
    let (field, problem) = field_error("undialable_external.toml");
    assert_eq!(field, "external");
    assert!(
        matches!(problem, FieldError::BadAddress { .. }),
        "{problem}"
    );
    let text = valid_text().replace(
        "external = \"127.0.0.1:30301\"",
        "external = \"127.0.0.1:0\"",
    );
    // Port 0 stands for the port the listener binds.
    assert_eq!(parse(&text).unwrap().external.port(), 0);
    let text = valid_text().replace("metrics = \"127.0.0.1:0\"", "metrics = \"9090\"");
    assert!(matches!(
        parse(&text),
        Err(ConfigError::Field { ref field, problem: FieldError::BadAddress { .. } }) if field == "metrics"
    ));
}

#[test]
fn unknown_field() {
    match load("unknown_field.toml") {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("unknown field `port`"), "{message}");
            assert!(message.contains("line 6"), "{message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn missing_field() {
    let text = valid_text().replace("namespace = \"p2p-node-test\"\n", "");
    match parse(&text) {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("missing field `namespace`"), "{message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn peer_key_of_wrong_scheme() {
    let (field, problem) = field_error("wrong_scheme_peer.toml");
    assert_eq!(field, "peers[2]");
    assert!(
        matches!(
            problem,
            FieldError::BadPublicKey {
                scheme: SchemeKind::Ed25519,
                source: KeyError::WrongLength { .. },
                ..
            }
        ),
        "{problem}"
    );
}

#[test]
fn duplicate_peer() {
    let text = valid_text();
    let first_peer = text
        .lines()
        .find(|l| l.starts_with("    \""))
        .unwrap()
        .to_owned();
    let text = text.replace(&first_peer, &format!("{first_peer}\n{first_peer}"));
    let Err(ConfigError::Field { field, problem }) = parse(&text) else {
        panic!("expected a field error");
    };
    assert_eq!(field, "peers[1]");
    assert!(matches!(problem, FieldError::DuplicatePeer(_)), "{problem}");
}

#[test]
fn self_not_in_peers() {
    let (field, problem) = field_error("self_not_in_peers.toml");
    assert_eq!(field, "peers");
    assert!(
        matches!(problem, FieldError::SelfNotInPeers(_)),
        "{problem}"
    );
}

#[test]
fn channel_values() {
    let (field, problem) = field_error("bad_compression.toml");
    assert_eq!(field, "channels[1].compression");
    assert!(
        matches!(problem, FieldError::CompressionLevel(40)),
        "{problem}"
    );
    let (field, problem) = field_error("zero_rate.toml");
    assert_eq!(field, "channels[0].rate");
    assert!(matches!(problem, FieldError::Zero), "{problem}");
    let (field, problem) = field_error("unknown_chat_channel.toml");
    assert_eq!(field, "chat_channel");
    assert!(
        matches!(problem, FieldError::UnknownChannel(7)),
        "{problem}"
    );
}

#[test]
fn words() {
    let (field, problem) = field_error("bad_log_format.toml");
    assert_eq!(field, "log_format");
    assert!(
        matches!(problem, FieldError::UnknownValue { ref value, .. } if value == "xml"),
        "{problem}"
    );
    let text = valid_text().replace("preset = \"aggressive\"", "preset = \"turbo\"");
    assert!(matches!(
        parse(&text),
        Err(ConfigError::Field { ref field, problem: FieldError::UnknownValue { .. } }) if field == "preset"
    ));
    let text = valid_text().replace("namespace = \"p2p-node-test\"", "namespace = \"\"");
    assert!(matches!(
        parse(&text),
        Err(ConfigError::Field { ref field, problem: FieldError::Empty }) if field == "namespace"
    ));
    let text = valid_text().replace("log_filter = \"info\"", "log_filter = \"[[[\"");
    assert!(matches!(
        parse(&text),
        Err(ConfigError::Field { ref field, problem: FieldError::BadLogFilter { .. } }) if field == "log_filter"
    ));
}

#[test]
fn messages_name_field_and_problem() {
    let err = load("duplicate_channel.toml").unwrap_err().to_string();
    assert_eq!(
        err,
        "config field `channels[1].id`: duplicate channel id 1 (already used by channels[0])"
    );
    let err = load("unknown_scheme.toml").unwrap_err().to_string();
    assert_eq!(
        err,
        "config field `key_file`: unknown scheme \"rsa\" (expected \"ed25519\" or \"bls12381\")"
    );
    let err = load("bad_peer_url.toml").unwrap_err().to_string();
    assert!(
        err.starts_with("config field `bootstrappers[1]`: bad peer URL"),
        "{err}"
    );
    assert!(err.ends_with("peer URL address has no port"), "{err}");
}

#[test]
fn external_host_names_the_record_address_and_refuses_bad_names() {
    assert_eq!(load("valid.toml").unwrap().external_host, None);
    let with = |value: &str| {
        valid_text().replace(
            "external = \"127.0.0.1:30301\"",
            &format!("external = \"127.0.0.1:30301\"\nexternal_host = {value:?}"),
        )
    };
    let cfg = parse(&with("Validator1.Example.com")).unwrap();
    assert_eq!(
        cfg.external_host.map(|h| h.to_string()).as_deref(),
        Some("validator1.example.com")
    );
    for (bad, why) in [
        ("", p2p::HostError::Empty),
        ("127.0.0.1", p2p::HostError::NumericName),
        (
            "bad_name.com",
            p2p::HostError::InvalidByte {
                byte: b'_',
                offset: 3,
            },
        ),
        ("a..b", p2p::HostError::EmptyLabel),
    ] {
        match parse(&with(bad)) {
            Err(ConfigError::Field {
                field,
                problem: FieldError::BadHostName { source, .. },
            }) => {
                assert_eq!(field, "external_host");
                assert_eq!(source, why, "{bad:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}
