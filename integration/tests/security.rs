//! Seccomp and `--security-opt` through the real CLI: the built-in profile is enforced by
//! default (seen from inside: `Seccomp: 2`, and a user namespace cannot be made), capabilities
//! lift what Docker ties to them, `--privileged` and `seccomp=unconfined` run unfiltered, a
//! profile file is honoured, `no-new-privileges` reaches the process, bad options are refused.

use integration::{describe, Stack};

/// Seccomp mode, then whether `unshare -U` (no capability needed, only seccomp stops it) worked.
const PROBE: &str = "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo userns=$?";

fn run(s: &Stack, opts: &[&str], script: &str) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(opts);
    a.extend(["busybox", "sh", "-c", script]);
    s.docker_ok(&a)
}

#[test]
fn default_profile_is_enforced_and_can_be_lifted() {
    let s = Stack::start();
    assert_eq!(run(&s, &[], PROBE), "Seccomp:\t2\nuserns=1");
    assert_eq!(
        run(&s, &["--security-opt", "seccomp=unconfined"], PROBE),
        "Seccomp:\t0\nuserns=0"
    );
    assert_eq!(run(&s, &["--privileged"], PROBE), "Seccomp:\t0\nuserns=0");
    // CAP_SYS_ADMIN lifts unshare/clone/mount from the profile; the filter stays.
    assert_eq!(
        run(&s, &["--cap-add", "SYS_ADMIN"], PROBE),
        "Seccomp:\t2\nuserns=0"
    );
    // An exec'd process is under the container's filter.
    let id = s.docker_ok(&["run", "-d", "busybox", "sleep", "300"]);
    assert_eq!(
        s.docker_ok(&["exec", &id, "sh", "-c", PROBE]),
        "Seccomp:\t2\nuserns=1"
    );
    s.docker_ok(&["rm", "-f", &id]);
    let info = s.docker_ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert_eq!(info, r#"["name=seccomp,profile=builtin"]"#);
}

#[test]
fn profile_files_and_no_new_privileges() {
    let s = Stack::start();
    let profile = s.root.join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
            "syscalls": [
              {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
              {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
               "excludes": {"caps": ["CAP_CHOWN"]}}
            ]}"#,
    )
    .expect("profile");
    let opt = format!("seccomp={}", profile.display());
    assert_eq!(
        run(
            &s,
            &["--security-opt", &opt],
            "mkdir /tmp/a 2>&1; echo mkdir=$?; uname -s; unshare -U true; echo userns=$?"
        ),
        // The uname rule is left out (the container holds CAP_CHOWN); only the profile's
        // rules apply, so a user namespace can be made.
        "mkdir: can't create directory '/tmp/a': Operation not permitted\nmkdir=1\nLinux\nuserns=0"
    );
    assert_eq!(
        run(&s, &[], "grep NoNewPrivs: /proc/self/status"),
        "NoNewPrivs:\t0"
    );
    assert_eq!(
        run(
            &s,
            &["--security-opt", "no-new-privileges"],
            "grep NoNewPrivs: /proc/self/status"
        ),
        "NoNewPrivs:\t1"
    );
    let id = s.docker_ok(&[
        "run",
        "-d",
        "--security-opt",
        "no-new-privileges=true",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(
        s.docker_ok(&["exec", &id, "grep", "NoNewPrivs:", "/proc/self/status"]),
        "NoNewPrivs:\t1"
    );
    assert_eq!(
        s.docker_ok(&["inspect", "-f", "{{json .HostConfig.SecurityOpt}}", &id]),
        r#"["no-new-privileges=true"]"#
    );
    s.docker_ok(&["rm", "-f", &id]);

    // Bad options: refused at create with dockerd's message, exit 125, nothing created.
    let out = s.docker(&[
        "run",
        "--rm",
        "--security-opt",
        "foo=bar",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid --security-opt 2: \"foo=bar\""),
        "{}",
        describe(&out)
    );
    let bad = s.root.join("bad.json");
    std::fs::write(&bad, "{not json").expect("bad profile");
    let out = s.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", bad.display()),
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert_eq!(s.docker_ok(&["ps", "-aq"]), "");
}
