//! The gRPC layer: one module per containerd service, converting between protobuf and the stores.

pub mod containers;
pub mod content;
pub mod diff;
pub mod events;
pub mod images;
pub mod introspection;
pub mod leases;
pub mod namespaces;
pub mod reqlog;
pub mod snapshots;
pub mod tasks;
pub mod version;

use std::sync::Arc;

use tonic::transport::server::Router;

use crate::snapshot::MountSpec;
use crate::Daemon;

/// Every service plus `grpc.health.v1.Health` (serving).
pub async fn router(
    d: Arc<Daemon>,
) -> Router<tower::layer::util::Stack<reqlog::RequestLog, tower::layer::util::Identity>> {
    let (mut reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    use proto::services as s;
    tonic::transport::Server::builder()
        .layer(reqlog::RequestLog)
        .add_service(health)
        .add_service(s::version::version_server::VersionServer::new(
            version::Service,
        ))
        .add_service(s::namespaces::namespaces_server::NamespacesServer::new(
            namespaces::Service(d.clone()),
        ))
        .add_service(s::containers::containers_server::ContainersServer::new(
            containers::Service(d.clone()),
        ))
        .add_service(
            s::content::content_server::ContentServer::new(content::Service(d.clone()))
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        )
        .add_service(s::images::images_server::ImagesServer::new(
            images::Service(d.clone()),
        ))
        .add_service(s::snapshots::snapshots_server::SnapshotsServer::new(
            snapshots::Service(d.clone()),
        ))
        .add_service(s::diff::diff_server::DiffServer::new(diff::Service(
            d.clone(),
        )))
        .add_service(s::events::events_server::EventsServer::new(
            events::Service(d.clone()),
        ))
        .add_service(s::tasks::tasks_server::TasksServer::new(tasks::Service(
            d.clone(),
        )))
        .add_service(s::leases::leases_server::LeasesServer::new(
            leases::Service(d.clone()),
        ))
        .add_service(
            s::introspection::introspection_server::IntrospectionServer::new(
                introspection::Service(d),
            ),
        )
}

pub fn mount_to_proto(m: MountSpec) -> proto::types::Mount {
    proto::types::Mount {
        r#type: m.kind,
        source: m.source,
        target: m.target,
        options: m.options,
    }
}

pub fn mount_from_proto(m: &proto::types::Mount) -> MountSpec {
    MountSpec {
        kind: m.r#type.clone(),
        source: m.source.clone(),
        target: m.target.clone(),
        options: m.options.clone(),
    }
}

/// Runs blocking store work off the async threads.
pub async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, errdefs::Error> + Send + 'static,
) -> Result<R, tonic::Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(tonic::Status::from),
        Err(e) => Err(tonic::Status::internal(format!("worker: {e}"))),
    }
}

pub type Resp<T> = Result<tonic::Response<T>, tonic::Status>;

pub fn ok<T>(t: T) -> Resp<T> {
    Ok(tonic::Response::new(t))
}
