//! The Engine API's wire protocol seen on a raw socket: the hijacked attach (101 UPGRADED,
//! multiplexed frames, raw tty stream, stdin half-close, attach before start), wait's early
//! headers and conditions, version prefixes and error shapes, followed logs that outlive a remove.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use integration::{procfs, Stack};

fn connect(s: &Stack) -> UnixStream {
    let sock = UnixStream::connect(s.engine_sock()).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    sock
}

/// Sends a request and reads the status line and headers (the body is left on the stream).
fn request_head(
    s: &Stack,
    method: &str,
    path: &str,
    extra: &str,
    body: &str,
) -> (BufReader<UnixStream>, String, Vec<String>) {
    let mut sock = connect(s);
    write!(
        sock,
        "{method} {path} HTTP/1.1\r\nHost: d\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut r = BufReader::new(sock);
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("header");
        let l = l.trim_end().to_string();
        if l.is_empty() {
            break;
        }
        headers.push(l);
    }
    (r, status.trim_end().to_string(), headers)
}

fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn create(s: &Stack, body: &str) -> String {
    let r = s.api("POST", "/v1.50/containers/create", Some(body.as_bytes()));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["Id"].as_str().unwrap_or_default().to_string()
}

/// Splits a multiplexed stream into (stream, payload) frames.
fn frames(mut data: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let len = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
        assert_eq!(&data[1..4], &[0, 0, 0], "frame header padding: {data:?}");
        let payload = &data[8..8 + len];
        out.push((data[0], String::from_utf8_lossy(payload).into_owned()));
        data = &data[8 + len..];
    }
    assert!(data.is_empty(), "trailing bytes: {data:?}");
    out
}

#[test]
fn attach_before_start_is_multiplexed_and_honours_stdin_half_close() {
    let s = Stack::start();
    let id = create(
        &s,
        r#"{"Image":"busybox","Cmd":["sh","-c","cat; echo err >&2; echo bye"],
            "OpenStdin":true,"StdinOnce":true,"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}"#,
    );
    let (mut r, status, headers) = request_head(
        &s,
        "POST",
        &format!("/v1.50/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1"),
        "Connection: Upgrade\r\nUpgrade: tcp\r\n",
        "",
    );
    assert_eq!(status, "HTTP/1.1 101 UPGRADED", "{headers:?}");
    assert_eq!(header(&headers, "Upgrade"), Some("tcp"), "{headers:?}");
    assert_eq!(
        header(&headers, "Content-Type"),
        Some("application/vnd.docker.multiplexed-stream"),
        "{headers:?}"
    );
    // Start only now: the attached client sees everything from the first byte.
    let st = s.api("POST", &format!("/v1.50/containers/{id}/start"), None);
    assert_eq!(st.status, 204, "{}", st.body);
    let sock = r.get_mut();
    sock.write_all(b"hello\n").expect("stdin");
    // Half-close: cat sees EOF, the shell goes on, and our read side stays open.
    sock.shutdown(Shutdown::Write).expect("half-close");
    let mut data = Vec::new();
    r.read_to_end(&mut data).expect("read to EOF");
    let f = frames(&data);
    let out: String = f
        .iter()
        .filter(|(s, _)| *s == 1)
        .map(|(_, p)| p.as_str())
        .collect();
    let err: String = f
        .iter()
        .filter(|(s, _)| *s == 2)
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("hello\nbye\n", "err\n"),
        "{f:?}"
    );
    let v = s.inspect(&id);
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 0, "{v}");
}

#[test]
fn a_tty_attach_is_a_raw_stream() {
    let s = Stack::start();
    let id = create(
        &s,
        r#"{"Image":"busybox","Tty":true,"Cmd":["sh","-c","sleep 0.5; echo tty-out"],
            "AttachStdout":true,"AttachStderr":true}"#,
    );
    let (mut r, status, headers) = request_head(
        &s,
        "POST",
        &format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1"),
        "Connection: Upgrade\r\nUpgrade: tcp\r\n",
        "",
    );
    assert_eq!(status, "HTTP/1.1 101 UPGRADED");
    assert_eq!(
        header(&headers, "Content-Type"),
        Some("application/vnd.docker.raw-stream"),
        "{headers:?}"
    );
    assert_eq!(
        s.api("POST", &format!("/containers/{id}/start"), None)
            .status,
        204
    );
    let mut data = Vec::new();
    r.read_to_end(&mut data).expect("read to EOF");
    assert_eq!(
        String::from_utf8_lossy(&data),
        "tty-out\r\n",
        "no frame headers, pty newlines"
    );
}

#[test]
fn wait_sends_headers_at_once_and_honours_conditions() {
    let s = Stack::start();
    let id = create(
        &s,
        r#"{"Image":"busybox","Cmd":["sh","-c","sleep 1; exit 3"]}"#,
    );
    // not-running on a created container answers at once.
    let r = s.api(
        "POST",
        &format!("/v1.50/containers/{id}/wait?condition=not-running"),
        None,
    );
    assert_eq!(
        (r.status, r.json()["StatusCode"].as_i64()),
        (200, Some(0)),
        "{}",
        r.body
    );

    // next-exit: headers before the container has even started; the body after its exit.
    let t = Instant::now();
    let (mut next, status, headers) = request_head(
        &s,
        "POST",
        &format!("/v1.50/containers/{id}/wait?condition=next-exit"),
        "",
        "",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "headers took {:?}",
        t.elapsed()
    );
    assert_eq!(header(&headers, "Content-Type"), Some("application/json"));
    let (mut removed, status, _) = request_head(
        &s,
        "POST",
        &format!("/v1.50/containers/{id}/wait?condition=removed"),
        "",
        "",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        s.api("POST", &format!("/v1.50/containers/{id}/start"), None)
            .status,
        204
    );
    let body = chunked_line(&mut next);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(v["StatusCode"], 3, "{body}");
    // removed: still waiting after the exit, answered by the removal.
    removed
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut probe = [0u8; 1];
    assert!(
        removed.get_mut().read(&mut probe).is_err(),
        "nothing before the removal"
    );
    removed
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.docker_ok(&["rm", &id]);
    // The byte read attempt above consumed nothing (it timed out); the chunk follows now.
    let body = chunked_line(&mut removed);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(v["StatusCode"], 3, "{body}");

    let id = create(&s, r#"{"Image":"busybox","Cmd":["true"]}"#);
    let r = s.api(
        "POST",
        &format!("/v1.50/containers/{id}/wait?condition=bogus"),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // The CLI's wait.
    s.docker_ok(&["start", &id]);
    assert_eq!(s.docker_ok(&["wait", &id]), "0");
}

/// Reads one chunk of a chunked body as text.
fn chunked_line(r: &mut BufReader<UnixStream>) -> String {
    let mut size = String::new();
    r.read_line(&mut size).expect("chunk size");
    let n = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|_| panic!("size {size:?}"));
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf).expect("chunk");
    String::from_utf8_lossy(&buf).trim().to_string()
}

#[test]
fn versions_prefixes_and_error_shapes() {
    let s = Stack::start();
    for path in [
        "/containers/json",
        "/v1.24/containers/json",
        "/v1.50/containers/json",
    ] {
        let r = s.api("GET", path, None);
        assert_eq!((r.status, r.body.as_str()), (200, "[]"), "{path}");
        assert_eq!(r.header("Api-Version"), Some("1.50"));
    }
    let r = s.api("GET", "/v1.51/containers/json", None);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.api("HEAD", "/_ping", None);
    assert_eq!(r.status, 200);
    for (k, v) in [
        ("Api-Version", "1.50"),
        ("Ostype", "linux"),
        ("Swarm", "inactive"),
        ("Docker-Experimental", "false"),
        ("Builder-Version", "1"),
    ] {
        assert_eq!(r.header(k), Some(v), "{k}: {:?}", r.headers);
    }
    let id = s.docker_ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "300"]);
    // 304 for a start of a running container, 409 for removing it without force.
    assert_eq!(s.api("POST", "/containers/busy/start", None).status, 304);
    let r = s.api("DELETE", "/v1.50/containers/busy", None);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("container is running")),
        "{}",
        r.body
    );
    let r = s.api(
        "POST",
        "/v1.50/containers/create?name=busy",
        Some(br#"{"Image":"busybox"}"#),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(procfs::alive(s.init_pid(&id)));
}

/// Reads a chunked body to its end.
fn chunked_body(r: &mut BufReader<UnixStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).expect("chunk size");
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|_| panic!("size {size:?}"));
        let mut buf = vec![0u8; n + 2];
        r.read_exact(&mut buf).expect("chunk");
        if n == 0 {
            return body;
        }
        body.extend_from_slice(&buf[..n]);
    }
}

/// docker-py's `containers.run(remove=True)`: it opens `logs?follow=1`, waits, removes the
/// container and only then reads the logs body. The output must still be all there.
#[test]
fn followed_logs_survive_a_remove_before_the_body_is_read() {
    let s = Stack::start();
    for round in 0..5 {
        let id = create(
            &s,
            r#"{"Image":"busybox","Cmd":["sh","-c","echo data; echo more"]}"#,
        );
        let r = s.api("POST", &format!("/containers/{id}/start"), None);
        assert_eq!(r.status, 204, "{}", r.body);
        let (mut body, status, headers) = request_head(
            &s,
            "GET",
            &format!("/v1.50/containers/{id}/logs?follow=1&stdout=1&stderr=1"),
            "",
            "",
        );
        assert!(status.contains("200"), "{status} {headers:?}");
        let r = s.api("POST", &format!("/containers/{id}/wait"), None);
        assert_eq!(r.json()["StatusCode"], 0, "{}", r.body);
        let r = s.api("DELETE", &format!("/containers/{id}"), None);
        assert_eq!(r.status, 204, "{}", r.body);
        let data = chunked_body(&mut body);
        assert_eq!(
            frames(&data),
            vec![(1, "data\n".to_string()), (1, "more\n".to_string())],
            "round {round}"
        );
    }
}
