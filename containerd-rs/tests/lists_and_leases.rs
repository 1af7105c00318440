//! Containers.ListStream against List, and Diff.Diff adding its layer to the request's lease.

mod common;

use std::collections::HashMap;

use common::{req, Daemon};
use proto::services::containers::containers_client::ContainersClient;
use proto::services::content::content_client::ContentClient;
use proto::services::diff::diff_client::DiffClient;
use proto::services::leases::leases_client::LeasesClient;
use proto::services::{containers as cpb, content as kpb, diff as dpb, leases as lpb};
use tokio_stream::StreamExt;

fn container(id: &str, app: &str) -> cpb::Container {
    cpb::Container {
        id: id.into(),
        labels: HashMap::from([("app".to_string(), app.to_string())]),
        image: format!("docker.io/library/{app}:latest"),
        runtime: Some(cpb::container::Runtime {
            name: "io.containerd.runc.v2".into(),
            options: None,
        }),
        spec: Some(common::spec(&["/bin/true"], "")),
        ..Default::default()
    }
}

async fn stream_ids(
    c: &mut ContainersClient<tonic::transport::Channel>,
    ns: &str,
    filters: &[&str],
) -> Result<Vec<String>, tonic::Status> {
    let mut s = c
        .list_stream(req(
            ns,
            cpb::ListContainersRequest {
                filters: filters.iter().map(|f| f.to_string()).collect(),
            },
        ))
        .await?
        .into_inner();
    let mut ids = Vec::new();
    while let Some(m) = s.next().await {
        ids.push(m?.container.expect("a container in each message").id);
    }
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_list_stream_sends_what_list_answers() {
    let d = Daemon::start();
    let mut c = ContainersClient::new(d.channel().await);
    // More than the stream's channel holds (16), so the sender has to wait for the reader.
    let mut created = Vec::new();
    for i in 0..40 {
        let id = format!("c{i:02}");
        let app = if i % 4 == 0 { "web" } else { "db" };
        c.create(req(
            "ls",
            cpb::CreateContainerRequest {
                container: Some(container(&id, app)),
            },
        ))
        .await
        .expect("create");
        created.push(id);
    }
    c.create(req(
        "other",
        cpb::CreateContainerRequest {
            container: Some(container("elsewhere", "web")),
        },
    ))
    .await
    .expect("create in another namespace");

    let listed: Vec<String> = c
        .list(req("ls", cpb::ListContainersRequest { filters: vec![] }))
        .await
        .expect("list")
        .into_inner()
        .containers
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, created);
    assert_eq!(
        stream_ids(&mut c, "ls", &[]).await.expect("stream"),
        created
    );

    let web: Vec<String> = created.iter().step_by(4).cloned().collect();
    assert_eq!(
        stream_ids(&mut c, "ls", &["labels.app==web"])
            .await
            .expect("filtered"),
        web
    );
    // Filters are ORed, as containerd does.
    let mut some = stream_ids(&mut c, "ls", &["id==c01", "image~=web"])
        .await
        .expect("two filters");
    some.sort();
    let mut expected = web.clone();
    expected.push("c01".into());
    expected.sort();
    assert_eq!(some, expected);
    assert_eq!(
        stream_ids(&mut c, "other", &[]).await.expect("other ns"),
        ["elsewhere"]
    );
    assert!(stream_ids(&mut c, "empty", &[])
        .await
        .expect("empty ns")
        .is_empty());
    let e = stream_ids(&mut c, "ls", &["labels.app=="])
        .await
        .expect_err("bad filter");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");

    // The full stream carries whole records, like List.
    let first = c
        .list_stream(req("ls", cpb::ListContainersRequest { filters: vec![] }))
        .await
        .expect("stream")
        .into_inner()
        .next()
        .await
        .expect("one message")
        .expect("ok")
        .container
        .expect("container");
    assert_eq!(first.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(first.image, "docker.io/library/web:latest");
    assert_eq!(
        first.runtime.expect("runtime").name,
        "io.containerd.runc.v2"
    );
    assert!(first.created_at.is_some());
}

fn bind(dir: &std::path::Path) -> proto::types::Mount {
    proto::types::Mount {
        r#type: "bind".into(),
        source: dir.display().to_string(),
        target: String::new(),
        options: vec!["rbind".into(), "ro".into()],
    }
}

fn with_lease<T>(ns: &str, lease: &str, t: T) -> tonic::Request<T> {
    let mut r = req(ns, t);
    r.metadata_mut()
        .insert("containerd-lease", lease.parse().expect("lease header"));
    r
}

async fn content_exists(ch: tonic::transport::Channel, ns: &str, digest: &str) -> bool {
    match ContentClient::new(ch)
        .info(req(
            ns,
            kpb::InfoRequest {
                digest: digest.into(),
            },
        ))
        .await
    {
        Ok(_) => true,
        Err(e) if e.code() == tonic::Code::NotFound => false,
        Err(e) => panic!("content info: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_result_joins_the_request_lease_and_is_collected_after_it() {
    let d = Daemon::start();
    let ch = d.channel().await;
    let (left, right) = (d.dir.join("left"), d.dir.join("right"));
    std::fs::create_dir_all(left.join("etc")).expect("mkdir");
    std::fs::create_dir_all(right.join("etc")).expect("mkdir");
    std::fs::write(left.join("etc/gone"), "x").expect("write");
    std::fs::write(right.join("etc/new"), "layer bytes").expect("write");
    let ns = "dl";
    let mut leases = LeasesClient::new(ch.clone());
    for id in ["commit", "unrelated"] {
        leases
            .create(req(
                ns,
                lpb::CreateRequest {
                    id: id.into(),
                    labels: HashMap::new(),
                },
            ))
            .await
            .expect("lease");
    }
    let diff_req = || dpb::DiffRequest {
        left: vec![bind(&left)],
        right: vec![bind(&right)],
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        ..Default::default()
    };
    let mut diff = DiffClient::new(ch.clone());
    let desc = diff
        .diff(with_lease(ns, "commit", diff_req()))
        .await
        .expect("diff")
        .into_inner()
        .diff
        .expect("descriptor");
    assert!(desc.size > 0);
    let resources = leases
        .list_resources(req(
            ns,
            lpb::ListResourcesRequest {
                id: "commit".into(),
            },
        ))
        .await
        .expect("resources")
        .into_inner()
        .resources;
    assert!(
        resources
            .iter()
            .any(|r| r.r#type == "content" && r.id == desc.digest),
        "{resources:?}"
    );
    // A collection (run to completion by a synchronous lease delete) keeps the leased layer.
    leases
        .delete(req(
            ns,
            lpb::DeleteRequest {
                id: "unrelated".into(),
                sync: true,
            },
        ))
        .await
        .expect("delete unrelated lease");
    assert!(content_exists(ch.clone(), ns, &desc.digest).await);
    // The same diff again (the blob exists): still leased, no error.
    let again = diff
        .diff(with_lease(ns, "commit", diff_req()))
        .await
        .expect("diff again")
        .into_inner()
        .diff
        .expect("descriptor");
    assert_eq!(again.digest, desc.digest);
    // Once the lease goes, nothing holds the layer: collected.
    leases
        .delete(req(
            ns,
            lpb::DeleteRequest {
                id: "commit".into(),
                sync: true,
            },
        ))
        .await
        .expect("delete lease");
    assert!(!content_exists(ch.clone(), ns, &desc.digest).await);
    // A lease that does not exist: NotFound, and no layer recorded.
    let e = diff
        .diff(with_lease(ns, "missing", diff_req()))
        .await
        .expect_err("missing lease");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    assert!(!content_exists(ch.clone(), ns, &desc.digest).await);
}
