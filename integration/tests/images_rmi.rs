//! rmi and image prune with the seeds' semantics, checked in containerd-rs's content store and
//! snapshots: `rmi -f` of an image a container uses only removes the name (a dangling
//! <none>:<none> image stays), and a shared layer goes only when no image or container uses it.
//! Also: tags, filters, names with `/` and `:`, and tags across an engine-api restart.

use std::path::PathBuf;

use integration::{busybox_fixture, describe, Stack};

fn blob(s: &Stack, digest: &str) -> PathBuf {
    s.root
        .join("cd/content/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Snapshot keys in namespace moby, as `ctr snapshots ls` prints them.
fn snapshots(s: &Stack) -> Vec<String> {
    let out = s.ctr(&["-n", "moby", "snapshots", "ls"]);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn blobs(s: &Stack) -> usize {
    std::fs::read_dir(s.root.join("cd/content/blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn rmi_force_leaves_dangling_and_shared_layers_stay_until_unused() {
    let s = Stack::start();
    let (_, base) = busybox_fixture();
    s.docker_ok(&[
        "run",
        "--name",
        "user",
        "busybox",
        "sh",
        "-c",
        "echo x > /x",
    ]);
    let child = s.docker_ok(&["commit", "user", "child:v1"]);
    let child_layer = s.docker_ok(&["inspect", "-f", "{{index .RootFS.Layers 1}}", "child:v1"]);

    // Without -f the last name of an image a container uses cannot go.
    let out = s.docker(&["rmi", "busybox"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must force"),
        "{}",
        describe(&out)
    );
    // With -f only the name goes: the image stays, dangling, because `user` uses it.
    let out = s.docker_ok(&["rmi", "-f", "busybox"]);
    assert_eq!(out, "Untagged: busybox:latest");
    let dangling = s.docker_ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]);
    assert_eq!(dangling, base.image_id);
    let listed = s.docker_ok(&[
        "images",
        "-a",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert!(
        listed.contains(&format!("<none>:<none> {}", &base.image_id[7..19])),
        "{listed}"
    );
    assert!(blob(&s, &base.image_id).is_file(), "config kept");
    // The container still runs from it.
    assert_eq!(s.docker_ok(&["start", "-a", "user"]), "");

    // prune: the dangling image goes once no container uses it; its layer stays (child:v1
    // is built on it), as does the layer's snapshot.
    s.docker_ok(&["rm", "user"]);
    let out = s.docker_ok(&["image", "prune", "-f"]);
    assert!(
        out.contains(&format!("deleted: {}", base.image_id)),
        "{out}"
    );
    assert!(
        !blob(&s, &base.image_id).is_file(),
        "busybox config collected"
    );
    assert!(blob(&s, &base.diff_id).is_file(), "shared layer kept");
    let snaps = snapshots(&s);
    assert!(
        snaps.contains(&base.diff_id),
        "base snapshot kept: {snaps:?}"
    );
    assert_eq!(snaps.len(), 2, "base + child layer: {snaps:?}");
    assert_eq!(
        s.docker_ok(&["run", "--rm", "child:v1", "cat", "/x"]),
        "x",
        "child still runs on the shared layer"
    );

    // Removing the last image removes every blob and snapshot.
    let out = s.docker_ok(&["rmi", "child:v1"]);
    assert_eq!(out, format!("Untagged: child:v1\nDeleted: {child}"));
    assert!(!blob(&s, &base.diff_id).is_file());
    assert!(!blob(&s, &child_layer).is_file());
    assert_eq!(snapshots(&s), Vec::<String>::new());
    assert_eq!(blobs(&s), 0, "content store empty");
    assert_eq!(s.docker_ok(&["images", "-aq"]), "");
}

#[test]
fn rmi_by_id_of_running_image_is_refused_and_prune_all_keeps_used() {
    let s = Stack::start();
    let (_, base) = busybox_fixture();
    s.docker_ok(&["tag", "busybox", "second:tag"]);
    s.docker_ok(&["run", "-d", "--name", "live", "busybox", "sleep", "300"]);
    // By ID with two names: refused without -f; with -f refused while a container runs it.
    let out = s.docker(&["rmi", &base.image_id[7..19]]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("image is referenced in multiple repositories")
            || String::from_utf8_lossy(&out.stderr).contains("image is being used"),
        "{}",
        describe(&out)
    );
    let out = s.docker(&["rmi", "-f", &base.image_id]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("image is being used by running container"),
        "{}",
        describe(&out)
    );
    // Untagging one of two names is always fine.
    assert_eq!(s.docker_ok(&["rmi", "second:tag"]), "Untagged: second:tag");
    // prune -a removes unused images only.
    s.docker_ok(&["import", &busybox_layer(&s), "unused:1"]);
    let out = s.docker_ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: unused:1"), "{out}");
    assert_eq!(
        s.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest"
    );
}

/// The fixture's layer tar, written beside the stack, for `docker import`.
fn busybox_layer(s: &Stack) -> String {
    let (_, base) = busybox_fixture();
    let out = s.root.join("layer.tar");
    std::fs::write(&out, &base.layer).expect("write layer");
    out.to_string_lossy().into_owned()
}

#[test]
fn tags_filters_and_names_with_slashes_survive_restart() {
    let mut s = Stack::start();
    let (_, base) = busybox_fixture();
    s.docker_ok(&["tag", "busybox", "localhost:5000/team/app:1.0"]);
    s.docker_ok(&[
        "tag",
        "docker.io/library/busybox:latest",
        "docker.io/library/other",
    ]);
    s.docker_ok(&["run", "--name", "c1", "busybox", "true"]);
    let dangling = s.docker_ok(&["commit", "-c", "LABEL x=y", "c1"]);

    let list = |s: &Stack, extra: &[&str]| {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        args.extend_from_slice(extra);
        let mut v: Vec<String> = s.docker_ok(&args).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let all = list(&s, &[]);
    assert_eq!(
        all,
        vec![
            "<none>:<none>",
            "busybox:latest",
            "localhost:5000/team/app:1.0",
            "other:latest"
        ]
    );
    assert_eq!(
        list(&s, &["--filter", "reference=localhost:5000/*/*"]),
        vec!["localhost:5000/team/app:1.0"]
    );
    assert_eq!(
        list(&s, &["--filter", "reference=busybox"]),
        vec!["busybox:latest"]
    );
    assert_eq!(
        list(&s, &["--filter", "dangling=false"]),
        vec![
            "busybox:latest",
            "localhost:5000/team/app:1.0",
            "other:latest"
        ]
    );
    assert_eq!(
        s.docker_ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]),
        dangling
    );
    assert_eq!(
        s.docker_ok(&["images", "-q", "--filter", "label=x=y"]),
        &dangling[7..19]
    );
    let digests = s.docker_ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Digest}}",
        "busybox",
    ]);
    assert_eq!(
        digests, "busybox <none>",
        "a loaded image has no repo digest"
    );

    // The API routes names with `/` and `:` (and the fully qualified form).
    for path in [
        "/images/localhost:5000/team/app:1.0/json",
        "/v1.50/images/docker.io/library/busybox:latest/json",
        "/v1.24/images/docker.io/library/other/history",
    ] {
        let r = s.api("GET", path, None);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let id = match r.json() {
            serde_json::Value::Array(h) => h[0]["Id"].clone(),
            v => v["Id"].clone(),
        };
        assert_eq!(id, base.image_id.as_str(), "{path}");
    }
    let r = s.api("GET", "/images/localhost:5000/team/app:2.0/json", None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "No such image: localhost:5000/team/app:2.0"
    );

    // Everything is still there after an engine-api restart.
    let before = (list(&s, &[]), s.docker_ok(&["images", "-aq", "--no-trunc"]));
    s.restart_engine();
    let after = (list(&s, &[]), s.docker_ok(&["images", "-aq", "--no-trunc"]));
    assert_eq!(after, before);
    let r = s.api("DELETE", "/images/localhost:5000/team/app:1.0", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!([{"Untagged": "localhost:5000/team/app:1.0"}])
    );
    assert_eq!(
        s.docker_ok(&["run", "--rm", "other", "echo", "ok"]),
        "ok",
        "the remaining names still run after the restart"
    );
}
