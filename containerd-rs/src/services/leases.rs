//! containerd.services.leases.v1.Leases. Resources are recorded explicitly (AddResource) and,
//! for requests carrying the `containerd-lease` header, when content or snapshots are created.

use std::sync::Arc;

use proto::services::leases::{self as pb, leases_server::Leases};
use tonic::Request;

use super::{blocking, ok, Resp};
use crate::filter::{label_field, Fields, Filter};
use crate::meta::LeaseRecord;
use crate::util::{namespace, to_btree, to_hash, Ts};
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

/// The metadata key naming the lease of a request.
pub const LEASE_HEADER: &str = "containerd-lease";

fn key(ns: &str, id: &str) -> String {
    format!("l/{ns}/{id}")
}

fn to_pb(id: String, r: &LeaseRecord) -> pb::Lease {
    pb::Lease {
        id,
        created_at: Some(r.created_at.proto()),
        labels: to_hash(&r.labels),
    }
}

/// The lease named by a request's header, if any.
pub fn lease_of<T>(req: &Request<T>) -> Option<String> {
    req.metadata()
        .get(LEASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Daemon {
    /// Adds a resource to a lease (NotFound if the lease does not exist).
    pub fn lease_add(
        &self,
        ns: &str,
        lease: &str,
        kind: &str,
        id: &str,
    ) -> Result<(), errdefs::Error> {
        self.meta.update(|tx| add_resource(tx, ns, lease, kind, id))
    }
}

/// Adds a resource to a lease inside a transaction (NotFound if the lease does not exist).
pub fn add_resource(
    tx: &mut crate::meta::Tx<'_>,
    ns: &str,
    lease: &str,
    kind: &str,
    id: &str,
) -> Result<(), errdefs::Error> {
    let k = key(ns, lease);
    let mut l: LeaseRecord = tx
        .get(&k)?
        .ok_or_else(|| errdefs::Error::not_found(format!("lease {lease}: not found")))?;
    let r = (kind.to_string(), id.to_string());
    if l.resources.contains(&r) {
        return Ok(());
    }
    l.resources.push(r);
    tx.put(&k, &l)
}

impl Daemon {
    /// Adds a snapshot to the request's lease, if it names one (before the snapshot exists, so
    /// a collection in between cannot take it).
    pub fn lease_snapshot(
        &self,
        ns: &str,
        lease: Option<&str>,
        snapshotter: &str,
        key: &str,
    ) -> Result<(), errdefs::Error> {
        let Some(lease) = lease else { return Ok(()) };
        let sn = if snapshotter.is_empty() {
            "overlayfs"
        } else {
            snapshotter
        };
        self.lease_add(ns, lease, &format!("snapshots/{sn}"), key)
    }
}

struct Item<'a>(&'a str, &'a LeaseRecord);

impl Fields for Item<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match (path.first().map(String::as_str), path.len()) {
            (Some("id"), 1) => Some(self.0.to_string()),
            _ => label_field(&self.1.labels, path),
        }
    }
}

fn check_kind(t: &str) -> Result<(), errdefs::Error> {
    if t == "content" || t == "ingests" || t.starts_with("snapshots/") {
        Ok(())
    } else {
        Err(errdefs::Error::invalid(format!(
            "unsupported resource type {t}: invalid argument"
        )))
    }
}

#[tonic::async_trait]
impl Leases for Service {
    async fn create(&self, req: Request<pb::CreateRequest>) -> Resp<pb::CreateResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let id = if r.id.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            r.id
        };
        let rec = LeaseRecord {
            labels: to_btree(&r.labels),
            created_at: Ts::now(),
            resources: Vec::new(),
        };
        self.0.meta.update(|tx| {
            tx.ensure_namespace(&ns)?;
            if tx.exists(&key(&ns, &id))? {
                return Err(errdefs::Error::already_exists(format!(
                    "lease {id}: already exists"
                )));
            }
            tx.put(&key(&ns, &id), &rec)
        })?;
        ok(pb::CreateResponse {
            lease: Some(to_pb(id, &rec)),
        })
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let found = self.0.meta.update(|tx| tx.delete(&key(&ns, &r.id)))?;
        if !found {
            return Err(errdefs::Error::not_found(format!("lease {}: not found", r.id)).into());
        }
        if r.sync {
            let d = self.0.clone();
            blocking(move || crate::gc::collect(&d).map(|_| ())).await?;
        } else {
            self.0.schedule_gc();
        }
        ok(())
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Resp<pb::ListResponse> {
        let ns = namespace(&req)?;
        let f = Filter::parse_all(&req.into_inner().filters).map_err(errdefs::Error::from)?;
        let leases = self
            .0
            .meta
            .list::<LeaseRecord>(&format!("l/{ns}/"))?
            .into_iter()
            .filter(|(id, r)| f.matches(&Item(id, r)))
            .map(|(id, r)| to_pb(id, &r))
            .collect();
        ok(pb::ListResponse { leases })
    }

    async fn add_resource(&self, req: Request<pb::AddResourceRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let res = r
            .resource
            .ok_or_else(|| errdefs::Error::invalid("resource is required: invalid argument"))?;
        check_kind(&res.r#type)?;
        self.0.lease_add(&ns, &r.id, &res.r#type, &res.id)?;
        ok(())
    }

    async fn delete_resource(&self, req: Request<pb::DeleteResourceRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let res = r
            .resource
            .ok_or_else(|| errdefs::Error::invalid("resource is required: invalid argument"))?;
        self.0.meta.update(|tx| {
            let k = key(&ns, &r.id);
            let mut l: LeaseRecord = tx
                .get(&k)?
                .ok_or_else(|| errdefs::Error::not_found(format!("lease {}: not found", r.id)))?;
            l.resources
                .retain(|(t, i)| !(t == &res.r#type && i == &res.id));
            tx.put(&k, &l)
        })?;
        ok(())
    }

    async fn list_resources(
        &self,
        req: Request<pb::ListResourcesRequest>,
    ) -> Resp<pb::ListResourcesResponse> {
        let ns = namespace(&req)?;
        let id = req.into_inner().id;
        let l: LeaseRecord = self
            .0
            .meta
            .get(&key(&ns, &id))?
            .ok_or_else(|| errdefs::Error::not_found(format!("lease {id}: not found")))?;
        ok(pb::ListResourcesResponse {
            resources: l
                .resources
                .into_iter()
                .map(|(r#type, id)| pb::Resource { id, r#type })
                .collect(),
        })
    }
}
