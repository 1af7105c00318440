//! `docker cp` both ways (running, stopped and never-started containers), the
//! X-Docker-Container-Path-Stat header, symlinks resolved inside the container, `docker export`
//! and `docker diff`.

use std::process::Command;

use base64_free::decode;
use integration::{describe, Stack};

/// Minimal base64 decoding for the stat header (the integration crate has no base64 dep).
mod base64_free {
    pub(crate) fn decode(s: &str) -> Vec<u8> {
        let val = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            } as u32)
        };
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes().filter_map(val) {
            acc = (acc << 6) | c;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}

fn stat(s: &Stack, ctr: &str, path: &str) -> (u16, serde_json::Value) {
    let r = s.api(
        "HEAD",
        &format!("/v1.50/containers/{ctr}/archive?path={path}"),
        None,
    );
    let v = r
        .header("X-Docker-Container-Path-Stat")
        .map(|h| serde_json::from_slice(&decode(h)).unwrap_or_default())
        .unwrap_or_default();
    (r.status, v)
}

#[test]
fn cp_out_of_and_into_a_running_container() {
    let s = Stack::start();
    s.docker_ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);
    s.docker_ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo hello > /data/sub/f && ln -s /data/sub/f /data/link \
         && ln -s /etc/hostname /data/hn",
    ]);
    let dir = s.root.join("host");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = |p: &str| dir.join(p).to_string_lossy().into_owned();

    s.docker_ok(&["cp", "box:/data/sub/f", &d("f.txt")]);
    assert_eq!(
        std::fs::read_to_string(d("f.txt")).unwrap_or_default(),
        "hello\n"
    );
    s.docker_ok(&["cp", "box:/data", &d("datacopy")]);
    assert_eq!(
        std::fs::read_to_string(d("datacopy/sub/f")).unwrap_or_default(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_link(d("datacopy/link"))
            .map(|p| p.to_string_lossy().into_owned())
            .ok(),
        Some("/data/sub/f".to_string()),
        "symlinks are copied as links"
    );
    // -L follows the link inside the container: its /etc/hostname, not the host's.
    s.docker_ok(&["cp", "-L", "box:/data/hn", &d("hn")]);
    let id = s.inspect("box")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(d("hn")).unwrap_or_default(),
        format!("{}\n", &id[..12])
    );

    let (code, st) = stat(&s, "box", "/data/sub/f");
    assert_eq!(code, 200);
    assert_eq!(st["name"], "f", "{st}");
    assert_eq!(st["size"], 6, "{st}");
    assert_eq!(st["mode"], 0o644, "{st}");
    assert_eq!(st["linkTarget"], "", "{st}");
    let (_, st) = stat(&s, "box", "/data/link");
    assert_eq!(
        st["mode"].as_u64().unwrap_or(0) & (1 << 27),
        1 << 27,
        "a symlink: {st}"
    );
    assert_eq!(st["linkTarget"], "/data/sub/f", "{st}");
    let (_, st) = stat(&s, "box", "/data");
    assert_eq!(
        st["mode"].as_u64().unwrap_or(0) >> 31,
        1,
        "a directory: {st}"
    );
    let (code, _) = stat(&s, "box", "/nope");
    assert_eq!(code, 404);
    let out = s.docker(&["cp", "box:/nope", &d("x")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Could not find the file /nope in container box"),
        "{}",
        describe(&out)
    );

    // Into the container: a file into a directory, a directory under a new name.
    std::fs::write(d("in.txt"), "from-host\n").expect("write");
    std::fs::create_dir_all(d("tree/inner")).expect("mkdir");
    std::fs::write(d("tree/inner/leaf"), "leaf\n").expect("write");
    s.docker_ok(&["cp", &d("in.txt"), "box:/tmp/"]);
    s.docker_ok(&["cp", &d("tree"), "box:/newtree"]);
    assert_eq!(
        s.docker_ok(&["exec", "box", "cat", "/tmp/in.txt", "/newtree/inner/leaf"]),
        "from-host\nleaf"
    );
    assert_eq!(
        s.docker_ok(&["exec", "box", "stat", "-c", "%u:%g", "/tmp/in.txt"]),
        "0:0"
    );
    // Writing through a symlink that points outside stays inside the container.
    s.docker_ok(&["exec", "box", "ln", "-s", "/", "/data/up"]);
    s.docker_ok(&["cp", &d("in.txt"), "box:/data/up/tmp/via-link.txt"]);
    assert_eq!(
        s.docker_ok(&["exec", "box", "cat", "/tmp/via-link.txt"]),
        "from-host"
    );
    assert!(!std::path::Path::new("/tmp/via-link.txt").exists());
}

#[test]
fn cp_into_a_never_started_container_and_out_of_a_stopped_one() {
    let s = Stack::start();
    let dir = s.root.join("host");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = |p: &str| dir.join(p).to_string_lossy().into_owned();
    std::fs::write(
        d("script.sh"),
        "echo running-copied-script; echo out > /tmp/result\n",
    )
    .expect("write");
    s.docker_ok(&["create", "--name", "fresh", "busybox", "sh", "/script.sh"]);
    s.docker_ok(&["cp", &d("script.sh"), "fresh:/script.sh"]);
    let out = s.docker(&["start", "-a", "fresh"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "running-copied-script\n"
    );
    // Stopped now: read from its snapshot layers.
    s.docker_ok(&["cp", "fresh:/tmp/result", &d("result")]);
    assert_eq!(
        std::fs::read_to_string(d("result")).unwrap_or_default(),
        "out\n"
    );
    s.docker_ok(&["cp", "fresh:/etc/passwd", &d("passwd")]);
    assert!(std::fs::read_to_string(d("passwd"))
        .unwrap_or_default()
        .starts_with("root:x:0:0:"));
    // And write into the stopped container: the next run sees it.
    std::fs::write(d("script.sh"), "echo second-version\n").expect("write");
    s.docker_ok(&["cp", &d("script.sh"), "fresh:/script.sh"]);
    let out = s.docker(&["start", "-a", "fresh"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "second-version\n",
        "{}",
        describe(&out)
    );
    s.docker_ok(&["rm", "fresh"]);
}

#[test]
fn diff_and_export_show_the_writable_layer() {
    let s = Stack::start();
    let out = s.docker(&[
        "run",
        "--name",
        "df",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/new; rm /bin/ls; mkdir /newdir; echo x > /newdir/f; echo more >> /etc/group",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        s.docker_ok(&["diff", "df"]),
        "C /bin\nD /bin/ls\nC /etc/group\nA /newdir\nA /newdir/f\nC /tmp\nA /tmp/new"
    );
    let tar = s.root.join("df.tar");
    s.docker_ok(&["export", "-o", &tar.to_string_lossy(), "df"]);
    let list = Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .expect("tar -t");
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    for want in [
        "bin/busybox",
        "newdir/",
        "newdir/f",
        "tmp/new",
        "etc/passwd",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n == "bin/ls"),
        "deleted file exported: {names:?}"
    );
    let group = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("etc/group")
        .output()
        .expect("tar -x");
    assert_eq!(
        String::from_utf8_lossy(&group.stdout),
        "root:x:0:\nnobody:x:65534:\nmore\n"
    );
    // A fresh container has no changes.
    s.docker_ok(&["create", "--name", "clean", "busybox", "true"]);
    assert_eq!(s.docker_ok(&["diff", "clean"]), "");
}
