//! `docker cp` (HEAD/GET/PUT /containers/{id}/archive), `docker export` and `docker diff`, over
//! the container's filesystem [`View`].
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::fsview::{go_file_mode, FsError, View};
use super::{Ctr, Daemon};
use crate::error::{ApiError, Result};

/// Files dockerd keeps in a container's init layer: never part of `docker diff`.
const INIT_PATHS: [&str; 10] = [
    "proc",
    "sys",
    "dev/pts",
    "dev/shm",
    "dev/console",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/mtab",
    ".dockerenv",
];

/// The lease that protects a snapshot prepared before the container's first start.
pub(super) fn early_lease(id: &str) -> String {
    format!("engine-api-early-{id}")
}

impl Daemon {
    fn fs_error(&self, c: &Ctr, path: &str, e: FsError) -> ApiError {
        match e {
            FsError::NotFound(_) => ApiError::not_found(format!(
                "Could not find the file {path} in container {}",
                c.name().trim_start_matches('/')
            )),
            FsError::Io { .. } => ApiError::io("container filesystem", e),
            other => ApiError::invalid(other.to_string()),
        }
    }

    /// The container's filesystem: its live root while running (when `live`), otherwise the
    /// layers of its snapshot (prepared now, under a lease, if it never ran).
    pub async fn fs_view(&self, c: &Ctr, live: bool) -> Result<View> {
        let pid = c.state().pid;
        if live && c.is_running() && pid > 0 {
            return Ok(View::live(PathBuf::from(format!("/proc/{pid}/root"))));
        }
        let snap = &self.config.snapshotter;
        let rec = c.record();
        if !self.cd.snapshot_exists(snap, &c.id).await? {
            let lease = early_lease(&c.id);
            self.cd.create_named_lease(&lease).await?;
            match self
                .cd
                .prepare(Some(&lease), snap, &c.id, &rec.snapshot_parent)
                .await
            {
                // Prepared meanwhile by the background preparation after create.
                Err(e) if e.kind() != crate::error::Kind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        let mounts = self.cd.mounts(snap, &c.id).await?;
        let m = mounts
            .first()
            .ok_or_else(|| ApiError::internal("snapshot has no mounts"))?;
        let opt = |k: &str| {
            m.options
                .iter()
                .find_map(|o| o.strip_prefix(&format!("{k}=")).map(str::to_string))
        };
        match m.r#type.as_str() {
            "overlay" => {
                let upper = opt("upperdir")
                    .ok_or_else(|| ApiError::internal("overlay snapshot without upperdir"))?;
                let lowers = opt("lowerdir")
                    .map(|l| l.split(':').map(PathBuf::from).collect())
                    .unwrap_or_default();
                Ok(View::layered(PathBuf::from(upper), lowers))
            }
            "bind" | "rbind" | "" => Ok(View::layered(PathBuf::from(&m.source), Vec::new())),
            other => Err(ApiError::unimplemented(format!(
                "snapshot mount type {other} is not supported for file access"
            ))),
        }
    }

    /// `X-Docker-Container-Path-Stat` of `path` (its last element not followed).
    pub async fn path_stat(&self, c: &Ctr, path: &str) -> Result<(View, PathBuf, Value)> {
        let view = self.fs_view(c, true).await?;
        let rel = view
            .resolve(path, false)
            .map_err(|e| self.fs_error(c, path, e))?;
        let (_, md) = view
            .locate(&rel)
            .ok_or_else(|| self.fs_error(c, path, FsError::NotFound(path.to_string())))?;
        let link = if md.file_type().is_symlink() {
            let t = view
                .resolve(path, true)
                .map_err(|e| self.fs_error(c, path, e))?;
            format!("/{}", t.display())
        } else {
            String::new()
        };
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| if path.ends_with('.') { "." } else { "/" }.to_string());
        let mtime = chrono::DateTime::from_timestamp(
            std::os::unix::fs::MetadataExt::mtime(&md),
            std::os::unix::fs::MetadataExt::mtime_nsec(&md) as u32,
        )
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let stat = json!({
            "name": name, "size": md.len(), "mode": go_file_mode(&md), "mtime": mtime,
            "linkTarget": link,
        });
        Ok((view, rel, stat))
    }

    /// Writes the tar of `rel` (entries named after `name`) to `w`.
    pub fn write_tar<W: std::io::Write>(
        &self,
        c: &Ctr,
        view: &View,
        rel: &Path,
        name: &str,
        w: W,
    ) -> Result<()> {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        view.tar(rel, name, &mut b)
            .map_err(|e| self.fs_error(c, &rel.display().to_string(), e))?;
        b.finish().map_err(|e| ApiError::io("write tar", e))
    }

    /// Extracts a tar into directory `path` of the container (PUT /archive).
    pub async fn put_archive<R: std::io::Read + Send + 'static>(
        &self,
        c: &Ctr,
        path: &str,
        r: R,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> Result<()> {
        if c.record().host_config.readonly_rootfs {
            return Err(ApiError::invalid("container rootfs is marked read-only"));
        }
        let view = self.fs_view(c, true).await?;
        let dest = view
            .resolve(path, true)
            .map_err(|e| self.fs_error(c, path, e))?;
        let (_, md) = view
            .locate(&dest)
            .ok_or_else(|| self.fs_error(c, path, FsError::NotFound(path.to_string())))?;
        if !md.is_dir() {
            return Err(ApiError::invalid("extraction point is not a directory"));
        }
        let result = tokio::task::spawn_blocking(move || {
            view.extract(&dest, r, no_overwrite_dir_non_dir, copy_uid_gid)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
        result.map_err(|e| self.fs_error(c, path, e))?;
        self.emit_container(c, "extract-to-dir");
        Ok(())
    }

    /// `GET /containers/{id}/changes`: the writable layer against the image, as dockerd's
    /// overlay driver reports it (Kind 0 modified, 1 added, 2 deleted), sorted by path.
    pub async fn changes(&self, c: &Ctr) -> Result<Value> {
        let view = self.fs_view(c, false).await?;
        let out = tokio::task::spawn_blocking(move || {
            let lower = view.lowers();
            let mut changes: Vec<(String, u8)> = Vec::new();
            walk_changes(view.top(), Path::new(""), &lower, &mut changes);
            // A parent of an added or deleted entry is modified.
            let mut parents = Vec::new();
            for (p, kind) in &changes {
                if *kind != 0 {
                    if let Some(parent) = Path::new(p).parent() {
                        let parent = parent.to_string_lossy().into_owned();
                        if parent != "/" && !parent.is_empty() {
                            parents.push(parent);
                        }
                    }
                }
            }
            for p in parents {
                if !changes.iter().any(|(q, _)| *q == p) {
                    changes.push((p, 0));
                }
            }
            changes.sort();
            changes
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Value::Array(
            out.into_iter()
                .map(|(p, k)| json!({"Path": p, "Kind": k}))
                .collect(),
        ))
    }
}

fn walk_changes(upper: &Path, rel: &Path, lower: &View, out: &mut Vec<(String, u8)>) {
    let Ok(rd) = std::fs::read_dir(upper.join(rel)) else {
        return;
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let r = rel.join(&n);
        let key = r.to_string_lossy().into_owned();
        if INIT_PATHS.contains(&key.as_str()) {
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(upper.join(&r)) else {
            continue;
        };
        let shown = format!("/{key}");
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push((shown, 2));
            continue;
        }
        match lower.locate(&r) {
            Some((_, lm)) if lm.is_dir() && md.is_dir() => {
                // Only a parent of changes, unless its own attributes changed.
                if lm.mode() != md.mode() || lm.uid() != md.uid() || lm.gid() != md.gid() {
                    out.push((shown, 0));
                }
            }
            Some(_) => out.push((shown, 0)),
            None => out.push((shown, 1)),
        }
        if md.is_dir() {
            walk_changes(upper, &r, lower, out);
        }
    }
}
