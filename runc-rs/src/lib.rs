//! runc-rs: an OCI runtime with runc's command line. See ARCHITECTURE.md.
//!
//! `create` forks the container's init directly from this single-threaded process
//! (raw clone, no re-exec); the init reports over a SOCK_SEQPACKET pair and then blocks
//! on `<root>/<id>/exec.fifo` until `start`.
pub mod caps;
pub mod cgroups;
pub mod commands;
pub mod console;
mod copyup;
pub mod create;
pub mod error;
pub mod hooks;
pub mod init;
pub mod logging;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sync;
pub mod utils;

pub use error::{Error, Result};
