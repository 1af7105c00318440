//! containerd-rs: the lifecycle daemon. Serves the containerd v1 gRPC API on a unix socket:
//! metadata in redb ([`meta`]), a content store ([`content`]), snapshotters ([`snapshot`]),
//! layer apply/diff ([`diff`]), events ([`events`]) and tasks through shims ([`shim`]).
//! [`services`] holds the thin gRPC layer; [`server::Daemon`] wires everything.
#![forbid(unsafe_code)]
// tonic's handlers return `Result<_, tonic::Status>` by signature; boxing it is not an option.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod content;
pub mod diff;
pub mod events;
pub mod filter;
pub mod gc;
pub mod meta;
pub mod monitor;
pub mod mount;
pub mod server;
pub mod services;
pub mod shim;
pub mod snapshot;
pub mod tasks;
pub mod util;

use std::path::PathBuf;

pub use server::{run, Daemon};

/// Command-line configuration (ARCHITECTURE.md, "Command-line contracts").
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "containerd-rs", version, about = "containerd v1 API daemon")]
pub struct Config {
    /// The gRPC unix socket.
    #[arg(
        long,
        short = 'a',
        default_value = "/run/containerd-rs/containerd.sock"
    )]
    pub address: PathBuf,
    /// Persistent data (metadata, content, snapshots).
    #[arg(long, default_value = "/var/lib/containerd-rs")]
    pub root: PathBuf,
    /// Runtime state (bundles, shim sockets).
    #[arg(long, default_value = "/run/containerd-rs")]
    pub state: PathBuf,
    /// Configuration file (see [`config`]; default `/etc/containerd-rs/config.toml` if present).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// The shim binary (default: `containerd-shim-rs` beside this executable, then on PATH).
    #[arg(long)]
    pub shim_binary: Option<PathBuf>,
    /// The OCI runtime the shim runs when the container's options name none (default `runc-rs`).
    #[arg(long)]
    pub runtime_binary: Option<PathBuf>,
    /// Debug logging.
    #[arg(long, short = 'D')]
    pub debug: bool,
    /// `[runtimes.<name>]` of the configuration file.
    #[arg(skip)]
    pub runtimes: std::collections::BTreeMap<String, config::RuntimeConfig>,
}

impl Config {
    /// Parses the command line, then applies the configuration file under it: a flag given on
    /// the command line wins over the file, the file over the built-in defaults.
    pub fn from_args() -> Result<Self, config::ConfigError> {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Config::command().get_matches();
        let mut cfg = Config::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let file = config::FileConfig::load(cfg.config.as_deref())?;
        let given =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        if let (false, Some(a)) = (given("address"), file.grpc.address) {
            cfg.address = a;
        }
        if let (false, Some(r)) = (given("root"), file.root) {
            cfg.root = r;
        }
        if let (false, Some(s)) = (given("state"), file.state) {
            cfg.state = s;
        }
        if file.debug.level.as_deref() == Some("debug") {
            cfg.debug = true;
        }
        cfg.runtimes = file.runtimes;
        Ok(cfg)
    }
}
