//! The Prometheus `/metrics` endpoint.
//!
//! [`MetricsServer::start`] binds an address (port 0 picks a free port; see
//! [`MetricsServer::local_addr`]) and serves the registry in the OpenMetrics text format
//! (`prometheus_client::encoding::text::encode`) on `GET /metrics`. Every other path is 404.
//! The server stops when the [`MetricsServer`] is shut down or dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Content type of the OpenMetrics text exposition format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running `/metrics` HTTP server.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and starts serving `registry` on a tokio task.
    pub async fn start(addr: SocketAddr, registry: Arc<Registry>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let app = Router::new()
            .route("/metrics", get(serve_metrics))
            .with_state(registry);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // Either an explicit stop or the sender being dropped ends the server.
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
        Ok(Self {
            local_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting requests and waits for open ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve_metrics(State(registry): State<Arc<Registry>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A minimal HTTP/1.1 GET over loopback (the response is read until the server closes).
    pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn scrape_over_loopback() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let mut registry = Registry::default();
            let counter: Counter = Counter::default();
            registry.register("test_events", "Events seen by the test", counter.clone());
            let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(registry))
                .await
                .unwrap();
            let addr = server.local_addr();
            assert_ne!(addr.port(), 0);

            let first = http_get(addr, "/metrics").await;
            assert!(first.starts_with("HTTP/1.1 200"), "{first}");
            assert!(first.contains("application/openmetrics-text"), "{first}");
            assert!(first.contains("test_events_total 0"), "{first}");

            counter.inc_by(5);
            let second = http_get(addr, "/metrics").await;
            assert!(second.contains("test_events_total 5"), "{second}");
            assert!(second.trim_end().ends_with("# EOF"), "{second}");

            let missing = http_get(addr, "/nope").await;
            assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

            server.shutdown().await;
            assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        })
        .await
        .unwrap();
    }
}
