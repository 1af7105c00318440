//! `docker load` and `docker save`: the tar layout of `docker save` (manifest.json with
//! `Config`/`RepoTags`/`Layers`, `repositories`) plus the OCI image layout that Docker 25+ also
//! writes (`oci-layout`, `index.json`, manifests under `blobs/sha256/`). Load accepts either
//! (a tar with only `index.json` too), with plain or gzip layers.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{sha256, Image, Images, MT_LAYER};
use crate::containerd::Descriptor;
use crate::error::{ApiError, Result};
use crate::reference;

const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ANN_NAME: &str = "io.containerd.image.name";
const ANN_REF: &str = "org.opencontainers.image.ref.name";

/// One image a load stored: its ID and the familiar names it got.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: String,
    pub names: Vec<String>,
}

/// One image to load, whatever layout it came in.
struct Entry {
    config: String,
    layers: Vec<String>,
    tags: Vec<String>,
}

/// The regular files of a tar as slices of it (no copy; a sparse entry is read out), with
/// links resolved to their targets' data.
pub(super) fn read_archive(tar_bytes: &Bytes) -> Result<HashMap<String, Bytes>> {
    let mut files = HashMap::new();
    let mut links = Vec::new();
    let mut ar = tar::Archive::new(tar_bytes.as_ref());
    let entries = ar
        .entries()
        .map_err(|e| ApiError::invalid(format!("invalid tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ApiError::invalid(format!("invalid tar: {e}")))?;
        let path = entry.path().map_err(|e| ApiError::invalid(e.to_string()))?;
        let path = path.to_string_lossy().trim_start_matches("./").to_string();
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Ok(Some(target)) = entry.link_name() {
                links.push((
                    path,
                    target.to_string_lossy().into_owned(),
                    kind.is_symlink(),
                ));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let start = entry.raw_file_position() as usize;
        let size = entry.size() as usize;
        let data = match tar_bytes.get(start..start + size) {
            Some(_) if kind != tar::EntryType::GNUSparse => tar_bytes.slice(start..start + size),
            _ => {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| ApiError::invalid(format!("invalid tar entry {path}: {e}")))?;
                Bytes::from(data)
            }
        };
        files.insert(path, data);
    }
    for (path, target, symlink) in links {
        let resolved = if symlink {
            let base = std::path::Path::new(&path)
                .parent()
                .unwrap_or(std::path::Path::new(""));
            normalize(&base.join(&target).to_string_lossy())
        } else {
            target.trim_start_matches("./").to_string()
        };
        if let Some(d) = files.get(&resolved).cloned() {
            files.insert(path, d);
        }
    }
    Ok(files)
}

fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// A layer's plain tar: gzip is inflated, a plain tar is returned as it is.
pub(super) fn decompress(data: impl Into<Bytes>) -> Result<Bytes> {
    let data: Bytes = data.into();
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data.as_ref())
            .read_to_end(&mut out)
            .map_err(|e| ApiError::invalid(format!("invalid gzip layer: {e}")))?;
        Ok(out.into())
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(ApiError::invalid(
            "zstd layers are not supported by docker load here",
        ))
    } else {
        Ok(data)
    }
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// The entries of an OCI layout `index.json` (nested indexes followed; linux/amd64 chosen).
fn oci_entries(files: &HashMap<String, Bytes>) -> Result<Vec<Entry>> {
    let index = files
        .get("index.json")
        .ok_or_else(|| ApiError::invalid("invalid tar: no manifest.json and no index.json"))?;
    let index: Value = serde_json::from_slice(index)
        .map_err(|e| ApiError::invalid(format!("invalid index.json: {e}")))?;
    let mut out = Vec::new();
    let mut todo: Vec<(Value, Option<String>)> = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| (d.clone(), None))
        .collect();
    while let Some((desc, inherited)) = todo.pop() {
        let digest = desc["digest"].as_str().unwrap_or_default();
        let name = desc["annotations"][ANN_NAME]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                desc["annotations"][ANN_REF]
                    .as_str()
                    .filter(|r| r.contains([':', '/']))
                    .map(str::to_string)
            })
            .or(inherited);
        let blob = files
            .get(&blob_path(digest))
            .ok_or_else(|| ApiError::invalid(format!("invalid tar: missing blob {digest}")))?;
        let m: Value = serde_json::from_slice(blob)
            .map_err(|e| ApiError::invalid(format!("invalid manifest {digest}: {e}")))?;
        let mt = desc["mediaType"].as_str().or(m["mediaType"].as_str());
        if mt == Some(MT_OCI_INDEX) || mt == Some(MT_DOCKER_LIST) || m["manifests"].is_array() {
            let chosen = m["manifests"].as_array().and_then(|ms| {
                ms.iter()
                    .find(|d| {
                        d["platform"]["os"] == "linux" && d["platform"]["architecture"] == "amd64"
                    })
                    .or_else(|| ms.first())
                    .cloned()
            });
            if let Some(c) = chosen {
                todo.push((c, name));
            }
            continue;
        }
        let config = m["config"]["digest"].as_str().unwrap_or_default();
        let mut tags = Vec::new();
        if let Some(n) = name {
            tags.push(n);
        }
        out.push(Entry {
            config: blob_path(config),
            layers: m["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["digest"].as_str().map(blob_path))
                .collect(),
            tags,
        });
    }
    Ok(out)
}

fn docker_entries(manifest: &[u8]) -> Result<Vec<Entry>> {
    let entries: Vec<Value> = serde_json::from_slice(manifest)
        .map_err(|e| ApiError::invalid(format!("invalid manifest.json: {e}")))?;
    entries
        .iter()
        .map(|e| {
            let strs = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            };
            Ok(Entry {
                config: e["Config"]
                    .as_str()
                    .ok_or_else(|| ApiError::invalid("manifest.json: no Config"))?
                    .to_string(),
                layers: strs(&e["Layers"]),
                tags: strs(&e["RepoTags"]),
            })
        })
        .collect()
}

/// A tar entry with fixed metadata (mode 0644 files, 0755 directories, mtime 0).
fn add(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, path, data)
        .map_err(|e| ApiError::io("write tar", e))
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, path, std::io::empty())
        .map_err(|e| ApiError::io("write tar", e))
}

impl Images {
    /// Loads a `docker save` tar (or an OCI layout tar).
    pub async fn load(&self, tar_bytes: Bytes) -> Result<Vec<Loaded>> {
        let files = read_archive(&tar_bytes)?;
        let entries = match files.get("manifest.json") {
            Some(m) => docker_entries(m)?,
            None => oci_entries(&files)?,
        };
        if entries.is_empty() {
            return Err(ApiError::invalid("invalid tar: it holds no image"));
        }
        let lease = self.cd.create_lease().await?;
        let mut out = Vec::new();
        let mut result = Ok(());
        for e in &entries {
            match self.load_entry(&files, e, &lease).await {
                Ok(l) => out.push(l),
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        if let Err(e) = self.cd.delete_lease(&lease).await {
            tracing::warn!(error = %e, lease, "delete lease");
        }
        result.map(|()| out)
    }

    async fn load_entry(
        &self,
        files: &HashMap<String, Bytes>,
        entry: &Entry,
        lease: &str,
    ) -> Result<Loaded> {
        let config_bytes = files
            .get(&entry.config)
            .ok_or_else(|| ApiError::invalid(format!("invalid tar: missing {}", entry.config)))?;
        let config: Value = serde_json::from_slice(config_bytes)
            .map_err(|e| ApiError::invalid(format!("invalid image config: {e}")))?;
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for p in &entry.layers {
            let data = files
                .get(p)
                .cloned()
                .ok_or_else(|| ApiError::invalid(format!("invalid tar: missing layer {p}")))?;
            let data = decompress(data)?;
            let digest = sha256(&data);
            diff_ids.push(digest.clone());
            layers.push((digest, data));
        }
        let want: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if want != diff_ids {
            return Err(ApiError::invalid(
                "layer digests do not match the image config diff_ids",
            ));
        }
        let mut descs = Vec::new();
        for (digest, data) in layers {
            let size = data.len() as i64;
            self.cd
                .write_blob(lease, &digest, data, HashMap::new())
                .await?;
            descs.push(Descriptor {
                media_type: MT_LAYER.to_string(),
                digest,
                size,
                ..Default::default()
            });
        }
        let id = sha256(config_bytes);
        let target = self
            .store_image(lease, config_bytes.to_vec(), &descs)
            .await?;
        let names = self.name_image(&target, &entry.tags).await?;
        Ok(Loaded { id, names })
    }

    /// The `docker save` tar of images, each with the names to record for it.
    pub async fn save(&self, images: &[(Image, Vec<String>)]) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        add_dir(&mut b, "blobs/")?;
        add_dir(&mut b, "blobs/sha256/")?;
        let mut manifest = Vec::new();
        let mut index = Vec::new();
        let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut written = HashSet::new();
        let mut put =
            |b: &mut tar::Builder<Vec<u8>>, digest: &str, data: &[u8]| -> Result<String> {
                let p = blob_path(digest);
                if written.insert(p.clone()) {
                    add(b, &p, data)?;
                }
                Ok(p)
            };
        for (img, tags) in images {
            let meta = &img.meta;
            let cfg = self.cd.read_blob(&meta.id).await?;
            let cfg_path = put(&mut b, &meta.id, &cfg)?;
            let mut layer_paths = Vec::new();
            for (l, diff_id) in meta.layers.iter().zip(&meta.diff_ids) {
                let raw = self.cd.read_blob(&l.digest).await?;
                if &l.digest == diff_id {
                    layer_paths.push(put(&mut b, diff_id, &raw)?);
                } else {
                    // A compressed blob: the OCI layout keeps it, manifest.json the plain tar.
                    put(&mut b, &l.digest, &raw)?;
                    let plain = decompress(raw)?;
                    layer_paths.push(put(&mut b, diff_id, &plain)?);
                }
            }
            let mbytes = self.cd.read_blob(&meta.manifest.digest).await?;
            put(&mut b, &meta.manifest.digest, &mbytes)?;
            let familiar: Vec<String> = tags.iter().map(|t| reference::familiar(t)).collect();
            let desc = |ann: Value| {
                let mut d = json!({
                    "mediaType": meta.manifest.media_type,
                    "digest": meta.manifest.digest,
                    "size": meta.manifest.size,
                });
                if !ann.is_null() {
                    d["annotations"] = ann;
                }
                d
            };
            if tags.is_empty() {
                index.push(desc(Value::Null));
            }
            for t in tags {
                let tag = reference::split_repo_tag(t).1;
                index.push(desc(json!({ANN_NAME: t, ANN_REF: tag})));
            }
            for t in &familiar {
                let (repo, tag) = reference::split_repo_tag(t);
                if let Some(last) = meta.diff_ids.last() {
                    repos
                        .entry(repo)
                        .or_default()
                        .insert(tag, last.trim_start_matches("sha256:").to_string());
                }
            }
            manifest.push(json!({"Config": cfg_path, "RepoTags": familiar, "Layers": layer_paths}));
        }
        let enc = |v: &Value| serde_json::to_vec(v).map_err(|e| ApiError::io("encode", e));
        add(
            &mut b,
            "index.json",
            &enc(&json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": index}))?,
        )?;
        add(&mut b, "manifest.json", &enc(&json!(manifest))?)?;
        add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        if !repos.is_empty() {
            add(&mut b, "repositories", &enc(&json!(repos))?)?;
        }
        b.into_inner().map_err(|e| ApiError::io("write tar", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, d) in files {
            add(&mut b, p, d).expect("add");
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn reads_legacy_and_oci_layouts() {
        // Legacy (dockerd 20.10): <id>/layer.tar, <id>.json, symlinked layer.
        let t = tar_of(&[
            (
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":["busybox:latest"],"Layers":["l1/layer.tar"]}]"#,
            ),
            ("c.json", b"{}"),
            ("l1/layer.tar", b"x"),
        ]);
        let files = read_archive(&Bytes::from(t)).expect("read");
        let e = docker_entries(&files["manifest.json"]).expect("entries");
        assert_eq!(e[0].config, "c.json");
        assert_eq!(e[0].layers, vec!["l1/layer.tar"]);
        assert_eq!(e[0].tags, vec!["busybox:latest"]);
        // OCI only: index.json → manifest with the containerd name annotation.
        let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:cc"},"layers":[{"digest":"sha256:11"}]}"#;
        let md = sha256(m);
        let idx = format!(
            r#"{{"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","annotations":{{"{ANN_NAME}":"docker.io/library/x:1"}}}}]}}"#
        );
        let t = tar_of(&[("index.json", idx.as_bytes()), (&blob_path(&md), m)]);
        let e = oci_entries(&read_archive(&Bytes::from(t)).expect("read")).expect("entries");
        assert_eq!(e[0].config, "blobs/sha256/cc");
        assert_eq!(e[0].layers, vec!["blobs/sha256/11"]);
        assert_eq!(e[0].tags, vec!["docker.io/library/x:1"]);
        assert!(oci_entries(&HashMap::new()).is_err());
    }
}
