//! The Engine API over axum: routing (with and without `/v1.xx`), system endpoints, and the
//! common response headers. Handlers are thin over [`Daemon`].
mod archive;
mod containers;
mod exec;
mod hijack;
mod images;
mod system;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, delete, get, post};
use axum::Router;
use tower::ServiceExt;

use crate::daemon::Daemon;
use crate::error::ApiError;

/// The API version served.
pub const API_VERSION: &str = "1.50";
/// The oldest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";

/// Largest request body (image tars for `docker load`).
const MAX_BODY: usize = 8 << 30;

/// The version a request asked for, from its `/v1.xx` prefix.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct ApiVersion(pub u32, pub u32);

fn parse_version(s: &str) -> Option<ApiVersion> {
    let (a, b) = s.split_once('.')?;
    Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
}

#[derive(Debug, Clone)]
struct VersionError(String);

/// Strips `/v1.xx` and records the version (or the version error) in the extensions.
fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path().to_string();
    let mut version = parse_version(API_VERSION).unwrap_or(ApiVersion(1, 50));
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if let Some(v) = parse_version(ver) {
            let max = parse_version(API_VERSION).unwrap_or(ApiVersion(1, 50));
            let min = parse_version(MIN_API_VERSION).unwrap_or(ApiVersion(1, 24));
            let err = if v > max {
                Some(format!("client version {ver} is too new. Maximum supported API version is {API_VERSION}"))
            } else if v < min {
                Some(format!(
                    "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
            } else {
                None
            };
            version = v;
            let new_path = match err {
                Some(e) => {
                    req.extensions_mut().insert(VersionError(e));
                    "/__version_error".to_string()
                }
                None => tail.to_string(),
            };
            let pq = match req.uri().query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path,
            };
            let mut parts = req.uri().clone().into_parts();
            if let Ok(pq) = pq.parse() {
                parts.path_and_query = Some(pq);
            }
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req.extensions_mut().insert(version);
    req
}

async fn version_error(req: Request) -> ApiError {
    let msg = req
        .extensions()
        .get::<VersionError>()
        .map(|v| v.0.clone())
        .unwrap_or_default();
    ApiError::invalid(msg)
}

async fn not_found(req: Request) -> axum::response::Response {
    tracing::debug!(method = %req.method(), path = %req.uri().path(), "no route");
    ApiError::not_found("page not found").into_response()
}

fn add_headers(mut res: axum::response::Response) -> axum::response::Response {
    let h = res.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!(
            "Docker/engine-api-",
            env!("CARGO_PKG_VERSION"),
            " (linux)"
        )),
    );
    res
}

/// The whole API.
pub fn router(d: Arc<Daemon>) -> Router {
    let api = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/system/df", get(system::df))
        .route("/__version_error", any(version_error))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/:id", delete(containers::remove))
        .route("/containers/:id/json", get(containers::inspect))
        .route("/containers/:id/start", post(containers::start))
        .route("/containers/:id/stop", post(containers::stop))
        .route("/containers/:id/restart", post(containers::restart))
        .route("/containers/:id/kill", post(containers::kill))
        .route("/containers/:id/wait", post(containers::wait))
        .route("/containers/:id/attach", post(hijack::attach))
        .route("/containers/:id/logs", get(containers::logs))
        .route("/containers/:id/resize", post(containers::resize))
        .route("/containers/:id/rename", post(containers::rename))
        .route("/containers/:id/pause", post(containers::pause))
        .route("/containers/:id/unpause", post(containers::unpause))
        .route("/containers/:id/top", get(containers::top))
        .route("/containers/:id/stats", get(containers::stats))
        .route("/containers/:id/update", post(containers::update))
        .route(
            "/containers/:id/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route("/containers/:id/export", get(archive::export))
        .route("/containers/:id/changes", get(archive::changes))
        .route("/containers/:id/exec", post(exec::create))
        .route("/exec/:id/start", post(exec::start))
        .route("/exec/:id/json", get(exec::inspect))
        .route("/exec/:id/resize", post(exec::resize))
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::save_many))
        .route("/images/create", post(images::create))
        .route("/images/prune", post(images::prune))
        .route("/images/*rest", any(images::dispatch))
        .route("/commit", post(images::commit))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(d);
    let svc = api.map_request(strip_version).map_response(add_headers);
    Router::new().fallback_service(svc)
}

#[cfg(test)]
mod tests;
