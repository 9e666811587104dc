//! Host-name resolution at dial time: the [`Resolve`] hook and the connect step of a dial.
//!
//! A dial's address is a socket or a host name ([`p2p_discovery::Address`]). A name is
//! resolved at **every** dial, never cached here, under [`crate::Config::resolve_timeout`];
//! what it resolves to is filtered by discovery's address policy
//! ([`p2p_discovery::host::select_targets`]), and the accepted addresses are tried in the
//! resolver's order within one `connect_timeout`. Every way this can fail ends as a failed
//! dial, which the manager handles like a refused connect (backoff, failure count,
//! staleness): this module decides nothing.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use p2p_discovery::host::select_targets;
use p2p_discovery::{Address, AddressPolicy, HostName};
use prometheus_client::encoding::EncodeLabelSet;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

/// Most addresses kept from one system resolution (the rest are ignored).
const MAX_RESOLVED: usize = 16;

/// The future a [`Resolve`] returns: the addresses of the name, in preference order (only
/// their IPs are used; the port dialed is always the one of the record or URL).
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Resolves host names for dials. The default is [`Resolver::system`]; tests and
/// applications with their own name service plug in another one through [`Resolver::new`]
/// (any `Fn(&HostName, u16) -> ResolveFuture` is one).
///
/// The returned addresses are untrusted: each is checked against the address policy before
/// it is dialed. The future need not bound its own time: the dialer drops it after
/// [`crate::Config::resolve_timeout`].
pub trait Resolve: Send + Sync + 'static {
    /// The socket addresses of `name` with `port`.
    fn resolve(&self, name: &HostName, port: u16) -> ResolveFuture;
}

impl<F> Resolve for F
where
    F: Fn(&HostName, u16) -> ResolveFuture + Send + Sync + 'static,
{
    fn resolve(&self, name: &HostName, port: u16) -> ResolveFuture {
        self(name, port)
    }
}

/// The system resolver (`getaddrinfo` on a blocking thread, through
/// `tokio::net::lookup_host`): `/etc/hosts`, then DNS as the host is configured.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: &HostName, port: u16) -> ResolveFuture {
        let name = name.clone();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((name.as_str(), port)).await?;
            Ok(addrs.take(MAX_RESOLVED).collect())
        })
    }
}

/// The resolver of a [`crate::Network`] (see [`crate::Config::resolver`]). Cheap to clone.
#[derive(Clone)]
pub struct Resolver(Arc<dyn Resolve>);

impl Resolver {
    /// The system resolver ([`SystemResolver`]), as every preset sets.
    pub fn system() -> Self {
        Self(Arc::new(SystemResolver))
    }

    /// Another resolver.
    pub fn new(resolve: impl Resolve) -> Self {
        Self(Arc::new(resolve))
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver(..)")
    }
}

/// Outcome of one resolution (label of `p2p_resolutions_total`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Resolved to at least one address the policy accepts.
    Ok,
    /// The resolver returned an error (no such name, no address, server failure).
    Failed,
    /// The resolver did not answer within `resolve_timeout`.
    Timeout,
    /// Every address it resolved to is refused by the address policy.
    Refused,
}

impl Resolution {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Refused => "refused",
        }
    }
}

/// Label: the outcome of a resolution (`ok`, `failed`, `timeout`, `refused`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResolutionLabel {
    pub(crate) result: &'static str,
}

/// What a dial's connect step needs.
pub(crate) struct Connector<'a> {
    pub(crate) resolver: &'a Resolver,
    pub(crate) resolve_timeout: std::time::Duration,
    pub(crate) connect_timeout: std::time::Duration,
    pub(crate) policy: &'a AddressPolicy,
}

impl Connector<'_> {
    /// Opens a TCP connection to `addr`: a socket is connected as it is; a name is resolved
    /// first (the outcome goes to `count`). Errors are the handshake reason labels of an
    /// outbound dial: `resolve_failed`, `resolve_timeout`, `resolve_refused`,
    /// `connect_failed`, `connect_timeout`.
    pub(crate) async fn connect(
        &self,
        addr: &Address,
        count: impl FnOnce(Resolution),
    ) -> Result<TcpStream, &'static str> {
        let (name, port) = match addr {
            Address::Socket(socket) => {
                return tokio::time::timeout(self.connect_timeout, TcpStream::connect(socket))
                    .await
                    .map_err(|_| "connect_timeout")?
                    .map_err(|_| "connect_failed");
            }
            Address::Host { name, port } => (name, port.get()),
        };
        let resolved =
            tokio::time::timeout(self.resolve_timeout, self.resolver.0.resolve(name, port)).await;
        let resolved = match resolved {
            Err(_) => {
                count(Resolution::Timeout);
                debug!(%name, "host name did not resolve in time");
                return Err("resolve_timeout");
            }
            Ok(Err(e)) => {
                count(Resolution::Failed);
                debug!(%name, error = %e, "host name did not resolve");
                return Err("resolve_failed");
            }
            Ok(Ok(list)) => list,
        };
        // The port is the record's (or the URL's), whatever the resolver returned.
        let resolved = resolved.into_iter().map(|a| SocketAddr::new(a.ip(), port));
        let targets = match select_targets(self.policy, resolved) {
            Ok(t) => t,
            Err(reason) => {
                count(Resolution::Refused);
                debug!(%name, %reason, "host name resolved only to refused addresses");
                return Err("resolve_refused");
            }
        };
        count(Resolution::Ok);
        let deadline = Instant::now() + self.connect_timeout;
        for target in targets {
            match tokio::time::timeout_at(deadline, TcpStream::connect(target)).await {
                Err(_) => return Err("connect_timeout"),
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => debug!(%name, %target, error = %e, "connect failed"),
            }
        }
        Err("connect_failed")
    }
}
