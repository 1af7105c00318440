//! containerd-rs: see ARCHITECTURE.md.
