//! docker events: a live stream of container and image events, with --filter
//! type=/container=/image=/event= and --since/--until.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use integration::{busybox_fixture, docker_cli, Stack};

/// A running `docker events` whose output lines arrive on a channel; killed on drop.
struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Stream {
    fn start(s: &Stack, args: &[&str]) -> Stream {
        let mut child = Command::new(docker_cli())
            .arg("events")
            .args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", s.engine_sock().display()),
            )
            .env("DOCKER_CONFIG", s.root.join("docker-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker events");
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Stream { child, lines }
    }

    /// Lines until `n` have arrived (or 60 s passed).
    fn take(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut v = Vec::new();
        while v.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => v.push(l),
                Err(_) => break,
            }
        }
        v
    }

    /// Whatever else arrives within `d`.
    fn rest(&self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut v = Vec::new();
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            v.push(l);
        }
        v
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[test]
fn events_stream_live_with_filters() {
    let s = Stack::start();
    let (_, base) = busybox_fixture();
    let fmt = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    // `--since` now: an event sent before a slow CLI has subscribed is replayed, not lost.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let since = format!("{}.{:09}", t.as_secs(), t.subsec_nanos());
    let since = since.as_str();
    let images = Stream::start(
        &s,
        &["--since", since, "--filter", "type=image", "--format", fmt],
    );
    let ctr = Stream::start(
        &s,
        &[
            "--since",
            since,
            "--filter",
            "container=watched",
            "--filter",
            "event=start",
            "--filter",
            "event=die",
            "--format",
            fmt,
        ],
    );
    let by_image = Stream::start(
        &s,
        &[
            "--since",
            since,
            "--filter",
            "image=busybox",
            "--format",
            "{{.Type}} {{.Action}}",
        ],
    );
    // Let the three subscriptions reach the daemon: a first event each must arrive.
    s.docker_ok(&["tag", "busybox", "busybox:warm"]);
    assert_eq!(images.take(1), vec!["image tag busybox:warm"]);
    assert_eq!(by_image.take(1), vec!["image tag"]);

    s.docker_ok(&["run", "--name", "other", "busybox", "true"]);
    s.docker_ok(&["run", "--name", "watched", "busybox", "true"]);
    s.docker_ok(&["tag", "busybox", "localhost:5000/a/b:c"]);
    s.docker_ok(&["rmi", "localhost:5000/a/b:c"]);
    s.docker_ok(&["rm", "other", "watched"]);
    s.docker_ok(&["rmi", "-f", "busybox:warm", "busybox"]);
    assert_eq!(
        ctr.take(2),
        vec!["container start watched", "container die watched"],
        "only watched, only start/die"
    );
    assert_eq!(
        images.take(5),
        vec![
            "image tag localhost:5000/a/b:c".to_string(),
            "image untag localhost:5000/a/b:c".to_string(),
            "image untag busybox:warm".to_string(),
            "image untag busybox:latest".to_string(),
            format!("image delete {}", base.image_id),
        ]
    );
    // image=busybox: events of containers run from `busybox`, and image events whose name is
    // busybox with any tag; not the other names' tag events, not the delete (named by ID).
    let got = by_image.rest(Duration::from_secs(2));
    let containers: Vec<&String> = got.iter().filter(|l| l.starts_with("container ")).collect();
    for a in ["create", "start", "die", "destroy"] {
        let n = containers
            .iter()
            .filter(|l| **l == &format!("container {a}"))
            .count();
        assert_eq!(n, 2, "{a} of both containers: {got:?}");
    }
    let imgs: Vec<&String> = got.iter().filter(|l| l.starts_with("image ")).collect();
    assert_eq!(imgs, vec!["image untag", "image untag"], "{got:?}");
    assert_eq!(ctr.rest(Duration::from_millis(300)), Vec::<String>::new());
}

#[test]
fn events_since_until_replay_past_events() {
    let s = Stack::start();
    let t0 = now();
    s.docker_ok(&["run", "--name", "past", "busybox", "true"]);
    s.docker_ok(&["tag", "busybox", "then"]);
    std::thread::sleep(Duration::from_millis(1100));
    let t1 = now();
    std::thread::sleep(Duration::from_millis(1100));
    s.docker_ok(&["tag", "busybox", "later"]);
    let until = now() + 1;
    let q = |args: &[&str]| {
        let mut a = vec!["events"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ]);
        s.docker_ok(&a)
    };
    let t0s = t0.to_string();
    let t1s = t1.to_string();
    let us = until.to_string();
    // --since..--until returns and exits; filters apply to the replay too.
    assert_eq!(
        q(&[
            "--since",
            &t0s,
            "--until",
            &us,
            "--filter",
            "type=image",
            "--filter",
            "event=tag"
        ]),
        "image tag then:latest\nimage tag later:latest"
    );
    assert_eq!(
        q(&["--since", &t0s, "--until", &t1s, "--filter", "event=tag"]),
        "image tag then:latest",
        "--until cuts the replay"
    );
    assert_eq!(
        q(&["--since", &t1s, "--until", &us, "--filter", "type=image"]),
        "image tag later:latest",
        "--since skips older events"
    );
    let actions = q(&[
        "--since",
        &t0s,
        "--until",
        &us,
        "--filter",
        "container=past",
    ]);
    let a: Vec<&str> = actions
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(a.first(), Some(&"create"), "{actions}");
    assert!(a.contains(&"start") && a.contains(&"die"), "{actions}");
    // A bad filter is a 400.
    let r = s.api("GET", "/events?filters=notjson", None);
    assert_eq!(r.status, 400, "{}", r.body);
}
