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

#[test]
fn ctr_sees_loaded_image_and_its_snapshot() {
    let s = Stack::start();
    let image = &integration::busybox_fixture().1;
    let out = s.ctr(&["-n", "moby", "images", "ls", "-q"]);
    assert!(out.status.success(), "{}", describe(&out));
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        names
            .lines()
            .any(|l| l == "docker.io/library/busybox:latest"),
        "{names}"
    );
    // A one-layer image's chain ID is its diff ID: the committed snapshot's key.
    let out = s.ctr(&[
        "-n",
        "moby",
        "snapshots",
        "--snapshotter",
        "overlayfs",
        "ls",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let snaps = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        snaps
            .lines()
            .any(|l| l.starts_with(&image.diff_id) && l.contains("Committed")),
        "{snaps}"
    );
}
