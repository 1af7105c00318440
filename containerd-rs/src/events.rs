//! The event exchange: every published envelope goes to every subscriber whose filter matches.

use proto::types::Envelope;
use tokio::sync::broadcast;

use crate::filter::Fields;
use crate::util::Ts;

/// Subscribers that fall this far behind lose the oldest events.
const BACKLOG: usize = 4096;

pub struct Exchange {
    tx: broadcast::Sender<Envelope>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new()
    }
}

impl Exchange {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        Self { tx }
    }

    /// Publishes a message under its containerd type URL.
    pub fn publish<M: prost::Message + prost::Name>(&self, ns: &str, topic: &str, msg: &M) {
        self.publish_any(ns, topic, proto::any::pack(msg));
    }

    pub fn publish_any(&self, ns: &str, topic: &str, event: prost_types::Any) {
        self.forward(Envelope {
            timestamp: Some(Ts::now().proto()),
            namespace: ns.to_string(),
            topic: topic.to_string(),
            event: Some(event),
        });
    }

    pub fn forward(&self, env: Envelope) {
        tracing::debug!(topic = %env.topic, namespace = %env.namespace, "event");
        // No subscriber is not an error.
        let _ = self.tx.send(env);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }
}

/// Filter fields of an envelope, as containerd's `Envelope.Field`: `namespace`, `topic`, and
/// `event.<field>` for the known event messages (string and bool fields, `labels.<k>`,
/// `io.<field>` of TaskCreate, `runtime.name` of ContainerCreate). Empty strings are absent.
pub struct EnvelopeFields<'a>(pub &'a Envelope);

impl Fields for EnvelopeFields<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        let present = |s: &str| (!s.is_empty()).then(|| s.to_string());
        match (path.first().map(String::as_str), path.len()) {
            (Some("topic"), 1) => present(&self.0.topic),
            (Some("namespace"), 1) => present(&self.0.namespace),
            (Some("event"), n) if n >= 2 => event_field(self.0.event.as_ref()?, &path[1..]),
            _ => None,
        }
    }
}

fn event_field(any: &prost_types::Any, path: &[String]) -> Option<String> {
    use proto::events as ev;
    fn un<M: prost::Message + prost::Name + Default>(a: &prost_types::Any) -> Option<M> {
        proto::any::unpack::<M>(a).ok()
    }
    let s = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let f = path[0].as_str();
    let one = path.len() == 1;
    let labels = |m: &std::collections::HashMap<String, String>| {
        (path.len() >= 2 && f == "labels")
            .then(|| m.get(&path[1..].join(".")).cloned())
            .flatten()
    };
    // `containerd.events.TaskExit`, `containerd.services.images.v1.ImageCreate`.
    let name = any
        .type_url
        .rsplit(['/', '.'])
        .next()
        .unwrap_or(&any.type_url);
    match name {
        "TaskCreate" => {
            let m: ev::TaskCreate = un(any)?;
            match f {
                "container_id" if one => s(&m.container_id),
                "bundle" if one => s(&m.bundle),
                "checkpoint" if one => s(&m.checkpoint),
                "io" if path.len() == 2 => {
                    let io = m.io?;
                    match path[1].as_str() {
                        "stdin" => s(&io.stdin),
                        "stdout" => s(&io.stdout),
                        "stderr" => s(&io.stderr),
                        "terminal" => Some(io.terminal.to_string()),
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        "TaskStart" => {
            s(&un::<ev::TaskStart>(any)?.container_id).filter(|_| one && f == "container_id")
        }
        "TaskDelete" => {
            let m: ev::TaskDelete = un(any)?;
            match f {
                "container_id" if one => s(&m.container_id),
                "id" if one => s(&m.id),
                _ => None,
            }
        }
        "TaskExit" => {
            let m: ev::TaskExit = un(any)?;
            match f {
                "container_id" if one => s(&m.container_id),
                "id" if one => s(&m.id),
                _ => None,
            }
        }
        "TaskOOM" => {
            s(&un::<ev::TaskOom>(any)?.container_id).filter(|_| one && f == "container_id")
        }
        "TaskPaused" => {
            s(&un::<ev::TaskPaused>(any)?.container_id).filter(|_| one && f == "container_id")
        }
        "TaskResumed" => {
            s(&un::<ev::TaskResumed>(any)?.container_id).filter(|_| one && f == "container_id")
        }
        "TaskExecAdded" | "TaskExecStarted" => {
            let (c, e) = if name == "TaskExecAdded" {
                let m: ev::TaskExecAdded = un(any)?;
                (m.container_id, m.exec_id)
            } else {
                let m: ev::TaskExecStarted = un(any)?;
                (m.container_id, m.exec_id)
            };
            match f {
                "container_id" if one => s(&c),
                "exec_id" if one => s(&e),
                _ => None,
            }
        }
        "ContainerCreate" => {
            let m: ev::ContainerCreate = un(any)?;
            match f {
                "id" if one => s(&m.id),
                "image" if one => s(&m.image),
                "runtime" if path.len() == 2 && path[1] == "name" => s(&m.runtime?.name),
                _ => None,
            }
        }
        "ContainerUpdate" => {
            let m: ev::ContainerUpdate = un(any)?;
            match f {
                "id" if one => s(&m.id),
                "image" if one => s(&m.image),
                "snapshot_key" if one => s(&m.snapshot_key),
                _ => labels(&m.labels),
            }
        }
        "ContainerDelete" => s(&un::<ev::ContainerDelete>(any)?.id).filter(|_| one && f == "id"),
        "ContentDelete" => {
            s(&un::<ev::ContentDelete>(any)?.digest).filter(|_| one && f == "digest")
        }
        "ImageCreate" | "ImageUpdate" => {
            let (n, l) = if name == "ImageCreate" {
                let m: ev::ImageCreate = un(any)?;
                (m.name, m.labels)
            } else {
                let m: ev::ImageUpdate = un(any)?;
                (m.name, m.labels)
            };
            if f == "name" && one {
                s(&n)
            } else {
                labels(&l)
            }
        }
        "ImageDelete" => s(&un::<ev::ImageDelete>(any)?.name).filter(|_| one && f == "name"),
        "NamespaceCreate" | "NamespaceUpdate" => {
            let (n, l) = if name == "NamespaceCreate" {
                let m: ev::NamespaceCreate = un(any)?;
                (m.name, m.labels)
            } else {
                let m: ev::NamespaceUpdate = un(any)?;
                (m.name, m.labels)
            };
            if f == "name" && one {
                s(&n)
            } else {
                labels(&l)
            }
        }
        "NamespaceDelete" => {
            s(&un::<ev::NamespaceDelete>(any)?.name).filter(|_| one && f == "name")
        }
        "SnapshotPrepare" => {
            let m: ev::SnapshotPrepare = un(any)?;
            match f {
                "key" if one => s(&m.key),
                "parent" if one => s(&m.parent),
                "snapshotter" if one => s(&m.snapshotter),
                _ => None,
            }
        }
        "SnapshotCommit" => {
            let m: ev::SnapshotCommit = un(any)?;
            match f {
                "key" if one => s(&m.key),
                "name" if one => s(&m.name),
                "snapshotter" if one => s(&m.snapshotter),
                _ => None,
            }
        }
        "SnapshotRemove" => {
            let m: ev::SnapshotRemove = un(any)?;
            match f {
                "key" if one => s(&m.key),
                "snapshotter" if one => s(&m.snapshotter),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Checks a topic as containerd does: it starts with `/` and has no empty component.
pub fn validate_topic(topic: &str) -> Result<(), errdefs::Error> {
    if !topic.starts_with('/') || topic.len() < 2 || topic[1..].split('/').any(str::is_empty) {
        return Err(errdefs::Error::invalid(format!(
            "topic {topic:?} must be a path starting with '/': invalid argument"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;

    fn env(ns: &str, topic: &str, event: prost_types::Any) -> Envelope {
        Envelope {
            timestamp: None,
            namespace: ns.into(),
            topic: topic.into(),
            event: Some(event),
        }
    }

    #[test]
    fn envelope_fields_reach_into_events() {
        let exit = env(
            "moby",
            "/tasks/exit",
            proto::any::pack(&proto::events::TaskExit {
                container_id: "c1".into(),
                id: "e1".into(),
                ..Default::default()
            }),
        );
        let m = |f: &str| {
            Filter::parse(f)
                .expect("parse")
                .matches(&EnvelopeFields(&exit))
        };
        assert!(m("namespace==moby,topic~=|^/tasks/|"));
        assert!(m("event.container_id==c1"));
        assert!(m(r#"event.id==e1,topic=="/tasks/exit""#));
        assert!(!m("event.container_id==c2"));
        assert!(!m("event.exec_id"));
        assert!(!m("namespace==other"));
        let img = env(
            "n",
            "/images/create",
            proto::any::pack(&proto::events::ImageCreate {
                name: "busybox".into(),
                labels: [("a.b".to_string(), "1".to_string())].into_iter().collect(),
            }),
        );
        let m = |f: &str| {
            Filter::parse(f)
                .expect("parse")
                .matches(&EnvelopeFields(&img))
        };
        assert!(m(r#"event.labels."a.b"==1"#));
        assert!(m("event.name~=/^busy/"));
        assert!(!m("event.container_id"));
    }
}
