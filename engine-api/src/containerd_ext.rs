//! containerd calls used by the image, system and stats code (views, Diff.Diff, synchronous
//! deletes that run containerd's garbage collector, content info, Tasks.Metrics). Same
//! conventions as [`crate::containerd`]: namespace in the metadata, errors as `errdefs` kinds.
use std::collections::HashMap;

use proto::cgroups::{v1, v2};
use proto::services::{content, diff, images, leases, snapshots, tasks};

use crate::containerd::{status_ctx, Containerd, Descriptor, Mount};
use crate::error::ApiError;

type R<T> = Result<T, ApiError>;

/// The cgroup statistics of a task, as its shim's Stats answers them: `Metric.data` decoded by
/// its type URL (the v1 message on a legacy or hybrid host, the v2 one on a unified host).
#[derive(Debug, Clone, PartialEq)]
pub enum CgroupMetrics {
    /// `io.containerd.cgroups.v1.Metrics`.
    V1(Box<v1::Metrics>),
    /// `io.containerd.cgroups.v2.Metrics`.
    V2(Box<v2::Metrics>),
}

/// One `containerd.types.Metric` of Tasks.Metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMetrics {
    /// When containerd took it.
    pub timestamp: Option<prost_types::Timestamp>,
    pub data: CgroupMetrics,
}

impl CgroupMetrics {
    /// Decodes a `Metric.data` Any: a type other than the two Metrics, or bytes that do not
    /// decode, is an internal error (dockerd: "unexpected type of metrics").
    pub fn from_any(any: &prost_types::Any) -> R<Self> {
        let bad = |e: proto::any::AnyError| ApiError::internal(format!("task metrics: {e}"));
        if proto::any::is::<v1::Metrics>(any) {
            proto::any::unpack(any)
                .map(|m| CgroupMetrics::V1(Box::new(m)))
                .map_err(bad)
        } else if proto::any::is::<v2::Metrics>(any) {
            proto::any::unpack(any)
                .map(|m| CgroupMetrics::V2(Box::new(m)))
                .map_err(bad)
        } else {
            Err(ApiError::internal(format!(
                "unexpected type of metrics {:?}",
                any.type_url
            )))
        }
    }
}

impl Containerd {
    /// Snapshots.View: a read-only snapshot of `parent` (its mounts).
    pub async fn view(
        &self,
        lease: &str,
        snapshotter: &str,
        key: &str,
        parent: &str,
    ) -> R<Vec<Mount>> {
        let mut c = snapshots::snapshots_client::SnapshotsClient::new(self.channel.clone());
        let resp = c
            .view(self.leased(
                snapshots::ViewSnapshotRequest {
                    snapshotter: snapshotter.to_string(),
                    key: key.to_string(),
                    parent: parent.to_string(),
                    labels: HashMap::new(),
                },
                lease,
            ))
            .await
            .map_err(status_ctx("snapshots.view"))?;
        Ok(resp.into_inner().mounts)
    }

    /// Diff.Diff: the changes from `left` to `right` as a layer of `media_type`, written into
    /// the content store (under `lease`) with `labels`.
    pub async fn diff(
        &self,
        lease: &str,
        left: Vec<Mount>,
        right: Vec<Mount>,
        media_type: &str,
        labels: HashMap<String, String>,
    ) -> R<Descriptor> {
        let mut c = diff::diff_client::DiffClient::new(self.channel.clone());
        let resp = c
            .diff(self.leased(
                diff::DiffRequest {
                    left,
                    right,
                    media_type: media_type.to_string(),
                    r#ref: format!("engine-api-diff-{}", hex::encode(rand::random::<[u8; 8]>())),
                    labels,
                    source_date_epoch: None,
                },
                lease,
            ))
            .await
            .map_err(status_ctx("diff.diff"))?;
        resp.into_inner()
            .diff
            .ok_or_else(|| ApiError::internal("diff.diff: no descriptor in the answer"))
    }

    /// Images.Delete with `sync`: containerd collects the content and snapshots that nothing
    /// references any more before it answers. A missing image is not an error.
    pub async fn delete_image_sync(&self, name: &str) -> R<()> {
        let mut c = images::images_client::ImagesClient::new(self.channel.clone());
        match c
            .delete(self.req(images::DeleteImageRequest {
                name: name.to_string(),
                sync: true,
                ..Default::default()
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(status_ctx("images.delete")(s)),
        }
    }

    /// Runs containerd's garbage collector now: an empty lease deleted with `sync`.
    pub async fn collect_garbage(&self) -> R<()> {
        let id = format!("engine-api-gc-{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut c = leases::leases_client::LeasesClient::new(self.channel.clone());
        c.create(self.req(leases::CreateRequest {
            id: id.clone(),
            labels: HashMap::new(),
        }))
        .await
        .map_err(status_ctx("leases.create"))?;
        c.delete(self.req(leases::DeleteRequest { id, sync: true }))
            .await
            .map_err(status_ctx("leases.delete"))?;
        Ok(())
    }

    /// Content.Info: the size of a blob, `None` when it is not there.
    pub async fn blob_size(&self, digest: &str) -> R<Option<i64>> {
        let mut c = content::content_client::ContentClient::new(self.channel.clone());
        match c
            .info(self.req(content::InfoRequest {
                digest: digest.to_string(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().info.map(|i| i.size)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(status_ctx("content.info")(s)),
        }
    }

    /// Tasks.Metrics of one task, asked as containerd's client `Task.Metrics` (and so dockerd)
    /// asks it: filter `id==<id>`. `None` when containerd reports nothing for it (no task, or
    /// its shim did not answer).
    pub async fn task_metrics(&self, id: &str) -> R<Option<TaskMetrics>> {
        let mut c = tasks::tasks_client::TasksClient::new(self.channel.clone());
        let resp = c
            .metrics(self.req(tasks::MetricsRequest {
                filters: vec![format!("id=={id}")],
            }))
            .await
            .map_err(status_ctx("tasks.metrics"))?
            .into_inner();
        let Some(m) = resp.metrics.into_iter().find(|m| m.id == id) else {
            return Ok(None);
        };
        let data = m
            .data
            .as_ref()
            .ok_or_else(|| ApiError::internal("task metrics: no data in the answer"))?;
        Ok(Some(TaskMetrics {
            timestamp: m.timestamp,
            data: CgroupMetrics::from_any(data)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_any_decodes_by_its_type_url() {
        let m1 = v1::Metrics {
            pids: Some(v1::PidsStat {
                current: 1,
                limit: 50,
            }),
            ..Default::default()
        };
        let any = proto::any::pack(&m1);
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        assert_eq!(
            CgroupMetrics::from_any(&any).expect("v1"),
            CgroupMetrics::V1(Box::new(m1))
        );
        let m2 = v2::Metrics {
            cpu: Some(v2::CpuStat {
                usage_usec: 7,
                ..Default::default()
            }),
            ..Default::default()
        };
        // containerd's typeurl may carry a domain prefix.
        let mut any = proto::any::pack(&m2);
        any.type_url = format!("types.containerd.io/{}", any.type_url);
        assert_eq!(
            CgroupMetrics::from_any(&any).expect("v2"),
            CgroupMetrics::V2(Box::new(m2))
        );
        let other = proto::any::pack_bytes("io.containerd.cgroups.v3.Metrics", Vec::new());
        let e = CgroupMetrics::from_any(&other).expect_err("unknown type");
        assert_eq!(e.kind(), crate::error::Kind::Internal);
        assert!(e.message().contains("unexpected type of metrics"), "{e}");
        let garbage = prost_types::Any {
            type_url: "io.containerd.cgroups.v1.Metrics".to_string(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert!(CgroupMetrics::from_any(&garbage).is_err());
    }
}
