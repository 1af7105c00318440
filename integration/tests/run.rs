//! docker run --rm: output, stream split, exit codes.

use integration::{describe, Stack};

#[test]
fn run_rm_echo_hello() {
    let s = Stack::start();
    let out = s.docker(&["run", "--rm", "busybox", "echo", "hello"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\n",
        "{}",
        describe(&out)
    );
    // --rm removed it.
    assert_eq!(s.docker_ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn run_splits_stdout_stderr_and_returns_exit_code() {
    let s = Stack::start();
    let out = s.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "out\n",
        "{}",
        describe(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "err\n",
        "{}",
        describe(&out)
    );
}

#[test]
fn run_uses_image_default_cmd_and_env() {
    let s = Stack::start();
    let out = s.docker_ok(&["run", "--rm", "busybox", "sh", "-c", "echo $PATH"]);
    assert_eq!(
        out,
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    let out = s.docker_ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi there",
        "busybox",
        "sh",
        "-c",
        "echo $GREETING",
    ]);
    assert_eq!(out, "hi there");
}
