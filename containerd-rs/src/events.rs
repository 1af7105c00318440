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

/// Filter fields of an envelope: `topic`, `namespace`, `event.<field>` is not supported.
pub struct EnvelopeFields<'a>(pub &'a Envelope);

impl Fields for EnvelopeFields<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match path.first().map(String::as_str) {
            Some("topic") if path.len() == 1 => Some(self.0.topic.clone()),
            Some("namespace") if path.len() == 1 => Some(self.0.namespace.clone()),
            _ => None,
        }
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
