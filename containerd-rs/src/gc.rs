//! Garbage collection of content and snapshots, as containerd's mark-and-sweep does it:
//! roots are images' targets, containers' snapshots, lease resources and objects labelled
//! `containerd.io/gc.root`; references follow `containerd.io/gc.ref.content*` and
//! `containerd.io/gc.ref.snapshot.<snapshotter>*` labels and snapshot parents.

use std::collections::{BTreeMap, HashSet};

use crate::meta::{
    BlobRecord, ContainerRecord, ImageRecord, LeaseRecord, NamespaceRecord, SnapshotRecord,
};
use crate::Daemon;

/// What a collection removed.
#[derive(Debug, Default)]
pub struct Collected {
    pub blobs: usize,
    pub snapshots: usize,
}

type Marked = HashSet<(String, String, String)>; // (ns, kind, id); kind "content" or "snapshots/<sn>"

fn refs(labels: &BTreeMap<String, String>, out: &mut Vec<(String, String)>) {
    for (k, v) in labels {
        if k.starts_with("containerd.io/gc.ref.content") {
            out.push(("content".into(), v.clone()));
        } else if let Some(rest) = k.strip_prefix("containerd.io/gc.ref.snapshot.") {
            let sn = rest.split('/').next().unwrap_or(rest);
            out.push((format!("snapshots/{sn}"), v.clone()));
        }
    }
}

pub fn collect(d: &Daemon) -> Result<Collected, errdefs::Error> {
    let mut done = Collected::default();
    let mut removed_snaps = Vec::new();
    let snapshotters = d.snapshots.names();
    let removed_blobs = d.meta.update(|tx| {
        let nss: Vec<(String, NamespaceRecord)> = tx.list("ns/")?;
        let mut marked: Marked = HashSet::new();
        let mut queue: Vec<(String, String, String)> = Vec::new();
        for (ns, _) in &nss {
            for (_, img) in tx.list::<ImageRecord>(&format!("i/{ns}/"))? {
                queue.push((ns.clone(), "content".into(), img.target.digest.clone()));
            }
            for (_, c) in tx.list::<ContainerRecord>(&format!("c/{ns}/"))? {
                if !c.snapshot_key.is_empty() {
                    queue.push((
                        ns.clone(),
                        format!("snapshots/{}", c.snapshotter),
                        c.snapshot_key.clone(),
                    ));
                }
                let mut r = Vec::new();
                refs(&c.labels, &mut r);
                queue.extend(r.into_iter().map(|(k, v)| (ns.clone(), k, v)));
            }
            for (_, l) in tx.list::<LeaseRecord>(&format!("l/{ns}/"))? {
                for (kind, id) in l.resources {
                    queue.push((ns.clone(), kind, id));
                }
            }
            for (dg, b) in tx.list::<BlobRecord>(&format!("b/{ns}/"))? {
                if b.labels.contains_key("containerd.io/gc.root") {
                    queue.push((ns.clone(), "content".into(), dg));
                }
            }
            for sn in &snapshotters {
                for (k, s) in tx.list::<SnapshotRecord>(&format!("s/{sn}/{ns}/"))? {
                    // Active snapshots and views are in use by someone (containerd keeps them
                    // while a lease or container holds them; we keep them all).
                    if s.labels.contains_key("containerd.io/gc.root")
                        || s.kind != crate::meta::SnapKind::Committed
                    {
                        queue.push((ns.clone(), format!("snapshots/{sn}"), k));
                    }
                }
            }
        }
        while let Some(item) = queue.pop() {
            if !marked.insert(item.clone()) {
                continue;
            }
            let (ns, kind, id) = &item;
            let mut r = Vec::new();
            if kind == "content" {
                if let Some(b) = tx.get::<BlobRecord>(&format!("b/{ns}/{id}"))? {
                    refs(&b.labels, &mut r);
                }
            } else if let Some(sn) = kind.strip_prefix("snapshots/") {
                if let Some(s) = tx.get::<SnapshotRecord>(&format!("s/{sn}/{ns}/{id}"))? {
                    refs(&s.labels, &mut r);
                    if !s.parent.is_empty() {
                        r.push((kind.clone(), s.parent.clone()));
                    }
                }
            }
            queue.extend(r.into_iter().map(|(k, v)| (ns.clone(), k, v)));
        }
        let mut removed_blobs = Vec::new();
        for (ns, _) in &nss {
            for (dg, _) in tx.list::<BlobRecord>(&format!("b/{ns}/"))? {
                if !marked.contains(&(ns.clone(), "content".into(), dg.clone())) {
                    tx.delete(&format!("b/{ns}/{dg}"))?;
                    removed_blobs.push(dg);
                }
            }
            for sn in &snapshotters {
                // Children first: sweep until nothing more goes.
                loop {
                    let all: Vec<(String, SnapshotRecord)> = tx.list(&format!("s/{sn}/{ns}/"))?;
                    let parents: HashSet<&str> =
                        all.iter().map(|(_, s)| s.parent.as_str()).collect();
                    let victims: Vec<&(String, SnapshotRecord)> = all
                        .iter()
                        .filter(|(k, _)| {
                            !marked.contains(&(ns.clone(), format!("snapshots/{sn}"), k.clone()))
                                && !parents.contains(k.as_str())
                        })
                        .collect();
                    if victims.is_empty() {
                        break;
                    }
                    for (k, s) in victims {
                        tx.delete(&format!("s/{sn}/{ns}/{k}"))?;
                        removed_snaps.push((sn.clone(), s.id));
                    }
                }
            }
        }
        // A blob file goes when no namespace records it any more.
        let mut gone = Vec::new();
        for dg in removed_blobs {
            let mut used = false;
            for (ns, _) in &nss {
                if tx.exists(&format!("b/{ns}/{dg}"))? {
                    used = true;
                }
            }
            if !used {
                gone.push(dg);
            }
        }
        Ok(gone)
    })?;
    for dg in removed_blobs {
        if d.content.remove_blob(&dg).is_ok() {
            done.blobs += 1;
        }
    }
    for (sn, id) in removed_snaps {
        if let Ok(b) = d.snapshots.backend(&sn) {
            if b.remove(id).is_ok() {
                done.snapshots += 1;
            }
        }
    }
    tracing::info!(
        blobs = done.blobs,
        snapshots = done.snapshots,
        "garbage collected"
    );
    Ok(done)
}
