//! The native and btrfs snapshotters and Diff.Apply of tar, tar+gzip and tar+zstd layers, driven
//! through containerd-rs's gRPC API; each check looks at what a user sees on disk or through the
//! returned mounts. The btrfs test makes its own filesystem on a loop device.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{req, sha256, Daemon};
use proto::services::content::{content_client::ContentClient, WriteAction, WriteContentRequest};
use proto::services::diff::diff_client::DiffClient;
use proto::services::introspection::introspection_client::IntrospectionClient;
use proto::services::leases::leases_client::LeasesClient;
use proto::services::snapshots::snapshots_client::SnapshotsClient;
use proto::services::{diff as dpb, introspection as ipb, leases as lpb, snapshots as spb};
use proto::types::{Descriptor, Mount};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const MEDIA_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MEDIA_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const SNAPSHOTTER_PLUGIN: &str = "io.containerd.snapshotter.v1";

// ---------------------------------------------------------------------------------------------
// The gRPC calls, each under the test's lease (so that no collection takes what a test builds).

struct Api {
    ch: Channel,
    ns: &'static str,
    lease: String,
}

impl Api {
    async fn new(d: &Daemon, ns: &'static str) -> Self {
        let ch = d.channel().await;
        let lease = format!("test-{}", rand::random::<u32>());
        LeasesClient::new(ch.clone())
            .create(req(
                ns,
                lpb::CreateRequest {
                    id: lease.clone(),
                    labels: HashMap::new(),
                },
            ))
            .await
            .expect("create lease");
        Self { ch, ns, lease }
    }

    fn r<T>(&self, t: T) -> tonic::Request<T> {
        let mut r = req(self.ns, t);
        r.metadata_mut().insert(
            "containerd-lease",
            self.lease.parse().expect("lease header"),
        );
        r
    }

    fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.ch.clone())
    }

    async fn prepare(&self, sn: &str, key: &str, parent: &str) -> Vec<Mount> {
        self.snapshots()
            .prepare(self.r(spb::PrepareSnapshotRequest {
                snapshotter: sn.into(),
                key: key.into(),
                parent: parent.into(),
                labels: HashMap::new(),
            }))
            .await
            .unwrap_or_else(|e| panic!("prepare {sn} {key} (parent {parent:?}): {e}"))
            .into_inner()
            .mounts
    }

    async fn view(&self, sn: &str, key: &str, parent: &str) -> Vec<Mount> {
        self.snapshots()
            .view(self.r(spb::ViewSnapshotRequest {
                snapshotter: sn.into(),
                key: key.into(),
                parent: parent.into(),
                labels: HashMap::new(),
            }))
            .await
            .unwrap_or_else(|e| panic!("view {sn} {key} (parent {parent}): {e}"))
            .into_inner()
            .mounts
    }

    async fn mounts(&self, sn: &str, key: &str) -> Result<Vec<Mount>, tonic::Status> {
        Ok(self
            .snapshots()
            .mounts(self.r(spb::MountsRequest {
                snapshotter: sn.into(),
                key: key.into(),
            }))
            .await?
            .into_inner()
            .mounts)
    }

    async fn commit(&self, sn: &str, name: &str, key: &str) {
        self.snapshots()
            .commit(self.r(spb::CommitSnapshotRequest {
                snapshotter: sn.into(),
                name: name.into(),
                key: key.into(),
                labels: HashMap::new(),
            }))
            .await
            .unwrap_or_else(|e| panic!("commit {sn} {key} as {name}: {e}"));
    }

    async fn remove(&self, sn: &str, key: &str) -> Result<(), tonic::Status> {
        self.snapshots()
            .remove(self.r(spb::RemoveSnapshotRequest {
                snapshotter: sn.into(),
                key: key.into(),
            }))
            .await
            .map(|_| ())
    }

    async fn stat(&self, sn: &str, key: &str) -> Result<spb::Info, tonic::Status> {
        Ok(self
            .snapshots()
            .stat(self.r(spb::StatSnapshotRequest {
                snapshotter: sn.into(),
                key: key.into(),
            }))
            .await?
            .into_inner()
            .info
            .expect("stat answers an info"))
    }

    /// (name, parent, kind) of the listed snapshots, sorted by name.
    async fn list(&self, sn: &str, filters: &[&str]) -> Vec<(String, String, i32)> {
        let mut stream = self
            .snapshots()
            .list(self.r(spb::ListSnapshotsRequest {
                snapshotter: sn.into(),
                filters: filters.iter().map(|f| f.to_string()).collect(),
            }))
            .await
            .expect("list snapshots")
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            for i in chunk.expect("list chunk").info {
                out.push((i.name, i.parent, i.kind));
            }
        }
        out.sort();
        out
    }

    async fn usage(&self, sn: &str, key: &str) -> spb::UsageResponse {
        self.snapshots()
            .usage(self.r(spb::UsageRequest {
                snapshotter: sn.into(),
                key: key.into(),
            }))
            .await
            .unwrap_or_else(|e| panic!("usage {sn} {key}: {e}"))
            .into_inner()
    }

    /// Writes a blob through the Content service; returns its digest.
    async fn blob(&self, data: &[u8]) -> String {
        let reference = format!("ref-{}", rand::random::<u32>());
        let msgs = vec![
            WriteContentRequest {
                action: WriteAction::Stat as i32,
                r#ref: reference.clone(),
                total: data.len() as i64,
                expected: sha256(data),
                ..Default::default()
            },
            WriteContentRequest {
                action: WriteAction::Commit as i32,
                r#ref: reference,
                offset: 0,
                data: data.to_vec(),
                total: data.len() as i64,
                expected: sha256(data),
                ..Default::default()
            },
        ];
        let mut out = ContentClient::new(self.ch.clone())
            .write(self.r(tokio_stream::iter(msgs)))
            .await
            .expect("content write")
            .into_inner();
        let mut digest = String::new();
        while let Some(m) = out.next().await {
            let m = m.expect("content write reply");
            if m.action == WriteAction::Commit as i32 {
                digest = m.digest;
            }
        }
        assert_eq!(digest, sha256(data), "committed digest");
        digest
    }

    /// Writes `blob` to the content store and applies it onto `mounts`.
    async fn apply(
        &self,
        media_type: &str,
        blob: &[u8],
        mounts: &[Mount],
    ) -> Result<Descriptor, tonic::Status> {
        let digest = self.blob(blob).await;
        let applied = DiffClient::new(self.ch.clone())
            .apply(self.r(dpb::ApplyRequest {
                diff: Some(Descriptor {
                    media_type: media_type.into(),
                    digest,
                    size: blob.len() as i64,
                    annotations: HashMap::new(),
                }),
                mounts: mounts.to_vec(),
                payloads: HashMap::new(),
                sync_fs: false,
            }))
            .await?
            .into_inner()
            .applied
            .expect("applied descriptor");
        Ok(applied)
    }

    async fn snapshotter_plugins(&self) -> Vec<ipb::Plugin> {
        IntrospectionClient::new(self.ch.clone())
            .plugins(ipb::PluginsRequest {
                filters: vec![format!(r#"type=="{SNAPSHOTTER_PLUGIN}""#)],
            })
            .await
            .expect("introspection plugins")
            .into_inner()
            .plugins
    }
}

// ---------------------------------------------------------------------------------------------
// Layers and what they leave on disk.

struct Layer(tar::Builder<Vec<u8>>);

fn header(kind: tar::EntryType, mode: u32, owner: (u64, u64), size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(owner.0);
    h.set_gid(owner.1);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    h
}

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }
    fn dir(self, path: &str, mode: u32) -> Self {
        self.dir_owned(path, mode, (0, 0))
    }
    fn dir_owned(mut self, path: &str, mode: u32, owner: (u64, u64)) -> Self {
        let mut h = header(tar::EntryType::Directory, mode, owner, 0);
        self.0
            .append_data(&mut h, path, std::io::empty())
            .expect("tar dir");
        self
    }
    fn file(self, path: &str, mode: u32, data: &str) -> Self {
        self.file_owned(path, mode, (0, 0), data)
    }
    fn file_owned(mut self, path: &str, mode: u32, owner: (u64, u64), data: &str) -> Self {
        let mut h = header(tar::EntryType::Regular, mode, owner, data.len() as u64);
        self.0
            .append_data(&mut h, path, data.as_bytes())
            .expect("tar file");
        self
    }
    /// An OCI whiteout (`.wh.<name>`, `.wh..wh..opq`): an empty regular file.
    fn whiteout(self, path: &str) -> Self {
        self.file(path, 0o644, "")
    }
    fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, (0, 0), 0);
        self.0
            .append_link(&mut h, path, target)
            .expect("tar symlink");
        self
    }
    fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Link, 0o644, (0, 0), 0);
        self.0
            .append_link(&mut h, path, target)
            .expect("tar hardlink");
        self
    }
    fn tar(self) -> Vec<u8> {
        self.0.into_inner().expect("tar")
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, data).expect("gzip");
    gz.finish().expect("gzip")
}

fn zstd(data: &[u8]) -> Vec<u8> {
    let out = zstd::encode_all(data, 3).expect("zstd");
    assert!(
        out.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "zstd frame magic"
    );
    out
}

const TOOL: &str = "#!/bin/sh\necho tool\n";
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n";

/// Layer 1 (plain tar): files, a symlink, a hard link, directories with their own modes.
fn layer1() -> Vec<u8> {
    Layer::new()
        .dir("bin/", 0o755)
        .file("bin/tool", 0o755, TOOL)
        .hardlink("bin/tool2", "bin/tool")
        .symlink("bin/sh", "tool")
        .dir("etc/", 0o755)
        .file("etc/passwd", 0o644, PASSWD)
        .file("etc/secret", 0o600, "hunter2")
        .dir("opt/", 0o755)
        .dir("opt/app/", 0o750)
        .file("opt/app/old.txt", 0o644, "old")
        .dir("opt/app/sub/", 0o755)
        .file("opt/app/sub/deep", 0o644, "deep")
        .dir("opt/gone/", 0o755)
        .file("opt/gone/x", 0o644, "x")
        .tar()
}

/// Layer 2 (applied as tar+gzip, and as tar+zstd on overlayfs): deletes a file and a directory
/// with `.wh.` whiteouts and makes `opt/app` opaque with one new entry.
fn layer2() -> Vec<u8> {
    Layer::new()
        .dir("etc/", 0o755)
        .whiteout("etc/.wh.secret")
        .dir("opt/", 0o755)
        .whiteout("opt/.wh.gone")
        .dir("opt/app/", 0o750)
        .whiteout("opt/app/.wh..wh..opq")
        .file("opt/app/new.txt", 0o640, "new")
        .tar()
}

/// Layer 3 (tar+zstd): adds files, a relative symlink, a setuid file and a user's directory.
fn layer3() -> Vec<u8> {
    Layer::new()
        .dir("opt/", 0o755)
        .dir("opt/app/", 0o750)
        .file("opt/app/third", 0o600, "3")
        .dir("usr/", 0o755)
        .dir("usr/lib/", 0o755)
        .file("usr/lib/libx.so.1", 0o755, "\u{7f}ELF")
        .symlink("usr/lib/libx.so", "libx.so.1")
        .dir("usr/bin/", 0o755)
        .file("usr/bin/su", 0o4755, "su")
        .dir("home/", 0o755)
        .dir_owned("home/user/", 0o700, (1000, 1000))
        .file_owned("home/user/.profile", 0o644, (1000, 1000), "export A=1\n")
        .tar()
}

/// One line per entry of a tree, as [`tree`] prints it.
fn dir_e(path: &str, mode: u32) -> String {
    format!("{path} {mode:04o} 0:0 dir")
}
fn file_e(path: &str, mode: u32, data: &str) -> String {
    format!("{path} {mode:04o} 0:0 file {data:?}")
}
fn link_e(path: &str, target: &str) -> String {
    format!("{path} 0777 0:0 -> {target}")
}
fn wh_e(path: &str) -> String {
    format!("{path} 0000 0:0 char 0:0")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn tree_after_layer1() -> Vec<String> {
    sorted(vec![
        dir_e("bin", 0o755),
        link_e("bin/sh", "tool"),
        file_e("bin/tool", 0o755, TOOL),
        file_e("bin/tool2", 0o755, TOOL),
        dir_e("etc", 0o755),
        file_e("etc/passwd", 0o644, PASSWD),
        file_e("etc/secret", 0o600, "hunter2"),
        dir_e("opt", 0o755),
        dir_e("opt/app", 0o750),
        file_e("opt/app/old.txt", 0o644, "old"),
        dir_e("opt/app/sub", 0o755),
        file_e("opt/app/sub/deep", 0o644, "deep"),
        dir_e("opt/gone", 0o755),
        file_e("opt/gone/x", 0o644, "x"),
    ])
}

fn tree_after_layer2() -> Vec<String> {
    sorted(vec![
        dir_e("bin", 0o755),
        link_e("bin/sh", "tool"),
        file_e("bin/tool", 0o755, TOOL),
        file_e("bin/tool2", 0o755, TOOL),
        dir_e("etc", 0o755),
        file_e("etc/passwd", 0o644, PASSWD),
        dir_e("opt", 0o755),
        dir_e("opt/app", 0o750),
        file_e("opt/app/new.txt", 0o640, "new"),
    ])
}

fn tree_after_layer3() -> Vec<String> {
    let mut v = tree_after_layer2();
    v.extend([
        file_e("opt/app/third", 0o600, "3"),
        dir_e("usr", 0o755),
        dir_e("usr/lib", 0o755),
        file_e("usr/lib/libx.so.1", 0o755, "\u{7f}ELF"),
        link_e("usr/lib/libx.so", "libx.so.1"),
        dir_e("usr/bin", 0o755),
        file_e("usr/bin/su", 0o4755, "su"),
        dir_e("home", 0o755),
        "home/user 0700 1000:1000 dir".to_string(),
        format!(
            "home/user/.profile 0644 1000:1000 file {:?}",
            "export A=1\n"
        ),
    ]);
    sorted(v)
}

/// Every entry under `root` (not `root` itself): path, permission bits, owner, and the content
/// of a file, the target of a symlink or the numbers of a device; sorted.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let rd = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for e in rd {
            let p = e.expect("dir entry").path();
            let md = std::fs::symlink_metadata(&p).expect("lstat");
            let ft = md.file_type();
            let what = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("-> {}", std::fs::read_link(&p).expect("readlink").display())
            } else if ft.is_file() {
                let data = std::fs::read(&p).expect("read file");
                format!("file {:?}", String::from_utf8_lossy(&data))
            } else if ft.is_char_device() {
                let rdev = md.rdev();
                format!("char {}:{}", libc::major(rdev), libc::minor(rdev))
            } else {
                "other".to_string()
            };
            let rel = p.strip_prefix(root).expect("under root").display();
            out.push(format!(
                "{rel} {:04o} {}:{} {what}",
                md.mode() & 0o7777,
                md.uid(),
                md.gid()
            ));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Mounts as a shim performs them.

/// Mounts one `containerd.types.Mount` at `target`: a bind (made read-only by a remount when
/// asked), or a filesystem with the options other than ro/rw as its data.
fn mount_at(m: &Mount, target: &Path) -> nix::Result<()> {
    use nix::mount::{mount, MsFlags};
    std::fs::create_dir_all(target).expect("mkdir mount point");
    let ro = m.options.iter().any(|o| o == "ro");
    if m.r#type == "bind" {
        mount(
            Some(m.source.as_str()),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
        if ro {
            let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, target, None::<&str>, remount, None::<&str>)?;
        }
        return Ok(());
    }
    let data: Vec<&str> = m
        .options
        .iter()
        .map(String::as_str)
        .filter(|o| *o != "ro" && *o != "rw")
        .collect();
    let flags = if ro {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    mount(
        Some(m.source.as_str()),
        target,
        Some(m.r#type.as_str()),
        flags,
        Some(data.join(",").as_str()),
    )
}

fn umount(target: &Path) {
    nix::mount::umount2(target, nix::mount::MntFlags::empty())
        .unwrap_or_else(|e| panic!("umount {}: {e}", target.display()));
}

fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Writes a file with exactly `mode` (whatever the umask).
fn write_mode(path: &Path, data: &str, mode: u32) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The errno of a failed write of `path`.
fn write_errno(path: &Path) -> Option<i32> {
    std::fs::write(path, b"x")
        .err()
        .and_then(|e| e.raw_os_error())
}

fn opt<'a>(m: &'a Mount, key: &str) -> Option<&'a str> {
    m.options
        .iter()
        .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
}

fn kinds(names: &[(&str, &str, spb::Kind)]) -> Vec<(String, String, i32)> {
    names
        .iter()
        .map(|(n, p, k)| (n.to_string(), p.to_string(), *k as i32))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// native

#[tokio::test(flavor = "multi_thread")]
async fn native_snapshots_are_plain_copies_behind_bind_mounts() {
    let d = Daemon::start();
    let a = Api::new(&d, "native-sn").await;
    let sn = "native";
    let native_root = d.root().join("snapshots/native");

    // Both generic snapshotters are loaded; btrfs only when the root is on btrfs.
    let plugins = a.snapshotter_plugins().await;
    let ids: Vec<&str> = plugins.iter().map(|p| p.id.as_str()).collect();
    assert!(
        ids.contains(&"native") && ids.contains(&"overlayfs"),
        "{ids:?}"
    );
    let root_is_btrfs = nix::sys::statfs::statfs(&d.root())
        .expect("statfs root")
        .filesystem_type()
        .0 as i64
        == 0x9123683e;
    assert_eq!(ids.contains(&"btrfs"), root_is_btrfs, "{ids:?}");

    // A first snapshot: a read-write bind mount of an empty plain directory.
    let ma = a.prepare(sn, "n-a", "").await;
    assert_eq!(ma.len(), 1, "{ma:?}");
    assert_eq!(ma[0].r#type, "bind");
    assert_eq!(ma[0].options, ["rw", "rbind"]);
    let src_a = PathBuf::from(&ma[0].source);
    assert!(src_a.starts_with(&native_root), "{}", src_a.display());
    assert!(src_a.is_dir());
    assert!(!mount_points().contains(&ma[0].source), "not a mount point");
    assert_eq!(tree(&src_a), Vec::<String>::new());

    // A user writes through the mount.
    let mnt = d.dir.join("mnt-a");
    mount_at(&ma[0], &mnt).expect("bind mount n-a");
    write_mode(&mnt.join("f"), "parent", 0o640);
    std::fs::create_dir(mnt.join("d")).expect("mkdir d");
    std::fs::set_permissions(mnt.join("d"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod d");
    write_mode(&mnt.join("d/g"), "g", 0o644);
    std::os::unix::fs::symlink("f", mnt.join("l")).expect("symlink l");
    umount(&mnt);
    let parent_tree = sorted(vec![
        "d 0755 0:0 dir".to_string(),
        file_e("d/g", 0o644, "g"),
        file_e("f", 0o640, "parent"),
        link_e("l", "f"),
    ]);
    assert_eq!(tree(&src_a), parent_tree);
    assert_eq!(a.mounts(sn, "n-a").await.expect("mounts n-a"), ma);

    a.commit(sn, "n-base", "n-a").await;
    // A committed snapshot has no mounts (containerd: not active, failed precondition).
    let e = a
        .mounts(sn, "n-base")
        .await
        .expect_err("mounts of committed");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");

    // A child is a full copy of its parent in a directory of its own.
    let mc = a.prepare(sn, "n-child", "n-base").await;
    assert_eq!(mc.len(), 1, "{mc:?}");
    assert_eq!(
        (mc[0].r#type.as_str(), &mc[0].options[..]),
        ("bind", &["rw".to_string(), "rbind".to_string()][..])
    );
    let src_c = PathBuf::from(&mc[0].source);
    assert!(src_c.starts_with(&native_root) && src_c != src_a);
    assert_eq!(tree(&src_c), parent_tree);
    let (ino_a, ino_c) = (
        std::fs::metadata(src_a.join("f")).expect("stat").ino(),
        std::fs::metadata(src_c.join("f")).expect("stat").ino(),
    );
    assert_ne!(ino_a, ino_c, "the child's f is a copy, not a link");
    assert_eq!(a.mounts(sn, "n-child").await.expect("mounts child"), mc);

    // Writing to the child leaves the parent as it was.
    let mnt_c = d.dir.join("mnt-c");
    mount_at(&mc[0], &mnt_c).expect("bind mount n-child");
    std::fs::write(mnt_c.join("f"), "child").expect("rewrite f");
    write_mode(&mnt_c.join("new"), "new", 0o644);
    std::fs::remove_file(mnt_c.join("d/g")).expect("rm d/g");
    umount(&mnt_c);
    assert_eq!(tree(&src_a), parent_tree, "the parent changed");
    let child_tree = sorted(vec![
        "d 0755 0:0 dir".to_string(),
        file_e("f", 0o640, "child"),
        link_e("l", "f"),
        file_e("new", 0o644, "new"),
    ]);
    assert_eq!(tree(&src_c), child_tree);

    // A view is read-only and shows the parent.
    let mv = a.view(sn, "n-view", "n-base").await;
    assert_eq!(mv.len(), 1, "{mv:?}");
    assert_eq!(mv[0].r#type, "bind");
    assert!(mv[0].options.iter().any(|o| o == "ro"), "{mv:?}");
    assert!(!mv[0].options.iter().any(|o| o == "rw"), "{mv:?}");
    let mnt_v = d.dir.join("mnt-v");
    mount_at(&mv[0], &mnt_v).expect("mount n-view");
    let seen = tree(&mnt_v);
    let errno = write_errno(&mnt_v.join("f"));
    umount(&mnt_v);
    assert_eq!(seen, parent_tree);
    assert_eq!(errno, Some(libc::EROFS), "write through a view");
    assert_eq!(tree(&src_a), parent_tree);
    // As in containerd, a view of a committed snapshot is no copy: it binds the parent's
    // directory (only the parent and the child have directories).
    assert_eq!(mv[0].source, ma[0].source);
    assert_eq!(
        std::fs::read_dir(&native_root)
            .expect("native root")
            .count(),
        2
    );

    // Stat, List and Usage.
    let st = a.stat(sn, "n-child").await.expect("stat child");
    assert_eq!(
        (st.name.as_str(), st.parent.as_str(), st.kind),
        ("n-child", "n-base", spb::Kind::Active as i32)
    );
    let st = a.stat(sn, "n-base").await.expect("stat base");
    assert_eq!(
        (st.parent.as_str(), st.kind),
        ("", spb::Kind::Committed as i32)
    );
    let st = a.stat(sn, "n-view").await.expect("stat view");
    assert_eq!(
        (st.parent.as_str(), st.kind),
        ("n-base", spb::Kind::View as i32)
    );
    assert_eq!(
        a.list(sn, &[]).await,
        kinds(&[
            ("n-base", "", spb::Kind::Committed),
            ("n-child", "n-base", spb::Kind::Active),
            ("n-view", "n-base", spb::Kind::View),
        ])
    );
    assert_eq!(
        a.list(sn, &["parent==n-base"]).await,
        kinds(&[
            ("n-child", "n-base", spb::Kind::Active),
            ("n-view", "n-base", spb::Kind::View),
        ])
    );
    // containerd counts the snapshot's directory and every inode under it.
    let u = a.usage(sn, "n-base").await;
    assert_eq!(u.inodes, 5, "{u:?}");
    assert!(u.size >= "parent".len() as i64, "{u:?}");
    let u = a.usage(sn, "n-child").await;
    assert_eq!(u.inodes, 5, "{u:?}");
    assert!(u.size > 0, "{u:?}");
    let u = a.usage(sn, "n-view").await;
    assert_eq!((u.size, u.inodes), (0, 0), "a view owns nothing");
    // The other snapshotters do not see these.
    assert_eq!(a.list("overlayfs", &[]).await, Vec::new());

    // A parent with children cannot go (containerd: "cannot remove snapshot with child",
    // FailedPrecondition); children first, then the parent.
    let e = a.remove(sn, "n-base").await.expect_err("remove a parent");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    a.remove(sn, "n-child").await.expect("remove child");
    assert!(!src_c.exists(), "the child's directory is gone");
    let e = a
        .remove(sn, "n-base")
        .await
        .expect_err("remove a viewed parent");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    a.remove(sn, "n-view").await.expect("remove view");
    a.remove(sn, "n-base").await.expect("remove base");
    let e = a.stat(sn, "n-base").await.expect_err("stat removed");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    let left: Vec<_> = std::fs::read_dir(&native_root)
        .expect("native root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        left.is_empty(),
        "left in {}: {left:?}",
        native_root.display()
    );
    assert_eq!(a.list(sn, &[]).await, Vec::new());
}

// ---------------------------------------------------------------------------------------------
// Diff.Apply

#[tokio::test(flavor = "multi_thread")]
async fn diff_apply_tar_gzip_and_zstd_layers_onto_native_snapshots() {
    let d = Daemon::start();
    let a = Api::new(&d, "native-diff").await;
    let sn = "native";
    let (l1, l2, l3) = (layer1(), layer2(), layer3());

    // Layer 1, a plain tar, on an empty snapshot.
    let m1 = a.prepare(sn, "extract-1", "").await;
    let applied = a.apply(MEDIA_TAR, &l1, &m1).await.expect("apply tar");
    assert_eq!(
        (
            applied.media_type.as_str(),
            applied.digest.as_str(),
            applied.size
        ),
        (MEDIA_TAR, sha256(&l1).as_str(), l1.len() as i64)
    );
    let dir1 = PathBuf::from(&m1[0].source);
    assert_eq!(tree(&dir1), tree_after_layer1());
    let (tool, tool2) = (
        std::fs::metadata(dir1.join("bin/tool")).expect("bin/tool"),
        std::fs::metadata(dir1.join("bin/tool2")).expect("bin/tool2"),
    );
    assert_eq!(
        (tool.ino(), tool.nlink()),
        (tool2.ino(), 2),
        "bin/tool2 is a hard link"
    );
    a.commit(sn, "layer-1", "extract-1").await;

    // Layer 2, tar+gzip: whiteouts delete, the opaque directory keeps only the layer's entries.
    let m2 = a.prepare(sn, "extract-2", "layer-1").await;
    let gz = gzip(&l2);
    let applied = a.apply(MEDIA_GZIP, &gz, &m2).await.expect("apply tar+gzip");
    assert_eq!(
        (applied.digest.as_str(), applied.size),
        (sha256(&l2).as_str(), l2.len() as i64),
        "the applied descriptor is the uncompressed diff"
    );
    let dir2 = PathBuf::from(&m2[0].source);
    assert_eq!(tree(&dir2), tree_after_layer2());
    assert_eq!(tree(&dir1), tree_after_layer1(), "layer 1 changed");
    a.commit(sn, "layer-2", "extract-2").await;

    // Layer 3, tar+zstd: new files, modes, owners and symlinks as written.
    let m3 = a.prepare(sn, "extract-3", "layer-2").await;
    let applied = a
        .apply(MEDIA_ZSTD, &zstd(&l3), &m3)
        .await
        .expect("apply tar+zstd");
    assert_eq!(
        (applied.digest.as_str(), applied.size),
        (sha256(&l3).as_str(), l3.len() as i64)
    );
    let dir3 = PathBuf::from(&m3[0].source);
    assert_eq!(tree(&dir3), tree_after_layer3());
    assert_eq!(tree(&dir2), tree_after_layer2(), "layer 2 changed");
    let (tool, tool2) = (
        std::fs::metadata(dir3.join("bin/tool")).expect("bin/tool"),
        std::fs::metadata(dir3.join("bin/tool2")).expect("bin/tool2"),
    );
    assert_eq!(tool.ino(), tool2.ino(), "the copy keeps the hard link");

    // What a container would see: the same tree through the snapshot's mount.
    let mnt = d.dir.join("rootfs");
    mount_at(&m3[0], &mnt).expect("mount extract-3");
    let seen = tree(&mnt);
    umount(&mnt);
    assert_eq!(seen, tree_after_layer3());

    // A layer that is not a tar is refused as containerd does (not implemented).
    let e = a
        .apply("application/vnd.example.not-a-layer", b"x", &m3)
        .await
        .expect_err("unknown media type");
    assert_eq!(e.code(), tonic::Code::Unimplemented, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_apply_resolves_symlinks_inside_the_snapshot() {
    let d = Daemon::start();
    let a = Api::new(&d, "escape").await;
    let outside = d.dir.join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir outside");
    write_mode(&outside.join("host-file"), "host", 0o644);
    let host_tree = vec![file_e("host-file", 0o644, "host")];
    assert_eq!(tree(&outside), host_tree);
    let o = outside
        .to_str()
        .expect("utf8")
        .trim_start_matches('/')
        .to_string();

    let m = a.prepare("native", "e-1", "").await;
    let root = PathBuf::from(&m[0].source);
    // Symlinks to the outside directory, absolute and by enough `..` to climb out of the
    // snapshot; entries through them must land inside the snapshot, where `/` is its root
    // (containerd resolves them with continuity's fs.RootPath).
    let up = "../".repeat(root.components().count() + 2);
    let layer = Layer::new()
        .symlink("abs", &format!("/{o}"))
        .symlink("rel", &format!("{up}{o}"))
        .whiteout("abs/.wh..wh..opq")
        .whiteout("rel/.wh.host-file")
        .file("abs/a", 0o644, "a")
        .file("rel/r", 0o644, "r")
        .tar();
    a.apply(MEDIA_TAR, &layer, &m)
        .await
        .expect("apply a layer with symlinked paths");
    assert_eq!(
        tree(&outside),
        host_tree,
        "the layer wrote outside the snapshot"
    );
    let inner = root.join(&o);
    assert_eq!(
        tree(&inner),
        [file_e("a", 0o644, "a"), file_e("r", 0o644, "r")]
    );
    assert_eq!(
        std::fs::read_link(root.join("abs")).expect("abs"),
        PathBuf::from(format!("/{o}"))
    );

    // A hard link to a path behind such a symlink names the snapshot's file, which does not
    // exist: the layer fails and the host's file gains no link.
    let layer = Layer::new().hardlink("leak", "abs/host-file").tar();
    a.apply(MEDIA_TAR, &layer, &m)
        .await
        .expect_err("a hard link to a file outside the snapshot");
    assert_eq!(
        std::fs::metadata(outside.join("host-file"))
            .expect("host file")
            .nlink(),
        1
    );
    assert!(!root.join("leak").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_apply_zstd_layer_writes_overlay_whiteouts_in_the_upperdir() {
    let d = Daemon::start();
    let a = Api::new(&d, "overlay-zstd").await;
    let sn = "overlayfs";

    let m1 = a.prepare(sn, "o-1", "").await;
    a.apply(MEDIA_TAR, &layer1(), &m1)
        .await
        .expect("apply layer 1");
    a.commit(sn, "o-layer-1", "o-1").await;

    // Layer 2 compressed with zstd, onto an overlay snapshot: written into the upperdir, its
    // whiteouts converted to overlay whiteouts.
    let m2 = a.prepare(sn, "o-2", "o-layer-1").await;
    assert_eq!((m2.len(), m2[0].r#type.as_str()), (1, "overlay"), "{m2:?}");
    let l2 = layer2();
    let applied = a
        .apply(MEDIA_ZSTD, &zstd(&l2), &m2)
        .await
        .expect("apply zstd layer 2");
    assert_eq!(applied.digest, sha256(&l2));
    let upper = PathBuf::from(opt(&m2[0], "upperdir").expect("upperdir"));
    assert_eq!(
        tree(&upper),
        sorted(vec![
            dir_e("etc", 0o755),
            wh_e("etc/secret"),
            dir_e("opt", 0o755),
            dir_e("opt/app", 0o750),
            file_e("opt/app/new.txt", 0o640, "new"),
            wh_e("opt/gone"),
        ])
    );
    let opaque = |p: &str| xattr::get(upper.join(p), "trusted.overlay.opaque").expect("getxattr");
    assert_eq!(opaque("opt/app").as_deref(), Some(&b"y"[..]));
    assert_eq!((opaque("opt"), opaque("etc")), (None, None));
    a.commit(sn, "o-layer-2", "o-2").await;

    // Layer 3 (zstd) on top; mounted, the overlay shows the same tree as the native chain.
    let m3 = a.prepare(sn, "o-3", "o-layer-2").await;
    a.apply(MEDIA_ZSTD, &zstd(&layer3()), &m3)
        .await
        .expect("apply zstd layer 3");
    let mnt = d.dir.join("merged");
    mount_at(&m3[0], &mnt).expect("mount overlay");
    let seen = tree(&mnt);
    umount(&mnt);
    assert_eq!(seen, tree_after_layer3());
}

// ---------------------------------------------------------------------------------------------
// btrfs

/// Runs a command; its stdout, or a panic with its stderr.
fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A btrfs made on a loop device over `<dir>/btrfs.img`, mounted at `<dir>/root`, and a
/// containerd-rs whose `--root` it is. Dropped on success and on failure: the daemon is killed
/// by its pid, everything under `dir` is unmounted deepest first, the loop device this test
/// attached (and no other: its backing file is checked) is detached, and `dir` is removed.
struct BtrfsEnv {
    dir: PathBuf,
    image: PathBuf,
    device: Option<String>,
    daemon: Option<Daemon>,
}

impl BtrfsEnv {
    fn new() -> Self {
        let dir = common::unique_dir();
        let mut env = Self {
            image: dir.join("btrfs.img"),
            dir,
            device: None,
            daemon: None,
        };
        std::fs::File::create(&env.image)
            .and_then(|f| f.set_len(300 << 20))
            .expect("create the image file");
        let image = env.image.to_str().expect("utf8 path").to_string();
        run("mkfs.btrfs", &["-q", &image]);
        let device = run("losetup", &["-f", "--show", &image]).trim().to_string();
        assert!(
            device.starts_with("/dev/loop"),
            "losetup answered {device:?}"
        );
        env.device = Some(device.clone());
        let root = env.dir.join("root");
        std::fs::create_dir_all(&root).expect("mkdir root");
        nix::mount::mount(
            Some(device.as_str()),
            &root,
            Some("btrfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("mount {device} (btrfs) on {}: {e}", root.display()));
        env.daemon = Some(Daemon::start_in(env.dir.clone(), &[]));
        env
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon started")
    }

    fn device(&self) -> &str {
        self.device.as_deref().expect("loop device attached")
    }
}

impl Drop for BtrfsEnv {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.as_mut() {
            d.stop(true);
        }
        // Unmount deepest first; a busy mount is detached lazily.
        let mut points: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            if nix::mount::umount2(m.as_str(), nix::mount::MntFlags::empty()).is_err() {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        if let Some(dev) = self.device.take() {
            let backing = Command::new("losetup")
                .args(["-n", "-O", "BACK-FILE", &dev])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            if Path::new(&backing) == self.image {
                let ok = Command::new("losetup")
                    .args(["-d", &dev])
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    eprintln!("losetup -d {dev} failed");
                }
            } else {
                eprintln!("{dev} is backed by {backing:?}, not this test's image: left alone");
            }
        }
        // The daemon's own guard prints its log when the test failed and removes `dir`.
        drop(self.daemon.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `btrfs subvolume list`: (id, path relative to the mount).
fn subvolumes(mnt: &Path) -> Vec<(u64, String)> {
    let out = run("btrfs", &["subvolume", "list", mnt.to_str().expect("utf8")]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let id = f.get(1)?.parse().ok()?;
            let path = l.split(" path ").nth(1)?.to_string();
            Some((id, path))
        })
        .collect()
}

/// A field of `btrfs subvolume show`.
fn show(path: &Path, field: &str) -> String {
    let out = run(
        "btrfs",
        &["subvolume", "show", path.to_str().expect("utf8")],
    );
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in btrfs subvolume show: {out}"))
        .trim()
        .to_string()
}

fn read_only(path: &Path) -> String {
    run(
        "btrfs",
        &["property", "get", "-ts", path.to_str().expect("utf8"), "ro"],
    )
    .trim()
    .to_string()
}

/// The subvolume a btrfs mount presents: checks the mount's form and finds its path.
fn subvolume_of(m: &[Mount], device: &str, mnt: &Path, rw: bool) -> (u64, PathBuf) {
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(
        (m[0].r#type.as_str(), m[0].source.as_str()),
        ("btrfs", device),
        "{m:?}"
    );
    assert_eq!(
        m[0].options.iter().any(|o| o == "ro"),
        !rw,
        "read-only option: {m:?}"
    );
    let id: u64 = opt(&m[0], "subvolid")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no subvolid option: {m:?}"));
    let subs = subvolumes(mnt);
    let path = subs
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, p)| mnt.join(p))
        .unwrap_or_else(|| panic!("subvolume {id} not in {subs:?}"));
    assert_eq!(show(&path, "Subvolume ID"), id.to_string());
    (id, path)
}

#[tokio::test(flavor = "multi_thread")]
async fn btrfs_snapshots_are_subvolumes_on_a_loop_device() {
    let env = BtrfsEnv::new();
    let d = env.daemon();
    let dev = env.device().to_string();
    let mnt = d.root();
    let a = Api::new(d, "btrfs-sn").await;
    let sn = "btrfs";
    let sn_root = mnt.join("snapshots/btrfs");

    // The snapshotter is loaded because the root is on btrfs.
    let plugins = a.snapshotter_plugins().await;
    let btrfs = plugins
        .iter()
        .find(|p| p.id == "btrfs")
        .unwrap_or_else(|| panic!("no {SNAPSHOTTER_PLUGIN}.btrfs in {plugins:?}"));
    assert_eq!(
        btrfs.exports.get("root").map(String::as_str),
        sn_root.to_str()
    );
    assert_eq!(subvolumes(&mnt), Vec::new());

    // A first snapshot is a new, empty, writable subvolume, mounted by its id.
    let m1 = a.prepare(sn, "b-1", "").await;
    let (id1, sv1) = subvolume_of(&m1, &dev, &mnt, true);
    assert_eq!(sv1.parent(), Some(sn_root.as_path()));
    assert_eq!(show(&sv1, "Parent UUID"), "-");
    assert_eq!(read_only(&sv1), "ro=false");
    assert_eq!(tree(&sv1), Vec::<String>::new());

    // Diff.Apply mounts it and unpacks the layer into it.
    let l1 = layer1();
    let applied = a.apply(MEDIA_TAR, &l1, &m1).await.expect("apply tar");
    assert_eq!(applied.digest, sha256(&l1));
    assert_eq!(tree(&sv1), tree_after_layer1());

    // The returned mount works: it shows the files and takes a user's write.
    let user = d.dir.join("m-1");
    mount_at(&m1[0], &user).expect("mount b-1");
    let seen = tree(&user);
    write_mode(&user.join("user-file"), "mine", 0o644);
    umount(&user);
    assert_eq!(seen, tree_after_layer1());
    let with_user = |mut v: Vec<String>| {
        v.push(file_e("user-file", 0o644, "mine"));
        sorted(v)
    };
    assert_eq!(tree(&sv1), with_user(tree_after_layer1()));

    // Committed, the subvolume is read-only (containerd commits to a read-only snapshot).
    a.commit(sn, "b-c1", "b-1").await;
    assert_eq!(read_only(&sv1), "ro=true");
    assert_eq!(write_errno(&sv1.join("user-file")), Some(libc::EROFS));
    let uuid1 = show(&sv1, "UUID");

    // A child is a writable snapshot of the committed subvolume.
    let m2 = a.prepare(sn, "b-2", "b-c1").await;
    let (id2, sv2) = subvolume_of(&m2, &dev, &mnt, true);
    assert_ne!(id2, id1);
    assert_eq!(show(&sv2, "Parent UUID"), uuid1);
    assert_eq!(read_only(&sv2), "ro=false");
    assert_eq!(tree(&sv2), with_user(tree_after_layer1()));
    let l2 = layer2();
    a.apply(MEDIA_GZIP, &gzip(&l2), &m2)
        .await
        .expect("apply tar+gzip");
    assert_eq!(tree(&sv2), with_user(tree_after_layer2()));
    assert_eq!(
        tree(&sv1),
        with_user(tree_after_layer1()),
        "the parent changed"
    );
    a.commit(sn, "b-c2", "b-2").await;
    assert_eq!(read_only(&sv2), "ro=true");

    // The zstd layer into an active btrfs snapshot.
    let m3 = a.prepare(sn, "b-3", "b-c2").await;
    let (_, sv3) = subvolume_of(&m3, &dev, &mnt, true);
    assert_eq!(show(&sv3, "Parent UUID"), show(&sv2, "UUID"));
    let l3 = layer3();
    let applied = a
        .apply(MEDIA_ZSTD, &zstd(&l3), &m3)
        .await
        .expect("apply tar+zstd");
    assert_eq!(applied.digest, sha256(&l3));
    assert_eq!(tree(&sv3), with_user(tree_after_layer3()));
    assert_eq!(
        tree(&sv2),
        with_user(tree_after_layer2()),
        "the parent changed"
    );
    assert_eq!(a.mounts(sn, "b-3").await.expect("mounts b-3"), m3);
    let m3_mnt = d.dir.join("m-3");
    mount_at(&m3[0], &m3_mnt).expect("mount b-3");
    let seen = tree(&m3_mnt);
    std::fs::write(m3_mnt.join("late"), "late").expect("write b-3");
    umount(&m3_mnt);
    assert_eq!(seen, with_user(tree_after_layer3()));
    assert!(sv3.join("late").is_file() && !sv2.join("late").exists());

    // A view: a read-only snapshot, mounted read-only.
    let mv = a.view(sn, "b-v", "b-c2").await;
    let (_, svv) = subvolume_of(&mv, &dev, &mnt, false);
    assert_eq!(show(&svv, "Parent UUID"), show(&sv2, "UUID"));
    assert_eq!(read_only(&svv), "ro=true");
    let v_mnt = d.dir.join("m-v");
    mount_at(&mv[0], &v_mnt).expect("mount b-v");
    let seen = tree(&v_mnt);
    let errno = write_errno(&v_mnt.join("user-file"));
    umount(&v_mnt);
    assert_eq!(seen, with_user(tree_after_layer2()));
    assert_eq!(errno, Some(libc::EROFS));

    // Stat, List, Usage.
    assert_eq!(
        a.list(sn, &[]).await,
        kinds(&[
            ("b-3", "b-c2", spb::Kind::Active),
            ("b-c1", "", spb::Kind::Committed),
            ("b-c2", "b-c1", spb::Kind::Committed),
            ("b-v", "b-c2", spb::Kind::View),
        ])
    );
    let st = a.stat(sn, "b-3").await.expect("stat b-3");
    assert_eq!(
        (st.parent.as_str(), st.kind),
        ("b-c2", spb::Kind::Active as i32)
    );
    let u = a.usage(sn, "b-3").await;
    assert!(
        u.size > 0 && u.inodes as usize > tree_after_layer3().len(),
        "{u:?}"
    );
    assert_eq!(subvolumes(&mnt).len(), 4);

    // Remove: not a parent with children; bottom-up, each removal deletes its subvolume.
    let e = a.remove(sn, "b-c1").await.expect_err("remove a parent");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    let e = a.remove(sn, "b-c2").await.expect_err("remove a parent");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    for (key, sv) in [("b-3", &sv3), ("b-v", &svv), ("b-c2", &sv2), ("b-c1", &sv1)] {
        a.remove(sn, key)
            .await
            .unwrap_or_else(|e| panic!("remove {key}: {e}"));
        assert!(!sv.exists(), "{} still there", sv.display());
    }
    assert_eq!(subvolumes(&mnt), Vec::new());
    let left: Vec<_> = std::fs::read_dir(&sn_root)
        .expect("snapshotter root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left in {}: {left:?}", sn_root.display());
    // Nothing of Diff.Apply's temporary mounts is left.
    let ours: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| Path::new(m).starts_with(&env.dir))
        .collect();
    assert_eq!(ours, [mnt.display().to_string()]);
}
