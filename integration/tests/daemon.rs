//! docker version / info / load / images against engine-api.

use integration::{busybox_fixture, procfs, Stack};

#[test]
fn version_reports_api_1_50() {
    let s = Stack::start_empty();
    let text = s.docker_ok(&["version", "--format", "{{json .Server}}"]);
    let server: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("server json ({e}): {text}"));
    assert_eq!(server["ApiVersion"], "1.50", "{server}");
    assert_eq!(server["Os"], "linux", "{server}");

    let r = s.api("GET", "/_ping", None);
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    assert_eq!(r.header("Api-Version"), Some("1.50"), "{:?}", r.headers);
    let r = s.api("GET", "/v1.50/version", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ApiVersion"], "1.50");
}

#[test]
fn info_works() {
    let s = Stack::start_empty();
    let text = s.docker_ok(&["info", "--format", "{{json .}}"]);
    let info: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("info json ({e}): {text}"));
    assert_eq!(info["Containers"], 0, "{info}");
    assert_eq!(info["OSType"], "linux", "{info}");
    assert!(info["ServerErrors"].is_null(), "{info}");
    let plain = s.docker_ok(&["info"]);
    assert!(plain.contains("Server Version"), "{plain}");
}

#[test]
fn load_stores_blobs_unpacks_layers_and_lists_busybox_latest() {
    let s = Stack::start_empty();
    let (tar, image) = busybox_fixture();
    let out = s.docker_ok(&["load", "-i", &tar.to_string_lossy()]);
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");

    let images = s.docker_ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert_eq!(images, format!("busybox:latest {}", image.image_id));
    let inspect = s.docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{.Os}} {{.Architecture}} {{json .RootFS.Layers}}",
        "busybox",
    ]);
    assert_eq!(
        inspect,
        format!("{} linux amd64 [\"{}\"]", image.image_id, image.diff_id)
    );

    // The config blob is in containerd-rs's content store, and a committed overlayfs snapshot
    // holds the unpacked layer.
    let hex = image.image_id.trim_start_matches("sha256:");
    let blob = s.root.join("cd/content/blobs/sha256").join(hex);
    let stored = std::fs::read(&blob).unwrap_or_default();
    assert!(
        stored == image.config,
        "config blob at {} holds the config ({} bytes stored)",
        blob.display(),
        stored.len()
    );
    let layer_hex = image.diff_id.trim_start_matches("sha256:");
    let layer_blob = s.root.join("cd/content/blobs/sha256").join(layer_hex);
    assert!(layer_blob.is_file(), "layer blob {}", layer_blob.display());
    let snaps = s.root.join("cd/snapshots/overlayfs");
    let unpacked: Vec<_> = std::fs::read_dir(&snaps)
        .unwrap_or_else(|e| panic!("{}: {e}", snaps.display()))
        .flatten()
        .filter(|e| e.path().join("fs/bin/busybox").is_file())
        .collect();
    assert_eq!(unpacked.len(), 1, "one unpacked layer snapshot");
    assert!(procfs::alive(s.engine_pid()));
}
