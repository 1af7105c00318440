//! Test harness: starts the real binaries in private temp roots.
