//! One function per runc command. `main.rs` parses flags and calls these.
mod events;
mod exec;
mod info;
mod lifecycle;
mod run;
mod update;

pub use crate::create::CreateOpts;
pub use events::{events, parse_duration};
pub use exec::{exec, ExecOpts};
pub use info::{features, list, ps, spec, state};
pub use lifecycle::{create, delete, kill, pause, resume, run, start};
pub use update::{parse_bytes, update, UpdateOpts};
