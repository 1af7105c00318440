//! The container's stdio: the shim owns pipes (or the pty master) to the container and copies
//! them to the paths given in CreateTaskRequest / ExecProcessRequest (FIFOs made by the client,
//! plain files, or nothing).
//!
//! Output FIFOs are opened O_RDWR: the open never blocks, and writes never fail with EPIPE while
//! the reader (containerd-rs, engine-api) is away; the shim closes its end when the container's
//! side reaches EOF so the reader sees EOF too. Input FIFOs are opened O_RDONLY|O_NONBLOCK and
//! read once a writer shows up; a writer that closes means EOF, which closes the container's stdin.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use crate::runtime::ChildStdio;

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("open {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("create pipe: {0}")]
    Pipe(io::Error),
    #[error("unsupported stdio uri {0:?}")]
    Unsupported(String),
}

/// Where a process's stdio goes, as the client asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// An output destination. A FIFO is kept open after the container's side closes until its
/// reader has drained it (closing the last fd of a FIFO discards unread bytes).
pub enum Writer {
    Fifo(pipe::Sender),
    File(tokio::fs::File),
}

/// How long a drained output FIFO stays open waiting for its reader.
const FIFO_LINGER: Duration = Duration::from_secs(30);

impl Writer {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Writer::Fifo(w) => w.write_all(data).await,
            Writer::File(w) => w.write_all(data).await,
        }
    }

    async fn close(self) {
        match self {
            Writer::Fifo(w) => {
                let deadline = tokio::time::Instant::now() + FIFO_LINGER;
                while unread(w.as_raw_fd()) > 0 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Writer::File(mut w) => {
                let _ = w.flush().await;
            }
        }
    }
}

/// Bytes waiting in a pipe (FIONREAD).
fn unread(fd: std::os::fd::RawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, valid for the call.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if rc < 0 {
        0
    } else {
        n
    }
}
type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// The shim's side of one process's stdio: the copy tasks, the stdin closer, the pty master.
#[derive(Default)]
pub struct ProcessIo {
    stdin_close: Mutex<Option<oneshot::Sender<()>>>,
    copies: Mutex<Vec<oneshot::Receiver<()>>>,
    console: Mutex<Option<OwnedFd>>,
}

impl ProcessIo {
    /// Creates the pipes for a non-terminal process and starts copying. Returns the child's ends.
    pub fn pipes(paths: &StdioPaths) -> Result<(ChildStdio, ProcessIo), StdioError> {
        let io = ProcessIo::default();
        let null = ChildStdio::null().map_err(|source| StdioError::Open {
            path: "/dev/null".into(),
            source,
        })?;
        let stdin = match open_input(&paths.stdin)? {
            None => null.stdin,
            Some(src) => {
                let (tx, rx) = pipe::pipe().map_err(StdioError::Pipe)?;
                io.spawn_stdin(src, Box::new(tx));
                rx.into_blocking_fd().map_err(StdioError::Pipe)?
            }
        };
        let stdout = match open_output(&paths.stdout)? {
            None => null.stdout,
            Some(dst) => {
                let (tx, rx) = pipe::pipe().map_err(StdioError::Pipe)?;
                io.spawn_output(Box::new(rx), dst);
                tx.into_blocking_fd().map_err(StdioError::Pipe)?
            }
        };
        let stderr = match open_output(&paths.stderr)? {
            None => null.stderr,
            Some(dst) => {
                let (tx, rx) = pipe::pipe().map_err(StdioError::Pipe)?;
                io.spawn_output(Box::new(rx), dst);
                tx.into_blocking_fd().map_err(StdioError::Pipe)?
            }
        };
        Ok((
            ChildStdio {
                stdin,
                stdout,
                stderr,
            },
            io,
        ))
    }

    /// Opens the destinations for a terminal process; [`ProcessIo::attach_console`] starts the
    /// copies once the runtime has sent the pty master.
    pub fn terminal(paths: &StdioPaths) -> Result<(Option<Reader>, Option<Writer>), StdioError> {
        Ok((open_input(&paths.stdin)?, open_output(&paths.stdout)?))
    }

    /// Copies the pty master to stdout and stdin to the master.
    pub fn attach_console(
        master: OwnedFd,
        stdin: Option<Reader>,
        stdout: Option<Writer>,
    ) -> io::Result<ProcessIo> {
        let io = ProcessIo::default();
        if let Some(dst) = stdout {
            io.spawn_output(Box::new(FdIo::new(master.try_clone()?)?), dst);
        }
        if let Some(src) = stdin {
            io.spawn_stdin(src, Box::new(FdIo::new(master.try_clone()?)?));
        }
        *lock(&io.console) = Some(master);
        Ok(io)
    }

    fn spawn_output(&self, mut src: Reader, mut dst: Writer) {
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            let mut broken = false;
            loop {
                let n = match src.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(err) => {
                        tracing::debug!(cause = %err, "container output closed");
                        break;
                    }
                };
                // Keep draining after a write error so the container never blocks on a full pipe.
                if !broken {
                    if let Err(err) = dst.write_all(&buf[..n]).await {
                        tracing::warn!(cause = %err, "writing container output");
                        broken = true;
                    }
                }
            }
            let _ = done_tx.send(());
            dst.close().await;
        });
        lock(&self.copies).push(done_rx);
    }

    fn spawn_stdin(&self, mut src: Reader, mut dst: Box<dyn AsyncWrite + Send + Unpin>) {
        let (tx, rx) = oneshot::channel::<()>();
        *lock(&self.stdin_close) = Some(tx);
        tokio::spawn(async move {
            let copy = async {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match src.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if dst.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            };
            tokio::select! {
                _ = copy => {}
                _ = rx => {}
            }
            let _ = dst.shutdown().await;
        });
    }

    /// Closes the container's stdin (CloseIO).
    pub fn close_stdin(&self) {
        if let Some(tx) = lock(&self.stdin_close).take() {
            let _ = tx.send(());
        }
    }

    /// Waits until the output copies are done (the container closed its side), at most `limit`.
    pub async fn wait_output(&self, limit: Duration) {
        let tasks: Vec<_> = std::mem::take(&mut *lock(&self.copies));
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::debug!("output still open after process exit");
        }
    }

    /// Sets the pty window size (TIOCSWINSZ on the master).
    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        let guard = lock(&self.console);
        let Some(master) = guard.as_ref() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "process has no terminal",
            ));
        };
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call;
        // the fd is owned by `master` and open.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens an output destination: nothing for "", a FIFO read-write, a file for append.
fn open_output(path: &str) -> Result<Option<Writer>, StdioError> {
    if path.is_empty() {
        return Ok(None);
    }
    let (is_uri, path) = match path.strip_prefix("file://") {
        Some(p) => (true, p),
        None if path.contains("://") => return Err(StdioError::Unsupported(path.to_string())),
        None => (false, path),
    };
    let err = |source| StdioError::Open {
        path: path.to_string(),
        source,
    };
    if !is_uri && is_fifo(Path::new(path)) {
        let tx = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(path)
            .map_err(err)?;
        return Ok(Some(Writer::Fifo(tx)));
    }
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(err)?;
    Ok(Some(Writer::File(tokio::fs::File::from_std(file))))
}

/// Opens an input source: nothing for "", a FIFO non-blocking read-only, or a plain file.
fn open_input(path: &str) -> Result<Option<Reader>, StdioError> {
    if path.is_empty() {
        return Ok(None);
    }
    let path = path.strip_prefix("file://").unwrap_or(path);
    let err = |source| StdioError::Open {
        path: path.to_string(),
        source,
    };
    if is_fifo(Path::new(path)) {
        let rx = pipe::OpenOptions::new().open_receiver(path).map_err(err)?;
        return Ok(Some(Box::new(rx)));
    }
    let file = std::fs::File::open(path).map_err(err)?;
    Ok(Some(Box::new(tokio::fs::File::from_std(file))))
}

fn is_fifo(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false)
}

/// Async reads and writes on a pollable fd (the pty master). EIO on read means the slave side
/// is closed and is reported as EOF.
pub struct FdIo(AsyncFd<OwnedFd>);

impl FdIo {
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
        // SAFETY: the fd is an OwnedFd moved into the AsyncFd, so it stays open exactly as
        // long as the registration.
        Ok(Self(unsafe { AsyncFd::register(fd) }?))
    }
}

impl AsyncRead for FdIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard
                .try_io(|fd| nix::unistd::read(fd.as_raw_fd(), unfilled).map_err(io::Error::from))
            {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for FdIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
