//! Garbage collection of content and snapshots, as containerd's mark-and-sweep does it:
//! roots are images' targets, containers' snapshots, the resources of leases that have not
//! expired (`containerd.io/gc.expire`, RFC 3339) and objects labelled `containerd.io/gc.root`;
//! references follow `containerd.io/gc.ref.content*` and `containerd.io/gc.ref.snapshot.<sn>*`
//! labels and snapshot parents. Expired leases, unleased ingests (partial writes), unreferenced
//! snapshots (active ones too) and snapshot directories without a record (a crash inside
//! Prepare) go. It runs shortly after startup and after deletions ([`Daemon::schedule_gc`]).

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
    pub ingests: usize,
    pub leases: usize,
}

/// The label giving a lease's expiry.
pub const EXPIRE_LABEL: &str = "containerd.io/gc.expire";

/// Seconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05Z`, `.123`, `+01:00`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        b'+' | b'-' if i + 6 == b.len() && b[i + 3] == b':' => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if b[i] == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + se - offset)
}

fn expired(labels: &BTreeMap<String, String>, now: i64) -> bool {
    match labels.get(EXPIRE_LABEL) {
        Some(v) => match parse_rfc3339(v) {
            Some(t) => t <= now,
            None => {
                tracing::info!(value = %v, "ignoring invalid lease expiration");
                false
            }
        },
        None => false,
    }
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
    let now = crate::util::Ts::now().secs;
    let mut leases_gone = 0;
    let mut ingests_kept = HashSet::new();
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
            for (lid, l) in tx.list::<LeaseRecord>(&format!("l/{ns}/"))? {
                if expired(&l.labels, now) {
                    tx.delete(&format!("l/{ns}/{lid}"))?;
                    leases_gone += 1;
                    continue;
                }
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
                    // As in containerd, an active snapshot or view no lease or container holds
                    // is collected too.
                    if s.labels.contains_key("containerd.io/gc.root") {
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
        for (ns, kind, id) in &marked {
            if kind == "ingests" {
                ingests_kept.insert((ns.clone(), id.clone()));
            }
        }
        // Snapshot directories no record names: a crash between creating the directory and
        // committing the record. Removed inside the transaction, so no Prepare is half-done.
        for sn in &snapshotters {
            let Ok(backend) = d.snapshots.backend(sn) else {
                continue;
            };
            let mut known = HashSet::new();
            for (ns, _) in &nss {
                for (_, s) in tx.list::<SnapshotRecord>(&format!("s/{sn}/{ns}/"))? {
                    known.insert(s.id);
                }
            }
            for id in backend.ids_on_disk() {
                if !known.contains(&id) {
                    tracing::info!(snapshotter = %sn, id, "removing orphaned snapshot directory");
                    if let Err(e) = backend.remove(id) {
                        tracing::warn!(snapshotter = %sn, id, error = %e, "orphaned snapshot");
                    }
                }
            }
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
        // A writer may have recorded the digest again since the transaction: its file stays.
        let _gate = d.content.gate();
        let recorded_again = d
            .meta
            .update(|tx| {
                for (ns, _) in tx.list::<NamespaceRecord>("ns/")? {
                    if tx.exists(&format!("b/{ns}/{dg}"))? {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .unwrap_or(true);
        if !recorded_again && d.content.remove_blob(&dg).is_ok() {
            done.blobs += 1;
        }
    }
    // Partial writes no lease holds (and no writer is on).
    match d.content.all_ingests() {
        Ok(all) => {
            for st in all {
                if ingests_kept.contains(&(st.ns.clone(), st.r#ref.clone()))
                    || d.content.is_locked(&st.ns, &st.r#ref)
                {
                    continue;
                }
                if d.content.abort(&st.ns, &st.r#ref).is_ok() {
                    tracing::debug!(namespace = %st.ns, r#ref = %st.r#ref, "removed ingest");
                    done.ingests += 1;
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing ingests"),
    }
    done.leases = leases_gone;
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
        ingests = done.ingests,
        leases = done.leases,
        "garbage collected"
    );
    Ok(done)
}

impl Daemon {
    /// Asks for a collection soon (deletions call this; several requests make one run).
    pub fn schedule_gc(&self) {
        self.gc_wanted.notify_one();
    }
}

/// Runs a collection after each [`Daemon::schedule_gc`], at most one at a time, 100 ms after the
/// first request of a burst.
pub async fn scheduler(d: std::sync::Arc<Daemon>) {
    loop {
        d.gc_wanted.notified().await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let d2 = d.clone();
        match tokio::task::spawn_blocking(move || collect(&d2)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "garbage collection"),
            Err(e) => tracing::warn!(error = %e, "garbage collection worker"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-03-01T12:00:00Z"), Some(1_709_294_400));
        assert_eq!(
            parse_rfc3339("2024-03-01T12:00:00.5+01:00"),
            Some(1_709_290_800)
        );
        assert_eq!(
            parse_rfc3339("2024-03-01T12:00:00-00:30"),
            Some(1_709_296_200)
        );
        for bad in [
            "",
            "2024-03-01",
            "2024-13-01T00:00:00Z",
            "2024-03-01T12:00:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let mut l = BTreeMap::new();
        l.insert(EXPIRE_LABEL.to_string(), "2000-01-01T00:00:00Z".to_string());
        assert!(expired(&l, 1_709_294_400));
        l.insert(EXPIRE_LABEL.to_string(), "2100-01-01T00:00:00Z".to_string());
        assert!(!expired(&l, 1_709_294_400));
    }
}
