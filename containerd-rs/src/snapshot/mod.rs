//! Snapshots: metadata (per namespace, in redb) over the backends in [`backend`].

pub mod backend;
pub mod btrfs;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use backend::{Backend, MountSpec};

use crate::meta::{Meta, SnapKind, SnapshotRecord, Tx};
use crate::util::Ts;

pub struct Snapshots {
    meta: Arc<Meta>,
    backends: HashMap<String, Arc<dyn Backend>>,
}

/// A snapshot as Stat/List return it.
#[derive(Debug, Clone)]
pub struct Info {
    pub name: String,
    pub record: SnapshotRecord,
}

fn key(sn: &str, ns: &str, k: &str) -> String {
    format!("s/{sn}/{ns}/{k}")
}

impl Snapshots {
    pub fn new(meta: Arc<Meta>, backends: Vec<Arc<dyn Backend>>) -> Self {
        Self {
            meta,
            backends: backends
                .into_iter()
                .map(|b| (b.name().to_string(), b))
                .collect(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.backends.keys().cloned().collect();
        v.sort();
        v
    }

    pub fn backend(&self, sn: &str) -> Result<&Arc<dyn Backend>, errdefs::Error> {
        let sn = if sn.is_empty() { "overlayfs" } else { sn };
        self.backends.get(sn).ok_or_else(|| {
            errdefs::Error::invalid(format!("snapshotter not loaded: {sn}: invalid argument"))
        })
    }

    fn sn_name(sn: &str) -> &str {
        if sn.is_empty() {
            "overlayfs"
        } else {
            sn
        }
    }

    /// Parent ids, nearest first.
    fn chain(tx: &Tx<'_>, sn: &str, ns: &str, parent: &str) -> Result<Vec<u64>, errdefs::Error> {
        let mut ids = Vec::new();
        let mut cur = parent.to_string();
        while !cur.is_empty() {
            let r: SnapshotRecord = tx.get(&key(sn, ns, &cur))?.ok_or_else(|| {
                errdefs::Error::not_found(format!(
                    "parent snapshot {cur} does not exist: not found"
                ))
            })?;
            ids.push(r.id);
            cur = r.parent;
        }
        Ok(ids)
    }

    /// Prepare (Active) or View.
    pub fn create(
        &self,
        ns: &str,
        sn: &str,
        k: &str,
        parent: &str,
        labels: BTreeMap<String, String>,
        kind: SnapKind,
    ) -> Result<Vec<MountSpec>, errdefs::Error> {
        let sn = Self::sn_name(sn);
        let backend = self.backend(sn)?.clone();
        if k.is_empty() {
            return Err(errdefs::Error::invalid(
                "snapshot key must not be empty: invalid argument",
            ));
        }
        self.meta.update(|tx| {
            tx.ensure_namespace(ns)?;
            if tx.exists(&key(sn, ns, k))? {
                return Err(errdefs::Error::already_exists(format!(
                    "snapshot {k}: already exists"
                )));
            }
            if !parent.is_empty() {
                let p: SnapshotRecord = tx.get(&key(sn, ns, parent))?.ok_or_else(|| {
                    errdefs::Error::not_found(format!(
                        "parent snapshot {parent} does not exist: not found"
                    ))
                })?;
                if p.kind != SnapKind::Committed {
                    return Err(errdefs::Error::invalid(format!(
                        "parent {parent} is not committed snapshot: invalid argument"
                    )));
                }
            }
            let parents = Self::chain(tx, sn, ns, parent)?;
            let id = tx.next_seq(&format!("snap/{sn}"))?;
            let now = Ts::now();
            tx.put(
                &key(sn, ns, k),
                &SnapshotRecord {
                    id,
                    kind,
                    parent: parent.to_string(),
                    labels,
                    created_at: now,
                    updated_at: now,
                    size: 0,
                    inodes: 0,
                },
            )?;
            if let Err(e) = backend.create(id, kind, &parents) {
                let _ = backend.remove(id);
                return Err(e.into());
            }
            Ok(backend.mounts(id, kind, &parents))
        })
    }

    pub fn mounts(&self, ns: &str, sn: &str, k: &str) -> Result<Vec<MountSpec>, errdefs::Error> {
        let sn = Self::sn_name(sn);
        let backend = self.backend(sn)?.clone();
        self.meta.update(|tx| {
            let r = Self::get_tx(tx, sn, ns, k)?;
            if r.kind == SnapKind::Committed {
                return Err(errdefs::Error::precondition(format!(
                    "snapshot {k} is not active: failed precondition"
                )));
            }
            let parents = Self::chain(tx, sn, ns, &r.parent)?;
            Ok(backend.mounts(r.id, r.kind, &parents))
        })
    }

    fn get_tx(tx: &Tx<'_>, sn: &str, ns: &str, k: &str) -> Result<SnapshotRecord, errdefs::Error> {
        tx.get(&key(sn, ns, k))?.ok_or_else(|| {
            errdefs::Error::not_found(format!("snapshot {k} does not exist: not found"))
        })
    }

    pub fn commit(
        &self,
        ns: &str,
        sn: &str,
        name: &str,
        k: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), errdefs::Error> {
        let sn = Self::sn_name(sn);
        let backend = self.backend(sn)?.clone();
        self.meta.update(|tx| {
            let mut r = Self::get_tx(tx, sn, ns, k)?;
            if r.kind != SnapKind::Active {
                return Err(errdefs::Error::precondition(format!(
                    "snapshot {k} is not active: failed precondition"
                )));
            }
            if tx.exists(&key(sn, ns, name))? {
                return Err(errdefs::Error::already_exists(format!(
                    "snapshot {name}: already exists"
                )));
            }
            let (size, inodes) = backend::disk_usage(&backend.data_dir(r.id));
            backend.commit(r.id)?;
            r.kind = SnapKind::Committed;
            r.size = size;
            r.inodes = inodes;
            r.labels.extend(labels);
            let now = Ts::now();
            r.created_at = now;
            r.updated_at = now;
            tx.delete(&key(sn, ns, k))?;
            tx.put(&key(sn, ns, name), &r)?;
            Ok(())
        })
    }

    pub fn remove(&self, ns: &str, sn: &str, k: &str) -> Result<(), errdefs::Error> {
        let sn = Self::sn_name(sn);
        let backend = self.backend(sn)?.clone();
        let id = self.meta.update(|tx| {
            let r = Self::get_tx(tx, sn, ns, k)?;
            let all: Vec<(String, SnapshotRecord)> = tx.list(&format!("s/{sn}/{ns}/"))?;
            if all.iter().any(|(_, c)| c.parent == k) {
                return Err(errdefs::Error::precondition(format!(
                    "cannot remove snapshot {k} with child: failed precondition"
                )));
            }
            tx.delete(&key(sn, ns, k))?;
            Ok(r.id)
        })?;
        if let Err(e) = backend.remove(id) {
            tracing::warn!(snapshot = k, error = %e, "removing snapshot data");
        }
        Ok(())
    }

    pub fn stat(&self, ns: &str, sn: &str, k: &str) -> Result<Info, errdefs::Error> {
        let sn = Self::sn_name(sn);
        self.backend(sn)?;
        let r = self
            .meta
            .get::<SnapshotRecord>(&key(sn, ns, k))?
            .ok_or_else(|| {
                errdefs::Error::not_found(format!("snapshot {k} does not exist: not found"))
            })?;
        Ok(Info {
            name: k.to_string(),
            record: r,
        })
    }

    pub fn update_labels(
        &self,
        ns: &str,
        sn: &str,
        k: &str,
        labels: &HashMap<String, String>,
        paths: &[String],
    ) -> Result<Info, errdefs::Error> {
        let sn = Self::sn_name(sn);
        self.backend(sn)?;
        self.meta.update(|tx| {
            let mut r = Self::get_tx(tx, sn, ns, k)?;
            if paths.is_empty() {
                r.labels = crate::util::to_btree(labels);
            } else {
                crate::util::update_labels(&mut r.labels, labels, paths);
            }
            r.updated_at = Ts::now();
            tx.put(&key(sn, ns, k), &r)?;
            Ok(Info {
                name: k.to_string(),
                record: r,
            })
        })
    }

    pub fn list(&self, ns: &str, sn: &str) -> Result<Vec<Info>, errdefs::Error> {
        let sn = Self::sn_name(sn);
        self.backend(sn)?;
        Ok(self
            .meta
            .list::<SnapshotRecord>(&format!("s/{sn}/{ns}/"))?
            .into_iter()
            .map(|(name, record)| Info { name, record })
            .collect())
    }

    pub fn usage(&self, ns: &str, sn: &str, k: &str) -> Result<(i64, i64), errdefs::Error> {
        let sn = Self::sn_name(sn);
        let backend = self.backend(sn)?.clone();
        let info = self.stat(ns, sn, k)?;
        if info.record.kind == SnapKind::Committed {
            return Ok((info.record.size, info.record.inodes));
        }
        Ok(backend::disk_usage(&backend.data_dir(info.record.id)))
    }
}

impl crate::filter::Fields for Info {
    fn field(&self, path: &[String]) -> Option<String> {
        match path.first().map(String::as_str) {
            Some("name") if path.len() == 1 => Some(self.name.clone()),
            Some("parent") if path.len() == 1 => Some(self.record.parent.clone()),
            Some("kind") if path.len() == 1 => Some(
                match self.record.kind {
                    SnapKind::View => "view",
                    SnapKind::Active => "active",
                    SnapKind::Committed => "committed",
                }
                .to_string(),
            ),
            _ => crate::filter::label_field(&self.record.labels, path),
        }
    }
}
