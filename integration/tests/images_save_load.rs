//! docker save / docker load of one image or several, in docker save format: a round trip
//! through our engine, and both directions with a private real dockerd (Debian's docker.io).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use integration::{busybox_fixture, cleanup, describe, docker_cli, http, wait_until, Stack};
use nix::sys::signal::Signal;

fn tar_names(path: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("tf")
        .arg(path)
        .output()
        .expect("tar");
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn tar_file(path: &Path, member: &str) -> serde_json::Value {
    let out = Command::new("tar")
        .arg("xOf")
        .arg(path)
        .arg(member)
        .output()
        .expect("tar");
    assert!(out.status.success(), "{member}: {}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{member}: {e}"))
}

fn ids(s: &Stack) -> String {
    let mut v: Vec<String> = s
        .docker_ok(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v.join("\n")
}

/// Three images: busybox, a commit on it (sharing its layer), and an untagged import.
fn three_images(s: &Stack) -> String {
    s.docker_ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo saved > /saved",
    ]);
    s.docker_ok(&["commit", "src", "localhost:5000/team/child:v1"]);
    s.docker_ok(&["rm", "src"]);
    let (_, base) = busybox_fixture();
    let layer = s.root.join("layer.tar");
    std::fs::write(&layer, &base.layer).expect("write layer");
    s.docker_ok(&[
        "import",
        "-c",
        "LABEL imported=yes",
        &layer.to_string_lossy(),
        "imported",
    ])
}

#[test]
fn save_several_and_load_them_back() {
    let s = Stack::start();
    three_images(&s);
    let before = ids(&s);
    let tar = s.root.join("all.tar");
    s.docker_ok(&[
        "save",
        "-o",
        &tar.to_string_lossy(),
        "busybox",
        "localhost:5000/team/child:v1",
        "imported:latest",
    ]);
    let names = tar_names(&tar);
    for f in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(names.iter().any(|n| n == f), "{f} in {names:?}");
    }
    let manifest = tar_file(&tar, "manifest.json");
    let tags: Vec<String> = manifest
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["RepoTags"][0].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        tags,
        vec![
            "busybox:latest",
            "localhost:5000/team/child:v1",
            "imported:latest"
        ]
    );
    // The shared layer is in the tar once.
    let (_, base) = busybox_fixture();
    let layer_path = format!("blobs/sha256/{}", &base.diff_id[7..]);
    assert_eq!(
        names.iter().filter(|n| **n == layer_path).count(),
        1,
        "{names:?}"
    );
    let index = tar_file(&tar, "index.json");
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(3),
        "{index}"
    );

    // Remove everything, load the tar again: same names, same IDs, and they run.
    s.docker_ok(&["rmi", "busybox", "localhost:5000/team/child:v1", "imported"]);
    assert_eq!(s.docker_ok(&["images", "-aq"]), "");
    let out = s.docker_ok(&["load", "-i", &tar.to_string_lossy()]);
    assert_eq!(
        out,
        "Loaded image: busybox:latest\nLoaded image: localhost:5000/team/child:v1\nLoaded image: imported:latest"
    );
    assert_eq!(ids(&s), before);
    assert_eq!(
        s.docker_ok(&[
            "run",
            "--rm",
            "localhost:5000/team/child:v1",
            "cat",
            "/saved"
        ]),
        "saved"
    );
    // One image to stdout (`docker save busybox > file`) through the raw API.
    let r = s.api("GET", "/images/busybox/get", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/x-tar"));
    let r = s.api("GET", "/images/get?names=nosuch", None);
    assert_eq!(r.status, 404, "{}", r.body);
    // Loading garbage is a 400 with a message, not a crash.
    let r = s.api("POST", "/images/load", Some(b"not a tar at all"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(integration::procfs::alive(s.engine_pid()));
}

/// A private real dockerd (Debian's docker.io 20.10) in its own root; stopped by pid on drop.
struct RealDocker {
    root: PathBuf,
    child: Option<Child>,
    cgroup: String,
}

impl RealDocker {
    fn start(root: PathBuf, suffix: &str) -> RealDocker {
        std::fs::create_dir_all(root.join("cfg")).expect("mkdir");
        let cgroup = format!("itd-{suffix}");
        let log = std::fs::File::create(root.join("dockerd.log")).expect("log");
        let r = |p: &str| root.join(p).to_string_lossy().into_owned();
        let child = Command::new("/usr/sbin/dockerd")
            .args(["--data-root", &r("data"), "--exec-root", &r("exec")])
            .args(["-H", &format!("unix://{}", r("d.sock"))])
            .args(["--pidfile", &r("d.pid"), "--bridge", "none"])
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--cgroup-parent",
                &cgroup,
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let d = RealDocker {
            root,
            child: Some(child),
            cgroup,
        };
        let sock = d.root.join("d.sock");
        assert!(
            wait_until(Duration::from_secs(60), || {
                http::request(&sock, "GET", "/_ping", None).is_ok_and(|r| r.status == 200)
            }),
            "dockerd did not answer: {}",
            std::fs::read_to_string(d.root.join("dockerd.log")).unwrap_or_default()
        );
        d
    }

    fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(docker_cli());
        cmd.args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.root.join("d.sock").display()),
            )
            .env("DOCKER_CONFIG", self.root.join("cfg"));
        integration::cmd::run_with_timeout(cmd, Duration::from_secs(120))
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "real docker {args:?}: {}\n{}",
            describe(&out),
            std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }
}

impl Drop for RealDocker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id() as i32;
            cleanup::signal(pid, Signal::SIGTERM);
            if !wait_until(Duration::from_secs(20), || {
                matches!(c.try_wait(), Ok(Some(_)))
            }) {
                cleanup::signal(pid, Signal::SIGKILL);
                let _ = c.wait();
            }
        }
        // dockerd's own containerd and shims, by their pid files under our root.
        for name in ["containerd.pid", "shim.pid", "init.pid"] {
            for f in cleanup::find_files(&self.root, name) {
                if let Some(p) = cleanup::read_pid(&f) {
                    let cmd = integration::procfs::cmdline(p).join(" ");
                    if cmd.contains(&*self.root.to_string_lossy()) {
                        cleanup::signal(p, Signal::SIGKILL);
                    }
                }
            }
        }
        cleanup::unmount_all(&self.root);
        cleanup::remove_cgroups(&self.cgroup, Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn our_save_loads_into_real_dockerd_and_back() {
    let s = Stack::start();
    three_images(&s);
    let ours = ids(&s);
    let tar = s.root.join("ours.tar");
    s.docker_ok(&[
        "save",
        "-o",
        &tar.to_string_lossy(),
        "busybox",
        "localhost:5000/team/child:v1",
        "imported",
    ]);
    let real = RealDocker::start(s.root.join("real"), &s.suffix);
    real.docker_ok(&["load", "-i", &tar.to_string_lossy()]);
    let mut theirs: Vec<String> = real
        .docker_ok(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ])
        .lines()
        .map(str::to_string)
        .collect();
    theirs.sort();
    assert_eq!(
        theirs.join("\n"),
        ours,
        "same names and image IDs in dockerd"
    );
    assert_eq!(
        real.docker_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "localhost:5000/team/child:v1",
            "cat",
            "/saved"
        ]),
        "saved",
        "dockerd runs our committed image"
    );
    // dockerd's save (legacy layout: <id>/layer.tar, <id>.json) loads into us.
    let back = s.root.join("theirs.tar");
    real.docker_ok(&[
        "save",
        "-o",
        &back.to_string_lossy(),
        "localhost:5000/team/child:v1",
    ]);
    assert!(tar_names(&back).iter().any(|n| n.ends_with("/layer.tar")));
    s.docker_ok(&["rmi", "localhost:5000/team/child:v1"]);
    let out = s.docker_ok(&["load", "-i", &back.to_string_lossy()]);
    assert_eq!(out, "Loaded image: localhost:5000/team/child:v1");
    assert_eq!(ids(&s), ours);
    assert_eq!(
        s.docker_ok(&[
            "run",
            "--rm",
            "localhost:5000/team/child:v1",
            "cat",
            "/saved"
        ]),
        "saved"
    );
}
