//! containerd.services.namespaces.v1.Namespaces.

use std::sync::Arc;

use proto::services::namespaces::{self as pb, namespaces_server::Namespaces};
use tonic::Request;

use super::{ok, Resp};
use crate::meta::NamespaceRecord;
use crate::util::{to_btree, to_hash, update_labels, validate_identifier};
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

fn to_pb(name: String, r: NamespaceRecord) -> pb::Namespace {
    pb::Namespace {
        name,
        labels: to_hash(&r.labels),
    }
}

#[tonic::async_trait]
impl Namespaces for Service {
    async fn get(&self, req: Request<pb::GetNamespaceRequest>) -> Resp<pb::GetNamespaceResponse> {
        // containerd answers Get for a namespace that does not exist with empty labels (its
        // store's Labels() finds no bucket and returns an empty map); dockerd's client relies
        // on that at startup (it reads `containerd.io/defaults/runtime` from its namespace).
        let name = req.into_inner().name;
        let r: NamespaceRecord = self.0.meta.get(&format!("ns/{name}"))?.unwrap_or_default();
        ok(pb::GetNamespaceResponse {
            namespace: Some(to_pb(name, r)),
        })
    }

    async fn list(
        &self,
        _: Request<pb::ListNamespacesRequest>,
    ) -> Resp<pb::ListNamespacesResponse> {
        let all = self.0.meta.list::<NamespaceRecord>("ns/")?;
        ok(pb::ListNamespacesResponse {
            namespaces: all.into_iter().map(|(n, r)| to_pb(n, r)).collect(),
        })
    }

    async fn create(
        &self,
        req: Request<pb::CreateNamespaceRequest>,
    ) -> Resp<pb::CreateNamespaceResponse> {
        let ns = req
            .into_inner()
            .namespace
            .ok_or_else(|| errdefs::Error::invalid("namespace is required: invalid argument"))?;
        validate_identifier(&ns.name)?;
        let rec = NamespaceRecord {
            labels: to_btree(&ns.labels),
        };
        self.0.meta.update(|tx| {
            let k = format!("ns/{}", ns.name);
            if tx.exists(&k)? {
                return Err(errdefs::Error::already_exists(format!(
                    "namespace {}: already exists",
                    ns.name
                )));
            }
            tx.put(&k, &rec)
        })?;
        self.0.events.publish(
            &ns.name,
            "/namespaces/create",
            &proto::events::NamespaceCreate {
                name: ns.name.clone(),
                labels: ns.labels.clone(),
            },
        );
        ok(pb::CreateNamespaceResponse {
            namespace: Some(to_pb(ns.name, rec)),
        })
    }

    async fn update(
        &self,
        req: Request<pb::UpdateNamespaceRequest>,
    ) -> Resp<pb::UpdateNamespaceResponse> {
        let r = req.into_inner();
        let ns = r
            .namespace
            .ok_or_else(|| errdefs::Error::invalid("namespace is required: invalid argument"))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let rec = self.0.meta.update(|tx| {
            let k = format!("ns/{}", ns.name);
            let mut rec: NamespaceRecord = tx.get(&k)?.ok_or_else(|| {
                errdefs::Error::not_found(format!("namespace {}: not found", ns.name))
            })?;
            if paths.is_empty() {
                rec.labels = to_btree(&ns.labels);
            } else {
                for p in &paths {
                    if p != "labels" && !p.starts_with("labels.") {
                        return Err(errdefs::Error::invalid(format!(
                            "cannot update {p:?} field on namespace {:?}: invalid argument",
                            ns.name
                        )));
                    }
                }
                update_labels(&mut rec.labels, &ns.labels, &paths);
            }
            tx.put(&k, &rec)?;
            Ok(rec)
        })?;
        self.0.events.publish(
            &ns.name,
            "/namespaces/update",
            &proto::events::NamespaceUpdate {
                name: ns.name.clone(),
                labels: to_hash(&rec.labels),
            },
        );
        ok(pb::UpdateNamespaceResponse {
            namespace: Some(to_pb(ns.name, rec)),
        })
    }

    async fn delete(&self, req: Request<pb::DeleteNamespaceRequest>) -> Resp<()> {
        let name = req.into_inner().name;
        let snapshotters = self.0.snapshots.names();
        self.0.meta.update(|tx| {
            let k = format!("ns/{name}");
            if !tx.exists(&k)? {
                return Err(errdefs::Error::not_found(format!("namespace {name}: not found")));
            }
            let mut prefixes: Vec<(String, &str)> = vec![
                (format!("c/{name}/"), "containers"),
                (format!("i/{name}/"), "images"),
                (format!("b/{name}/"), "blobs"),
                (format!("l/{name}/"), "leases"),
            ];
            for s in &snapshotters {
                prefixes.push((format!("s/{s}/{name}/"), "snapshots"));
            }
            for (p, what) in prefixes {
                if tx.any_with_prefix(&p)? {
                    return Err(errdefs::Error::precondition(format!(
                        "namespace {name} must be empty, but it still has {what}: failed precondition"
                    )));
                }
            }
            tx.delete(&k)?;
            Ok(())
        })?;
        self.0.events.publish(
            &name,
            "/namespaces/delete",
            &proto::events::NamespaceDelete { name: name.clone() },
        );
        ok(())
    }
}
