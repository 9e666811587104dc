//! Structured logs on standard error, human-readable or JSON.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber.
///
/// `filter` is an `EnvFilter` directive (`info`, `p2p=debug,info`, ...); the `RUST_LOG`
/// environment variable, when set, takes precedence. JSON logs have one object per line with
/// the event's fields at the top level (`timestamp`, `level`, `target`, `message`, ...).
/// Installing twice is a no-op (the second call returns without changing anything).
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // Only fails when a subscriber is already installed, which keeps the first one.
    let _ = result;
}
