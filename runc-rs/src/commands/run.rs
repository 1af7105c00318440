//! `run` in the foreground: runc-rs stays the init's parent, forwards signals to it, and,
//! when the process wants a terminal and no `--console-socket` was given, makes the pty
//! itself and copies between it and its own stdio (as runc does).
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};

/// Receives the pty master the init sends over the console socket.
pub(super) fn recv_master(sock: &UnixStream) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receive the pty master".into())?;
    for c in msg.cmsgs().ctx(|| "receive the pty master".into())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the fd was just received with SCM_RIGHTS and is owned by nobody else.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Init("the init sent no pty master".into()))
}

/// Puts our stdin terminal (if it is one) in raw mode; restores it on drop.
struct RawStdin(Option<nix::sys::termios::Termios>);

impl RawStdin {
    fn new() -> RawStdin {
        use nix::sys::termios;
        let stdin = std::io::stdin();
        match termios::tcgetattr(&stdin) {
            Ok(orig) => {
                let mut raw = orig.clone();
                termios::cfmakeraw(&mut raw);
                let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
                RawStdin(Some(orig))
            }
            Err(_) => RawStdin(None),
        }
    }
}

impl Drop for RawStdin {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Copies our terminal's window size to the pty.
fn copy_winsize(master: i32) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write a winsize structure that lives for the call.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];

fn exit_code(s: WaitStatus) -> Option<i32> {
    match s {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// The init has exited; its output may still be draining.
pub(super) struct Exited {
    pub(super) code: i32,
    output: Option<std::thread::JoinHandle<()>>,
    _raw: Option<RawStdin>,
}

impl Exited {
    /// Waits for the pty output to end (call once the container's processes are gone),
    /// then restores our terminal.
    pub(super) fn finish(self) -> i32 {
        if let Some(t) = self.output {
            let _ = t.join();
        }
        self.code
    }
}

/// Waits for the init, forwarding signals (and window size changes to `master`); with a
/// master, copies stdin to it and its output to stdout.
/// Blocks the signals a foreground `run` forwards, before the container is made: one that
/// arrives meanwhile stays pending for `supervise` (the init unblocks them before execve,
/// hooks get a clean mask from std's spawn).
pub(super) fn block_forwarded() -> Result<SigSet> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .ctx(|| "block signals".into())?;
    Ok(set)
}

pub(super) fn supervise(pid: i32, master: Option<OwnedFd>) -> Result<Exited> {
    // Blocked again here (no-op after block_forwarded), before any copy thread starts, so
    // that only sigwait below sees them.
    let set = block_forwarded()?;
    let raw = master.as_ref().map(|_| RawStdin::new());
    let mut output = None;
    if let Some(m) = &master {
        copy_winsize(m.as_raw_fd());
        let mut from = std::fs::File::from(m.try_clone().ctx(|| "dup pty master".into())?);
        let mut to = std::fs::File::from(m.try_clone().ctx(|| "dup pty master".into())?);
        output = Some(std::thread::spawn(move || {
            let mut out = std::io::stdout();
            let mut buf = [0u8; 8192];
            // EIO once the container's side of the pty is closed.
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
        }));
        // stdin → pty; the thread ends with our stdin (detached on exit otherwise).
        std::thread::spawn(move || {
            let mut input = std::io::stdin();
            let mut buf = [0u8; 8192];
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let target = Pid::from_raw(pid);
    let code = loop {
        // A SIGCHLD may have come before the signals were blocked: look first.
        match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
            Ok(s) => {
                if let Some(c) = exit_code(s) {
                    break c;
                }
            }
            Err(nix::Error::ECHILD) => break 255,
            Err(_) => {}
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) => continue,
            Ok(Signal::SIGWINCH) => {
                if let Some(m) = &master {
                    copy_winsize(m.as_raw_fd());
                }
            }
            Ok(s) => {
                let _ = nix::sys::signal::kill(target, s);
            }
            Err(_) => continue,
        }
    };
    Ok(Exited {
        code,
        output,
        _raw: raw,
    })
}
