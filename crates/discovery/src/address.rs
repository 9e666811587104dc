//! Which advertised addresses the tracker accepts in peer records ([`AddressPolicy`]).
//!
//! A record is signed by the peer it describes, but the peer chooses the address: without a
//! policy a record could make every node of the network dial a third party's service, a
//! loopback or link-local service of the dialing host, or a multicast or broadcast address.
//! The policy is checked before the record's signature; a refused record is dropped (never
//! stored, gossiped or dialed) and the connection that carried it is kept, since the record
//! may be genuinely signed by someone else than the peer that relayed it.
//!
//! Always refused: the unspecified addresses (`0.0.0.0/8`, `::`), multicast (`224.0.0.0/4`,
//! `ff00::/8`), the IPv4 broadcast address `255.255.255.255`, port 0. Refused unless the
//! policy allows them: loopback (`127.0.0.0/8`, `::1`) and private ranges (`10.0.0.0/8`,
//! `172.16.0.0/12`, `192.168.0.0/16`, shared `100.64.0.0/10`, link-local `169.254.0.0/16`
//! and `fe80::/10`, unique local `fc00::/7`). IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
//! are judged as the IPv4 address they map.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an advertised address is refused by an [`AddressPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressRefusal {
    /// Port 0 cannot be dialed.
    #[error("port 0")]
    PortZero,
    /// `0.0.0.0/8` or `::`.
    #[error("unspecified address")]
    Unspecified,
    /// A multicast address.
    #[error("multicast address")]
    Multicast,
    /// `255.255.255.255`.
    #[error("broadcast address")]
    Broadcast,
    /// A loopback address, and the policy does not allow them.
    #[error("loopback address")]
    Loopback,
    /// A private, shared, link-local or unique-local address, and the policy does not allow
    /// them.
    #[error("private or link-local address")]
    Private,
}

/// Which addresses peer records may advertise. Local policy: peers need not agree (a peer
/// that advertises an address we refuse is simply not dialed by us).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Accept loopback addresses (`127.0.0.0/8`, `::1`). Only for nodes that all run on one
    /// host (tests, local clusters): elsewhere such a record points the dialer at its own
    /// services.
    pub allow_loopback: bool,
    /// Accept private (RFC 1918), shared (RFC 6598), link-local and unique-local addresses.
    /// Validators often run on private networks, so the recommended preset allows them.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// For production: public and private addresses, no loopback.
    pub const fn recommended() -> Self {
        Self {
            allow_loopback: false,
            allow_private: true,
        }
    }

    /// Public addresses only (a network whose peers are all reachable on the internet).
    pub const fn public_only() -> Self {
        Self {
            allow_loopback: false,
            allow_private: false,
        }
    }

    /// For nodes on one machine: loopback and private addresses as well.
    pub const fn local() -> Self {
        Self {
            allow_loopback: true,
            allow_private: true,
        }
    }

    /// Checks `socket` against the policy (see the module docs for the ranges).
    pub fn check(&self, socket: &SocketAddr) -> Result<(), AddressRefusal> {
        if socket.port() == 0 {
            return Err(AddressRefusal::PortZero);
        }
        match canonical(socket.ip()) {
            IpAddr::V4(ip) => self.check_v4(ip),
            IpAddr::V6(ip) => self.check_v6(ip),
        }
    }

    fn check_v4(&self, ip: Ipv4Addr) -> Result<(), AddressRefusal> {
        let [a, b, ..] = ip.octets();
        if a == 0 {
            return Err(AddressRefusal::Unspecified);
        }
        if ip.is_multicast() {
            return Err(AddressRefusal::Multicast);
        }
        if ip.is_broadcast() {
            return Err(AddressRefusal::Broadcast);
        }
        if ip.is_loopback() {
            return self.loopback();
        }
        let shared = a == 100 && (b & 0xc0) == 64;
        if ip.is_private() || ip.is_link_local() || shared {
            return self.private();
        }
        Ok(())
    }

    fn check_v6(&self, ip: Ipv6Addr) -> Result<(), AddressRefusal> {
        if ip.is_unspecified() {
            return Err(AddressRefusal::Unspecified);
        }
        if ip.is_multicast() {
            return Err(AddressRefusal::Multicast);
        }
        if ip.is_loopback() {
            return self.loopback();
        }
        if ip.is_unique_local() || ip.is_unicast_link_local() {
            return self.private();
        }
        Ok(())
    }

    fn loopback(&self) -> Result<(), AddressRefusal> {
        if self.allow_loopback {
            Ok(())
        } else {
            Err(AddressRefusal::Loopback)
        }
    }

    fn private(&self) -> Result<(), AddressRefusal> {
        if self.allow_private {
            Ok(())
        } else {
            Err(AddressRefusal::Private)
        }
    }
}

impl Default for AddressPolicy {
    fn default() -> Self {
        Self::recommended()
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it maps; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: AddressPolicy, s: &str) -> Result<(), AddressRefusal> {
        policy.check(&s.parse().unwrap())
    }

    #[test]
    fn always_refused() {
        for policy in [
            AddressPolicy::public_only(),
            AddressPolicy::recommended(),
            AddressPolicy::local(),
        ] {
            for (addr, why) in [
                ("0.0.0.0:1", AddressRefusal::Unspecified),
                ("0.1.2.3:1", AddressRefusal::Unspecified),
                ("[::]:1", AddressRefusal::Unspecified),
                ("224.0.0.1:1", AddressRefusal::Multicast),
                ("239.255.255.250:1900", AddressRefusal::Multicast),
                ("[ff02::1]:1", AddressRefusal::Multicast),
                ("[::ffff:224.0.0.1]:1", AddressRefusal::Multicast),
                ("255.255.255.255:1", AddressRefusal::Broadcast),
                ("8.8.8.8:0", AddressRefusal::PortZero),
            ] {
                assert_eq!(check(policy, addr), Err(why), "{addr} under {policy:?}");
            }
        }
    }

    #[test]
    fn loopback_and_private_follow_the_policy() {
        let loopback = [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ];
        let private = [
            "10.0.0.1:1",
            "172.16.0.1:1",
            "172.31.255.255:1",
            "192.168.1.1:1",
            "100.64.0.1:1",
            "169.254.1.1:1",
            "[fe80::1]:1",
            "[fd00::1]:1",
            "[::ffff:10.1.2.3]:1",
        ];
        let public = [
            "8.8.8.8:53",
            "172.32.0.1:1",
            "100.128.0.1:1",
            "[2001:db8::1]:1",
        ];
        for a in loopback {
            assert_eq!(check(AddressPolicy::local(), a), Ok(()), "{a}");
            assert_eq!(
                check(AddressPolicy::recommended(), a),
                Err(AddressRefusal::Loopback),
                "{a}"
            );
        }
        for a in private {
            assert_eq!(check(AddressPolicy::local(), a), Ok(()), "{a}");
            assert_eq!(check(AddressPolicy::recommended(), a), Ok(()), "{a}");
            assert_eq!(
                check(AddressPolicy::public_only(), a),
                Err(AddressRefusal::Private),
                "{a}"
            );
        }
        for a in public {
            for p in [
                AddressPolicy::public_only(),
                AddressPolicy::recommended(),
                AddressPolicy::local(),
            ] {
                assert_eq!(check(p, a), Ok(()), "{a}");
            }
        }
    }
}
