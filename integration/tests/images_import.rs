//! docker import: a filesystem tar (from a file, or gzip from stdin) becomes a one-layer image,
//! with --change and -m.

use std::path::Path;
use std::process::Command;

use integration::{describe, docker_cli, Stack};

fn sh(script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{script}: {}", describe(&out));
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    let text = String::from_utf8_lossy(&out.stdout);
    format!(
        "sha256:{}",
        text.split_whitespace().next().unwrap_or_default()
    )
}

#[test]
fn import_from_file_and_stdin_with_changes() {
    let s = Stack::start_empty();
    let tree = s.root.join("tree");
    let tar = s.root.join("rootfs.tar");
    sh(&format!(
        "mkdir -p {t}/bin {t}/etc && cp /usr/bin/busybox {t}/bin/busybox && ln -s busybox {t}/bin/sh \
         && echo imported-file > {t}/etc/marker && tar -C {t} -cf {tar} . && gzip -k {tar}",
        t = tree.display(),
        tar = tar.display()
    ));
    let id = s.docker_ok(&[
        "import",
        "-m",
        "from a file",
        "-c",
        "ENV GREETING=hi",
        "-c",
        r#"CMD ["/bin/sh", "-c", "echo $GREETING from $(cat /etc/marker)"]"#,
        "-c",
        "WORKDIR /etc",
        &tar.to_string_lossy(),
        "localhost:5000/imp/rootfs:v1",
    ]);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(
        s.docker_ok(&["run", "--rm", "localhost:5000/imp/rootfs:v1"]),
        "hi from imported-file"
    );
    assert_eq!(
        s.docker_ok(&[
            "run",
            "--rm",
            "localhost:5000/imp/rootfs:v1",
            "/bin/sh",
            "-c",
            "pwd"
        ]),
        "/etc"
    );
    let img = s.inspect("localhost:5000/imp/rootfs:v1");
    assert_eq!(img["Id"], id.as_str(), "{img}");
    assert_eq!(img["Comment"], "from a file", "{img}");
    assert_eq!(
        img["RootFS"]["Layers"],
        serde_json::json!([sha256_of(&tar)]),
        "the tar itself is the only layer"
    );
    assert_eq!(img["Config"]["Env"], serde_json::json!(["GREETING=hi"]));

    // From stdin, gzip-compressed, no name: a dangling image with the same layer and the
    // default comment.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} import - < {}.gz",
            docker_cli().display(),
            tar.display()
        ))
        .env(
            "DOCKER_HOST",
            format!("unix://{}", s.engine_sock().display()),
        )
        .env("DOCKER_CONFIG", s.root.join("docker-config"))
        .output()
        .expect("docker import -");
    assert!(out.status.success(), "{}", describe(&out));
    let id2 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id2.starts_with("sha256:") && id2 != id, "{id2}");
    let img2 = s.inspect(&id2);
    assert_eq!(img2["RepoTags"], serde_json::json!([]), "{img2}");
    assert_eq!(img2["RootFS"]["Layers"], img["RootFS"]["Layers"]);
    let hist = s.docker_ok(&["history", "--format", "{{.Comment}}", &id2]);
    assert_eq!(hist, "Imported from -");
    let dangling = s.docker_ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]);
    assert_eq!(dangling, id2);

    // Bad input: an invalid change, a file that is not a tar.
    let out = s.docker(&["import", "-c", "RUN true", &tar.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run is not a valid change command"),
        "{}",
        describe(&out)
    );
    let junk = s.root.join("junk.tar");
    std::fs::write(&junk, vec![b'x'; 4096]).expect("write junk");
    let out = s.docker(&["import", &junk.to_string_lossy()]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid tar"),
        "{}",
        describe(&out)
    );
    // An import event for each image.
    let ev = s.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!("{}", now() + 1),
        "--filter",
        "type=image",
        "--filter",
        "event=import",
        "--format",
        "{{.Actor.ID}}",
    ]);
    assert_eq!(ev, format!("{id}\n{id2}"));
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
