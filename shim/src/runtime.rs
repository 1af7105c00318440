//! Invocations of the OCI runtime binary (runc-rs, runc or crun) with runc's command line.
//!
//! Every invocation carries the global flags `--root <root> --log <bundle>/log.json
//! --log-format json`; a failed command reports the last error the runtime wrote to that log.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use crate::reaper::Reaper;

/// The runtime used when `containerd.runc.v1.Options.binary_name` is empty.
pub const DEFAULT_RUNTIME: &str = "runc-rs";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime binary {0:?} not found beside the shim or on PATH")]
    NotFound(String),
    #[error("run {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("{command}: {message}")]
    Failed {
        command: String,
        status: u32,
        message: String,
    },
    #[error("{command}: reading output: {source}")]
    Output {
        command: String,
        source: std::io::Error,
    },
    #[error("{command}: unexpected output: {message}")]
    Parse { command: String, message: String },
}

impl RuntimeError {
    /// Whether the runtime said the container does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::Failed { message, .. }
            if message.contains("does not exist") || message.contains("not found")
                || message.contains("No such"))
    }
}

/// Finds the runtime binary: a path as given, else beside the shim's own executable, else on PATH.
pub fn resolve_binary(name: &str) -> Result<PathBuf, RuntimeError> {
    let name = if name.is_empty() {
        DEFAULT_RUNTIME
    } else {
        name
    };
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        let beside = dir.join(name);
        if is_executable(&beside) {
            return Ok(beside);
        }
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| RuntimeError::NotFound(name.to_string()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The container's stdio for `create`/`exec`: the runtime gets these as fds 0, 1, 2 and the
/// container inherits them.
pub struct ChildStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl ChildStdio {
    /// `/dev/null` on all three.
    pub fn null() -> std::io::Result<Self> {
        let rd = std::fs::File::open("/dev/null")?;
        let wr = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
        Ok(Self {
            stdin: rd.into(),
            stdout: wr.try_clone()?.into(),
            stderr: wr.into(),
        })
    }
}

/// Options of `create` and `exec` shared by both.
pub struct SpawnOpts<'a> {
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub stdio: ChildStdio,
}

/// One runtime binary bound to a root directory and a log file.
#[derive(Clone)]
pub struct Runtime {
    binary: PathBuf,
    root: PathBuf,
    log: PathBuf,
    systemd_cgroup: bool,
    reaper: Arc<Reaper>,
}

impl Runtime {
    pub fn new(
        binary: PathBuf,
        root: PathBuf,
        log: PathBuf,
        systemd_cgroup: bool,
        reaper: Arc<Reaper>,
    ) -> Self {
        Self {
            binary,
            root,
            log,
            systemd_cgroup,
            reaper,
        }
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn command(&self, args: &[OsString]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd
    }

    fn describe(&self, args: &[OsString]) -> String {
        let verb = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{} {}", self.binary.display(), verb)
    }

    /// Runs a command whose stdio belongs to a container; only the exit status matters.
    async fn run_with_stdio(
        &self,
        args: Vec<OsString>,
        stdio: ChildStdio,
    ) -> Result<(), RuntimeError> {
        let command = self.describe(&args);
        let mut cmd = self.command(&args);
        cmd.stdin(Stdio::from(stdio.stdin))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr));
        let since = self.log_len();
        let started = std::time::Instant::now();
        let (child, exit) = self
            .reaper
            .spawn(&mut cmd)
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.display().to_string(),
                source,
            })?;
        // The fds given to the child are closed in the shim when `cmd` is dropped.
        drop(cmd);
        drop(child);
        let status = exit.await.map(|e| e.status).unwrap_or(255);
        tracing::debug!(%command, status, micros = started.elapsed().as_micros() as u64, "runtime");
        if status != 0 {
            let message = self
                .last_error(since)
                .unwrap_or_else(|| format!("exit status {status}"));
            return Err(RuntimeError::Failed {
                command,
                status,
                message,
            });
        }
        Ok(())
    }

    /// Runs a command, feeding `input` on stdin, and returns its stdout.
    async fn run(
        &self,
        args: Vec<OsString>,
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>, RuntimeError> {
        let command = self.describe(&args);
        let mut cmd = self.command(&args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let since = self.log_len();
        let started = std::time::Instant::now();
        let (mut child, exit) =
            self.reaper
                .spawn(&mut cmd)
                .map_err(|source| RuntimeError::Spawn {
                    binary: self.binary.display().to_string(),
                    source,
                })?;
        let io_err = |source| RuntimeError::Output {
            command: command.clone(),
            source,
        };
        if let (Some(mut stdin), Some(data)) = (child.stdin.take(), input) {
            // Resource updates are a few hundred bytes: far below the pipe buffer, so this
            // blocking write cannot stall.
            stdin.write_all(data).map_err(io_err)?;
        }
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        drop(child);
        let (out, err, exit) = tokio::join!(read_all(stdout), read_all(stderr), exit);
        let status = exit.map(|e| e.status).unwrap_or(255);
        tracing::debug!(%command, status, micros = started.elapsed().as_micros() as u64, "runtime");
        let out = out.map_err(io_err)?;
        if status != 0 {
            let stderr_text = err
                .ok()
                .map(|e| String::from_utf8_lossy(&e).trim().to_string())
                .unwrap_or_default();
            let message = self
                .last_error(since)
                .or(if stderr_text.is_empty() {
                    None
                } else {
                    Some(stderr_text)
                })
                .unwrap_or_else(|| format!("exit status {status}"));
            return Err(RuntimeError::Failed {
                command,
                status,
                message,
            });
        }
        Ok(out)
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The last error the runtime logged to `log.json` (a line per entry: `{"level","msg","time"}`)
    /// after byte offset `since`, i.e. during this invocation.
    fn last_error(&self, since: u64) -> Option<String> {
        let bytes = std::fs::read(&self.log).ok()?;
        let start = usize::try_from(since).unwrap_or(0).min(bytes.len());
        let text = String::from_utf8_lossy(&bytes[start..]);
        let mut last_msg = None;
        for line in text.lines().rev() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(msg) = entry.get("msg").and_then(|m| m.as_str()) else {
                continue;
            };
            let level = entry.get("level").and_then(|l| l.as_str()).unwrap_or("");
            if level == "error" || level == "fatal" {
                return Some(msg.to_string());
            }
            if last_msg.is_none() {
                last_msg = Some(msg.to_string());
            }
        }
        last_msg
    }

    /// `create --bundle B --pid-file P [--console-socket S] <id>`.
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        opts: SpawnOpts<'_>,
    ) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec![
            "create".into(),
            "--bundle".into(),
            bundle.into(),
            "--pid-file".into(),
            opts.pid_file.into(),
        ];
        if let Some(sock) = opts.console_socket {
            args.push("--console-socket".into());
            args.push(sock.into());
        }
        args.push(id.into());
        self.run_with_stdio(args, opts.stdio).await
    }

    /// `exec --detach --process F --pid-file P [--console-socket S] <id>`.
    pub async fn exec(
        &self,
        id: &str,
        process_file: &Path,
        opts: SpawnOpts<'_>,
    ) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec![
            "exec".into(),
            "--detach".into(),
            "--process".into(),
            process_file.into(),
            "--pid-file".into(),
            opts.pid_file.into(),
        ];
        if let Some(sock) = opts.console_socket {
            args.push("--console-socket".into());
            args.push(sock.into());
        }
        args.push(id.into());
        self.run_with_stdio(args, opts.stdio).await
    }

    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(vec!["start".into(), id.into()], None)
            .await
            .map(drop)
    }

    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["kill".into()];
        if all {
            args.push("--all".into());
        }
        args.push(id.into());
        args.push(signal.to_string().into());
        self.run(args, None).await.map(drop)
    }

    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["delete".into()];
        if force {
            args.push("--force".into());
        }
        args.push(id.into());
        self.run(args, None).await.map(drop)
    }

    pub async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(vec!["pause".into(), id.into()], None)
            .await
            .map(drop)
    }

    pub async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(vec!["resume".into(), id.into()], None)
            .await
            .map(drop)
    }

    /// `update --resources - <id>` with the LinuxResources JSON on stdin.
    pub async fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), RuntimeError> {
        self.run(
            vec!["update".into(), "--resources".into(), "-".into(), id.into()],
            Some(resources_json),
        )
        .await
        .map(drop)
    }

    /// `ps --format json <id>`: the pids in the container.
    pub async fn ps(&self, id: &str) -> Result<Vec<u32>, RuntimeError> {
        let command = "ps".to_string();
        let out = self
            .run(
                vec!["ps".into(), "--format".into(), "json".into(), id.into()],
                None,
            )
            .await?;
        let text = String::from_utf8_lossy(&out);
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed == "null" {
            return Ok(Vec::new());
        }
        serde_json::from_str::<Vec<u32>>(trimmed).map_err(|e| RuntimeError::Parse {
            command,
            message: e.to_string(),
        })
    }

    /// `events --stats <id>`: one runc stats event (`{"type":"stats","id":…,"data":{…}}`).
    pub async fn stats(&self, id: &str) -> Result<serde_json::Value, RuntimeError> {
        let command = "events --stats".to_string();
        let out = self
            .run(vec!["events".into(), "--stats".into(), id.into()], None)
            .await?;
        serde_json::from_slice(&out).map_err(|e| RuntimeError::Parse {
            command,
            message: e.to_string(),
        })
    }
}

async fn read_all(fd: Option<OwnedFd>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(fd) = fd {
        let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
        rx.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_and_path_lookup() {
        assert_eq!(
            resolve_binary("/usr/sbin/runc").unwrap(),
            PathBuf::from("/usr/sbin/runc")
        );
        assert_eq!(resolve_binary("sh").unwrap().file_name().unwrap(), "sh");
        assert!(matches!(
            resolve_binary("no-such-runtime-xyz"),
            Err(RuntimeError::NotFound(_))
        ));
    }

    #[test]
    fn last_error_prefers_error_level() {
        let dir = std::env::temp_dir().join(format!("shim-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log.json");
        std::fs::write(
            &log,
            "{\"level\":\"error\",\"msg\":\"first\"}\n{\"level\":\"error\",\"msg\":\"container_linux.go: exec: \\\"nope\\\": not found\"}\n{\"level\":\"info\",\"msg\":\"later\"}\n",
        )
        .unwrap();
        let rt = Runtime::new("x".into(), "/tmp".into(), log, false, Reaper::new());
        assert_eq!(
            rt.last_error(0).unwrap(),
            "container_linux.go: exec: \"nope\": not found"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
