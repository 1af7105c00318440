//! bollard (the Rust Docker client, crates.io) drives engine-api: version negotiation, image
//! load/list/inspect, create/start/wait/logs, exec, stats and events.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, ExecConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, ImportImageOptionsBuilder,
    ListImagesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StatsOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use integration::{busybox_fixture, Stack};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[test]
fn bollard_drives_the_engine() {
    let s = Stack::start_empty();
    let (tar, image) = busybox_fixture();
    let sock = s.engine_sock().to_string_lossy().into_owned();
    let data = std::fs::read(tar).expect("read fixture");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let t0 = now();
        let docker = Docker::connect_with_unix(&sock, 120, bollard::API_DEFAULT_VERSION)
            .expect("client")
            .negotiate_version()
            .await
            .expect("negotiate");
        let v = docker.version().await.expect("version");
        assert_eq!(v.api_version.as_deref(), Some("1.50"));

        // docker load
        let mut load = docker.import_image(
            ImportImageOptionsBuilder::default().quiet(true).build(),
            bollard::body_full(data.into()),
            None,
        );
        let mut lines = Vec::new();
        while let Some(r) = load.next().await {
            lines.push(r.expect("load").stream.unwrap_or_default());
        }
        assert_eq!(lines, vec!["Loaded image: busybox:latest\n"]);
        let images = docker
            .list_images(Some(ListImagesOptionsBuilder::default().build()))
            .await
            .expect("list");
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].id, image.image_id);
        assert_eq!(images[0].repo_tags, vec!["busybox:latest"]);
        let inspect = docker.inspect_image("busybox").await.expect("inspect");
        assert_eq!(inspect.id.as_deref(), Some(image.image_id.as_str()));

        // create / start / wait / logs
        let body = ContainerCreateBody {
            image: Some("busybox".into()),
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 4".into(),
            ]),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name("bollard-1")
                        .build(),
                ),
                body,
            )
            .await
            .expect("create");
        docker
            .start_container(&created.id, None)
            .await
            .expect("start");
        let waited: Vec<_> = docker.wait_container(&created.id, None).collect().await;
        // A non-zero exit arrives as bollard's DockerContainerWaitError carrying the code.
        match &waited[..] {
            [Err(bollard::errors::Error::DockerContainerWaitError { code, .. })] => {
                assert_eq!(*code, 4)
            }
            other => panic!("wait: {other:?}"),
        }
        // Each line on its own stream (the order between the two streams is not defined).
        let logs: Vec<bollard::container::LogOutput> = docker
            .logs(
                &created.id,
                Some(
                    LogsOptionsBuilder::default()
                        .stdout(true)
                        .stderr(true)
                        .build(),
                ),
            )
            .map(|l| l.expect("log"))
            .collect()
            .await;
        let of = |want_err: bool| -> String {
            logs.iter()
                .filter(|l| matches!(l, bollard::container::LogOutput::StdErr { .. }) == want_err)
                .map(|l| l.to_string())
                .collect()
        };
        assert_eq!(
            (of(false), of(true)),
            ("out\n".to_string(), "err\n".to_string())
        );

        // exec + stats on a running container
        let body = ContainerCreateBody {
            image: Some("busybox".into()),
            cmd: Some(vec!["sleep".into(), "300".into()]),
            ..Default::default()
        };
        let live = docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name("bollard-2")
                        .build(),
                ),
                body,
            )
            .await
            .expect("create");
        docker.start_container(&live.id, None).await.expect("start");
        let exec = docker
            .create_exec(
                &live.id,
                ExecConfig {
                    cmd: Some(vec![
                        "sh".into(),
                        "-c".into(),
                        "echo in-exec; exit 2".into(),
                    ]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("create exec");
        match docker.start_exec(&exec.id, None).await.expect("start exec") {
            bollard::exec::StartExecResults::Attached { output, .. } => {
                let out: Vec<String> = output.map(|o| o.expect("out").to_string()).collect().await;
                assert_eq!(out.concat(), "in-exec\n");
            }
            other => panic!("{other:?}"),
        }
        let ins = docker.inspect_exec(&exec.id).await.expect("inspect exec");
        assert_eq!(ins.exit_code, Some(2));
        let stats: Vec<_> = docker
            .stats(
                &live.id,
                Some(StatsOptionsBuilder::default().stream(false).build()),
            )
            .collect()
            .await;
        assert_eq!(stats.len(), 1, "stream=false: one sample");
        let st = stats.into_iter().next().expect("one").expect("stats");
        assert!(st.memory_stats.and_then(|m| m.usage).unwrap_or(0) > 0);
        assert!(st.pids_stats.and_then(|p| p.current).unwrap_or(0) >= 1);
        docker
            .remove_container(
                &live.id,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await
            .expect("remove");

        // events: replay of what happened to bollard-1
        let mut filters = HashMap::new();
        filters.insert("container", vec!["bollard-1"]);
        let until = (now() + 1).to_string();
        let events: Vec<String> = docker
            .events(Some(
                EventsOptionsBuilder::default()
                    .since(&(t0 - 1).to_string())
                    .until(&until)
                    .filters(&filters)
                    .build(),
            ))
            .map(|e| e.expect("event").action.unwrap_or_default())
            .collect()
            .await;
        assert_eq!(
            events.first().map(String::as_str),
            Some("create"),
            "{events:?}"
        );
        assert!(events.iter().any(|a| a == "die"), "{events:?}");
    });
}
