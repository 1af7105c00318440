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
        let b = INIT_BINARY;
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().expect("8 bytes")) as usize;
        let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
        assert!(phnum > 0);
        for i in 0..phnum {
            let o = phoff + i * phentsize;
            let p_type = u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
            assert_ne!(p_type, 3, "engine-init has a PT_INTERP: dynamically linked");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let p = install(dir.path()).expect("install");
        assert_eq!(std::fs::read(&p).expect("read"), INIT_BINARY);
        assert_eq!(install(dir.path()).expect("again"), p);
    }
}
