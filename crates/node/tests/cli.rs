//! Command-line tests of the `p2p-node` binary: key files and configuration errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_p2p-node"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_config(name: &str) -> Output {
    // `run` with a bad configuration exits before binding anything; it never waits.
    bin()
        .args(["run", "--config"])
        .arg(fixtures().join(name))
        .output()
        .unwrap()
}

#[test]
fn keygen_then_id() {
    let dir = tempfile::tempdir().unwrap();
    for (scheme, name, hex_len) in [("ed25519", "ed25519", 64), ("bls", "bls12381", 96)] {
        let path = dir.path().join(format!("{scheme}.key"));
        let out = bin()
            .args(["keygen", "--scheme", scheme, "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let out = bin().arg("id").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let field = |label: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(label))
                .unwrap_or_else(|| panic!("no {label} in {stdout}"))
                .trim()
                .to_owned()
        };
        assert_eq!(field("scheme:"), name);
        let pk = field("public key:");
        assert_eq!(pk.len(), hex_len);
        assert_eq!(field("peer id:").len(), 40);
        assert_eq!(field("peer URL:"), format!("{pk}@<host>:<port>"));

        // Never overwrites an existing key.
        let again = bin()
            .args(["keygen", "--scheme", scheme, "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!again.status.success());
        assert!(
            text(&again.stderr).contains("exists"),
            "{}",
            text(&again.stderr)
        );
    }
}

#[test]
fn keygen_rejects_unknown_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["keygen", "--scheme", "rsa", "--out"])
        .arg(dir.path().join("k"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid value 'rsa'"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("k").exists());
}

#[test]
fn id_reports_bad_key_files() {
    let out = bin()
        .arg("id")
        .arg(fixtures().join("unknown_scheme.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown scheme \"rsa\""),
        "{}",
        text(&out.stderr)
    );
    let out = bin()
        .arg("id")
        .arg(fixtures().join("bad_secret.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a valid ed25519 secret key: wrong key length"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_reports_malformed_configs() {
    let cases = [
        (
            "unknown_scheme.toml",
            "config field `key_file`: unknown scheme \"rsa\"",
        ),
        (
            "bad_key_file.toml",
            "config field `key_file`: secret_key is not a valid ed25519 secret key",
        ),
        (
            "missing_key_file.toml",
            "config field `key_file`: cannot access key file",
        ),
        (
            "bad_peer_url.toml",
            "config field `bootstrappers[1]`: bad peer URL",
        ),
        (
            "duplicate_channel.toml",
            "config field `channels[1].id`: duplicate channel id 1",
        ),
        (
            "bad_address.toml",
            "config field `listen`: bad address \"localhost:30301\"",
        ),
        ("unknown_field.toml", "unknown field `port`"),
        (
            "wrong_scheme_peer.toml",
            "config field `peers[2]`: bad ed25519 public key",
        ),
        (
            "self_not_in_peers.toml",
            "config field `peers`: does not contain this node's own public key",
        ),
        (
            "bad_compression.toml",
            "config field `channels[1].compression`: compression level 40",
        ),
    ];
    for (fixture, expected) in cases {
        let out = run_config(fixture);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{fixture}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{fixture}: {stderr}");
    }
    let out = bin()
        .args(["run", "--config"])
        .arg(fixtures().join("nonexistent.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read config file"));
}
