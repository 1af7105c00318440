//! containerd.services.events.v1.Events.

use std::sync::Arc;

use proto::services::events::{self as pb, events_server::Events};
use proto::types::Envelope;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status};

use super::{ok, Resp};
use crate::events::{validate_topic, EnvelopeFields};
use crate::filter::Filter;
use crate::util::namespace;
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

#[tonic::async_trait]
impl Events for Service {
    async fn publish(&self, req: Request<pb::PublishRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        validate_topic(&r.topic)?;
        let event = r
            .event
            .ok_or_else(|| errdefs::Error::invalid("event is required: invalid argument"))?;
        self.0.events.publish_any(&ns, &r.topic, event);
        ok(())
    }

    async fn forward(&self, req: Request<pb::ForwardRequest>) -> Resp<()> {
        let env = req
            .into_inner()
            .envelope
            .ok_or_else(|| errdefs::Error::invalid("envelope is required: invalid argument"))?;
        validate_topic(&env.topic)?;
        crate::util::validate_identifier(&env.namespace)?;
        self.0.events.forward(env);
        ok(())
    }

    type SubscribeStream = ReceiverStream<Result<Envelope, Status>>;

    async fn subscribe(&self, req: Request<pb::SubscribeRequest>) -> Resp<Self::SubscribeStream> {
        let f = Filter::parse_all(&req.into_inner().filters).map_err(errdefs::Error::from)?;
        let mut sub = self.0.events.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                match sub.recv().await {
                    Ok(env) => {
                        if f.matches(&EnvelopeFields(&env)) && tx.send(Ok(env)).await.is_err() {
                            break;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(dropped = n, "event subscriber lagging");
                    }
                    Err(_) => break,
                }
            }
        });
        ok(ReceiverStream::new(rx))
    }
}
