//! State survives a restart of both daemons.

use integration::Stack;

fn snapshot(s: &Stack) -> (String, Vec<String>) {
    let images = s.docker_ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    let mut ps: Vec<String> = s
        .docker_ok(&[
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Names}} {{.Image}} {{.Command}}",
        ])
        .lines()
        .map(str::to_string)
        .collect();
    ps.sort();
    (images, ps)
}

#[test]
fn images_and_containers_survive_restart_of_both_daemons() {
    let mut s = Stack::start();
    s.docker_ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "300"]);
    let out = s.docker(&["run", "--name", "done", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        integration::describe(&out)
    );
    let before = snapshot(&s);
    assert!(before.0.starts_with("busybox:latest sha256:"), "{before:?}");
    assert_eq!(before.1.len(), 2, "{before:?}");

    s.stop_engine();
    s.restart_containerd();
    s.start_engine();

    let after = snapshot(&s);
    assert_eq!(after, before);
    assert_eq!(s.inspect("done")["State"]["ExitCode"], 7);
    // The image is still usable after the restart.
    assert_eq!(
        s.docker_ok(&["run", "--rm", "busybox", "echo", "again"]),
        "again"
    );
}
