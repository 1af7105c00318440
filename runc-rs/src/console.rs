//! The container's terminal: a pty made inside the container whose master goes to the
//! caller over `--console-socket` with SCM_RIGHTS, as runc does.
use std::io::IoSlice;
use std::os::fd::{AsRawFd, RawFd};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Result};

/// Opens a pty, sends its master over `socket`, and makes the slave this process's
/// stdio and controlling terminal.
pub fn setup(socket: RawFd, size: Option<(u16, u16)>) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "open /dev/ptmx".into())?;
    grantpt(&master).ctx(|| "grantpt".into())?;
    unlockpt(&master).ctx(|| "unlockpt".into())?;
    let name = ptsname_r(&master).ctx(|| "ptsname".into())?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {name}"))?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize structure that lives for the call.
        unsafe { libc::ioctl(slave, libc::TIOCSWINSZ, &ws) };
    }
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None)
        .ctx(|| "send pty master over console socket".into())?;
    drop(master);
    let _ = nix::unistd::close(socket);
    for fd in 0..3 {
        nix::unistd::dup2(slave, fd).ctx(|| format!("dup2 pty slave to {fd}"))?;
    }
    // SAFETY: TIOCSCTTY takes an integer argument; this process leads its own session.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(crate::error::Error::io(
            "set controlling tty",
            std::io::Error::last_os_error(),
        ));
    }
    if slave > 2 {
        let _ = nix::unistd::close(slave);
    }
    Ok(())
}
