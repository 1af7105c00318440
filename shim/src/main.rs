//! containerd-shim-rs: see ARCHITECTURE.md.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Parser)]
#[command(
    name = "containerd-shim-rs",
    version,
    about = "Task shim between containerd-rs and an OCI runtime"
)]
struct Cli {
    #[arg(long)]
    namespace: String,
    #[arg(long)]
    id: String,
    /// containerd-rs's socket, where task events are published.
    #[arg(long)]
    address: String,
    /// The bundle directory (default: the current directory).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Runtime root base; the runtime gets `<dir>/<namespace>`.
    #[arg(long)]
    runtime_root: Option<PathBuf>,
    /// Where the shim socket is created (default: `<parent of --runtime-root>/s`).
    #[arg(long)]
    socket_dir: Option<PathBuf>,
    #[arg(long)]
    debug: bool,
    #[arg(value_enum)]
    action: Action,
}

#[derive(Clone, Copy, ValueEnum)]
enum Action {
    Start,
    Delete,
}

fn main() {
    let cli = Cli::parse();
    // A plain level, not an EnvFilter: the filter's regex engine would add a quarter of a MiB of
    // code to every shim's resident memory (one shim runs per container).
    let level = if cli.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let bundle = match cli.bundle {
        Some(b) => b,
        None => match std::env::current_dir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("containerd-shim-rs: current directory: {e}");
                std::process::exit(1);
            }
        },
    };
    let cfg = containerd_shim_rs::Config {
        namespace: cli.namespace,
        id: cli.id,
        address: cli.address,
        bundle,
        runtime_root: cli.runtime_root,
        socket_dir: cli.socket_dir,
        debug: cli.debug,
    };
    let out = match cli.action {
        Action::Start => containerd_shim_rs::start(&cfg).map(|address| address.into_bytes()),
        Action::Delete => containerd_shim_rs::delete(&cfg),
    };
    match out {
        Ok(bytes) => {
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(&bytes);
            let _ = stdout.flush();
        }
        Err(e) => {
            eprintln!("containerd-shim-rs: {e}");
            std::process::exit(1);
        }
    }
}
