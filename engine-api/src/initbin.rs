//! The `--init` binary: engine-init (init/main.rs), compiled statically by build.rs and embedded
//! here, is written once to `<exec-root>/engine-init` and bind-mounted read-only at
//! `/sbin/docker-init` in containers run with `--init`.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The static engine-init executable.
pub const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/engine-init"));

/// Where containers see the init.
pub const INIT_PATH_IN_CONTAINER: &str = "/sbin/docker-init";

/// Writes the embedded init to `<exec_root>/engine-init` (atomically; kept when identical).
pub fn install(exec_root: &Path) -> std::io::Result<PathBuf> {
    let path = exec_root.join("engine-init");
    if std::fs::read(&path).is_ok_and(|b| b == INIT_BINARY) {
        return Ok(path);
    }
    std::fs::create_dir_all(exec_root)?;
    let tmp = exec_root.join(format!(".engine-init.{}", std::process::id()));
    std::fs::write(&tmp, INIT_BINARY)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_init_is_a_static_elf() {
        assert_eq!(&INIT_BINARY[..4], b"\x7fELF");
        // No PT_INTERP program header: it needs no dynamic loader inside the container.
        let text = String::from_utf8_lossy(INIT_BINARY);
        assert!(
            !text.contains("ld-linux-x86-64.so"),
            "engine-init is dynamically linked"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let p = install(dir.path()).expect("install");
        assert_eq!(std::fs::read(&p).expect("read"), INIT_BINARY);
        assert_eq!(install(dir.path()).expect("again"), p);
    }
}
