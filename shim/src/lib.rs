//! containerd-shim-rs: see ARCHITECTURE.md.
