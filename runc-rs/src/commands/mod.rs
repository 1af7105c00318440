//! One function per runc command. `main.rs` parses flags and calls these.
mod exec;
mod info;
mod lifecycle;

pub use crate::create::CreateOpts;
pub use exec::{exec, ExecOpts};
pub use info::{features, list, ps, spec, state};
pub use lifecycle::{create, delete, kill, pause, resume, run, start};
