//! Helpers for deploy/bench.sh (engine-api beside dockerd):
//! - `api-bench rate <unix socket> <path> <seconds>`: sends `GET <path>` back to back on ONE
//!   keep-alive HTTP/1.1 connection for the given time and prints `<requests> <req/s>`;
//! - `api-bench spawn <unix socket> <log file> <command> [args...]`: starts the daemon (stdio to
//!   the log), polls `GET /_ping` on the socket every millisecond and prints `<pid> <ms>`: the
//!   time from the spawn to the first `200`. The daemon keeps running; the caller stops it.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn read_response(r: &mut BufReader<UnixStream>) -> std::io::Result<u16> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                len = v.parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::other(format!("chunk size {line:?}: {e}")))?;
            let mut buf = vec![0u8; size + 2];
            r.read_exact(&mut buf)?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = len {
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf)?;
    }
    Ok(status)
}

fn ping(sock: &str) -> bool {
    let Ok(stream) = UnixStream::connect(sock) else {
        return false;
    };
    let Ok(mut w) = stream.try_clone() else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if w.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    matches!(read_response(&mut BufReader::new(stream)), Ok(200))
}

fn spawn(sock: &str, log: &str, cmd: &[String]) -> Result<(), String> {
    let _ = std::fs::remove_file(sock);
    let out = std::fs::File::create(log).map_err(|e| format!("create {log}: {e}"))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", cmd[0]))?;
    let deadline = start + Duration::from_secs(120);
    loop {
        if ping(sock) {
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            println!("{} {ms:.1}", child.id());
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("{} exited with {st} before answering", cmd[0]));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("{} did not answer within 120 s", cmd[0]));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn rate(sock: &str, path: &str, secs: &str) -> Result<(), String> {
    let secs: f64 = match secs.parse() {
        Ok(s) if s > 0.0 && s <= 600.0 => s,
        _ => return Err("seconds must be in (0, 600]".into()),
    };
    let stream = UnixStream::connect(sock).map_err(|e| format!("connect {sock}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    let req = format!("GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n");
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        w.write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        match read_response(&mut r) {
            Ok(200) => n += 1,
            Ok(s) => return Err(format!("status {s}")),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let el = start.elapsed().as_secs_f64();
    println!("{n} {:.0}", n as f64 / el);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("rate") if args.len() == 5 => rate(&args[2], &args[3], &args[4]),
        Some("spawn") if args.len() >= 5 => spawn(&args[2], &args[3], &args[4..]),
        _ => {
            eprintln!("usage: api-bench rate <socket> <path> <seconds>\n       api-bench spawn <socket> <log> <command> [args...]");
            return std::process::ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
