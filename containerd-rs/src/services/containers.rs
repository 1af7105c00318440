//! containerd.services.containers.v1.Containers.

use std::sync::Arc;

use proto::services::containers::{self as pb, containers_server::Containers};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;

use super::{ok, Resp};
use crate::filter::{label_field, Fields, Filter};
use crate::meta::{AnyRecord, ContainerRecord};
use crate::util::{namespace, to_btree, to_hash, update_labels, validate_identifier, Ts};
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

fn to_pb(id: String, r: ContainerRecord) -> pb::Container {
    pb::Container {
        id,
        labels: to_hash(&r.labels),
        image: r.image,
        runtime: Some(pb::container::Runtime {
            name: r.runtime_name,
            options: r.runtime_options.as_ref().map(AnyRecord::proto),
        }),
        spec: r.spec.as_ref().map(AnyRecord::proto),
        snapshotter: r.snapshotter,
        snapshot_key: r.snapshot_key,
        created_at: Some(r.created_at.proto()),
        updated_at: Some(r.updated_at.proto()),
        extensions: r
            .extensions
            .iter()
            .map(|(k, v)| (k.clone(), v.proto()))
            .collect(),
        sandbox: r.sandbox,
    }
}

struct Item<'a>(&'a str, &'a ContainerRecord);

impl Fields for Item<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        let r = self.1;
        match (path.first().map(String::as_str), path.len()) {
            (Some("id"), 1) => Some(self.0.to_string()),
            (Some("image"), 1) => Some(r.image.clone()),
            (Some("snapshotter"), 1) => Some(r.snapshotter.clone()),
            (Some("runtime"), 1) => Some(r.runtime_name.clone()),
            (Some("runtime"), 2) if path[1] == "name" => Some(r.runtime_name.clone()),
            _ => label_field(&r.labels, path),
        }
    }
}

fn key(ns: &str, id: &str) -> String {
    format!("c/{ns}/{id}")
}

impl Service {
    fn list_filtered(
        &self,
        ns: &str,
        filters: &[String],
    ) -> Result<Vec<pb::Container>, errdefs::Error> {
        let f = Filter::parse_all(filters)?;
        Ok(self
            .0
            .meta
            .list::<ContainerRecord>(&format!("c/{ns}/"))?
            .into_iter()
            .filter(|(id, r)| f.matches(&Item(id, r)))
            .map(|(id, r)| to_pb(id, r))
            .collect())
    }
}

#[tonic::async_trait]
impl Containers for Service {
    async fn get(&self, req: Request<pb::GetContainerRequest>) -> Resp<pb::GetContainerResponse> {
        let ns = namespace(&req)?;
        let id = req.into_inner().id;
        let r: ContainerRecord = self.0.meta.get(&key(&ns, &id))?.ok_or_else(|| {
            errdefs::Error::not_found(format!(
                "container \"{id}\" in namespace \"{ns}\": not found"
            ))
        })?;
        ok(pb::GetContainerResponse {
            container: Some(to_pb(id, r)),
        })
    }

    async fn list(
        &self,
        req: Request<pb::ListContainersRequest>,
    ) -> Resp<pb::ListContainersResponse> {
        let ns = namespace(&req)?;
        let containers = self.list_filtered(&ns, &req.into_inner().filters)?;
        ok(pb::ListContainersResponse { containers })
    }

    type ListStreamStream = ReceiverStream<Result<pb::ListContainerMessage, tonic::Status>>;

    async fn list_stream(
        &self,
        req: Request<pb::ListContainersRequest>,
    ) -> Resp<Self::ListStreamStream> {
        let ns = namespace(&req)?;
        let containers = self.list_filtered(&ns, &req.into_inner().filters)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            for c in containers {
                let msg = pb::ListContainerMessage { container: Some(c) };
                if tx.send(Ok(msg)).await.is_err() {
                    break;
                }
            }
        });
        ok(ReceiverStream::new(rx))
    }

    async fn create(
        &self,
        req: Request<pb::CreateContainerRequest>,
    ) -> Resp<pb::CreateContainerResponse> {
        let ns = namespace(&req)?;
        let c = req
            .into_inner()
            .container
            .ok_or_else(|| errdefs::Error::invalid("container is required: invalid argument"))?;
        validate_identifier(&c.id)?;
        let runtime = c.runtime.clone().unwrap_or_default();
        if runtime.name.is_empty() {
            return Err(errdefs::Error::invalid(
                "container.Runtime.Name must be set: invalid argument",
            )
            .into());
        }
        if c.spec.is_none() {
            return Err(
                errdefs::Error::invalid("container.Spec must be set: invalid argument").into(),
            );
        }
        if !c.snapshot_key.is_empty() && c.snapshotter.is_empty() {
            return Err(errdefs::Error::invalid("container.Snapshotter must be set if container.SnapshotKey is set: invalid argument").into());
        }
        let now = Ts::now();
        let rec = ContainerRecord {
            labels: to_btree(&c.labels),
            image: c.image.clone(),
            runtime_name: runtime.name.clone(),
            runtime_options: runtime.options.as_ref().map(AnyRecord::from_proto),
            spec: c.spec.as_ref().map(AnyRecord::from_proto),
            snapshotter: c.snapshotter.clone(),
            snapshot_key: c.snapshot_key.clone(),
            created_at: now,
            updated_at: now,
            extensions: c
                .extensions
                .iter()
                .map(|(k, v)| (k.clone(), AnyRecord::from_proto(v)))
                .collect(),
            sandbox: c.sandbox.clone(),
        };
        self.0.meta.update(|tx| {
            tx.ensure_namespace(&ns)?;
            let k = key(&ns, &c.id);
            if tx.exists(&k)? {
                return Err(errdefs::Error::already_exists(format!(
                    "container \"{}\": already exists",
                    c.id
                )));
            }
            tx.put(&k, &rec)
        })?;
        self.0.events.publish(
            &ns,
            "/containers/create",
            &proto::events::ContainerCreate {
                id: c.id.clone(),
                image: c.image.clone(),
                runtime: Some(proto::events::container_create::Runtime {
                    name: runtime.name,
                    options: runtime.options,
                }),
            },
        );
        ok(pb::CreateContainerResponse {
            container: Some(to_pb(c.id, rec)),
        })
    }

    async fn update(
        &self,
        req: Request<pb::UpdateContainerRequest>,
    ) -> Resp<pb::UpdateContainerResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let c = r
            .container
            .ok_or_else(|| errdefs::Error::invalid("container is required: invalid argument"))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let rec = self.0.meta.update(|tx| {
            let k = key(&ns, &c.id);
            let mut rec: ContainerRecord = tx.get(&k)?.ok_or_else(|| {
                errdefs::Error::not_found(format!("container \"{}\": not found", c.id))
            })?;
            let all = ["labels", "spec", "image", "snapshotkey", "extensions"];
            let paths: Vec<String> = if paths.is_empty() {
                if let Some(rt) = &c.runtime {
                    if !rt.name.is_empty() && rt.name != rec.runtime_name {
                        return Err(errdefs::Error::invalid(
                            "container.Runtime field is immutable: invalid argument",
                        ));
                    }
                }
                if !c.snapshotter.is_empty() && c.snapshotter != rec.snapshotter {
                    return Err(errdefs::Error::invalid(
                        "container.Snapshotter field is immutable: invalid argument",
                    ));
                }
                all.iter().map(|s| s.to_string()).collect()
            } else {
                paths
            };
            for p in &paths {
                match p.as_str() {
                    "labels" => rec.labels = to_btree(&c.labels),
                    "spec" => rec.spec = c.spec.as_ref().map(AnyRecord::from_proto),
                    "image" => rec.image = c.image.clone(),
                    "snapshotkey" => rec.snapshot_key = c.snapshot_key.clone(),
                    "extensions" => {
                        rec.extensions = c
                            .extensions
                            .iter()
                            .map(|(k, v)| (k.clone(), AnyRecord::from_proto(v)))
                            .collect()
                    }
                    p if p.starts_with("labels.") => {
                        update_labels(&mut rec.labels, &c.labels, &[p.to_string()]);
                    }
                    p if p.starts_with("extensions.") => {
                        let ek = &p["extensions.".len()..];
                        match c.extensions.get(ek) {
                            Some(v) => {
                                rec.extensions
                                    .insert(ek.to_string(), AnyRecord::from_proto(v));
                            }
                            None => {
                                rec.extensions.remove(ek);
                            }
                        }
                    }
                    other => {
                        return Err(errdefs::Error::invalid(format!(
                            "cannot update {other:?} field on {:?}: invalid argument",
                            c.id
                        )))
                    }
                }
            }
            if rec.spec.is_none() {
                return Err(errdefs::Error::invalid(
                    "container.Spec must be set: invalid argument",
                ));
            }
            rec.updated_at = Ts::now();
            tx.put(&k, &rec)?;
            Ok(rec)
        })?;
        self.0.events.publish(
            &ns,
            "/containers/update",
            &proto::events::ContainerUpdate {
                id: c.id.clone(),
                image: rec.image.clone(),
                labels: to_hash(&rec.labels),
                snapshot_key: rec.snapshot_key.clone(),
            },
        );
        ok(pb::UpdateContainerResponse {
            container: Some(to_pb(c.id, rec)),
        })
    }

    async fn delete(&self, req: Request<pb::DeleteContainerRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let id = req.into_inner().id;
        if self.0.tasks.get(&ns, &id).is_ok() {
            return Err(errdefs::Error::precondition(format!(
                "cannot delete container {id}: task must be deleted first: failed precondition"
            ))
            .into());
        }
        let found = self.0.meta.update(|tx| tx.delete(&key(&ns, &id)))?;
        if !found {
            return Err(errdefs::Error::not_found(format!(
                "container \"{id}\" in namespace \"{ns}\": not found"
            ))
            .into());
        }
        self.0.events.publish(
            &ns,
            "/containers/delete",
            &proto::events::ContainerDelete { id },
        );
        self.0.schedule_gc();
        ok(())
    }
}
