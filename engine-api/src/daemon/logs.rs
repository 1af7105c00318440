//! `GET /containers/{id}/logs` from the json-file log: tail, since/until, timestamps, follow.
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::stdio::{frame_header, STDERR, STDOUT};
use super::{Ctr, Daemon};

/// The query of a logs request.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// `None` = all.
    pub tail: Option<usize>,
    /// Unix nanoseconds.
    pub since: Option<i128>,
    pub until: Option<i128>,
}

/// Parses Docker's `since`/`until` values: `1700000000.123456789` or `1700000000`.
pub fn parse_timestamp(s: &str) -> Option<i128> {
    if s.is_empty() {
        return None;
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i128 = secs.parse().ok()?;
    let mut nanos: i128 = 0;
    if !frac.is_empty() {
        let f = format!("{frac:0<9}");
        nanos = f.get(..9)?.parse().ok()?;
    }
    Some(secs * 1_000_000_000 + nanos)
}

struct Entry {
    stream: u8,
    log: String,
    time: String,
    nanos: i128,
}

fn parse_line(line: &str) -> Option<Entry> {
    let v: Value = serde_json::from_str(line).ok()?;
    let time = v["time"].as_str()?.to_string();
    let nanos = chrono::DateTime::parse_from_rfc3339(&time)
        .ok()?
        .timestamp_nanos_opt()? as i128;
    Some(Entry {
        stream: if v["stream"] == "stderr" {
            STDERR
        } else {
            STDOUT
        },
        log: v["log"].as_str().unwrap_or_default().to_string(),
        time,
        nanos,
    })
}

fn render(e: &Entry, o: &LogOptions, tty: bool) -> Option<Bytes> {
    if (e.stream == STDOUT && !o.stdout) || (e.stream == STDERR && !o.stderr) {
        return None;
    }
    if o.since.is_some_and(|s| e.nanos < s) || o.until.is_some_and(|u| e.nanos > u) {
        return None;
    }
    let mut payload = Vec::new();
    if o.timestamps {
        payload.extend_from_slice(e.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(e.log.as_bytes());
    if tty {
        return Some(Bytes::from(payload));
    }
    let mut out = frame_header(e.stream, payload.len()).to_vec();
    out.extend_from_slice(&payload);
    Some(Bytes::from(out))
}

impl Daemon {
    /// Streams the log; the receiver ends when everything (or, with follow, the run) is done.
    ///
    /// The file is opened before this returns, so a `docker rm` racing the request (docker-py's
    /// `run(remove=True)` removes the container before it reads the logs body) cannot take it away.
    pub fn logs(self: &Arc<Self>, c: Arc<Ctr>, o: LogOptions) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(64);
        let path = self.log_path(&c.id);
        let tty = c.record().config.tty;
        let Ok(file) = std::fs::File::open(&path) else {
            return rx;
        };
        tokio::task::spawn_blocking(move || {
            let mut reader = std::io::BufReader::new(file);
            let mut entries = Vec::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if !line.ends_with('\n') {
                    break;
                }
                if let Some(e) = parse_line(&line) {
                    entries.push(e);
                }
                line.clear();
            }
            let wanted: Vec<&Entry> = entries
                .iter()
                .filter(|e| (e.stream == STDOUT && o.stdout) || (e.stream == STDERR && o.stderr))
                .collect();
            let skip = match o.tail {
                Some(n) => wanted.len().saturating_sub(n),
                None => 0,
            };
            for e in wanted.into_iter().skip(skip) {
                if let Some(b) = render(e, &o, tty) {
                    if tx.blocking_send(b).is_err() {
                        return;
                    }
                }
            }
            if !o.follow {
                return;
            }
            // Follow on the same descriptor; `line` may hold the start of a line still being written.
            loop {
                // Read before draining: a run that ends after this check is drained next round.
                let running = c.is_running() || c.update(|r| r.state.restarting);
                loop {
                    match reader.read_line(&mut line) {
                        Ok(n) if n > 0 && line.ends_with('\n') => {
                            if let Some(e) = parse_line(&line) {
                                if o.until.is_some_and(|u| e.nanos > u) {
                                    return;
                                }
                                if let Some(b) = render(&e, &o, tty) {
                                    if tx.blocking_send(b).is_err() {
                                        return;
                                    }
                                }
                            }
                            line.clear();
                        }
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
                if !running || tx.is_closed() {
                    return;
                }
                if o.until.is_some_and(|u| {
                    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128 > u
                }) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_timestamp("10"), Some(10_000_000_000));
        assert_eq!(parse_timestamp("1.5"), Some(1_500_000_000));
        assert_eq!(parse_timestamp("x"), None);
    }

    #[test]
    fn render_frames_and_filters() {
        let e = parse_line(r#"{"log":"hi\n","stream":"stderr","time":"2024-01-01T00:00:00.5Z"}"#)
            .expect("line");
        let o = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let b = render(&e, &o, false).expect("rendered");
        assert_eq!(&b[..8], &[2, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(&b[8..], b"hi\n");
        let only_out = LogOptions {
            stdout: true,
            ..Default::default()
        };
        assert!(render(&e, &only_out, false).is_none());
    }
}
