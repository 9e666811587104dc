//! Checked-in vectors of peer records (socket and host-name addresses, both schemes) and
//! malformed `Peer.socket` fixtures.
//!
//! `regenerate_vectors` (ignored; run by `cargo xtask vectors` with
//! `P2P_REGENERATE_VECTORS=1`) writes `tests/vectors/records.txt` and
//! `tests/vectors/malformed_addresses.txt` from fixed seeds; the other tests check that the
//! code still produces and accepts exactly those bytes.

use std::path::PathBuf;

use p2p_discovery::host::{decode_address, encode_address};
use p2p_discovery::{Address, record_message_for, sign_record_for, verify_record_for};
use p2p_identity::{Signer, Verifier, bls12381, ed25519};

const NAMESPACE: &[u8] = b"_P2P_VECTORS";
const TIMESTAMP: u64 = 1_699_999_940_000;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// The addresses of the record vectors: the two socket families (unchanged by the host-name
/// extension) and host names, the longest one included.
fn addresses() -> Vec<String> {
    let longest = [
        "b".repeat(62),
        "c".repeat(62),
        "d".repeat(62),
        "e".repeat(62),
    ]
    .join(".");
    vec![
        "127.0.0.1:3001".into(),
        "[::1]:3001".into(),
        "localhost:3001".into(),
        "validator-1.example.com:26656".into(),
        format!("{longest}:65535"),
    ]
}

/// One line: `record <scheme> <seed> <address> <timestamp> <public key> <socket> <message>
/// <signature>` (hex but for the first five fields).
fn record_line<S: Signer>(scheme: &str, seed: u64, address: &str) -> String {
    let signer = S::insecure_from_seed(seed);
    let addr: Address = address.parse().unwrap();
    let peer = sign_record_for(&signer, NAMESPACE, &addr, TIMESTAMP);
    let sig = peer.signature.unwrap();
    format!(
        "record {scheme} {seed} {address} {TIMESTAMP} {} {} {} {}",
        hex::encode(&sig.public_key),
        hex::encode(&peer.socket),
        hex::encode(record_message_for(&addr, TIMESTAMP)),
        hex::encode(&sig.signature),
    )
}

fn records_text() -> String {
    let mut out = String::from(
        "# Peer records signed in namespace \"_P2P_VECTORS\" at the timestamp given (ms).\n\
         # Fields: record <scheme> <seed> <address> <timestamp> <public key> <Peer.socket>\n\
         #         <signed message, without the namespace prefix> <signature>\n\
         # Socket records (tags 04, 06) are byte for byte what protocol minor 1 signed; host\n\
         # names use tag 48 (protocol minor 2).\n",
    );
    for (i, address) in addresses().iter().enumerate() {
        out += &record_line::<ed25519::PrivateKey>("ed25519", i as u64 + 1, address);
        out.push('\n');
    }
    for (i, address) in addresses().iter().enumerate().take(4) {
        out += &record_line::<bls12381::PrivateKey>("bls12381", i as u64 + 1, address);
        out.push('\n');
    }
    out
}

/// Malformed `Peer.socket` values, each with the exact error.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    let with_name = |name: &[u8], port: [u8; 2]| {
        let mut v = vec![0x48, name.len() as u8];
        v.extend_from_slice(name);
        v.extend_from_slice(&port);
        v
    };
    let mut overlong = vec![0x48, 252];
    overlong.extend(std::iter::repeat_n(b'a', 252));
    overlong.extend_from_slice(&[0, 1]);
    vec![
        ("empty", vec![]),
        ("unknown_tag", vec![0x05, 1, 2, 3, 4, 0, 1]),
        ("host_tag_only", vec![0x48]),
        ("host_length_too_long", vec![0x48, 9, b'a', 0, 1]),
        ("host_trailing_byte", vec![0x48, 1, b'a', 0, 1, 0]),
        ("host_empty_name", vec![0x48, 0, 0, 1]),
        ("host_port_zero", with_name(b"a", [0, 0])),
        ("host_upper_case", with_name(b"Node.example", [0, 1])),
        ("host_trailing_dot", with_name(b"node.example.", [0, 1])),
        ("host_nul", with_name(b"node\0.example", [0, 1])),
        ("host_space", with_name(b"node .example", [0, 1])),
        ("host_utf8", with_name("nöde.example".as_bytes(), [0, 1])),
        ("host_underscore", with_name(b"_srv.example", [0, 1])),
        ("host_ipv4_literal", with_name(b"127.0.0.1", [0, 1])),
        ("host_integer_literal", with_name(b"2130706433", [0, 1])),
        ("host_ipv6_literal", with_name(b"::1", [0, 1])),
        ("host_empty_label", with_name(b"a..example", [0, 1])),
        ("host_hyphen_edge", with_name(b"-a.example", [0, 1])),
        ("host_label_64", with_name(&[b'a'; 64], [0, 1])),
        ("host_name_252", overlong),
    ]
}

fn malformed_text() -> String {
    let mut out = String::from(
        "# Malformed Peer.socket values: <name> <hex> <error (Debug of p2p_discovery::SocketError)>.\n\
         # Each one makes the record, and the Peers message carrying it, invalid_record (fatal).\n",
    );
    for (name, bytes) in malformed() {
        let err = decode_address(&bytes).expect_err(name);
        let hex = if bytes.is_empty() {
            "-".to_owned()
        } else {
            hex::encode(&bytes)
        };
        out += &format!("{name} {hex} {err:?}\n");
    }
    out
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        Vec::new()
    } else {
        hex::decode(s).unwrap()
    }
}

fn check_record<V: Verifier>(f: &[&str]) {
    let addr: Address = f[3].parse().unwrap();
    let ts: u64 = f[4].parse().unwrap();
    let key = V::from_bytes(&unhex(f[5])).unwrap();
    let socket = unhex(f[6]);
    assert_eq!(decode_address(&socket).unwrap(), addr);
    assert_eq!(encode_address(&addr).as_bytes(), &socket[..]);
    assert_eq!(record_message_for(&addr, ts), unhex(f[7]));
    verify_record_for(NAMESPACE, &key, &addr, ts, &unhex(f[8])).unwrap();
}

#[test]
fn record_vectors_match() {
    let text = std::fs::read_to_string(dir().join("records.txt")).unwrap();
    assert_eq!(text, records_text(), "run `cargo xtask vectors`");
    let mut count = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[1] {
            "ed25519" => check_record::<ed25519::PublicKey>(&f),
            "bls12381" => check_record::<bls12381::PublicKey>(&f),
            other => panic!("unknown scheme {other}"),
        }
        count += 1;
    }
    assert_eq!(count, 9);
}

#[test]
fn malformed_address_fixtures_match() {
    let text = std::fs::read_to_string(dir().join("malformed_addresses.txt")).unwrap();
    assert_eq!(text, malformed_text(), "run `cargo xtask vectors`");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.splitn(3, ' ');
        let (name, hex, err) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let got = decode_address(&unhex(hex)).expect_err(name);
        assert_eq!(format!("{got:?}"), err, "{name}");
    }
}

#[test]
#[ignore = "writes the vectors; run with P2P_REGENERATE_VECTORS=1"]
fn regenerate_vectors() {
    if std::env::var("P2P_REGENERATE_VECTORS").as_deref() != Ok("1") {
        eprintln!("set P2P_REGENERATE_VECTORS=1 to write the vectors");
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    std::fs::write(dir().join("records.txt"), records_text()).unwrap();
    std::fs::write(dir().join("malformed_addresses.txt"), malformed_text()).unwrap();
}
