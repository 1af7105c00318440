//! runc-rs: see ARCHITECTURE.md.
