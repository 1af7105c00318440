//! containerd.services.diff.v1.Diff.

use std::sync::Arc;

use proto::services::diff::{self as pb, diff_server::Diff};
use tonic::Request;

use super::{blocking, mount_from_proto, ok, Resp};
use crate::util::{namespace, to_btree};
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

#[tonic::async_trait]
impl Diff for Service {
    async fn apply(&self, req: Request<pb::ApplyRequest>) -> Resp<pb::ApplyResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let desc = r.diff.ok_or_else(|| {
            errdefs::Error::invalid("diff descriptor is required: invalid argument")
        })?;
        self.0.blob_info(&ns, &desc.digest)?;
        let mounts: Vec<_> = r.mounts.iter().map(mount_from_proto).collect();
        let d = self.0.clone();
        let (digest, size) = blocking(move || {
            crate::diff::apply(&d.content, &desc.media_type, &desc.digest, &mounts, &d.tmp)
        })
        .await?;
        ok(pb::ApplyResponse {
            applied: Some(proto::types::Descriptor {
                media_type: crate::diff::MEDIA_TAR.to_string(),
                digest,
                size,
                annotations: Default::default(),
            }),
        })
    }

    async fn diff(&self, req: Request<pb::DiffRequest>) -> Resp<pb::DiffResponse> {
        let ns = namespace(&req)?;
        let lease = crate::services::leases::lease_of(&req);
        if let Some(l) = &lease {
            // Fail before the work when the lease is missing (checked again when recording).
            if self
                .0
                .meta
                .get::<crate::meta::LeaseRecord>(&format!("l/{ns}/{l}"))?
                .is_none()
            {
                return Err(errdefs::Error::not_found(format!("lease {l}: not found")).into());
            }
        }
        let r = req.into_inner();
        let left: Vec<_> = r.left.iter().map(mount_from_proto).collect();
        let right: Vec<_> = r.right.iter().map(mount_from_proto).collect();
        let media = if r.media_type.is_empty() {
            crate::diff::MEDIA_TAR_GZIP.to_string()
        } else {
            r.media_type.clone()
        };
        let d = self.0.clone();
        let labels = to_btree(&r.labels);
        let desc = blocking(move || {
            let _gate = d.content.gate();
            let (digest, size) =
                crate::diff::compare::diff(&d.content, &left, &right, &media, &d.tmp)?;
            // The new blob joins the request's lease, as containerd's content writer does.
            d.record_leased_blob(&ns, lease.as_deref(), &digest, size, labels)?;
            Ok(proto::types::Descriptor {
                media_type: media,
                digest,
                size,
                annotations: Default::default(),
            })
        })
        .await?;
        ok(pb::DiffResponse { diff: Some(desc) })
    }
}
