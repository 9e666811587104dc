//! Property tests: encode/decode round trips, ordering, ids and peer URLs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use p2p_identity::{
    Host, PeerId, PeerUrl, PeerUrlError, PeerUrlTarget, Signature as _, Signer, Verifier, bls12381,
    ed25519,
};
use proptest::prelude::*;

fn round_trip<S: Signer>(seed: u64) {
    let sk = S::insecure_from_seed(seed);
    let pk = sk.public_key();
    let again = S::PublicKey::from_bytes(pk.as_bytes()).unwrap();
    assert_eq!(again, pk);
    let parsed = S::PublicKey::from_hex(&pk.to_string()).unwrap();
    assert_eq!(parsed, pk);
    assert_eq!(pk.to_string(), hex::encode(pk.as_bytes()));
    let restored = S::from_secret_bytes(&sk.secret_bytes()).unwrap();
    assert_eq!(restored.public_key(), pk);
    let sig = sk.sign(b"ns", &seed.to_be_bytes());
    let sig2 = <<S::PublicKey as Verifier>::Signature as p2p_identity::Signature>::from_bytes(
        sig.as_bytes(),
    )
    .unwrap();
    assert_eq!(sig2, sig);
    pk.verify(b"ns", &seed.to_be_bytes(), &sig2).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn ed25519_round_trips(seed in any::<u64>()) {
        round_trip::<ed25519::PrivateKey>(seed);
    }

    #[test]
    fn bls_round_trips(seed in any::<u64>()) {
        round_trip::<bls12381::PrivateKey>(seed);
    }

    #[test]
    fn order_is_the_byte_order(a in any::<u64>(), b in any::<u64>()) {
        let ka = ed25519::PrivateKey::insecure_from_seed(a).public_key();
        let kb = ed25519::PrivateKey::insecure_from_seed(b).public_key();
        prop_assert_eq!(ka.cmp(&kb), ka.as_bytes().cmp(kb.as_bytes()));
        prop_assert_eq!(ka == kb, a == b);
    }

    #[test]
    fn peer_urls_round_trip(seed in any::<u64>(), port in 1u16.., v6 in any::<bool>(), by_id in any::<bool>(), ip in any::<[u8; 16]>()) {
        let key = ed25519::PrivateKey::insecure_from_seed(seed).public_key();
        let addr = if v6 {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])), port)
        };
        let mut url = PeerUrl::new(&key, addr);
        if by_id {
            url.target = PeerUrlTarget::Id(key.peer_id());
        }
        let text = url.to_string();
        let parsed: PeerUrl = text.parse().unwrap();
        prop_assert_eq!(&parsed, &url);
        prop_assert!(parsed.matches(&key));
        prop_assert_eq!(parsed.socket_addr(), Some(addr));
        prop_assert_eq!(parsed.peer_id(), key.peer_id());
    }
}

#[test]
fn sorting_a_peer_set_is_deterministic() {
    let mut keys: Vec<_> = (0..50)
        .map(|i| bls12381::PrivateKey::insecure_from_seed(i).public_key())
        .collect();
    let mut reversed = keys.clone();
    reversed.reverse();
    keys.sort();
    reversed.sort();
    assert_eq!(keys, reversed);
    assert!(keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
}

#[test]
fn insecure_seeds_are_deterministic_and_distinct() {
    let a = ed25519::PrivateKey::insecure_from_seed(7).public_key();
    assert_eq!(a, ed25519::PrivateKey::insecure_from_seed(7).public_key());
    assert_ne!(a, ed25519::PrivateKey::insecure_from_seed(8).public_key());
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(1);
    let g1 = bls12381::PrivateKey::generate(&mut rng).public_key();
    let g2 = bls12381::PrivateKey::generate(&mut rng).public_key();
    assert_ne!(g1, g2);
}

#[test]
fn peer_id_is_first_20_bytes_of_sha256() {
    // SHA-256 of 32 zero bytes begins 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925.
    let id = PeerId::of_key_bytes(&[0u8; 32]);
    assert_eq!(id.to_string(), "66687aadf862bd776c8fc18b8e9f8e2008971485");
    let parsed: PeerId = id.to_string().parse().unwrap();
    assert_eq!(parsed, id);
}

#[test]
fn peer_url_errors() {
    let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let id = "0123456789abcdef0123456789abcdef01234567";
    let cases: Vec<(String, PeerUrlError)> = vec![
        ("127.0.0.1:1".into(), PeerUrlError::MissingAt),
        ("@127.0.0.1:1".into(), PeerUrlError::MissingKey),
        (
            format!("{}@127.0.0.1:1", "xy".repeat(20)),
            PeerUrlError::InvalidKeyHex,
        ),
        ("abcd@127.0.0.1:1".into(), PeerUrlError::InvalidKeyLength(4)),
        (format!("{id}@127.0.0.1"), PeerUrlError::MissingPort),
        (format!("{id}@127.0.0.1:"), PeerUrlError::MissingPort),
        (format!("{id}@127.0.0.1:0"), PeerUrlError::InvalidPort),
        (format!("{id}@127.0.0.1:65536"), PeerUrlError::InvalidPort),
        (format!("{id}@127.0.0.1:+80"), PeerUrlError::InvalidPort),
        (format!("{id}@:80"), PeerUrlError::MissingHost),
        (format!("{id}@::1:80"), PeerUrlError::UnbracketedIpv6),
        (format!("{id}@[::1:80"), PeerUrlError::UnbracketedIpv6),
        (format!("{id}@[not-v6]:80"), PeerUrlError::InvalidIpv6),
        (format!("{id}@256.1.1.1:80"), PeerUrlError::InvalidHost),
        (
            format!("{id}@bad_name.example:80"),
            PeerUrlError::InvalidHost,
        ),
        (format!("{id}@-bad.example:80"), PeerUrlError::InvalidHost),
        (
            format!("{id}@{}.example:80", "a".repeat(64)),
            PeerUrlError::InvalidHost,
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<PeerUrl>(), Err(expected), "{text}");
    }
    let url: PeerUrl = format!("{key}@Node-1.Example.com:26656").parse().unwrap();
    assert_eq!(url.host, Host::Dns("node-1.example.com".into()));
    assert_eq!(url.socket_addr(), None);
    let pk: ed25519::PublicKey = url.public_key().unwrap().unwrap();
    assert!(url.matches(&pk));
    assert!(!url.matches(&ed25519::PrivateKey::insecure_from_seed(1).public_key()));
    // A 96-digit key is a BLS-length key: parsing it as ed25519 is a typed error.
    let bls = bls12381::PrivateKey::insecure_from_seed(1).public_key();
    let url: PeerUrl = format!("{bls}@[::1]:9").parse().unwrap();
    assert!(url.public_key::<ed25519::PublicKey>().is_err());
    assert_eq!(url.public_key::<bls12381::PublicKey>().unwrap(), Some(bls));
    let by_id: PeerUrl = format!("{id}@127.0.0.1:9").parse().unwrap();
    assert_eq!(by_id.public_key::<ed25519::PublicKey>().unwrap(), None);
}
