//! docker commit: the container's writable layer becomes ONE new layer (containerd-rs's
//! Diff.Diff), written to the content store and unpacked into a snapshot; -c, -m, -a; the
//! container is paused while it commits unless --pause=false.

use std::path::PathBuf;
use std::process::Command;

use integration::{busybox_fixture, describe, Stack};

fn blob(s: &Stack, digest: &str) -> PathBuf {
    s.root
        .join("cd/content/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// `tar tf` of a layer blob.
fn tar_list(path: &PathBuf) -> Vec<String> {
    let out = Command::new("tar")
        .arg("tf")
        .arg(path)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar tf {}: {}",
        path.display(),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect()
}

#[test]
fn commit_makes_one_layer_with_changes_author_and_message() {
    let s = Stack::start();
    let (_, base) = busybox_fixture();
    let cmd = "echo committed > /hello; rm /etc/group";
    let out = s.docker(&["run", "--name", "src", "busybox", "sh", "-c", cmd]);
    assert!(out.status.success(), "{}", describe(&out));
    let src_id = s.inspect("src")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let id = s.docker_ok(&[
        "commit",
        "-a",
        "Jane Doe <jane@example.com>",
        "-m",
        "add hello",
        "-c",
        "ENV FOO=bar",
        "-c",
        r#"CMD ["cat", "/hello"]"#,
        "-c",
        "LABEL stage=committed",
        "src",
        "localhost:5000/team/child:v1",
    ]);
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "commit prints the image ID: {id}"
    );
    let img = s.inspect("localhost:5000/team/child:v1");
    assert_eq!(img["Id"], id.as_str(), "{img}");
    assert_eq!(img["Author"], "Jane Doe <jane@example.com>", "{img}");
    assert_eq!(img["Comment"], "add hello", "{img}");
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["cat", "/hello"]));
    assert_eq!(img["Config"]["Labels"]["stage"], "committed", "{img}");
    let env = img["Config"]["Env"].to_string();
    assert!(env.contains("FOO=bar") && env.contains("PATH="), "{env}");
    let layers: Vec<String> = img["RootFS"]["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    assert_eq!(layers.len(), 2, "one new layer on the base: {layers:?}");
    assert_eq!(layers[0], base.diff_id, "the base layer is shared");

    // The new layer is an uncompressed tar in containerd-rs's content store holding exactly
    // the container's changes: the new file and the whiteout of the removed one.
    let entries = tar_list(&blob(&s, &layers[1]));
    assert!(entries.iter().any(|e| e == "hello"), "{entries:?}");
    assert!(entries.iter().any(|e| e == "etc/.wh.group"), "{entries:?}");
    assert!(
        !entries.iter().any(|e| e == "bin/busybox"),
        "only the changes: {entries:?}"
    );

    // The image runs with the committed filesystem and config.
    assert_eq!(
        s.docker_ok(&["run", "--rm", "localhost:5000/team/child:v1"]),
        "committed"
    );
    let out = s.docker(&[
        "run",
        "--rm",
        "localhost:5000/team/child:v1",
        "sh",
        "-c",
        "ls /etc/group; echo $FOO",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bar\n",
        "the whiteout hides /etc/group: {}",
        describe(&out)
    );
    // history: the new entry on top records the container's command, author's comment.
    let hist = s.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "localhost:5000/team/child:v1",
    ]);
    let first = hist.lines().next().unwrap_or_default();
    assert_eq!(first, format!("sh -c {cmd}|add hello"), "{hist}");
    assert_eq!(hist.lines().count(), 2, "{hist}");
    // The container is recorded as the image's source.
    let raw = s.api(
        "GET",
        &format!("/images/{}/json", id.trim_start_matches("sha256:")),
        None,
    );
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(raw.json()["Id"], id.as_str());
    let cfg = std::fs::read_to_string(blob(&s, &id)).expect("config blob");
    let cfg: serde_json::Value = serde_json::from_str(&cfg).expect("config json");
    assert_eq!(cfg["container"], src_id.as_str(), "{cfg}");

    // Committing nothing new adds no layer.
    s.docker_ok(&["run", "--name", "same", "busybox", "true"]);
    s.docker_ok(&["commit", "same", "nochange"]);
    let n = s.docker_ok(&["inspect", "-f", "{{len .RootFS.Layers}}", "nochange"]);
    assert_eq!(n, "1");
    // Errors: unknown container 404 (exit 1), invalid change 400.
    let out = s.docker(&["commit", "nosuch", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such container: nosuch"),
        "{}",
        describe(&out)
    );
    let out = s.docker(&["commit", "-c", "RUN true", "src", "x"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run is not a valid change command"),
        "{}",
        describe(&out)
    );
    let r = s.api("POST", "/commit?container=src&repo=Bad%20Name", None);
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn commit_pauses_a_running_container_unless_told_not_to() {
    let s = Stack::start();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo state > /state; sleep 300",
    ]);
    assert!(
        integration::wait_until(std::time::Duration::from_secs(30), || {
            s.docker(&["exec", "live", "cat", "/state"])
                .status
                .success()
        }),
        "the container wrote /state"
    );
    let t0 = now();
    s.docker_ok(&["commit", "live", "snap:paused"]);
    s.docker_ok(&["commit", "--pause=false", "live", "snap:unpaused"]);
    let events = s.docker_ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &(now() + 1).to_string(),
        "--filter",
        "container=live",
        "--filter",
        "event=pause",
        "--filter",
        "event=unpause",
        "--filter",
        "event=commit",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = events.lines().collect();
    assert_eq!(
        actions,
        vec!["pause", "commit", "unpause", "commit"],
        "paused around the first commit only"
    );
    // Still running, not paused, and the committed image has the file.
    let st = s.inspect("live");
    assert_eq!(st["State"]["Status"], "running", "{st}");
    assert_eq!(st["State"]["Paused"], false, "{st}");
    for img in ["snap:paused", "snap:unpaused"] {
        assert_eq!(s.docker_ok(&["run", "--rm", img, "cat", "/state"]), "state");
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
