//! Small helpers: /proc parsing, signal names, paths inside the rootfs.
use std::path::{Component, Path, PathBuf};

use nix::sys::signal::Signal;

use crate::error::{Context, Error, Result};

/// Start time (field 22 of /proc/<pid>/stat, clock ticks since boot) and state letter.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field may hold spaces and parentheses: split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// Parses a signal given as a name (`KILL`, `SIGKILL`, `kill`) or a number.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n)
            .map_err(|_| Error::InvalidArgument(format!("unknown signal {s:?}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| Error::InvalidArgument(format!("unknown signal {s:?}")))
}

/// Joins `unsafe_path` under `root`, resolving symlinks as if `root` were `/`,
/// so that the result never escapes `root` (runc's securejoin).
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> = unsafe_path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut current = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            current.pop();
            continue;
        }
        let candidate = current.join(&part);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(Error::InvalidArgument(format!(
                        "too many symlinks in {}",
                        unsafe_path.display()
                    )));
                }
                let target =
                    std::fs::read_link(&full).ctx(|| format!("readlink {}", full.display()))?;
                if target.is_absolute() {
                    current = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => current = candidate,
        }
    }
    Ok(root.join(current))
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub root: String,
    pub mount_point: PathBuf,
    pub optional: String,
    pub fstype: String,
    pub super_opts: String,
}

/// Parses /proc/self/mountinfo.
pub fn mountinfo() -> Result<Vec<MountInfo>> {
    let s = std::fs::read_to_string("/proc/self/mountinfo")
        .ctx(|| "read /proc/self/mountinfo".into())?;
    Ok(s.lines().filter_map(parse_mountinfo_line).collect())
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    Some(MountInfo {
        root: unescape(l.get(3)?),
        mount_point: PathBuf::from(unescape(l.get(4)?)),
        optional: l.get(6..).map(|o| o.join(" ")).unwrap_or_default(),
        fstype: r.first()?.to_string(),
        super_opts: r.get(2).unwrap_or(&"").to_string(),
    })
}

/// Writes `value` to a file that must already exist (cgroup and proc knobs).
pub fn write_file(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).ctx(|| format!("write {:?} to {}", value, path.display()))
}

/// Current time as runc prints it (RFC 3339 with nanoseconds, UTC).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").ok(), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("SIGTERM").ok(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("hup").ok(), Some(Signal::SIGHUP));
        assert_eq!(parse_signal("9").ok(), Some(Signal::SIGKILL));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn secure_join_stays_inside_root() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::os::unix::fs::symlink("/etc", root.join("a/abs")).expect("symlink");
        std::os::unix::fs::symlink("../../..", root.join("a/b/up")).expect("symlink");
        assert_eq!(
            secure_join(root, Path::new("/a/abs/passwd")).ok(),
            Some(root.join("etc/passwd"))
        );
        assert_eq!(
            secure_join(root, Path::new("/a/b/up/x")).ok(),
            Some(root.join("x"))
        );
        assert_eq!(
            secure_join(root, Path::new("../../x")).ok(),
            Some(root.join("x"))
        );
    }

    #[test]
    fn mountinfo_line() {
        let m = parse_mountinfo_line(
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory",
        )
        .expect("parsed");
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(m.fstype, "cgroup");
        assert_eq!(m.super_opts, "rw,memory");
        assert_eq!(m.optional, "shared:5");
    }
}
