//! Images: the image service over containerd's content store, image records and snapshots.
//! An image is a docker schema2 manifest whose config digest is Docker's image ID, named
//! `docker.io/library/<name>:<tag>` (or `moby-dangling@<manifest digest>` when it has no name).
//! Submodules: `archive` (docker load / save), `commit` (commit and import: a new layer on top
//! of an image), `changes` (the Dockerfile instructions of `--change`).
mod archive;
mod changes;
mod commit;

pub use changes::apply_changes;
pub use commit::CommitOptions;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Mutex;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::containerd::{Containerd, Descriptor};
use crate::error::{ApiError, Result};
use crate::reference;

pub const MT_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DANGLING: &str = "moby-dangling@";

/// What engine-api knows about one image (one manifest).
#[derive(Debug, Clone)]
pub struct ImageMeta {
    /// The config digest: Docker's image ID.
    pub id: String,
    pub manifest: Descriptor,
    pub config: Value,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<String>,
    /// Chain IDs of the layers; the last one is the container snapshots' parent.
    pub chain_ids: Vec<String>,
    pub size: i64,
}

impl ImageMeta {
    pub fn top_chain(&self) -> String {
        self.chain_ids.last().cloned().unwrap_or_default()
    }
    pub fn created(&self) -> String {
        self.config["created"]
            .as_str()
            .unwrap_or(crate::types::ZERO_TIME)
            .to_string()
    }
    pub fn created_unix(&self) -> i64 {
        crate::types::parse_time(&self.created())
            .map(|t| t.timestamp())
            .unwrap_or(0)
    }
}

/// An image with all the names that point at it.
#[derive(Debug, Clone)]
pub struct Image {
    pub meta: ImageMeta,
    /// Full normalized names (`docker.io/library/busybox:latest`).
    pub names: Vec<String>,
    pub created_at: i64,
}

/// The image service.
pub struct Images {
    cd: Containerd,
    snapshotter: String,
    cache: Mutex<HashMap<String, ImageMeta>>,
}

pub(crate) fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// containerd's chain IDs: chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

impl Images {
    pub fn new(cd: Containerd, snapshotter: &str) -> Self {
        Images {
            cd,
            snapshotter: snapshotter.to_string(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Writes the config and manifest of an image whose layer blobs (uncompressed tars, digest =
    /// diff ID) are already in the content store, unpacks the layers into snapshots and returns
    /// the manifest descriptor (not yet named). Everything stays under `lease` until named.
    async fn store_image(
        &self,
        lease: &str,
        config_bytes: Vec<u8>,
        layers: &[Descriptor],
    ) -> Result<Descriptor> {
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| ApiError::invalid(format!("invalid image config: {e}")))?;
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if diff_ids.len() != layers.len() {
            return Err(ApiError::invalid(
                "the image config's diff_ids do not match its layers",
            ));
        }
        let config_digest = sha256(&config_bytes);
        let chains = chain_ids(&diff_ids);
        let mut cfg_labels = HashMap::new();
        if let Some(top) = chains.last() {
            cfg_labels.insert(
                format!("containerd.io/gc.ref.snapshot.{}", self.snapshotter),
                top.clone(),
            );
        }
        let config_size = config_bytes.len();
        self.cd
            .write_blob(lease, &config_digest, config_bytes.into(), HashMap::new())
            .await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "size": config_size, "digest": config_digest},
            "layers": layers.iter().map(|d| json!({"mediaType": d.media_type, "size": d.size, "digest": d.digest})).collect::<Vec<_>>(),
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| ApiError::io("encode manifest", e))?;
        let manifest_digest = sha256(&manifest_bytes);
        let mut labels = HashMap::new();
        labels.insert(
            "containerd.io/gc.ref.content.config".to_string(),
            config_digest.clone(),
        );
        for (i, d) in layers.iter().enumerate() {
            labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                d.digest.clone(),
            );
        }
        let manifest_size = manifest_bytes.len() as i64;
        self.cd
            .write_blob(lease, &manifest_digest, manifest_bytes.into(), labels)
            .await?;
        self.unpack(lease, layers, &chains).await?;
        // The snapshot reference goes on only once the snapshots exist.
        self.cd.label_blob(&config_digest, cfg_labels).await?;
        Ok(Descriptor {
            media_type: MT_MANIFEST.to_string(),
            digest: manifest_digest,
            size: manifest_size,
            ..Default::default()
        })
    }

    /// Names a stored manifest: each of `names` (normalized), or a dangling record when
    /// there is none. Returns the familiar names given.
    async fn name_image(&self, target: &Descriptor, names: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if names.is_empty() {
            self.cd
                .put_image(&format!("{DANGLING}{}", target.digest), target.clone())
                .await?;
        }
        for n in names {
            let r = reference::parse(n).map_err(|e| ApiError::invalid(e.to_string()))?;
            self.untag_dangling(&target.digest).await;
            self.cd.put_image(&r.full(), target.clone()).await?;
            out.push(reference::familiar(&r.full()));
        }
        Ok(out)
    }

    async fn untag_dangling(&self, manifest_digest: &str) {
        let _ = self
            .cd
            .delete_image(&format!("{DANGLING}{manifest_digest}"))
            .await;
    }

    /// Unpacks layers as containerd's unpacker does: Prepare → Diff.Apply → Commit(chainID).
    async fn unpack(&self, lease: &str, layers: &[Descriptor], chains: &[String]) -> Result<()> {
        let mut parent = String::new();
        for (layer, chain) in layers.iter().zip(chains) {
            if !self.cd.snapshot_exists(&self.snapshotter, chain).await? {
                let key = format!("extract-{} {chain}", rand::random::<u32>());
                let mounts = self
                    .cd
                    .prepare(Some(lease), &self.snapshotter, &key, &parent)
                    .await?;
                let applied = async {
                    self.cd.apply(lease, layer.clone(), mounts).await?;
                    self.cd.commit(lease, &self.snapshotter, chain, &key).await
                }
                .await;
                match applied {
                    Ok(()) => {}
                    Err(e) if e.kind() == errdefs::Kind::AlreadyExists => {
                        let _ = self.cd.remove_snapshot(&self.snapshotter, &key).await;
                    }
                    Err(e) => {
                        let _ = self.cd.remove_snapshot(&self.snapshotter, &key).await;
                        return Err(e);
                    }
                }
            }
            parent = chain.to_string();
        }
        Ok(())
    }

    async fn meta(&self, manifest: &Descriptor) -> Result<ImageMeta> {
        if let Ok(cache) = self.cache.lock() {
            if let Some(m) = cache.get(&manifest.digest) {
                return Ok(m.clone());
            }
        }
        let mbytes = self.cd.read_blob(&manifest.digest).await?;
        let m: Value =
            serde_json::from_slice(&mbytes).map_err(|e| ApiError::io("decode manifest", e))?;
        let config_digest = m["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let cbytes = self.cd.read_blob(&config_digest).await?;
        let config: Value =
            serde_json::from_slice(&cbytes).map_err(|e| ApiError::io("decode image config", e))?;
        let layers: Vec<Descriptor> = m["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| Descriptor {
                media_type: l["mediaType"].as_str().unwrap_or_default().to_string(),
                digest: l["digest"].as_str().unwrap_or_default().to_string(),
                size: l["size"].as_i64().unwrap_or(0),
                ..Default::default()
            })
            .collect();
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let meta = ImageMeta {
            id: config_digest,
            manifest: manifest.clone(),
            size: layers.iter().map(|l| l.size).sum(),
            chain_ids: chain_ids(&diff_ids),
            config,
            layers,
            diff_ids,
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(manifest.digest.clone(), meta.clone());
        }
        Ok(meta)
    }

    /// All images grouped by image ID, newest first.
    pub async fn list(&self) -> Result<Vec<Image>> {
        let mut by_id: BTreeMap<String, Image> = BTreeMap::new();
        for (name, target, created) in self.cd.list_images().await? {
            let meta = match self.meta(&target).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(image = name, error = %e, "skip unreadable image");
                    continue;
                }
            };
            let img = by_id.entry(meta.id.clone()).or_insert_with(|| Image {
                meta: meta.clone(),
                names: Vec::new(),
                created_at: created,
            });
            if !name.starts_with(DANGLING) {
                img.names.push(name);
            }
        }
        let mut v: Vec<Image> = by_id.into_values().collect();
        v.sort_by_key(|i| std::cmp::Reverse(i.meta.created_unix()));
        Ok(v)
    }

    /// Finds an image by name (normalized), full ID, or ID prefix.
    pub async fn get(&self, name: &str) -> Result<Image> {
        let all = self.list().await?;
        if let Ok(r) = reference::parse(name) {
            let full = r.full();
            if let Some(i) = all.iter().find(|i| i.names.contains(&full)) {
                return Ok(i.clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let matches: Vec<&Image> = all
                .iter()
                .filter(|i| i.meta.id.trim_start_matches("sha256:").starts_with(hex))
                .collect();
            if matches.len() == 1 {
                return Ok(matches[0].clone());
            }
        }
        let shown = match reference::parse(name) {
            Ok(r) if r.digest.is_none() => reference::familiar(&r.full()),
            _ => name.to_string(),
        };
        Err(ApiError::no_such_image(&shown))
    }

    /// Adds a name to an image.
    pub async fn tag(&self, image: &Image, new: &str) -> Result<()> {
        let r = reference::parse(new).map_err(|e| ApiError::invalid(e.to_string()))?;
        self.untag_dangling(&image.meta.manifest.digest).await;
        self.cd
            .put_image(&r.full(), image.meta.manifest.clone())
            .await
    }

    /// Removes one name; keeps a dangling record when it was the last name and `keep_dangling`.
    pub async fn untag(&self, image: &Image, full: &str, keep_dangling: bool) -> Result<()> {
        if keep_dangling && image.names.len() == 1 {
            self.cd
                .put_image(
                    &format!("{DANGLING}{}", image.meta.manifest.digest),
                    image.meta.manifest.clone(),
                )
                .await?;
        }
        self.cd.delete_image(full).await
    }

    /// Removes every name of an image, then runs containerd's garbage collector so that its
    /// blobs and snapshots go unless another image or a container still uses them.
    pub async fn delete_all(&self, image: &Image) -> Result<()> {
        for n in &image.names {
            match self.cd.delete_image(n).await {
                Ok(()) => {}
                // Already untagged by the caller.
                Err(e) if e.kind() == errdefs::Kind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let _ = self
            .cd
            .delete_image(&format!("{DANGLING}{}", image.meta.manifest.digest))
            .await;
        self.cd.collect_garbage().await
    }

    /// After a container is removed: when its image is gone too, the layers it kept alive
    /// (snapshot parents) can be collected now.
    pub async fn container_removed(&self, image_id: &str) {
        if self.get(image_id).await.is_ok() {
            return;
        }
        if let Err(e) = self.cd.collect_garbage().await {
            tracing::warn!(error = %e, image_id, "garbage collection after container removal");
        }
    }

    /// Reads a file (e.g. `etc/passwd`) from the image's layers, topmost first.
    pub async fn read_file(&self, meta: &ImageMeta, path: &str) -> Option<String> {
        for layer in meta.layers.iter().rev() {
            let data = self.cd.read_blob(&layer.digest).await.ok()?;
            let data = archive::decompress(data).ok()?;
            let mut ar = tar::Archive::new(data.as_ref());
            for entry in ar.entries().ok()?.flatten() {
                let mut entry = entry;
                let p = entry
                    .path()
                    .ok()?
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_string();
                if p == path && entry.header().entry_type().is_file() {
                    let mut s = String::new();
                    entry.read_to_string(&mut s).ok()?;
                    return Some(s);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_containerd() {
        let d = vec!["sha256:aa".to_string(), "sha256:bb".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:aa");
        assert_eq!(c[1], sha256(b"sha256:aa sha256:bb"));
    }
}
