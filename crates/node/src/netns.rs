//! Linux network namespaces for the multi-host cluster (`p2p-node cluster`).
//!
//! A [`Testbed`] is a small virtual LAN made of network namespaces, driven through the `ip`
//! command of iproute2:
//!
//! ```text
//!            namespace p2pc-<pid>-hub
//!          +---------------------------------+
//!          |  br0  10.213.0.254/24           |
//!          |   |        |            |       |
//!          |  v0       v1    ...    v<N-1>   |
//!          +---|--------|------------|-------+
//!              | veth   | veth       | veth
//!   p2pc-<pid>-n0  p2pc-<pid>-n1  p2pc-<pid>-n<N-1>
//!   eth0 10.213.0.1  eth0 10.213.0.2  eth0 10.213.0.N
//! ```
//!
//! Nothing is added to the host's own namespace: the bridge lives in the hub namespace, every
//! veth pair is created from inside the hub (`ip -n <hub> link add ... peer ... netns <node>`)
//! and each node end is moved straight into its node's namespace. The addresses therefore
//! exist only inside the run's own namespaces, so two runs (different pids, hence different
//! namespace names) never collide even though they use the same subnet.
//!
//! [`Testbed`] deletes every namespace it created when it is torn down or dropped (on success,
//! on error and on panic); deleting a namespace also deletes the veth ends inside it.
//! [`in_namespace`] runs a closure on a fresh thread that has joined a namespace (`setns(2)`
//! through rustix, no unsafe code): the cluster uses it to scrape the nodes' `/metrics` from
//! the hub and to read each node's kernel TCP table.
//!
//! # Security
//!
//! Requires root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`). Creates namespaces named
//! `p2pc-<pid>-*` only and deletes only those it created.

use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// Prefix of every namespace name this module creates.
pub const NAME_PREFIX: &str = "p2pc";
/// The /24 of a testbed: nodes get `.1` to `.N`, the hub's bridge `.254`. It exists only inside
/// the testbed's namespaces.
pub const SUBNET: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 0);
/// Host part of the hub's bridge address.
pub const HUB_HOST: u8 = 254;
/// Most nodes a testbed holds (host parts 1..=MAX_NODES).
pub const MAX_NODES: usize = 200;
/// Name of the bridge in the hub namespace.
const BRIDGE: &str = "br0";
/// Name of the node end of each veth pair.
const NODE_IF: &str = "eth0";

/// Why namespaces could not be set up or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// The process is not root.
    #[error(
        "network namespaces need root (this process runs with effective uid {euid}); run it as root, e.g. with sudo"
    )]
    NotRoot {
        /// The effective user id.
        euid: u32,
    },
    /// The `ip` command (iproute2) could not be started.
    #[error("cannot run `ip` (iproute2 is needed to create network namespaces): {0}")]
    NoIp(#[source] std::io::Error),
    /// The kernel or the environment refused to create a namespace (no `CONFIG_NET_NS`, a
    /// container without `CAP_SYS_ADMIN`, no writable `/run/netns`, ...).
    #[error("cannot create a network namespace (`ip netns add {name}`): {stderr}")]
    Unsupported {
        /// The namespace.
        name: String,
        /// What `ip` said.
        stderr: String,
    },
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Command {
        /// The arguments.
        args: String,
        /// What `ip` said.
        stderr: String,
    },
    /// More nodes than the testbed's subnet holds.
    #[error("a testbed holds 1 to {MAX_NODES} nodes, not {0}")]
    TooManyNodes(usize),
    /// A thread could not join a namespace.
    #[error("cannot enter network namespace {name}: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The thread running inside a namespace could not be started or panicked.
    #[error("the thread inside network namespace {0} failed")]
    Thread(String),
}

impl NetnsError {
    /// Whether the error means namespaces are not available here at all (not root, no
    /// iproute2, no kernel support), as opposed to a failure of a run.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::NotRoot { .. } | Self::NoIp(_) | Self::Unsupported { .. }
        )
    }
}

/// The namespaces, bridge and veth pairs of one run; deleted on [`Testbed::teardown`] or drop.
#[derive(Debug)]
pub struct Testbed {
    hub: String,
    nodes: Vec<String>,
    /// Namespaces created so far, in creation order.
    created: Vec<String>,
}

impl Testbed {
    /// Creates the hub namespace with its bridge and `nodes` node namespaces, each with a veth
    /// pair into the bridge, its address and `lo` up.
    ///
    /// Checks first that the process is root and that `ip` runs; the errors for which
    /// [`NetnsError::is_unavailable`] holds say that namespaces cannot be used here.
    pub fn create(nodes: usize) -> Result<Self, NetnsError> {
        if nodes == 0 || nodes > MAX_NODES {
            return Err(NetnsError::TooManyNodes(nodes));
        }
        check_available()?;
        let pid = std::process::id();
        let mut bed = Self {
            hub: format!("{NAME_PREFIX}-{pid}-hub"),
            nodes: (0..nodes)
                .map(|i| format!("{NAME_PREFIX}-{pid}-n{i}"))
                .collect(),
            created: Vec::new(),
        };
        // The first namespace tells whether namespaces work at all.
        let hub = bed.hub.clone();
        match ip(&["netns", "add", &hub]) {
            Ok(()) => bed.created.push(hub.clone()),
            Err(NetnsError::Command { stderr, .. }) => {
                return Err(NetnsError::Unsupported { name: hub, stderr });
            }
            Err(e) => return Err(e),
        }
        let bridge_addr = format!("{}/24", bed.hub_addr());
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["-n", &hub, "addr", "add", &bridge_addr, "dev", BRIDGE])?;
        ip(&["-n", &hub, "link", "set", BRIDGE, "up"])?;
        for i in 0..nodes {
            let ns = bed.nodes[i].clone();
            ip(&["netns", "add", &ns])?;
            bed.created.push(ns.clone());
            let hub_end = format!("v{i}");
            ip(&[
                "-n", &hub, "link", "add", &hub_end, "type", "veth", "peer", "name", NODE_IF,
                "netns", &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &hub_end, "master", BRIDGE])?;
            ip(&["-n", &hub, "link", "set", &hub_end, "up"])?;
            let addr = format!("{}/24", bed.node_addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", NODE_IF])?;
            ip(&["-n", &ns, "link", "set", NODE_IF, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(bed)
    }

    /// Number of node namespaces.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the testbed has no node namespace (never true for a created testbed).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Name of the hub namespace (holds the bridge and the `.254` address).
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// Name of node `i`'s namespace.
    pub fn node(&self, i: usize) -> Option<&str> {
        self.nodes.get(i).map(String::as_str)
    }

    /// Address of node `i` (`10.213.0.<i+1>`).
    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        host_addr(u8::try_from(i + 1).unwrap_or(u8::MAX))
    }

    /// Address of the hub's bridge (`10.213.0.254`).
    pub fn hub_addr(&self) -> Ipv4Addr {
        host_addr(HUB_HOST)
    }

    /// Deletes every namespace created so far (idempotent); returns the failures.
    pub fn teardown(&mut self) -> Vec<NetnsError> {
        let mut errors = Vec::new();
        // Node namespaces first (their veth ends go with them), the hub last.
        while let Some(ns) = self.created.pop() {
            if let Err(e) = ip(&["netns", "delete", &ns]) {
                errors.push(e);
            }
        }
        errors
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for e in self.teardown() {
            eprintln!("warning: {e}");
        }
    }
}

/// `10.213.0.<host>`.
fn host_addr(host: u8) -> Ipv4Addr {
    let [a, b, c, _] = SUBNET.octets();
    Ipv4Addr::new(a, b, c, host)
}

/// Checks that the process is root and that `ip` runs.
pub fn check_available() -> Result<(), NetnsError> {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        return Err(NetnsError::NotRoot {
            euid: euid.as_raw(),
        });
    }
    Command::new("ip")
        .arg("-V")
        .output()
        .map_err(NetnsError::NoIp)?;
    Ok(())
}

/// Runs `ip ARGS`, with its error output in the error.
fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(NetnsError::NoIp)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Command {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `f` on a new thread that has joined the named network namespace, and returns its
/// result. Sockets `f` opens belong to that namespace; the calling thread is not affected.
pub fn in_namespace<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let path = format!("{NETNS_DIR}/{name}");
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn_scoped(scope, || {
                let file = std::fs::File::open(&path)?;
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                Ok::<T, std::io::Error>(f())
            })
            .map_err(|_| NetnsError::Thread(name.to_owned()))?;
        match handle.join() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(NetnsError::Enter {
                name: name.to_owned(),
                source,
            }),
            Err(_) => Err(NetnsError::Thread(name.to_owned())),
        }
    })
}

/// A plain HTTP/1.1 `GET path` with `Connection: close`; returns the body of a 200 response.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    parse_http_response(&text).map(str::to_owned)
}

/// The body of a `200` HTTP/1.1 response (not chunked), or an error naming the status.
pub fn parse_http_response(text: &str) -> std::io::Result<&str> {
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "incomplete HTTP response",
        ));
    };
    let status = head.lines().next().unwrap_or_default();
    if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") {
        Ok(body)
    } else {
        Err(std::io::Error::other(format!("HTTP status {status:?}")))
    }
}

/// One established TCP connection from the kernel's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConn {
    /// The local end.
    pub local: SocketAddrV4,
    /// The remote end.
    pub remote: SocketAddrV4,
}

impl fmt::Display for TcpConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.local, self.remote)
    }
}

/// The established IPv4 TCP connections of the calling thread's network namespace (read from
/// `/proc/thread-self/net/tcp`; call it inside [`in_namespace`]).
pub fn established_tcp() -> std::io::Result<Vec<TcpConn>> {
    let text = std::fs::read_to_string("/proc/thread-self/net/tcp")?;
    Ok(parse_proc_net_tcp(&text))
}

/// TCP state code of ESTABLISHED in `/proc/net/tcp`.
const TCP_ESTABLISHED: &str = "01";

/// Parses the established connections out of the text of `/proc/net/tcp`. Lines that do not
/// parse are skipped.
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpConn> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let local = parse_proc_addr(fields.next()?)?;
            let remote = parse_proc_addr(fields.next()?)?;
            (fields.next()? == TCP_ESTABLISHED).then_some(TcpConn { local, remote })
        })
        .collect()
}

/// `0100000A:0BB8` to `10.0.0.1:3000`: the address is the raw 4 network-order bytes printed as
/// a host-order `u32`, the port a host-order `u16`.
fn parse_proc_addr(field: &str) -> Option<SocketAddrV4> {
    let (ip, port) = field.split_once(':')?;
    if ip.len() != 8 {
        return None;
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines() {
        let a = u32::from_ne_bytes([10, 213, 0, 1]);
        let b = u32::from_ne_bytes([10, 213, 0, 2]);
        let text = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             \x20  0: {a:08X}:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
             \x20  1: {a:08X}:0BB8 {b:08X}:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
             \x20  2: garbage\n"
        );
        let conns = parse_proc_net_tcp(&text);
        assert_eq!(
            conns,
            vec![TcpConn {
                local: "10.213.0.1:3000".parse().unwrap(),
                remote: "10.213.0.2:50000".parse().unwrap(),
            }]
        );
        assert_eq!(parse_proc_addr("0100000A"), None);
        assert_eq!(parse_proc_addr("zz00000A:0BB8"), None);
    }

    #[test]
    fn http_responses() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n# EOF";
        assert_eq!(parse_http_response(ok).unwrap(), "# EOF");
        assert!(parse_http_response("HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        assert!(parse_http_response("HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_http_response("").is_err());
    }

    #[test]
    fn addresses_and_limits() {
        assert_eq!(host_addr(1), Ipv4Addr::new(10, 213, 0, 1));
        assert!(matches!(
            Testbed::create(0),
            Err(NetnsError::TooManyNodes(0))
        ));
        assert!(matches!(
            Testbed::create(MAX_NODES + 1),
            Err(NetnsError::TooManyNodes(_))
        ));
    }
}
