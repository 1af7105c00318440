//! containerd calls used by the image and system code (views, Diff.Diff, synchronous deletes
//! that run containerd's garbage collector, content info). Same conventions as
//! [`crate::containerd`]: namespace in the metadata, errors as `errdefs` kinds.
use std::collections::HashMap;

use proto::services::{content, diff, images, leases, snapshots};

use crate::containerd::{status_ctx, Containerd, Descriptor, Mount};
use crate::error::ApiError;

type R<T> = Result<T, ApiError>;

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
}
