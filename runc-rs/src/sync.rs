//! The sync channel between runc-rs and the container's init: a SOCK_SEQPACKET pair,
//! one message per step (`go`, `hooks`, `ok`, `err:<message>`).
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::error::{Context, Error, Result};

pub const GO: &[u8] = b"go";
pub const HOOKS: &[u8] = b"hooks";
/// The init is in its cgroup (sent while the init already builds its rootfs).
pub const CGROUP: &[u8] = b"cg";
pub const OK: &[u8] = b"ok";
pub const ERR: &[u8] = b"err:";

pub fn pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair".into())
}

/// Sends one message. When the peer has already gone (EPIPE/ECONNRESET), the `err:` message
/// it left behind is the error reported, not the broken pipe: an init that fails early (a bad
/// spec field) may exit before it reads what the parent sends next.
pub fn send(fd: &OwnedFd, msg: &[u8]) -> Result<()> {
    match nix::unistd::write(fd, msg) {
        Ok(_) => Ok(()),
        Err(e @ (nix::Error::EPIPE | nix::Error::ECONNRESET)) => {
            if let Ok(left) = recv(fd) {
                if let Some(m) = left.strip_prefix(ERR) {
                    return Err(Error::Init(String::from_utf8_lossy(m).into_owned()));
                }
            }
            Err(Error::sys("write sync message", e))
        }
        Err(e) => Err(Error::sys("write sync message", e)),
    }
}

/// Reads one message; an empty vector means the peer closed its end.
pub fn recv(fd: &OwnedFd) -> Result<Vec<u8>> {
    // Peek at the size first: a small buffer touches few pages (each one a copy-on-write
    // fault in a freshly cloned init).
    // A peer that exits with one of our messages unread (an init failing before it read
    // `cg`) leaves ECONNRESET pending: it is reported once, before the peer's queued `err:`
    // message, which the next read returns.
    let mut resets = 0;
    let len = loop {
        // SAFETY: recv with MSG_PEEK|MSG_TRUNC into a zero-length buffer only reports the
        // size of the next datagram; it writes nothing.
        let r = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_PEEK | libc::MSG_TRUNC,
            )
        };
        if r >= 0 {
            break r as usize;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::ECONNRESET) if resets < 3 => resets += 1,
            _ => return Err(Error::io("read sync message", e)),
        }
    };
    let mut buf = vec![0u8; len.max(1)];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::sys("read sync message", e)),
        }
    }
}

/// Sends an error and leaves: only the init calls this.
pub fn fail(fd: &OwnedFd, err: &Error) -> ! {
    let mut msg = ERR.to_vec();
    msg.extend_from_slice(err.to_string().as_bytes());
    let _ = nix::unistd::write(fd, &msg);
    // SAFETY: _exit ends the process without running the parent's destructors.
    unsafe { libc::_exit(1) }
}
