//! Waiting for Ctrl-C or SIGTERM.

/// Resolves when the process receives Ctrl-C (SIGINT) or, on Unix, SIGTERM; returns the
/// signal's name.
pub async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                name = ctrl_c() => name,
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the node");
                ctrl_c().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await
    }
}

async fn ctrl_c() -> &'static str {
    match tokio::signal::ctrl_c().await {
        Ok(()) => "SIGINT",
        Err(e) => {
            // Without a handler this future must not resolve, or the node would stop at once.
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending().await
        }
    }
}
