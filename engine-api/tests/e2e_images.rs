//! Images against a private real containerd 1.6 (engine-api's containerd calls are the real
//! protocol): commit through Diff.Diff with the OCI media type real containerd's differ knows,
//! import, save/load round trip, and `rmi` freeing the content through containerd's GC.
mod common;

use common::{describe, Env};

#[test]
fn commit_import_save_and_gc_with_real_containerd() {
    let e = Env::start();
    let out = e.docker(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo real > /r; rm /etc/group",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let id = e.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/r\"]",
        "-m",
        "on containerd",
        "src",
        "child:v1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    let layers = e.ok(&[
        "inspect",
        "-f",
        "{{len .RootFS.Layers}} {{.Comment}}",
        "child:v1",
    ]);
    assert_eq!(layers, "2 on containerd");
    assert_eq!(e.ok(&["run", "--rm", "child:v1"]), "real");
    let out = e.docker(&["run", "--rm", "child:v1", "ls", "/etc/group"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "whiteout applied: {}",
        describe(&out)
    );

    // import from stdin: the busybox layer tar becomes a one-layer image that runs.
    let layer = fixtures::BusyboxImage::new(fixtures::DEFAULT_BUSYBOX)
        .build()
        .expect("fixture")
        .layer;
    let out = e.docker_stdin(
        &["import", "-c", "CMD [\"echo\", \"imported\"]", "-", "imp"],
        Some(&layer),
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(e.ok(&["run", "--rm", "imp"]), "imported");
    e.ok(&["rmi", "imp"]);

    // save both, remove them, load them back
    let tar = e.root.join("both.tar");
    e.ok(&["save", "-o", &tar.to_string_lossy(), "busybox", "child:v1"]);
    e.ok(&["rm", "src"]);
    e.ok(&["rmi", "child:v1", "busybox"]);
    assert_eq!(e.ok(&["images", "-aq"]), "");
    let blobs = e
        .root
        .join("cd/io.containerd.content.v1.content/blobs/sha256");
    let n = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0, "containerd's GC removed every blob");
    let out = e.ok(&["load", "-i", &tar.to_string_lossy()]);
    assert_eq!(out, "Loaded image: busybox:latest\nLoaded image: child:v1");
    assert_eq!(e.ok(&["run", "--rm", "child:v1"]), "real");
}
