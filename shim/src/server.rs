//! The shim's gRPC server: HTTP/2 connections on the shim socket (`h2`), each request handled
//! in its own task by [`crate::grpc::dispatch`]. A request whose stream the client resets
//! (or whose connection closes) is dropped, as tonic drops its handler.

use std::os::unix::net::UnixListener;
use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::header::{HeaderValue, CONTENT_TYPE};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::rpc::{self, code, Status};
use crate::task::Shim;

/// The package and service of every method served here.
const SERVICE: &str = "/containerd.task.v2.Task/";

/// Serves until Shutdown, then lets the open connections finish (GOAWAY) for up to
/// [`crate::SHUTDOWN_GRACE`].
pub(crate) async fn serve(shim: Arc<Shim>, listener: UnixListener) -> Result<(), errdefs::Error> {
    listener
        .set_nonblocking(true)
        .map_err(|e| errdefs::Error::internal(format!("listener: {e}")))?;
    let listener = tokio::net::UnixListener::from_std(listener)
        .map_err(|e| errdefs::Error::internal(format!("listener: {e}")))?;
    let stop = crate::shutdown_signal(&shim);
    tokio::pin!(stop);
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((io, _)) => {
                    connections.spawn(connection(shim.clone(), io, closing_rx.clone()));
                }
                Err(e) => {
                    // EMFILE and the like: wait a little instead of spinning.
                    tracing::warn!(cause = %e, "accept");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = closing.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(crate::SHUTDOWN_GRACE, drained)
        .await
        .is_err()
    {
        tracing::debug!("connections still open at exit");
    }
    Ok(())
}

/// One client connection: accepts its requests until it closes, or until `closing` is set, when
/// it sends GOAWAY and lets the requests in flight finish.
async fn connection(
    shim: Arc<Shim>,
    io: tokio::net::UnixStream,
    mut closing: watch::Receiver<bool>,
) {
    let mut conn = match h2::server::handshake(io).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(cause = %e, "http/2 handshake");
            return;
        }
    };
    let mut going_away = false;
    loop {
        let next = tokio::select! {
            next = conn.accept() => next,
            _ = closing.wait_for(|c| *c), if !going_away => {
                conn.graceful_shutdown();
                going_away = true;
                continue;
            }
        };
        match next {
            Some(Ok((request, respond))) => {
                tokio::spawn(call(shim.clone(), request, respond));
            }
            Some(Err(e)) => {
                tracing::debug!(cause = %e, "connection");
                return;
            }
            None => return,
        }
    }
}

async fn call(
    shim: Arc<Shim>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let handled = async {
        let method = request
            .uri()
            .path()
            .strip_prefix(SERVICE)
            .map(str::to_owned);
        let is_grpc = rpc::is_grpc(request.headers());
        let mut body = request.into_body();
        let Some(method) = method.filter(|_| is_grpc) else {
            return Err(Status::new(
                code::UNIMPLEMENTED,
                "not a method of containerd.task.v2.Task",
            ));
        };
        let message = rpc::read_body(&mut body).await?;
        crate::grpc::dispatch(&shim, &method, &message).await
    };
    let reset = std::future::poll_fn(|cx| respond.poll_reset(cx));
    let result = tokio::select! {
        result = handled => result,
        _ = reset => {
            tracing::debug!("request cancelled by the client");
            return;
        }
    };
    if let Err(e) = send(&mut respond, result) {
        tracing::debug!(cause = %e, "send response");
    }
}

/// A reply: headers, the message and an OK status in the trailers; or, for an error, a
/// trailers-only response (the status in the headers).
fn send(respond: &mut SendResponse<Bytes>, result: Result<Bytes, Status>) -> Result<(), h2::Error> {
    let mut response = http::Response::new(());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(rpc::GRPC));
    match result {
        Ok(message) => {
            let mut stream = respond.send_response(response, false)?;
            stream.send_data(message, false)?;
            let mut trailers = http::HeaderMap::new();
            Status::ok().to_headers(&mut trailers);
            stream.send_trailers(trailers)
        }
        Err(status) => {
            tracing::debug!(code = status.code, message = %status.message, "request failed");
            status.to_headers(response.headers_mut());
            respond.send_response(response, true).map(drop)
        }
    }
}
