//! Debian's `ctr` as a client of containerd-rs.

use integration::{describe, Stack};

#[test]
fn ctr_version_answers() {
    let s = Stack::start_empty();
    let out = s.ctr(&["version"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let server = text
        .split("Server:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Server section: {text}"));
    assert!(server.contains("Version:"), "{text}");
}

#[test]
fn ctr_lists_engine_containers_in_moby_namespace() {
    let s = Stack::start();
    let id = s.docker_ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "300"]);
    let out = s.ctr(&["-n", "moby", "containers", "ls"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().next() == Some(id.as_str())),
        "{text}"
    );
    let out = s.ctr(&["namespaces", "ls", "-q"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "moby"),
        "{}",
        describe(&out)
    );
}
