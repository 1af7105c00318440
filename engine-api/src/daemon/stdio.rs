//! Container stdio: FIFOs shared with the shim, copiers that write json-file logs and fan out to
//! attached clients, and the stdin writer.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

/// Stream numbers of the multiplexed protocol.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// A chunk of output for an attached client.
pub type Frame = (u8, Bytes);

/// Stdio errors.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("create fifo {path}: {source}")]
    Mkfifo {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<StdioError> for crate::error::ApiError {
    fn from(e: StdioError) -> Self {
        crate::error::ApiError::io("stdio", e)
    }
}

/// Fan-out of output to attached clients plus the stdin writer.
#[derive(Default)]
pub struct Hub {
    subscribers: Mutex<Vec<(bool, bool, mpsc::UnboundedSender<Frame>)>>,
    pub stdin: tokio::sync::Mutex<Option<pipe::Sender>>,
    /// (client, container id, exec id) for Tasks.CloseIO when a client closes stdin.
    pub process: Mutex<Option<(crate::containerd::Containerd, String, String)>>,
}

impl Hub {
    /// Registers a client; it gets the chosen streams until the process's output ends.
    pub fn subscribe(&self, stdout: bool, stderr: bool) -> mpsc::UnboundedReceiver<Frame> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut s) = self.subscribers.lock() {
            s.push((stdout, stderr, tx));
        }
        rx
    }

    fn publish(&self, stream: u8, data: &Bytes) {
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.retain(|(o, e, tx)| {
                let wanted = (stream == STDOUT && *o) || (stream == STDERR && *e);
                !wanted || tx.send((stream, data.clone())).is_ok()
            });
        }
    }

    /// Ends every attached stream (the process's output is finished).
    pub fn close(&self) {
        if let Ok(mut s) = self.subscribers.lock() {
            s.clear();
        }
    }

    /// Drops our end of the stdin FIFO.
    pub async fn close_stdin(&self) {
        self.stdin.lock().await.take();
    }

    /// A client closed its stdin: drop our end and ask the shim to close the process's stdin
    /// (Tasks.CloseIO), as dockerd does.
    pub async fn client_closed_stdin(&self) {
        let had = self.stdin.lock().await.take().is_some();
        let target = self.process.lock().ok().and_then(|p| p.clone());
        if let (true, Some((cd, id, exec))) = (had, target) {
            if let Err(e) = cd.close_stdin(&id, &exec).await {
                tracing::debug!(container_id = %id, error = %e, "close io");
            }
        }
    }
}

/// Paths of one process's FIFOs.
#[derive(Debug, Clone)]
pub struct Fifos {
    pub dir: PathBuf,
    pub stdin: Option<PathBuf>,
    pub stdout: PathBuf,
    pub stderr: Option<PathBuf>,
}

impl Fifos {
    /// `<dir>/<prefix>-stdin|stdout|stderr` (stderr absent with a tty).
    pub fn new(dir: &Path, prefix: &str, stdin: bool, tty: bool) -> Self {
        Fifos {
            dir: dir.to_path_buf(),
            stdin: stdin.then(|| dir.join(format!("{prefix}-stdin"))),
            stdout: dir.join(format!("{prefix}-stdout")),
            stderr: (!tty).then(|| dir.join(format!("{prefix}-stderr"))),
        }
    }

    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.stdin
            .iter()
            .chain(std::iter::once(&self.stdout))
            .chain(self.stderr.iter())
    }

    /// Creates the FIFOs (replacing stale ones).
    pub fn create(&self) -> Result<(), StdioError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| StdioError::Open {
            path: self.dir.clone(),
            source,
        })?;
        for p in self.all() {
            let _ = std::fs::remove_file(p);
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
                |source| StdioError::Mkfifo {
                    path: p.clone(),
                    source,
                },
            )?;
        }
        Ok(())
    }

    pub fn remove(&self) {
        for p in self.all() {
            let _ = std::fs::remove_file(p);
        }
    }

    pub fn stdio(&self, tty: bool) -> crate::containerd::Stdio {
        let s = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        crate::containerd::Stdio {
            stdin: s(&self.stdin),
            stdout: self.stdout.to_string_lossy().into_owned(),
            stderr: s(&self.stderr),
            terminal: tty,
        }
    }

    /// Opens our ends before the task exists: readers for output (plus placeholder writers that
    /// keep them from seeing EOF until the shim has opened its ends) and the stdin writer.
    pub fn open(&self, placeholders: bool) -> Result<Opened, StdioError> {
        let open_err = |path: &PathBuf| {
            let path = path.clone();
            move |source| StdioError::Open { path, source }
        };
        let mut readers = Vec::new();
        let mut holders = Vec::new();
        for (stream, p) in [(STDOUT, Some(&self.stdout)), (STDERR, self.stderr.as_ref())] {
            let Some(p) = p else { continue };
            let rx = pipe::OpenOptions::new()
                .open_receiver(p)
                .map_err(open_err(p))?;
            if placeholders {
                holders.push(
                    pipe::OpenOptions::new()
                        .open_sender(p)
                        .map_err(open_err(p))?,
                );
            }
            readers.push((stream, rx));
        }
        let stdin = match &self.stdin {
            Some(p) => Some(
                pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(p)
                    .map_err(open_err(p))?,
            ),
            None => None,
        };
        Ok(Opened {
            readers,
            holders,
            stdin,
        })
    }
}

/// Our open ends of a process's FIFOs.
pub struct Opened {
    pub readers: Vec<(u8, pipe::Receiver)>,
    /// Dropped once the shim has opened its write ends.
    pub holders: Vec<pipe::Sender>,
    pub stdin: Option<pipe::Sender>,
}

/// The json-file log writer shared by a container's copiers.
pub struct JsonLog {
    file: Mutex<Option<std::fs::File>>,
}

impl JsonLog {
    pub fn open(path: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| tracing::warn!(path = %path.display(), error = %e, "open log"))
            .ok();
        JsonLog {
            file: Mutex::new(file),
        }
    }

    /// A log that discards everything (exec processes).
    pub fn none() -> Self {
        JsonLog {
            file: Mutex::new(None),
        }
    }

    fn write(&self, stream: u8, line: &[u8]) {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": if stream == STDERR { "stderr" } else { "stdout" },
            "time": crate::types::now_rfc3339(),
        });
        if let Ok(mut f) = self.file.lock() {
            if let Some(f) = f.as_mut() {
                let mut bytes = entry.to_string().into_bytes();
                bytes.push(b'\n');
                if let Err(e) = f.write_all(&bytes) {
                    tracing::warn!(error = %e, "write log");
                }
            }
        }
    }
}

/// Copies one FIFO to the log and the hub until EOF.
pub fn spawn_copier(
    stream: u8,
    mut rx: pipe::Receiver,
    hub: Arc<Hub>,
    log: Arc<JsonLog>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut line: Vec<u8> = Vec::new();
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "fifo read ended");
                    break;
                }
            };
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            hub.publish(stream, &chunk);
            for b in chunk.iter() {
                line.push(*b);
                if *b == b'\n' || line.len() >= 16 * 1024 {
                    log.write(stream, &line);
                    line.clear();
                }
            }
        }
        if !line.is_empty() {
            log.write(stream, &line);
        }
    })
}

/// The 8-byte header of a multiplexed frame.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let l = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
}
