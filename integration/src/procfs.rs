//! Reading processes from /proc: parents, executables, namespaces, mounts.

use std::path::{Path, PathBuf};

/// The parent pid of `pid` (field 4 of /proc/<pid>/stat).
pub fn ppid(pid: i32) -> Option<i32> {
    stat_field(pid, 1)?.parse().ok()
}

/// The one-letter state of `pid` (R, S, Z…).
pub fn state(pid: i32) -> Option<String> {
    stat_field(pid, 0)
}

/// Fields after the `(comm)` of /proc/<pid>/stat: 0 = state, 1 = ppid, …
fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n).map(str::to_string)
}

/// True when `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    matches!(state(pid), Some(s) if s != "Z" && s != "X")
}

/// The executable of `pid`, with a ` (deleted)` suffix removed.
pub fn exe(pid: i32) -> Option<PathBuf> {
    let p = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let s = p.to_string_lossy();
    Some(PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s)))
}

/// The NUL-separated arguments of `pid`.
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live processes whose executable is `exe` and whose command line mentions `needle`.
pub fn pids_with_exe_mentioning(exe_path: &Path, needle: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| alive(p))
        .filter(|&p| exe(p).as_deref() == Some(exe_path))
        .filter(|&p| cmdline(p).iter().any(|a| a.contains(needle)))
        .collect()
}

/// The link text of /proc/<pid>/ns/<ns>, e.g. `mnt:[4026531840]`.
pub fn ns(pid: i32, ns: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// One line of a mountinfo file.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

/// Parses /proc/<pid>/mountinfo (`self` for ours).
pub fn mountinfo(pid: &str) -> Vec<MountInfo> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = unescape(left.split_whitespace().nth(4)?);
            let mut r = right.split_whitespace();
            Some(MountInfo {
                mount_point,
                fs_type: r.next()?.to_string(),
                source: r.next()?.to_string(),
                super_options: r.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The mount a process sees at `/` (the last one stacked there).
pub fn root_mount(pid: i32) -> Option<MountInfo> {
    mountinfo(&pid.to_string())
        .into_iter()
        .rev()
        .find(|m| m.mount_point == "/")
}

/// The `name=` option of a mount's super options (e.g. `upperdir`).
pub fn mount_option(m: &MountInfo, name: &str) -> Option<String> {
    m.super_options
        .split(',')
        .find_map(|o| o.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_readable() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert_eq!(ppid(me), Some(nix::unistd::getppid().as_raw()));
        assert_eq!(
            exe(me),
            std::env::current_exe().ok(),
            "exe of the test binary"
        );
        assert!(ns(me, "mnt").is_some_and(|n| n.starts_with("mnt:[")));
        assert!(mountinfo("self").iter().any(|m| m.mount_point == "/"));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\"), "/end\\");
    }
}
