//! OCI spec items checked from inside and outside: user and cgroup namespaces, joining
//! namespaces by path, --no-pivot, rootfs propagation, bind/rbind/tmpfs mounts, /dev,
//! createContainer/startContainer hooks, AppArmor/SELinux fields, fds, keyrings.
mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

use common::*;
use serde_json::json;

fn probe(b: &Bundle) -> serde_json::Value {
    let (out, code) = b.run_to_end();
    assert_eq!(code, 0, "probe failed: {out} {}", b.log());
    serde_json::from_str(&out).expect("probe json")
}

fn mount<'a>(p: &'a serde_json::Value, dest: &str) -> &'a serde_json::Value {
    p["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .rfind(|m| m["destination"] == dest)
        .unwrap_or_else(|| panic!("no mount at {dest}: {}", p["mounts"]))
}

fn created(b: &Bundle, extra: &[&str]) -> (i32, std::process::ChildStdout) {
    become_subreaper();
    let mut c = b.create_piped(extra);
    let out = c.stdout.take().expect("stdout");
    assert!(c.wait().expect("wait").success(), "create: {}", b.log());
    (b.pid(), out)
}

#[test]
fn user_namespace_with_id_mappings() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g",
    ]);
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "user"}));
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    });
    let (pid, mut out) = created(&b, &[]);
    // Seen from the host, the init runs as the mapped ids.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(
        status.contains("Uid:\t200000\t200000\t200000\t200000"),
        "{status}"
    );
    assert!(
        status.contains("Gid:\t300000\t300000\t300000\t300000"),
        "{status}"
    );
    b.ok(&["start", &b.id]);
    let text = read_all(&mut out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec!["0", "200000", "65536"],
            vec!["0", "300000", "65536"],
            vec!["0"],
            vec!["0"]
        ]
    );
    assert_eq!(wait_pid(pid), 0);
    b.ok(&["delete", &b.id]);
}

#[test]
fn cgroup_namespace_hides_the_host_cgroup_path() {
    let b = Bundle::new(&["cat", "/proc/self/cgroup"]);
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "cgroup"}))
    });
    let (out, code) = b.run_to_end();
    assert_eq!(code, 0, "{}", b.log());
    // Every hierarchy is rooted at the container's own cgroup.
    assert!(out.lines().count() >= 2, "{out}");
    for l in out.lines() {
        assert!(l.ends_with(":/"), "{out}");
    }
    let b2 = Bundle::new(&["cat", "/proc/self/cgroup"]);
    let (out2, _) = b2.run_to_end();
    assert!(
        out2.contains(&format!("/{}/{}", b2.cg_parent, b2.id)),
        "{out2}"
    );
}

#[test]
fn join_namespaces_by_path() {
    become_subreaper();
    let a = Bundle::new(&["sleep", "100"]);
    a.edit(|s| s["hostname"] = "first".into());
    let (apid, _) = created(&a, &[]);
    a.ok(&["start", &a.id]);
    let b = Bundle::new(&["sh", "-c", "hostname; cat /proc/1/comm"]);
    b.edit(|s| {
        s["hostname"] = serde_json::Value::Null;
        s["linux"]["namespaces"] = json!([
            {"type": "mount"},
            {"type": "network", "path": format!("/proc/{apid}/ns/net")},
            {"type": "uts", "path": format!("/proc/{apid}/ns/uts")},
            {"type": "ipc", "path": format!("/proc/{apid}/ns/ipc")},
            {"type": "pid", "path": format!("/proc/{apid}/ns/pid")}
        ]);
    });
    let (bpid, mut out) = created(&b, &[]);
    for ns in ["net", "uts", "ipc", "pid"] {
        assert_eq!(
            ns_inode(&bpid.to_string(), ns),
            ns_inode(&apid.to_string(), ns),
            "{ns} not joined"
        );
    }
    assert_ne!(
        ns_inode(&bpid.to_string(), "mnt"),
        ns_inode(&apid.to_string(), "mnt")
    );
    b.ok(&["start", &b.id]);
    // Same hostname, and pid 1 of the shared pid namespace is the first container's sleep.
    assert_eq!(read_all(&mut out), "first\nsleep\n");
    assert_eq!(wait_pid(bpid), 0);
    b.ok(&["delete", &b.id]);
    let bad = Bundle::new(&["true"]);
    bad.edit(|s| {
        s["linux"]["namespaces"] =
            json!([{"type": "mount"}, {"type": "network", "path": "/proc/nope/ns/net"}])
    });
    assert!(!bad.create_piped(&[]).wait().expect("wait").success());
    assert!(bad.log().contains("/proc/nope/ns/net"), "{}", bad.log());
    a.ok(&["delete", "--force", &a.id]);
    assert_eq!(wait_pid(apid), 137);
}

#[test]
fn no_pivot_moves_the_rootfs_and_chroots() {
    let b = Bundle::new(&["ls", "/"]);
    b.edit(|s| s["root"]["readonly"] = false.into());
    become_subreaper();
    let mut c = b.create_piped(&["--no-pivot"]);
    let mut out = c.stdout.take().expect("stdout");
    assert!(c.wait().expect("wait").success(), "{}", b.log());
    let pid = b.pid();
    b.ok(&["start", &b.id]);
    let text = read_all(&mut out);
    assert_eq!(wait_pid(pid), 0);
    let listing: Vec<&str> = text.lines().collect();
    assert_eq!(
        listing,
        ["bin", "dev", "etc", "proc", "sys", "tmp"],
        "{text}"
    );
    b.ok(&["delete", &b.id]);
}

#[test]
fn rootfs_propagation_is_applied_like_runc() {
    for prop in ["rprivate", "rshared", "rslave"] {
        let mut seen = Vec::new();
        for runtime in [BIN, "/usr/sbin/runc"] {
            let mut b = Bundle::new(&["/bin/probe"]);
            b.runtime = runtime.into();
            b.add_probe();
            b.edit(|s| s["linux"]["rootfsPropagation"] = prop.into());
            let p = probe(&b);
            let opt = mount(&p, "/")["optional"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            seen.push((opt.contains("shared:"), opt.contains("master:")));
        }
        assert_eq!(seen[0], seen[1], "{prop}: runc-rs vs runc (shared, master)");
    }
    // What propagation means: a mount made on the host under a bind source after create
    // reaches a slave container, not a private one.
    for (prop, reaches) in [("rslave", true), ("rprivate", false)] {
        let b = Bundle::new(&["sleep", "100"]);
        // A shared mount on the host (this host's own mounts are private).
        let src = b.dir.join("src");
        std::fs::create_dir_all(&src).expect("mkdir");
        nix::mount::mount(
            Some("tmpfs"),
            &src,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount src");
        nix::mount::mount(
            None::<&str>,
            &src,
            None::<&str>,
            nix::mount::MsFlags::MS_SHARED,
            None::<&str>,
        )
        .expect("make src shared");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        b.edit(|s| {
            s["linux"]["rootfsPropagation"] = prop.into();
            s["mounts"]
                .as_array_mut()
                .expect("mounts")
                .push(json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind"]}));
        });
        let (pid, _) = created(&b, &[]);
        nix::mount::mount(
            Some("tmpfs"),
            &src.join("sub"),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount on the host");
        let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
        let _ = nix::mount::umount2(&src.join("sub"), nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&src, nix::mount::MntFlags::MNT_DETACH);
        let seen = mi.lines().any(|l| l.split(' ').nth(4) == Some("/data/sub"));
        assert_eq!(seen, reaches, "{prop}: {mi}");
        b.ok(&["delete", &b.id]);
        assert_eq!(wait_pid(pid), 137);
    }
    let bad = Bundle::new(&["true"]);
    bad.edit(|s| s["linux"]["rootfsPropagation"] = "sideways".into());
    assert!(!bad.create_piped(&[]).wait().expect("wait").success());
    assert!(bad.log().contains("rootfsPropagation"), "{}", bad.log());
}

#[test]
fn bind_rbind_and_tmpfs_mounts_with_options() {
    let b = Bundle::new(&["/bin/probe"]);
    b.add_probe();
    let src = b.dir.join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("hello"), "hi").expect("write");
    std::fs::write(b.dir.join("file.txt"), "file").expect("write");
    nix::mount::mount(
        Some("tmpfs"),
        &src.join("sub"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount sub tmpfs");
    b.edit(|s| {
        let m = s["mounts"].as_array_mut().expect("mounts");
        m.push(json!({"destination": "/data", "type": "bind", "source": src, "options": ["bind", "ro", "nosuid", "noexec"]}));
        m.push(json!({"destination": "/rdata", "source": src, "options": ["rbind", "rw"]}));
        m.push(json!({"destination": "/etc/file.txt", "type": "bind", "source": b.dir.join("file.txt"), "options": ["rbind", "ro"]}));
        m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nodev", "size=1m", "mode=755"]}));
    });
    let p = probe(&b);
    let _ = nix::mount::umount2(&src.join("sub"), nix::mount::MntFlags::MNT_DETACH);
    let data = mount(&p, "/data");
    let o = data["options"].as_str().unwrap_or_default();
    assert!(
        o.starts_with("ro") && o.contains("nosuid") && o.contains("noexec"),
        "{data}"
    );
    // bind is not recursive: no /data/sub; rbind is.
    assert!(p["mounts"]
        .as_array()
        .expect("m")
        .iter()
        .all(|m| m["destination"] != "/data/sub"));
    assert_eq!(mount(&p, "/rdata/sub")["type"], "tmpfs");
    assert!(mount(&p, "/rdata")["options"]
        .as_str()
        .unwrap_or_default()
        .starts_with("rw"));
    assert!(mount(&p, "/etc/file.txt")["options"]
        .as_str()
        .unwrap_or_default()
        .starts_with("ro"));
    let t = mount(&p, "/scratch");
    assert_eq!(t["type"], "tmpfs");
    assert!(
        t["options"].as_str().unwrap_or_default().contains("nodev"),
        "{t}"
    );
    assert!(
        t["super_options"]
            .as_str()
            .unwrap_or_default()
            .contains("size=1024k"),
        "{t}"
    );
    assert!(
        t["super_options"]
            .as_str()
            .unwrap_or_default()
            .contains("mode=755"),
        "{t}"
    );
    for (dest, typ) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys/fs/cgroup", "tmpfs"),
    ] {
        assert_eq!(mount(&p, dest)["type"], typ, "{dest}");
    }
}

#[test]
fn default_dev_nodes_and_links() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
         for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; echo x > /dev/full; echo full=$?",
    ]);
    let (out, code) = b.run_to_end();
    assert_eq!(code, 0, "{}", b.log());
    assert_eq!(
        out,
        "/dev/null character special file 1:3 666\n/dev/zero character special file 1:5 666\n\
         /dev/full character special file 1:7 666\n/dev/random character special file 1:8 666\n\
         /dev/urandom character special file 1:9 666\n/dev/tty character special file 5:0 666\n\
         pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\nfull=1\n"
    );
}

#[test]
fn create_container_and_start_container_hooks() {
    let b = Bundle::new(&["sh", "-c", "cat /started"]);
    let log = b.dir.join("hooks.log");
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        s["hooks"] = json!({
            // In the container's namespaces, before pivot_root: the host's /bin/sh, our log.
            "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
                format!("read -r s; echo \"$s\" > {}; readlink /proc/self/ns/mnt >> {}", log.display(), log.display())]}],
            // After pivot_root, inside the container's filesystem.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "read -r s; echo \"$s\" > /started"]}]
        });
    });
    become_subreaper();
    let mut c = b.create_piped(&[]);
    let mut out = c.stdout.take().expect("stdout");
    assert!(c.wait().expect("wait").success(), "{}", b.log());
    let pid = b.pid();
    let text = std::fs::read_to_string(&log).expect("createContainer ran at create");
    let mut lines = text.lines();
    let st: serde_json::Value = serde_json::from_str(lines.next().unwrap_or("")).expect("state");
    assert_eq!(st["id"], b.id.as_str());
    assert_eq!(st["pid"], pid);
    let mnt = lines.next().unwrap_or_default().to_string();
    assert_eq!(
        mnt,
        std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .expect("ns")
            .to_string_lossy()
    );
    b.ok(&["start", &b.id]);
    let started: serde_json::Value =
        serde_json::from_str(read_all(&mut out).trim()).expect("state from startContainer");
    assert_eq!(started["id"], b.id.as_str());
    assert_eq!(wait_pid(pid), 0);
    b.ok(&["delete", &b.id]);
}

#[test]
fn apparmor_and_selinux_fields_are_skipped_with_a_debug_log() {
    let b = Bundle::new(&["true"]);
    b.edit(|s| {
        s["process"]["apparmorProfile"] = "docker-default".into();
        s["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into();
        s["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0".into();
    });
    become_subreaper();
    let mut c = b.cmd();
    c.arg("--debug")
        .arg("--log")
        .arg(b.dir.join("log.json"))
        .args(["--log-format", "json", "run", "--bundle"]);
    let o = c.arg(&b.dir).arg(&b.id).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", b.log());
    let log = b.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    for what in ["apparmor", "selinux"] {
        assert!(
            lines
                .iter()
                .any(|l| l["level"] == "debug" && l["msg"].as_str().unwrap_or("").contains(what)),
            "{log}"
        );
    }
}

#[test]
fn preserve_fds_passes_extra_fds_and_closes_the_rest() {
    for (n, want) in [("1", json!([0, 1, 2, 3])), ("0", json!([0, 1, 2]))] {
        let b = Bundle::new(&["/bin/probe"]);
        b.add_probe();
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let (r2, _w2) = nix::unistd::pipe().expect("pipe");
        let (fd3, fd4) = (r.as_raw_fd(), r2.as_raw_fd());
        become_subreaper();
        let mut c = b.cmd();
        c.arg("--log").arg(b.dir.join("log.json")).args([
            "create",
            "--preserve-fds",
            n,
            "--pid-file",
        ]);
        c.arg(b.dir.join("init.pid"))
            .arg("--bundle")
            .arg(&b.dir)
            .arg(&b.id);
        c.stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null());
        // SAFETY: dup2 is async-signal-safe; fds 3 and 4 become the two pipe read ends.
        unsafe {
            c.pre_exec(move || {
                if libc::dup2(fd3, 3) < 0 || libc::dup2(fd4, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = c.spawn().expect("create");
        let mut out = child.stdout.take().expect("stdout");
        assert!(child.wait().expect("wait").success(), "{}", b.log());
        drop((r, w, r2));
        let pid = b.pid();
        b.ok(&["start", &b.id]);
        let p: serde_json::Value = serde_json::from_str(&read_all(&mut out)).expect("probe json");
        assert_eq!(p["open_fds"], want, "--preserve-fds {n}");
        assert_eq!(wait_pid(pid), 0);
        b.ok(&["delete", &b.id]);
    }
}

#[test]
fn session_keyring_unless_no_new_keyring() {
    let b = Bundle::new(&["/bin/probe"]);
    b.add_probe();
    let p = probe(&b);
    let k = p["session_keyring"].as_str().unwrap_or_default();
    assert!(
        k.starts_with("keyring;") && k.ends_with(&format!(";_ses.{}", b.id)),
        "{k}"
    );
    let b = Bundle::new(&["/bin/probe"]);
    b.add_probe();
    become_subreaper();
    let mut c = b.create_piped(&["--no-new-keyring"]);
    let mut out = c.stdout.take().expect("stdout");
    assert!(c.wait().expect("wait").success(), "{}", b.log());
    let pid = b.pid();
    b.ok(&["start", &b.id]);
    let p: serde_json::Value = serde_json::from_str(&read_all(&mut out)).expect("probe json");
    assert_eq!(wait_pid(pid), 0);
    b.ok(&["delete", &b.id]);
    assert!(
        !p["session_keyring"]
            .as_str()
            .unwrap_or_default()
            .contains("_ses.c"),
        "{p}"
    );
}

fn recv_master(listener: &std::os::unix::net::UnixListener) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let (conn, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd was just received with SCM_RIGHTS and is owned by nobody else.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received");
}

#[test]
fn exec_with_tty_console_socket_and_user() {
    let b = Bundle::new(&["sleep", "100"]);
    let (pid, _) = created(&b, &[]);
    b.ok(&["start", &b.id]);
    let sock = b.dir.join("exec-console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let mut ex = b
        .cmd()
        .args(["exec", "-t", "--console-socket"])
        .arg(&sock)
        .args([
            "--user",
            "1000:1001",
            "--env",
            "E=x",
            &b.id,
            "sh",
            "-c",
            "tty; id -u; id -g; echo $E",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("exec");
    let master = recv_master(&listener);
    let st = ex.wait().expect("wait exec");
    assert!(st.success(), "exec failed");
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut chunk = [0u8; 256];
    while let Ok(n) = std::io::Read::read(&mut f, &mut chunk) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text, "/dev/pts/0\r\n1000\r\n1001\r\nx\r\n");
    // -t without a console socket is refused.
    let o = b.run(&["exec", "-t", &b.id, "true"]);
    assert_eq!(o.status.code(), Some(255));
    b.ok(&["delete", "--force", &b.id]);
    assert_eq!(wait_pid(pid), 137);
}

#[test]
fn run_detach_and_systemd_cgroup_flag() {
    let b = Bundle::new(&["sleep", "100"]);
    let o = b
        .cmd()
        .args(["--systemd-cgroup", "run", "-d", "--bundle"])
        .arg(&b.dir)
        .arg(&b.id)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("systemd not running on this host, cannot use systemd cgroups manager"),
        "{err}"
    );
    assert!(!b.root.join(&b.id).exists());
    become_subreaper();
    let o = b
        .cmd()
        .args(["run", "--detach", "--pid-file"])
        .arg(b.dir.join("init.pid"))
        .arg("--bundle")
        .arg(&b.dir)
        .arg(&b.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run -d");
    assert!(o.success(), "run -d failed");
    assert_eq!(b.status(), "running");
    // Other commands still work with the flag: they read state.json.
    let st = b.ok(&["--systemd-cgroup", "state", &b.id]);
    assert!(String::from_utf8_lossy(&st.stdout).contains("\"running\""));
    let pid = b.pid();
    b.ok(&["kill", &b.id, "KILL"]);
    assert_eq!(wait_pid(pid), 137);
    b.ok(&["delete", &b.id]);
}

#[test]
fn recursive_read_only_and_tmpcopyup() {
    let b = Bundle::new(&["/bin/probe"]);
    b.add_probe();
    let src = b.dir.join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    nix::mount::mount(
        Some("tmpfs"),
        &src.join("sub"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount sub tmpfs");
    std::fs::create_dir_all(b.dir.join("rootfs/seeded/d")).expect("mkdir");
    std::fs::write(b.dir.join("rootfs/seeded/d/f"), "x\n").expect("write");
    // Like runc, a tmpfs over an existing directory keeps that directory's mode.
    std::fs::set_permissions(
        b.dir.join("rootfs/seeded"),
        std::os::unix::fs::PermissionsExt::from_mode(0o710),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("d/f", b.dir.join("rootfs/seeded/l")).expect("symlink");
    b.edit(|s| {
        let m = s["mounts"].as_array_mut().expect("mounts");
        // `ro` on an rbind leaves the submount writable; `rro` does not.
        m.push(json!({"destination": "/ro", "type": "bind", "source": src, "options": ["rbind", "ro"]}));
        m.push(json!({"destination": "/rro", "type": "bind", "source": src, "options": ["rbind", "rro", "rnosuid"]}));
        m.push(json!({"destination": "/seeded", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=750"]}));
        s["process"]["args"] = json!(["sh", "-c", "/bin/probe > /tmp/p.json; cat /seeded/d/f; readlink /seeded/l; stat -c %a /seeded; cat /tmp/p.json"]);
        s["root"]["readonly"] = false.into();
    });
    let (out, code) = b.run_to_end();
    let _ = nix::mount::umount2(&src.join("sub"), nix::mount::MntFlags::MNT_DETACH);
    assert_eq!(code, 0, "{out} {}", b.log());
    let (head, json) = out.split_at(out.find('{').expect("probe json"));
    assert_eq!(head, "x\nd/f\n710\n");
    let p: serde_json::Value = serde_json::from_str(json).expect("probe");
    let opts = |d: &str| {
        mount(&p, d)["options"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(opts("/ro").starts_with("ro"), "{}", opts("/ro"));
    assert!(opts("/ro/sub").starts_with("rw"), "{}", opts("/ro/sub"));
    assert!(opts("/rro").starts_with("ro"), "{}", opts("/rro"));
    assert!(
        opts("/rro/sub").starts_with("ro") && opts("/rro/sub").contains("nosuid"),
        "{}",
        opts("/rro/sub")
    );
    assert_eq!(mount(&p, "/seeded")["type"], "tmpfs");
    // The staging directory is gone from the host's /tmp.
    let left: Vec<_> = std::fs::read_dir("/tmp")
        .expect("/tmp")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("runc-rs-copyup")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
