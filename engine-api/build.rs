//! Compiles `init/main.rs` (engine-init, the `--init` process) into a static binary that
//! engine-api embeds: std only, so plain rustc builds it with `+crt-static` and the result runs
//! in images without a libc.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "init/main.rs";
    println!("cargo:rerun-if-changed={src}");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let out = out_dir.join("engine-init");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "--crate-name",
            "engine_init",
            "--target",
            &target,
        ])
        .args(["-C", "target-feature=+crt-static", "-C", "panic=abort"])
        .args(["-C", "opt-level=s", "-C", "strip=symbols"])
        .arg(src)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("run {rustc}: {e}"));
    assert!(
        status.success(),
        "building the static engine-init failed ({status}); it needs the static C library (libc6-dev)"
    );
}
