//! engine-init: the init that `docker run --init` puts at pid 1 (docker-init/tini's role). It runs
//! `engine-init [--] <command> [args...]` as its only child, forwards every signal it receives to
//! that child, reaps every zombie re-parented to it, and exits with the child's status (128 + the
//! signal number when the child was killed by a signal).
//!
//! engine-api's build script compiles this file on its own with `rustc -C target-feature=+crt-static`
//! (std only, no crates), so the binary runs in any image; it is embedded in engine-api and
//! bind-mounted read-only at `/sbin/docker-init`. Cargo also builds it as an ordinary bin, so
//! that clippy and the unit tests see it.
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{exit, Command, ExitStatus};

/// glibc's `sigset_t` (1024 bits).
#[repr(C)]
struct SigSet([u64; 16]);
/// Room for a `siginfo_t` (128 bytes); only the return value of sigtimedwait is used.
#[repr(C)]
struct SigInfo([u64; 16]);
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> i32;
    fn sigdelset(set: *mut SigSet, sig: i32) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const Timespec) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
}

const SIG_SETMASK: i32 = 2;
const WNOHANG: i32 = 1;
const SIGCHLD: i32 = 17;
/// Synchronous signals stay unblocked: they concern the init itself (as in tini).
const SYNCHRONOUS: [i32; 7] = [4, 5, 6, 7, 8, 11, 31]; // ILL TRAP ABRT BUS FPE SEGV SYS

/// The child's command line from ours: an optional leading `--`, then the command.
fn command_line(args: &[String]) -> Option<&[String]> {
    let rest = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => args,
    };
    (!rest.is_empty()).then_some(rest)
}

/// The init's exit code for the child's wait status.
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    }
}

/// Reaps every exited child; returns the status of `child` if it was among them.
fn reap(child: i32) -> Option<i32> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid only writes the status into the valid i32 we pass.
        let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == child {
            found = Some(status);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = command_line(&args) else {
        eprintln!("engine-init: usage: engine-init [--] <command> [args...]");
        exit(1);
    };
    let mut set = SigSet([0; 16]);
    // SAFETY: `set` is a properly sized and aligned sigset_t owned by us; sigprocmask reads it
    // and, with a null old-set pointer, writes nothing.
    unsafe {
        sigfillset(&mut set);
        for s in SYNCHRONOUS {
            sigdelset(&mut set, s);
        }
        sigprocmask(SIG_SETMASK, &set, std::ptr::null_mut());
    }
    let mut command = Command::new(&cmd[0]);
    command.args(&cmd[1..]);
    // SAFETY: the closure runs in the forked child before exec and only calls sigprocmask,
    // which is async-signal-safe, on a sigset_t it owns. (posix_spawn would pass our blocked
    // mask on to the command.)
    unsafe {
        command.pre_exec(|| {
            let empty = SigSet([0; 16]);
            sigprocmask(SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match command.spawn() {
        Ok(c) => c.id() as i32,
        Err(e) => {
            eprintln!("engine-init: exec {} failed: {e}", cmd[0]);
            exit(if e.kind() == std::io::ErrorKind::PermissionDenied {
                126
            } else {
                127
            });
        }
    };
    loop {
        let mut info = SigInfo([0; 16]);
        let timeout = Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: all three pointers are to live, properly sized values owned by this frame.
        let sig = unsafe { sigtimedwait(&set, &mut info, &timeout) };
        if sig > 0 && sig != SIGCHLD {
            // SAFETY: kill has no memory effects; a child that is already gone yields ESRCH.
            unsafe { kill(child, sig) };
        }
        if let Some(status) = reap(child) {
            exit(exit_code(ExitStatus::from_raw(status)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_skips_one_leading_double_dash() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_line(&v(&["--", "sh", "-c", "x"])),
            Some(&v(&["sh", "-c", "x"])[..])
        );
        assert_eq!(
            command_line(&v(&["sleep", "1"])),
            Some(&v(&["sleep", "1"])[..])
        );
        assert_eq!(command_line(&v(&["--"])), None);
        assert_eq!(command_line(&[]), None);
    }

    #[test]
    fn exit_codes_follow_tini() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
