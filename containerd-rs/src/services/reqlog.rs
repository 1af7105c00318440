//! With `-D`, one debug line per gRPC call: the method and how long it took until the response
//! headers (for streams: until the stream was set up).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;

/// The tower layer that wraps the router.
#[derive(Clone, Copy, Default)]
pub struct RequestLog;

impl<S> tower::Layer<S> for RequestLog {
    type Service = Logged<S>;
    fn layer(&self, inner: S) -> Logged<S> {
        Logged(inner)
    }
}

#[derive(Clone)]
pub struct Logged<S>(S);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Logged<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return Box::pin(self.0.call(req));
        }
        let method = req.uri().path().to_string();
        let started = Instant::now();
        let fut = self.0.call(req);
        Box::pin(async move {
            let resp = fut.await;
            let code = resp.as_ref().ok().and_then(|r| {
                r.headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok().map(str::to_string))
            });
            tracing::debug!(
                %method,
                micros = started.elapsed().as_micros() as u64,
                grpc_status = code.as_deref().unwrap_or("in trailers"),
                "request"
            );
            resp
        })
    }
}
