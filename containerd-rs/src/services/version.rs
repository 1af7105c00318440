//! containerd.services.version.v1.Version.

use proto::services::version::{version_server::Version, VersionResponse};

use super::{ok, Resp};

pub struct Service;

/// The version reported to clients (dockerd checks for a 1.x containerd).
pub const VERSION: &str = "v1.7.0-containerd-rs";

#[tonic::async_trait]
impl Version for Service {
    async fn version(&self, _: tonic::Request<()>) -> Resp<VersionResponse> {
        ok(VersionResponse {
            version: VERSION.to_string(),
            revision: env!("CARGO_PKG_VERSION").to_string(),
        })
    }
}
