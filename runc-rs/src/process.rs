//! Per-process settings shared by the init and exec: rlimits, user, env, the executable.
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process};

use crate::caps;
use crate::error::{Context, Error, Result};

fn rlimit_resource(t: PosixRlimitType) -> (libc::__rlimit_resource_t, &'static str) {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// Sets every rlimit; raising a hard limit without CAP_SYS_RESOURCE fails with a clear error.
pub fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().as_deref().unwrap_or(&[]) {
        let (res, name) = rlimit_resource(r.typ());
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads a valid rlimit structure.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            let e = std::io::Error::last_os_error();
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into a valid rlimit structure.
            unsafe { libc::getrlimit(res, &mut cur) };
            let why = if e.raw_os_error() == Some(libc::EPERM) && r.hard() > cur.rlim_max {
                format!(
                    "raising the hard limit from {} to {} needs CAP_SYS_RESOURCE",
                    cur.rlim_max,
                    r.hard()
                )
            } else {
                "rejected by the kernel".to_string()
            };
            return Err(Error::io(
                format!(
                    "error setting rlimit {name} (soft {}, hard {}): {why}",
                    r.soft(),
                    r.hard()
                ),
                e,
            ));
        }
    }
    Ok(())
}

/// Writes /proc/self/oom_score_adj.
pub fn set_oom_score_adj(p: &Process) -> Result<()> {
    if let Some(v) = p.oom_score_adj() {
        crate::utils::write_file(Path::new("/proc/self/oom_score_adj"), &v.to_string())?;
    }
    Ok(())
}

/// Groups, gid, uid (keeping capabilities across the uid change), then the capability sets.
pub fn set_user_and_caps(p: &Process, setgroups_allowed: bool) -> Result<()> {
    if let Some(c) = p.capabilities() {
        caps::apply_bounding(c)?;
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let u = p.user();
    if setgroups_allowed {
        let groups: Vec<Gid> = u
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&groups).ctx(|| "setgroups".into())?;
    }
    let gid = Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setgid {}", u.gid()))?;
    let uid = Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setuid {}", u.uid()))?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if let Some(c) = p.capabilities() {
        caps::apply_process(c)?;
    }
    if let Some(m) = u.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
    }
    Ok(())
}

pub fn set_no_new_privs(p: &Process) -> Result<()> {
    if p.no_new_privileges() == Some(true) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(Error::io(
                "set no_new_privs",
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// The process env, with HOME added from /etc/passwd (or `/`) when missing.
pub fn env(p: &Process) -> Vec<String> {
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = p.user().uid();
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 5 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
                })
            })
            .unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds args[0] on the PATH of `env`, as runc does before it reports success.
pub fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        // runc's (Go's exec.LookPath) wording, which clients match on: the docker CLI exits
        // 127 for "no such file or directory" and 126 for "permission denied".
        return match std::fs::metadata(arg0) {
            Err(e) => {
                let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT));
                Err(Error::Init(format!(
                    "exec: {arg0:?}: stat {arg0}: {}",
                    errno.desc().to_lowercase()
                )))
            }
            Ok(_) if is_executable(Path::new(arg0)) => Ok(PathBuf::from(arg0)),
            Ok(_) => Err(Error::Init(format!("exec: {arg0:?}: permission denied"))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let cand = Path::new(if dir.is_empty() { "." } else { dir }).join(arg0);
        if is_executable(&cand) {
            return Ok(cand);
        }
    }
    Err(Error::Init(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// C strings for execve.
pub fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::InvalidArgument(format!("NUL byte in {s:?}")))
        })
        .collect()
}

/// Restores default signal handling (Rust ignores SIGPIPE) and an empty mask before exec.
pub fn reset_signals() {
    for s in [libc::SIGPIPE, libc::SIGINT, libc::SIGTERM, libc::SIGCHLD] {
        // SAFETY: restoring the default disposition of a signal.
        unsafe { libc::signal(s, libc::SIG_DFL) };
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// Marks every fd from `from` on close-on-exec.
pub fn cloexec_from(from: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            from,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
const KEYCTL_SETPERM: libc::c_int = 5;
const KEYCTL_DESCRIBE: libc::c_int = 6;

/// Joins a new session keyring `name` (not the caller's) and makes it searchable, as runc
/// does; kernels without keyrings (ENOSYS) are tolerated.
pub fn join_session_keyring(name: &str, userns: bool) -> Result<()> {
    let c = CString::new(name)
        .map_err(|_| Error::InvalidArgument(format!("bad keyring name {name:?}")))?;
    // SAFETY: keyctl with a valid NUL-terminated name.
    let id = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, c.as_ptr()) };
    if id < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Ok(());
        }
        return Err(Error::io("unable to join session keyring", e));
    }
    let mut buf = [0u8; 256];
    // SAFETY: KEYCTL_DESCRIBE writes at most buf.len() bytes into buf.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            id,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(Error::io(
            "describe session keyring",
            std::io::Error::last_os_error(),
        ));
    }
    // "keyring;uid;gid;perm;description", perm in hex.
    let desc = String::from_utf8_lossy(&buf[..(n as usize).min(buf.len())]).into_owned();
    let perm = desc
        .split(';')
        .nth(3)
        .and_then(|p| u32::from_str_radix(p, 16).ok())
        .ok_or_else(|| Error::Init(format!("unexpected keyring description {desc:?}")))?;
    // With a user namespace 'other' needs search, else the possessor's UID does.
    let add = if userns { 0x8 } else { 0x80000 };
    // SAFETY: keyctl with integer arguments only.
    if unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, id, perm | add) } < 0 {
        return Err(Error::io(
            "unable to mod keyring permissions",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
