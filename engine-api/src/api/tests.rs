//! Router tests through `tower::ServiceExt::oneshot` (no containerd behind: only paths that do
//! not reach it, or that must fail before reaching it).
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::config::Config;
use crate::containerd::Containerd;
use crate::daemon::Daemon;

struct TestDaemon {
    dir: tempfile::TempDir,
    d: Arc<Daemon>,
}

fn daemon() -> TestDaemon {
    let dir = tempfile::Builder::new()
        .prefix("ea-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let sock = dir.path().join("none.sock");
    let cfg = Config::for_roots(
        dir.path().join("data"),
        dir.path().join("exec"),
        sock.clone(),
    );
    let cd = Containerd::new(&sock, "moby").expect("client");
    let d = Daemon::new(cfg, cd).expect("daemon");
    TestDaemon { dir, d }
}

async fn call(
    t: &TestDaemon,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let res = super::router(t.d.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn ping_sends_dockerd_headers_with_and_without_prefix() {
    let t = daemon();
    for (method, uri) in [
        ("GET", "/_ping"),
        ("HEAD", "/_ping"),
        ("GET", "/v1.50/_ping"),
        ("GET", "/v1.24/_ping"),
    ] {
        let (status, h, body) = call(&t, method, uri, "").await;
        assert_eq!(status, StatusCode::OK, "{method} {uri}");
        assert_eq!(h["api-version"], "1.50");
        assert_eq!(h["ostype"], "linux");
        assert_eq!(h["docker-experimental"], "false");
        assert_eq!(h["swarm"], "inactive");
        assert!(h.contains_key("builder-version"));
        assert_eq!(body, if method == "HEAD" { "" } else { "OK" });
    }
    assert!(t.dir.path().exists());
}

#[tokio::test]
async fn version_has_engine_component_and_rejects_bad_versions() {
    let t = daemon();
    let (status, h, body) = call(&t, "GET", "/v1.50/version", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["ApiVersion"], "1.50");
    assert_eq!(v["MinAPIVersion"], "1.24");
    assert_eq!(v["Components"][0]["Name"], "Engine");
    let (status, _, body) = call(&t, "GET", "/v1.99/version", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("too new"), "{body}");
    let (status, _, body) = call(&t, "GET", "/v1.12/version", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("too old"), "{body}");
}

#[tokio::test]
async fn malformed_json_is_400_with_message() {
    let t = daemon();
    for body in [
        r#"{"Image": "busybox","#,
        "not json",
        r#"{"Image": 42}"#,
        "",
    ] {
        let (status, h, text) = call(&t, "POST", "/v1.50/containers/create", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?} -> {text}");
        assert_eq!(h["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json error");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{text}"
        );
    }
}

#[tokio::test]
async fn unknown_container_is_404_with_docker_message() {
    let t = daemon();
    for (method, uri) in [
        ("GET", "/v1.50/containers/nosuchctr/json"),
        ("POST", "/containers/nosuchctr/start"),
        ("POST", "/v1.50/containers/nosuchctr/stop"),
        ("DELETE", "/v1.50/containers/nosuchctr?force=1"),
        ("GET", "/v1.50/containers/nosuchctr/logs?stdout=1"),
    ] {
        let (status, h, text) = call(&t, method, uri, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {text}");
        assert_eq!(h["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["message"], "No such container: nosuchctr");
    }
    let (status, _, text) = call(&t, "GET", "/v1.50/containers/json?all=1", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "[]");
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let t = daemon();
    let (status, h, _) = call(&t, "GET", "/v1.50/nothing/here", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(h["content-type"], "application/json");
}
