//! New images from a filesystem: `docker commit` (the container's writable layer, computed by
//! containerd's Diff.Diff between a view of the image and the container's snapshot, becomes one
//! new layer on top of the image) and `docker import` (a tar becomes the only layer).
use std::collections::HashMap;

use serde_json::{json, Value};

use super::{apply_changes, archive::decompress, sha256, Images, MT_LAYER};
use crate::containerd::Descriptor;
use crate::error::{ApiError, Result};

/// The digest of an empty layer (a tar of two zero blocks): no change, no layer.
pub(super) const EMPTY_LAYER: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
/// What Diff.Diff is asked for (real containerd's walking differ knows only the OCI types);
/// the blob is the same plain tar that the docker media type names in our manifests.
const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// What `POST /commit` asks for, resolved against the container.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub container_id: String,
    /// The container's snapshot key (its id); empty when it was never started.
    pub snapshot_key: String,
    /// The image the container runs (its ID).
    pub image_id: String,
    /// The container's config (Docker JSON), the base of the new image's config.
    pub config: Value,
    /// Fields given in the request body, laid over `config`.
    pub overrides: Value,
    pub changes: Vec<String>,
    pub comment: String,
    pub author: String,
    /// The new name (`repo[:tag]`), or none for a dangling image.
    pub name: Option<String>,
}

fn now() -> String {
    crate::types::now_rfc3339()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The keys dockerd writes in an image's `config` (Go's zero values).
fn empty_config() -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
        "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
        "StdinOnce": false, "Env": null, "Cmd": null, "Image": "", "Volumes": null,
        "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null,
    })
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// The files every container gets bind-mounted (dockerd keeps them in a separate init layer,
/// so they never show in a commit).
const MOUNTPOINTS: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// Drops the empty mount-point files of [`MOUNTPOINTS`] from a layer tar, and their parent
/// directory when nothing else under it changed. The other entries are copied byte for byte
/// (extension headers included). `None` when there was nothing to drop.
fn strip_mountpoints(layer: &[u8]) -> Result<Option<Vec<u8>>> {
    let bad = |e: std::io::Error| ApiError::io("read container diff", e);
    // (path, is_dir, droppable file, byte range of the entry with its extension headers)
    let mut entries = Vec::new();
    let mut ar = tar::Archive::new(layer);
    let mut prev_end = 0usize;
    for e in ar.entries().map_err(bad)? {
        let e = e.map_err(bad)?;
        let path = e.path().map_err(bad)?;
        let path = path
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let size = e.header().entry_size().map_err(bad)? as usize;
        let end = e.raw_file_position() as usize + size.div_ceil(512) * 512;
        let kind = e.header().entry_type();
        let drop = MOUNTPOINTS.contains(&path.as_str()) && kind.is_file() && size == 0;
        entries.push((path, kind.is_dir(), drop, prev_end..end));
        prev_end = end;
    }
    if !entries.iter().any(|e| e.2) {
        return Ok(None);
    }
    let kept: Vec<String> = entries
        .iter()
        .filter(|e| !e.2)
        .map(|e| e.0.clone())
        .collect();
    let lonely = |dir: &str| {
        !kept
            .iter()
            .any(|p| p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/')
    };
    let mut out = Vec::with_capacity(layer.len());
    for (path, is_dir, drop, range) in &entries {
        let parent_of_mountpoint = MOUNTPOINTS
            .iter()
            .any(|m| m.rsplit_once('/').map(|(d, _)| d) == Some(path.as_str()));
        if *drop || (*is_dir && parent_of_mountpoint && lonely(path)) {
            continue;
        }
        let bytes = layer
            .get(range.clone())
            .ok_or_else(|| ApiError::internal("container diff: truncated tar"))?;
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(&[0u8; 1024]);
    Ok(Some(out))
}

impl Images {
    /// Creates the image of a container's current filesystem; returns its ID. The caller
    /// pauses the container around this call when asked to.
    pub async fn commit(&self, o: &CommitOptions) -> Result<String> {
        let parent = self.get(&o.image_id).await?;
        let lease = self.cd.create_lease().await?;
        let r = self.commit_leased(&lease, o, &parent).await;
        if let Err(e) = self.cd.delete_lease(&lease).await {
            tracing::warn!(error = %e, lease, "delete lease");
        }
        r
    }

    async fn commit_leased(
        &self,
        lease: &str,
        o: &CommitOptions,
        parent: &super::Image,
    ) -> Result<String> {
        let layer = if o.snapshot_key.is_empty()
            || !self
                .cd
                .snapshot_exists(&self.snapshotter, &o.snapshot_key)
                .await?
        {
            None
        } else {
            let top = parent.meta.top_chain();
            let view = format!("commit-view-{}", hex::encode(rand::random::<[u8; 8]>()));
            let left = if top.is_empty() {
                Vec::new()
            } else {
                self.cd.view(lease, &self.snapshotter, &view, &top).await?
            };
            let right = self.cd.mounts(&self.snapshotter, &o.snapshot_key).await;
            let d = match right {
                Ok(right) => {
                    self.cd
                        .diff(lease, left, right, MT_OCI_LAYER, HashMap::new())
                        .await
                }
                Err(e) => Err(e),
            };
            if !top.is_empty() {
                let _ = self.cd.remove_snapshot(&self.snapshotter, &view).await;
            }
            let mut d = d?;
            tracing::debug!(container_id = %o.container_id, digest = %d.digest, size = d.size, "container diff");
            let raw = self.cd.read_blob(&d.digest).await?;
            if let Some(stripped) = strip_mountpoints(&raw)? {
                d.digest = sha256(&stripped);
                d.size = stripped.len() as i64;
                self.cd
                    .write_blob(lease, &d.digest, stripped.into(), HashMap::new())
                    .await?;
            }
            (d.digest != EMPTY_LAYER).then_some(d)
        };
        let pc = &parent.meta.config;
        let mut config = o.config.clone();
        if let (Some(base), Some(over)) = (config.as_object_mut(), o.overrides.as_object()) {
            for (k, v) in over {
                if !is_empty(v) {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
        apply_changes(&mut config, &o.changes)?;
        let created = now();
        // dockerd records the container's command, not the one --change set.
        let created_by = o.config["Cmd"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let mut history = pc["history"].as_array().cloned().unwrap_or_default();
        let mut h = json!({"created": created, "created_by": created_by});
        if !o.author.is_empty() {
            h["author"] = json!(o.author);
        }
        if !o.comment.is_empty() {
            h["comment"] = json!(o.comment);
        }
        if layer.is_none() {
            h["empty_layer"] = json!(true);
        }
        history.push(h);
        let mut diff_ids = parent.meta.diff_ids.clone();
        let mut layers = parent.meta.layers.clone();
        if let Some(d) = &layer {
            diff_ids.push(d.digest.clone());
            layers.push(Descriptor {
                media_type: MT_LAYER.to_string(),
                digest: d.digest.clone(),
                size: d.size,
                ..Default::default()
            });
        }
        let mut img = json!({
            "architecture": pc["architecture"].as_str().unwrap_or(arch()),
            "os": pc["os"].as_str().unwrap_or("linux"),
            "author": o.author,
            "comment": o.comment,
            "config": config,
            "container": o.container_id,
            "container_config": o.config,
            "created": created,
            "docker_version": env!("CARGO_PKG_VERSION"),
            "history": history,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        if let Some(v) = pc["variant"].as_str() {
            img["variant"] = json!(v);
        }
        let bytes = serde_json::to_vec(&img).map_err(|e| ApiError::io("encode config", e))?;
        let id = sha256(&bytes);
        let target = self.store_image(lease, bytes, &layers).await?;
        let names: Vec<String> = o.name.iter().cloned().collect();
        self.name_image(&target, &names).await?;
        Ok(id)
    }

    /// `docker import`: a filesystem tar (plain or gzip) becomes a one-layer image.
    pub async fn import(
        &self,
        data: bytes::Bytes,
        name: Option<String>,
        message: &str,
        changes: &[String],
    ) -> Result<String> {
        let data = decompress(data)?;
        let mut ar = tar::Archive::new(data.as_ref());
        let entries = ar
            .entries()
            .map_err(|e| ApiError::invalid(format!("invalid tar: {e}")))?;
        for e in entries {
            e.map_err(|e| ApiError::invalid(format!("invalid tar: {e}")))?;
        }
        let mut config = empty_config();
        apply_changes(&mut config, changes)?;
        let diff_id = sha256(&data);
        let created = now();
        let img = json!({
            "architecture": arch(),
            "os": "linux",
            "comment": message,
            "config": config,
            "created": created,
            "docker_version": env!("CARGO_PKG_VERSION"),
            "history": [{"created": created, "comment": message}],
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        let bytes = serde_json::to_vec(&img).map_err(|e| ApiError::io("encode config", e))?;
        let id = sha256(&bytes);
        let layer = Descriptor {
            media_type: MT_LAYER.to_string(),
            digest: diff_id.clone(),
            size: data.len() as i64,
            ..Default::default()
        };
        let lease = self.cd.create_lease().await?;
        let r = async {
            self.cd
                .write_blob(&lease, &diff_id, data, HashMap::new())
                .await?;
            let target = self.store_image(&lease, bytes, &[layer]).await?;
            let names: Vec<String> = name.into_iter().collect();
            self.name_image(&target, &names).await
        }
        .await;
        if let Err(e) = self.cd.delete_lease(&lease).await {
            tracing::warn!(error = %e, lease, "delete lease");
        }
        r.map(|_| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, dir) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(if *dir {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            b.append_data(&mut h, path, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn mountpoints_are_not_part_of_a_commit() {
        let only = layer(&[
            ("etc", b"", true),
            ("etc/hostname", b"", false),
            ("etc/hosts", b"", false),
        ]);
        let stripped = strip_mountpoints(&only).expect("tar").expect("changed");
        assert_eq!(sha256(&stripped), EMPTY_LAYER);
        let mixed = layer(&[
            ("etc", b"", true),
            ("etc/hosts", b"", false),
            ("etc/motd", b"hello", false),
            ("etc/resolv.conf", b"nameserver 1.1.1.1\n", false),
        ]);
        let stripped = strip_mountpoints(&mixed).expect("tar").expect("changed");
        let names: Vec<String> = tar::Archive::new(stripped.as_slice())
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, vec!["etc", "etc/motd", "etc/resolv.conf"]);
        assert!(strip_mountpoints(&layer(&[("a", b"x", false)]))
            .expect("tar")
            .is_none());
    }

    #[test]
    fn empty_layer_digest_is_two_zero_blocks() {
        let b = tar::Builder::new(Vec::new())
            .into_inner()
            .expect("empty tar");
        assert_eq!(sha256(&b), EMPTY_LAYER);
    }
}
