//! engine-api: see ARCHITECTURE.md.
