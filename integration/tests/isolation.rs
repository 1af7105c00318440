//! Isolation seen from inside and outside the container: pid 1, hostname, namespaces,
//! network, overlay rootfs, copy-on-write between containers, cgroup placement.

use integration::{cleanup, procfs, Stack};

#[test]
fn command_is_pid_1_and_hostname_is_short_id() {
    let s = Stack::start();
    assert_eq!(
        s.docker_ok(&["run", "--rm", "busybox", "sh", "-c", "echo $$"]),
        "1"
    );
    let host = s.docker_ok(&["run", "--name", "hn", "busybox", "hostname"]);
    let id = s.inspect("hn")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(host, &id[..12]);
}

#[test]
fn container_has_own_namespaces() {
    let s = Stack::start();
    s.docker_ok(&["run", "-d", "--name", "ns", "busybox", "sleep", "300"]);
    let init = s.init_pid("ns");
    let me = std::process::id() as i32;
    for ns in ["mnt", "uts", "ipc", "pid", "net"] {
        let theirs = procfs::ns(init, ns).unwrap_or_else(|| panic!("ns/{ns} of {init}"));
        let ours = procfs::ns(me, ns).unwrap_or_else(|| panic!("our ns/{ns}"));
        assert_ne!(theirs, ours, "{ns} namespace is private");
    }
    assert_eq!(
        s.docker_ok(&["run", "--rm", "busybox", "ls", "/sys/class/net"]),
        "lo"
    );
}

#[test]
fn rootfs_is_overlay_with_private_upper() {
    let s = Stack::start();
    s.docker_ok(&["run", "-d", "--name", "ov", "busybox", "sleep", "300"]);
    let init = s.init_pid("ov");
    let root = procfs::root_mount(init).expect("container has a / mount");
    assert_eq!(root.fs_type, "overlay", "{root:?}");
    let snapshots = s
        .root
        .join("cd/snapshots/overlayfs")
        .to_string_lossy()
        .into_owned();
    let upper = procfs::mount_option(&root, "upperdir")
        .unwrap_or_else(|| panic!("no upperdir in {root:?}"));
    assert!(
        upper.starts_with(&snapshots),
        "upperdir {upper} is a containerd-rs snapshot"
    );
    assert!(
        root.super_options
            .contains(&format!("lowerdir={snapshots}")),
        "{root:?}"
    );
    // The image's single layer is the only lower dir.
    let lower = procfs::mount_option(&root, "lowerdir").unwrap_or_default();
    assert_eq!(lower.split(':').count(), 1, "{lower}");
    assert!(
        std::path::Path::new(&lower).join("bin/busybox").is_file(),
        "{lower}"
    );
}

#[test]
fn writes_stay_in_one_container() {
    let s = Stack::start();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "w1",
        "busybox",
        "sh",
        "-c",
        "echo x > /tmp/marker; exec sleep 300",
    ]);
    let init = s.init_pid("w1");
    let other = s.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "test -e /tmp/marker && echo present || echo absent",
    ]);
    assert_eq!(other, "absent");
    let upper = procfs::root_mount(init)
        .and_then(|m| procfs::mount_option(&m, "upperdir"))
        .expect("w1's upperdir");
    let markers = cleanup::find_files(&s.root.join("cd/snapshots"), "marker");
    assert_eq!(
        markers,
        vec![std::path::Path::new(&upper).join("tmp/marker")],
        "the file exists only in w1's upper dir"
    );
}

#[test]
fn container_runs_in_cgroup_under_parent() {
    let s = Stack::start();
    let id = s.docker_ok(&["run", "-d", "--name", "cg", "busybox", "sleep", "300"]);
    let init = s.init_pid("cg");
    let cgroups = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap_or_default();
    let want = format!("/{}/{id}", s.cgroup_parent());
    let memory = cgroups
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "memory"))
        })
        .unwrap_or_else(|| panic!("no memory line in {cgroups}"));
    let path = memory.splitn(3, ':').nth(2).unwrap_or_default();
    assert_eq!(path, want, "cgroupsPath is /<cgroup-parent>/<id>");
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/memory{path}/cgroup.procs"))
        .unwrap_or_default();
    assert!(
        procs.lines().any(|l| l.trim() == init.to_string()),
        "{procs}"
    );
}
