//! Tracing setup: text logs on stderr, `-D` for debug level.
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (idempotent: a second call is ignored).
pub fn init(debug: bool) {
    let default = if debug {
        "debug,h2=info,hyper=info,tower=info"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
