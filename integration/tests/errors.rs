//! Bad input gets Docker's status codes and messages; the daemon survives.

use integration::{procfs, Stack};

#[test]
fn unknown_image_is_404_no_such_image() {
    let s = Stack::start_empty();
    let r = s.api(
        "POST",
        "/v1.50/containers/create",
        Some(br#"{"Image":"nosuchimage","Cmd":["true"]}"#),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.starts_with("No such image: nosuchimage"), "{}", r.body);
    assert!(procfs::alive(s.engine_pid()));
}

#[test]
fn malformed_json_is_400() {
    let s = Stack::start();
    for body in [
        &br#"{"Image": "busybox","#[..],
        b"not json",
        br#"{"Image": 42}"#,
    ] {
        let r = s.api("POST", "/v1.50/containers/create", Some(body));
        assert_eq!(
            r.status,
            400,
            "{:?} -> {}",
            String::from_utf8_lossy(body),
            r.body
        );
        assert!(
            r.json()["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            r.body
        );
    }
    assert_eq!(s.api("GET", "/_ping", None).status, 200);
    assert!(procfs::alive(s.engine_pid()));
    assert_eq!(s.docker_ok(&["ps", "-a", "-q"]), "", "nothing was created");
}

#[test]
fn unknown_container_is_404() {
    let s = Stack::start();
    let r = s.api("GET", "/v1.50/containers/nosuchctr/json", None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "No such container: nosuchctr",
        "{}",
        r.body
    );
    for verb in [["stop", "nosuchctr"], ["rm", "nosuchctr"]] {
        let out = s.docker(&verb);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            integration::describe(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("No such container: nosuchctr"),
            "{}",
            integration::describe(&out)
        );
    }
    assert!(procfs::alive(s.engine_pid()));
}

#[test]
fn failed_start_of_an_rm_container_ends_the_run_and_removes_it() {
    let s = Stack::start();
    // The CLI waits for `condition=removed`: dockerd removes an --rm container whose start
    // failed, and the CLI exits with 127 (command not found) or 126 (not executable).
    let out = s.docker(&["run", "--rm", "busybox", "/nonexistent"]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        integration::describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent"),
        "{}",
        integration::describe(&out)
    );
    let out = s.docker(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(
        out.status.code(),
        Some(126),
        "{}",
        integration::describe(&out)
    );
    assert_eq!(s.docker_ok(&["ps", "-aq"]), "");
    // Without --rm the container stays, created, with the error and exit code recorded.
    let out = s.docker(&["run", "--name", "bad", "busybox", "/nonexistent"]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        integration::describe(&out)
    );
    assert_eq!(
        s.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "bad"
        ]),
        "created 127"
    );
}
