//! containerd.services.snapshots.v1.Snapshots.

use std::sync::Arc;

use proto::services::snapshots::{self as pb, snapshots_server::Snapshots};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status};

use super::{blocking, mount_to_proto, ok, Resp};
use crate::filter::Filter;
use crate::meta::SnapKind;
use crate::services::leases::lease_of;
use crate::snapshot::Info;
use crate::util::{namespace, to_btree, to_hash};
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

fn info_pb(i: &Info) -> pb::Info {
    pb::Info {
        name: i.name.clone(),
        parent: i.record.parent.clone(),
        kind: match i.record.kind {
            SnapKind::View => pb::Kind::View,
            SnapKind::Active => pb::Kind::Active,
            SnapKind::Committed => pb::Kind::Committed,
        } as i32,
        created_at: Some(i.record.created_at.proto()),
        updated_at: Some(i.record.updated_at.proto()),
        labels: to_hash(&i.record.labels),
    }
}

fn sn(s: &str) -> String {
    if s.is_empty() {
        "overlayfs".into()
    } else {
        s.to_string()
    }
}

#[tonic::async_trait]
impl Snapshots for Service {
    async fn prepare(
        &self,
        req: Request<pb::PrepareSnapshotRequest>,
    ) -> Resp<pb::PrepareSnapshotResponse> {
        let ns = namespace(&req)?;
        let lease = lease_of(&req);
        let r = req.into_inner();
        self.0
            .lease_snapshot(&ns, lease.as_deref(), &r.snapshotter, &r.key)?;
        let d = self.0.clone();
        let (s, k, p, l) = (
            r.snapshotter.clone(),
            r.key.clone(),
            r.parent.clone(),
            to_btree(&r.labels),
        );
        let mounts = blocking(move || {
            d.snapshots
                .create(&ns, &s, &k, &p, l, SnapKind::Active)
                .map(|m| (m, ns))
        })
        .await?;
        self.0.events.publish(
            &mounts.1,
            "/snapshot/prepare",
            &proto::events::SnapshotPrepare {
                key: r.key,
                parent: r.parent,
                snapshotter: sn(&r.snapshotter),
            },
        );
        ok(pb::PrepareSnapshotResponse {
            mounts: mounts.0.into_iter().map(mount_to_proto).collect(),
        })
    }

    async fn view(&self, req: Request<pb::ViewSnapshotRequest>) -> Resp<pb::ViewSnapshotResponse> {
        let ns = namespace(&req)?;
        let lease = lease_of(&req);
        let r = req.into_inner();
        self.0
            .lease_snapshot(&ns, lease.as_deref(), &r.snapshotter, &r.key)?;
        let d = self.0.clone();
        let mounts = blocking(move || {
            d.snapshots.create(
                &ns,
                &r.snapshotter,
                &r.key,
                &r.parent,
                to_btree(&r.labels),
                SnapKind::View,
            )
        })
        .await?;
        ok(pb::ViewSnapshotResponse {
            mounts: mounts.into_iter().map(mount_to_proto).collect(),
        })
    }

    async fn mounts(&self, req: Request<pb::MountsRequest>) -> Resp<pb::MountsResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let mounts = self.0.snapshots.mounts(&ns, &r.snapshotter, &r.key)?;
        ok(pb::MountsResponse {
            mounts: mounts.into_iter().map(mount_to_proto).collect(),
        })
    }

    async fn commit(&self, req: Request<pb::CommitSnapshotRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let lease = lease_of(&req);
        let r = req.into_inner();
        self.0
            .lease_snapshot(&ns, lease.as_deref(), &r.snapshotter, &r.name)?;
        let d = self.0.clone();
        let (n2, s, name, key) = (
            ns.clone(),
            r.snapshotter.clone(),
            r.name.clone(),
            r.key.clone(),
        );
        blocking(move || {
            d.snapshots
                .commit(&n2, &s, &name, &key, to_btree(&r.labels))
        })
        .await?;
        self.0.events.publish(
            &ns,
            "/snapshot/commit",
            &proto::events::SnapshotCommit {
                key: r.key,
                name: r.name,
                snapshotter: sn(&r.snapshotter),
            },
        );
        ok(())
    }

    async fn remove(&self, req: Request<pb::RemoveSnapshotRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let d = self.0.clone();
        let (n2, s, key) = (ns.clone(), r.snapshotter.clone(), r.key.clone());
        blocking(move || d.snapshots.remove(&n2, &s, &key)).await?;
        self.0.schedule_gc();
        self.0.events.publish(
            &ns,
            "/snapshot/remove",
            &proto::events::SnapshotRemove {
                key: r.key,
                snapshotter: sn(&r.snapshotter),
            },
        );
        ok(())
    }

    async fn stat(&self, req: Request<pb::StatSnapshotRequest>) -> Resp<pb::StatSnapshotResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let i = self.0.snapshots.stat(&ns, &r.snapshotter, &r.key)?;
        ok(pb::StatSnapshotResponse {
            info: Some(info_pb(&i)),
        })
    }

    async fn update(
        &self,
        req: Request<pb::UpdateSnapshotRequest>,
    ) -> Resp<pb::UpdateSnapshotResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let i = r
            .info
            .ok_or_else(|| errdefs::Error::invalid("info is required: invalid argument"))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        for p in &paths {
            if p != "labels" && !p.starts_with("labels.") {
                return Err(errdefs::Error::invalid(format!(
                    "cannot update {p:?} field on snapshot: invalid argument"
                ))
                .into());
            }
        }
        let out =
            self.0
                .snapshots
                .update_labels(&ns, &r.snapshotter, &i.name, &i.labels, &paths)?;
        ok(pb::UpdateSnapshotResponse {
            info: Some(info_pb(&out)),
        })
    }

    type ListStream = ReceiverStream<Result<pb::ListSnapshotsResponse, Status>>;

    async fn list(&self, req: Request<pb::ListSnapshotsRequest>) -> Resp<Self::ListStream> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let f = Filter::parse_all(&r.filters).map_err(errdefs::Error::from)?;
        let all: Vec<pb::Info> = self
            .0
            .snapshots
            .list(&ns, &r.snapshotter)?
            .iter()
            .filter(|i| f.matches(*i))
            .map(info_pb)
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for chunk in all.chunks(100) {
                if tx
                    .send(Ok(pb::ListSnapshotsResponse {
                        info: chunk.to_vec(),
                    }))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        ok(ReceiverStream::new(rx))
    }

    async fn usage(&self, req: Request<pb::UsageRequest>) -> Resp<pb::UsageResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let d = self.0.clone();
        let (size, inodes) =
            blocking(move || d.snapshots.usage(&ns, &r.snapshotter, &r.key)).await?;
        ok(pb::UsageResponse { size, inodes })
    }

    async fn cleanup(&self, req: Request<pb::CleanupRequest>) -> Resp<()> {
        namespace(&req)?;
        let r = req.into_inner();
        self.0.snapshots.backend(&r.snapshotter)?;
        ok(())
    }
}
