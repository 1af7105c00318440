//! containerd.services.introspection.v1.Introspection: the plugins this daemon provides.

use std::sync::Arc;

use proto::services::introspection::{self as pb, introspection_server::Introspection};
use tonic::Request;

use super::{ok, Resp};
use crate::filter::{Fields, Filter};
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

struct P<'a>(&'a pb::Plugin);

impl Fields for P<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match (path.first().map(String::as_str), path.len()) {
            (Some("type"), 1) => Some(self.0.r#type.clone()),
            (Some("id"), 1) => Some(self.0.id.clone()),
            (Some("capabilities"), 1) => Some(self.0.capabilities.join(",")),
            _ => None,
        }
    }
}

fn plugins(d: &Daemon) -> Vec<pb::Plugin> {
    let platform = proto::types::Platform {
        os: "linux".into(),
        architecture: match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
        .into(),
        variant: String::new(),
        os_version: String::new(),
    };
    let p = |t: &str, id: &str, req: &[&str]| pb::Plugin {
        r#type: t.into(),
        id: id.into(),
        requires: req.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let mut v = vec![p("io.containerd.content.v1", "content", &[])];
    for s in d.snapshots.names() {
        let mut sp = p("io.containerd.snapshotter.v1", &s, &[]);
        sp.platforms = vec![platform.clone()];
        sp.exports.insert(
            "root".into(),
            d.config
                .root
                .join("snapshots")
                .join(&s)
                .display()
                .to_string(),
        );
        v.push(sp);
    }
    v.push(p(
        "io.containerd.metadata.v1",
        "bolt",
        &["io.containerd.content.v1", "io.containerd.snapshotter.v1"],
    ));
    let mut diff = p(
        "io.containerd.differ.v1",
        "walking",
        &["io.containerd.metadata.v1"],
    );
    diff.platforms = vec![platform.clone()];
    v.push(diff);
    v.push(p("io.containerd.gc.v1", "scheduler", &[]));
    v.push(p(
        "io.containerd.lease.v1",
        "manager",
        &["io.containerd.metadata.v1"],
    ));
    v.push(p("io.containerd.event.v1", "exchange", &[]));
    let mut rt = p(
        "io.containerd.runtime.v2",
        "task",
        &["io.containerd.event.v1", "io.containerd.metadata.v1"],
    );
    rt.platforms = vec![platform];
    v.push(rt);
    for s in [
        "containers",
        "content",
        "diff",
        "events",
        "images",
        "introspection",
        "leases",
        "namespaces",
        "snapshots",
        "tasks",
        "version",
    ] {
        v.push(p("io.containerd.grpc.v1", s, &["io.containerd.service.v1"]));
    }
    v.push(p("io.containerd.grpc.v1", "healthcheck", &[]));
    v
}

#[tonic::async_trait]
impl Introspection for Service {
    async fn plugins(&self, req: Request<pb::PluginsRequest>) -> Resp<pb::PluginsResponse> {
        let f = Filter::parse_all(&req.into_inner().filters).map_err(errdefs::Error::from)?;
        ok(pb::PluginsResponse {
            plugins: plugins(&self.0)
                .into_iter()
                .filter(|p| f.matches(&P(p)))
                .collect(),
        })
    }

    async fn server(&self, _: Request<()>) -> Resp<pb::ServerResponse> {
        let pidns = std::fs::read_link("/proc/self/ns/pid")
            .ok()
            .and_then(|l| {
                let s = l.to_string_lossy().to_string();
                s.trim_start_matches("pid:[")
                    .trim_end_matches(']')
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        ok(pb::ServerResponse {
            uuid: self.0.uuid.clone(),
            pid: std::process::id() as u64,
            pidns,
            deprecations: Vec::new(),
        })
    }

    async fn plugin_info(
        &self,
        req: Request<pb::PluginInfoRequest>,
    ) -> Resp<pb::PluginInfoResponse> {
        let r = req.into_inner();
        let plugin = plugins(&self.0)
            .into_iter()
            .find(|p| p.r#type == r.r#type && p.id == r.id)
            .ok_or_else(|| {
                errdefs::Error::not_found(format!("plugin {}.{}: not found", r.r#type, r.id))
            })?;
        ok(pb::PluginInfoResponse {
            plugin: Some(plugin),
            extra: None,
        })
    }
}
