//! containerd-rs driven through its gRPC API (generated tonic clients) and the real `ctr`.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;

use common::{req, sha256, Daemon};
use proto::services::content::{content_client::ContentClient, WriteAction, WriteContentRequest};
use proto::services::diff::diff_client::DiffClient;
use proto::services::events::events_client::EventsClient;
use proto::services::images::images_client::ImagesClient;
use proto::services::namespaces::namespaces_client::NamespacesClient;
use proto::services::snapshots::snapshots_client::SnapshotsClient;
use proto::services::{
    content as cpb, diff as dpb, events as epb, images as ipb, namespaces as npb, snapshots as spb,
};
use tokio_stream::StreamExt;

async fn write_blob(
    ch: tonic::transport::Channel,
    ns: &str,
    data: &[u8],
    expected: &str,
) -> Result<String, tonic::Status> {
    let mut c = ContentClient::new(ch);
    let msgs = vec![
        WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: format!("ref-{}", rand::random::<u32>()),
            total: data.len() as i64,
            expected: expected.to_string(),
            ..Default::default()
        },
        WriteContentRequest {
            action: WriteAction::Commit as i32,
            offset: 0,
            data: data.to_vec(),
            total: data.len() as i64,
            expected: expected.to_string(),
            ..Default::default()
        },
    ];
    // The ref must be the same on both messages.
    let r = msgs[0].r#ref.clone();
    let msgs: Vec<_> = msgs
        .into_iter()
        .map(|mut m| {
            m.r#ref = r.clone();
            m
        })
        .collect();
    let mut out = c
        .write(req(ns, tokio_stream::iter(msgs)))
        .await?
        .into_inner();
    let mut digest = String::new();
    while let Some(m) = out.next().await {
        let m = m?;
        if m.action == WriteAction::Commit as i32 {
            digest = m.digest;
        }
    }
    Ok(digest)
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_lifecycle_and_errors() {
    let d = Daemon::start();
    let mut c = NamespacesClient::new(d.channel().await);
    let mut labels = HashMap::new();
    labels.insert("a".to_string(), "1".to_string());
    c.create(npb::CreateNamespaceRequest {
        namespace: Some(npb::Namespace {
            name: "n1".into(),
            labels,
        }),
    })
    .await
    .expect("create");
    let dup = c
        .create(npb::CreateNamespaceRequest {
            namespace: Some(npb::Namespace {
                name: "n1".into(),
                labels: HashMap::new(),
            }),
        })
        .await
        .expect_err("duplicate");
    assert_eq!(dup.code(), tonic::Code::AlreadyExists);
    let bad = c
        .create(npb::CreateNamespaceRequest {
            namespace: Some(npb::Namespace {
                name: "bad/name".into(),
                labels: HashMap::new(),
            }),
        })
        .await
        .expect_err("invalid");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let got = c
        .get(npb::GetNamespaceRequest { name: "n1".into() })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        got.namespace
            .expect("ns")
            .labels
            .get("a")
            .map(String::as_str),
        Some("1")
    );

    // A namespace with an image cannot be deleted.
    let mut images = ImagesClient::new(d.channel().await);
    images
        .create(req(
            "n1",
            ipb::CreateImageRequest {
                image: Some(image("img:1", &sha256(b"x"))),
                source_date_epoch: None,
            },
        ))
        .await
        .expect("image create");
    let e = c
        .delete(npb::DeleteNamespaceRequest { name: "n1".into() })
        .await
        .expect_err("not empty");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    images
        .delete(req(
            "n1",
            ipb::DeleteImageRequest {
                name: "img:1".into(),
                sync: false,
                target: None,
            },
        ))
        .await
        .expect("rm image");
    c.delete(npb::DeleteNamespaceRequest { name: "n1".into() })
        .await
        .expect("delete");
    let listed = c
        .list(npb::ListNamespacesRequest {
            filter: String::new(),
        })
        .await
        .expect("list")
        .into_inner();
    assert!(!listed.namespaces.iter().any(|n| n.name == "n1"), "deleted");
    // As in containerd, Get of a namespace that does not exist answers with no labels.
    let got = c
        .get(npb::GetNamespaceRequest { name: "n1".into() })
        .await
        .expect("get of a missing namespace")
        .into_inner();
    assert!(got.namespace.expect("ns").labels.is_empty());

    // Requests without a namespace are refused as containerd does.
    let e = images
        .list(ipb::ListImagesRequest { filters: vec![] })
        .await
        .expect_err("no ns");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
}

fn image(name: &str, digest: &str) -> ipb::Image {
    ipb::Image {
        name: name.into(),
        labels: HashMap::new(),
        target: Some(proto::types::Descriptor {
            media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
            digest: digest.into(),
            size: 1,
            annotations: HashMap::new(),
        }),
        created_at: None,
        updated_at: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn content_write_read_commit_with_digest_check() {
    let d = Daemon::start();
    let data = b"hello content store".repeat(1000);
    let wrong = sha256(b"other");
    let e = write_blob(d.channel().await, "t", &data, &wrong)
        .await
        .expect_err("digest mismatch");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    let digest = write_blob(d.channel().await, "t", &data, &sha256(&data))
        .await
        .expect("write");
    assert_eq!(digest, sha256(&data));
    // The blob is on disk under its digest.
    let hex = digest.trim_start_matches("sha256:");
    let on_disk =
        std::fs::read(d.root().join("content/blobs/sha256").join(hex)).expect("blob file");
    assert_eq!(on_disk, data);
    // Writing it again is AlreadyExists.
    let e = write_blob(d.channel().await, "t", &data, &digest)
        .await
        .expect_err("exists");
    assert_eq!(e.code(), tonic::Code::AlreadyExists);

    let mut c = ContentClient::new(d.channel().await);
    let info = c
        .info(req(
            "t",
            cpb::InfoRequest {
                digest: digest.clone(),
            },
        ))
        .await
        .expect("info")
        .into_inner();
    assert_eq!(info.info.expect("info").size, data.len() as i64);
    let mut s = c
        .read(req(
            "t",
            cpb::ReadContentRequest {
                digest: digest.clone(),
                offset: 6,
                size: 0,
            },
        ))
        .await
        .expect("read")
        .into_inner();
    let mut back = Vec::new();
    while let Some(m) = s.next().await {
        back.extend(m.expect("chunk").data);
    }
    assert_eq!(back, &data[6..]);
    // Other namespaces do not see it.
    let e = c
        .info(req(
            "other",
            cpb::InfoRequest {
                digest: digest.clone(),
            },
        ))
        .await
        .expect_err("ns isolation");
    assert_eq!(e.code(), tonic::Code::NotFound);

    // A partial ingest shows in Status and goes with Abort.
    let msgs = vec![WriteContentRequest {
        action: WriteAction::Write as i32,
        r#ref: "partial".into(),
        total: 10,
        data: b"12345".to_vec(),
        ..Default::default()
    }];
    let mut out = c
        .write(req("t", tokio_stream::iter(msgs)))
        .await
        .expect("write")
        .into_inner();
    while let Some(m) = out.next().await {
        m.expect("resp");
    }
    let st = c
        .status(req(
            "t",
            cpb::StatusRequest {
                r#ref: "partial".into(),
            },
        ))
        .await
        .expect("status")
        .into_inner();
    let st = st.status.expect("status");
    assert_eq!((st.offset, st.total), (5, 10));
    c.abort(req(
        "t",
        cpb::AbortRequest {
            r#ref: "partial".into(),
        },
    ))
    .await
    .expect("abort");
    let e = c
        .status(req(
            "t",
            cpb::StatusRequest {
                r#ref: "partial".into(),
            },
        ))
        .await
        .expect_err("aborted");
    assert_eq!(e.code(), tonic::Code::NotFound);

    c.delete(req(
        "t",
        cpb::DeleteContentRequest {
            digest: digest.clone(),
        },
    ))
    .await
    .expect("delete");
    assert!(!d.root().join("content/blobs/sha256").join(hex).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn images_crud_and_events() {
    let d = Daemon::start();
    let mut ev = EventsClient::new(d.channel().await);
    let mut sub = ev
        .subscribe(epb::SubscribeRequest {
            filters: vec![r#"topic=="/images/create""#.into()],
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut c = ImagesClient::new(d.channel().await);
    let dg = sha256(b"manifest");
    c.create(req(
        "m",
        ipb::CreateImageRequest {
            image: Some(image("docker.io/library/busybox:latest", &dg)),
            source_date_epoch: None,
        },
    ))
    .await
    .expect("create");
    let e = c
        .create(req(
            "m",
            ipb::CreateImageRequest {
                image: Some(image("docker.io/library/busybox:latest", &dg)),
                source_date_epoch: None,
            },
        ))
        .await
        .expect_err("dup");
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    let env = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
        .await
        .expect("event in time")
        .expect("stream")
        .expect("envelope");
    assert_eq!(env.topic, "/images/create");
    assert_eq!(env.namespace, "m");
    let any = env.event.expect("any");
    assert_eq!(any.type_url, "containerd.services.images.v1.ImageCreate");
    let ic: proto::events::ImageCreate = proto::any::unpack(&any).expect("decode");
    assert_eq!(ic.name, "docker.io/library/busybox:latest");

    let mut img = image("docker.io/library/busybox:latest", &dg);
    img.labels.insert("k".into(), "v".into());
    c.update(req(
        "m",
        ipb::UpdateImageRequest {
            image: Some(img),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["labels.k".into()],
            }),
            source_date_epoch: None,
        },
    ))
    .await
    .expect("update");
    let list = c
        .list(req(
            "m",
            ipb::ListImagesRequest {
                filters: vec!["labels.k==v".into()],
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.images.len(), 1);
    let list = c
        .list(req(
            "m",
            ipb::ListImagesRequest {
                filters: vec!["name==nope".into()],
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(list.images.is_empty());
    c.delete(req(
        "m",
        ipb::DeleteImageRequest {
            name: "docker.io/library/busybox:latest".into(),
            sync: false,
            target: None,
        },
    ))
    .await
    .expect("delete");
    let e = c
        .get(req(
            "m",
            ipb::GetImageRequest {
                name: "docker.io/library/busybox:latest".into(),
            },
        ))
        .await
        .expect_err("gone");
    assert_eq!(e.code(), tonic::Code::NotFound);
}

fn opt<'a>(m: &'a proto::types::Mount, key: &str) -> Option<&'a str> {
    m.options
        .iter()
        .find_map(|o| o.strip_prefix(&format!("{key}=")))
}

#[tokio::test(flavor = "multi_thread")]
async fn overlay_snapshots_prepare_commit_mounts() {
    let d = Daemon::start();
    let mut s = SnapshotsClient::new(d.channel().await);
    let base = s
        .prepare(req(
            "s",
            spb::PrepareSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "base-a".into(),
                parent: String::new(),
                labels: HashMap::new(),
            },
        ))
        .await
        .expect("prepare")
        .into_inner()
        .mounts;
    assert_eq!(base.len(), 1);
    assert_eq!(base[0].r#type, "bind");
    assert!(base[0].options.contains(&"rw".to_string()));
    std::fs::write(std::path::Path::new(&base[0].source).join("f"), b"base")
        .expect("write into snapshot");
    s.commit(req(
        "s",
        spb::CommitSnapshotRequest {
            snapshotter: "overlayfs".into(),
            name: "base".into(),
            key: "base-a".into(),
            labels: HashMap::new(),
        },
    ))
    .await
    .expect("commit");
    // A view of one committed layer is a read-only bind of it, as in containerd.
    let view = s
        .view(req(
            "s",
            spb::ViewSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "v".into(),
                parent: "base".into(),
                labels: HashMap::new(),
            },
        ))
        .await
        .expect("view")
        .into_inner()
        .mounts;
    assert_eq!(view[0].r#type, "bind");
    assert!(view[0].options.contains(&"ro".to_string()));
    let child = s
        .prepare(req(
            "s",
            spb::PrepareSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "c1".into(),
                parent: "base".into(),
                labels: HashMap::new(),
            },
        ))
        .await
        .expect("prepare child")
        .into_inner()
        .mounts;
    assert_eq!(child[0].r#type, "overlay");
    let lower = opt(&child[0], "lowerdir").expect("lowerdir");
    assert_eq!(lower, view[0].source);
    let upper = opt(&child[0], "upperdir").expect("upperdir").to_string();
    let work = opt(&child[0], "workdir").expect("workdir");
    assert!(std::path::Path::new(work).is_dir());
    // The kernel accepts the mount: the merged view shows the parent's file.
    let target = d.dir.join("merged");
    std::fs::create_dir_all(&target).expect("mkdir");
    let data = child[0].options.join(",");
    nix::mount::mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .expect("mount overlay");
    let got = std::fs::read(target.join("f"));
    std::fs::write(target.join("g"), b"new").expect("write through overlay");
    nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).expect("umount");
    assert_eq!(got.expect("read merged"), b"base");
    assert!(std::path::Path::new(&upper).join("g").exists());

    let e = s
        .remove(req(
            "s",
            spb::RemoveSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "base".into(),
            },
        ))
        .await
        .expect_err("has children");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let e = s
        .prepare(req(
            "s",
            spb::PrepareSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "c1".into(),
                parent: "base".into(),
                labels: HashMap::new(),
            },
        ))
        .await
        .expect_err("dup");
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    let st = s
        .stat(req(
            "s",
            spb::StatSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "c1".into(),
            },
        ))
        .await
        .expect("stat")
        .into_inner();
    let info = st.info.expect("info");
    assert_eq!(
        (info.parent.as_str(), info.kind),
        ("base", spb::Kind::Active as i32)
    );
    let u = s
        .usage(req(
            "s",
            spb::UsageRequest {
                snapshotter: "overlayfs".into(),
                key: "c1".into(),
            },
        ))
        .await
        .expect("usage")
        .into_inner();
    assert!(u.size > 0 && u.inodes >= 2, "{u:?}");
    for k in ["c1", "v", "base"] {
        s.remove(req(
            "s",
            spb::RemoveSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: k.into(),
            },
        ))
        .await
        .expect("remove");
    }
    assert!(!std::path::Path::new(&upper).exists());
}

fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        match data {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).expect("dir");
            }
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, path, *d).expect("file");
            }
        }
    }
    b.into_inner().expect("tar")
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_apply_converts_whiteouts_in_the_upperdir() {
    let d = Daemon::start();
    let ch = d.channel().await;
    let layer1 = tar_of(&[
        ("a/", None),
        ("a/x", Some(b"x")),
        ("b", Some(b"b")),
        ("c", Some(b"c")),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &layer1).expect("gzip");
    let layer1_gz = gz.finish().expect("gzip");
    let l1 = write_blob(ch.clone(), "d", &layer1_gz, "")
        .await
        .expect("blob1");
    let layer2 = tar_of(&[
        ("a/", None),
        ("a/.wh..wh..opq", Some(b"")),
        ("a/y", Some(b"y")),
        (".wh.b", Some(b"")),
    ]);
    let l2 = write_blob(ch.clone(), "d", &layer2, "")
        .await
        .expect("blob2");

    let mut s = SnapshotsClient::new(ch.clone());
    let mut diff = DiffClient::new(ch.clone());
    let m1 = s
        .prepare(req(
            "d",
            spb::PrepareSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "extract-1".into(),
                parent: String::new(),
                labels: HashMap::new(),
            },
        ))
        .await
        .expect("prepare")
        .into_inner()
        .mounts;
    let applied = diff
        .apply(req(
            "d",
            dpb::ApplyRequest {
                diff: Some(proto::types::Descriptor {
                    media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
                    digest: l1,
                    size: layer1_gz.len() as i64,
                    annotations: HashMap::new(),
                }),
                mounts: m1.clone(),
                payloads: HashMap::new(),
                sync_fs: false,
            },
        ))
        .await
        .expect("apply 1")
        .into_inner()
        .applied
        .expect("desc");
    // The applied descriptor is the uncompressed diff id.
    assert_eq!(applied.digest, sha256(&layer1));
    let fs1 = std::path::PathBuf::from(&m1[0].source);
    assert_eq!(std::fs::read(fs1.join("a/x")).expect("a/x"), b"x");
    s.commit(req(
        "d",
        spb::CommitSnapshotRequest {
            snapshotter: "overlayfs".into(),
            name: "layer1".into(),
            key: "extract-1".into(),
            labels: HashMap::new(),
        },
    ))
    .await
    .expect("commit");
    let m2 = s
        .prepare(req(
            "d",
            spb::PrepareSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "extract-2".into(),
                parent: "layer1".into(),
                labels: HashMap::new(),
            },
        ))
        .await
        .expect("prepare 2")
        .into_inner()
        .mounts;
    diff.apply(req(
        "d",
        dpb::ApplyRequest {
            diff: Some(proto::types::Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: l2,
                size: layer2.len() as i64,
                annotations: HashMap::new(),
            }),
            mounts: m2.clone(),
            payloads: HashMap::new(),
            sync_fs: false,
        },
    ))
    .await
    .expect("apply 2");
    let upper = std::path::PathBuf::from(opt(&m2[0], "upperdir").expect("upper"));
    let b = std::fs::symlink_metadata(upper.join("b")).expect("whiteout b");
    assert!(b.file_type().is_char_device(), "b is not a char device");
    assert_eq!(b.rdev(), 0);
    assert!(!upper.join(".wh.b").exists());
    let opaque = xattr::get(upper.join("a"), "trusted.overlay.opaque").expect("xattr");
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    assert_eq!(std::fs::read(upper.join("a/y")).expect("a/y"), b"y");
    // The lower layer is untouched.
    assert!(fs1.join("b").exists());
    // Mounted, the overlay shows the layer's result: b gone, a/x hidden, c kept.
    let target = d.dir.join("mnt");
    std::fs::create_dir_all(&target).expect("mkdir");
    let data = m2[0].options.join(",");
    nix::mount::mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .expect("mount");
    let seen = (
        target.join("b").exists(),
        target.join("a/x").exists(),
        target.join("c").exists(),
        target.join("a/y").exists(),
    );
    nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).expect("umount");
    assert_eq!(seen, (false, false, true, true));
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_metadata() {
    let mut d = Daemon::start();
    let data = b"persist me".to_vec();
    let dg = write_blob(d.channel().await, "r", &data, "")
        .await
        .expect("blob");
    ImagesClient::new(d.channel().await)
        .create(req(
            "r",
            ipb::CreateImageRequest {
                image: Some(image("img:keep", &dg)),
                source_date_epoch: None,
            },
        ))
        .await
        .expect("create");
    d.stop(true);
    d.spawn();
    let got = ImagesClient::new(d.channel().await)
        .get(req(
            "r",
            ipb::GetImageRequest {
                name: "img:keep".into(),
            },
        ))
        .await
        .expect("image after restart")
        .into_inner();
    assert_eq!(got.image.expect("image").target.expect("target").digest, dg);
    let info = ContentClient::new(d.channel().await)
        .info(req("r", cpb::InfoRequest { digest: dg }))
        .await
        .expect("content after restart");
    assert_eq!(
        info.into_inner().info.expect("info").size,
        data.len() as i64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn real_ctr_talks_to_it() {
    let d = Daemon::start();
    let out = d.ctr(&["version"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("containerd-rs"));
    NamespacesClient::new(d.channel().await)
        .create(npb::CreateNamespaceRequest {
            namespace: Some(npb::Namespace {
                name: "x".into(),
                labels: HashMap::new(),
            }),
        })
        .await
        .expect("create ns");
    let out = d.ctr(&["namespaces", "ls"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("x ")));
    let dg = write_blob(d.channel().await, "x", b"{}", "")
        .await
        .expect("blob");
    ImagesClient::new(d.channel().await)
        .create(req(
            "x",
            ipb::CreateImageRequest {
                image: Some(image("docker.io/library/t:1", &dg)),
                source_date_epoch: None,
            },
        ))
        .await
        .expect("image");
    let out = d.ctr(&["-n", "x", "images", "ls", "-q"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "docker.io/library/t:1"
    );
    let out = d.ctr(&["-n", "x", "content", "ls", "-q"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), dg);
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_is_unimplemented_and_codes_match_containerd() {
    use proto::services::tasks::{self as tpb, tasks_client::TasksClient};
    let d = Daemon::start();
    let mut t = TasksClient::new(d.channel().await);
    let e = t
        .checkpoint(req(
            "x",
            tpb::CheckpointTaskRequest {
                container_id: "c".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("checkpoint");
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    assert!(e.message().contains("checkpoint is not supported"), "{e}");
    let e = t
        .get(req(
            "x",
            tpb::GetRequest {
                container_id: "nope".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect_err("no task");
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = t
        .create(req(
            "x",
            tpb::CreateTaskRequest {
                container_id: "nope".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("no container");
    assert_eq!(e.code(), tonic::Code::NotFound);
    // A ref written by one stream is Unavailable to a second writer while the first is on.
    let mut c = ContentClient::new(d.channel().await);
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let mut first = c
        .write(req("x", tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .expect("first writer")
        .into_inner();
    tx.send(WriteContentRequest {
        action: WriteAction::Write as i32,
        r#ref: "busy".into(),
        data: b"abc".to_vec(),
        ..Default::default()
    })
    .await
    .expect("send");
    first.next().await.expect("resp").expect("written");
    let second = vec![WriteContentRequest {
        action: WriteAction::Stat as i32,
        r#ref: "busy".into(),
        ..Default::default()
    }];
    let e = match c.write(req("x", tokio_stream::iter(second))).await {
        Err(e) => e,
        Ok(r) => r
            .into_inner()
            .next()
            .await
            .expect("answer")
            .expect_err("locked"),
    };
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    let e = EventsClient::new(d.channel().await)
        .subscribe(proto::services::events::SubscribeRequest {
            filters: vec!["topic==/tasks/exit".into()],
        })
        .await
        .expect_err("bad filter");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    drop(tx);
}
