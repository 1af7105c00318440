//! runc-rs's command line next to real runc 1.1: spec, features, --version, list, error
//! lines in --log, exit codes.
mod common;

use std::process::{Command, Stdio};

use common::*;

const RUNC: &str = "/usr/sbin/runc";

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[test]
fn spec_writes_the_same_config_as_runc() {
    let d = tempfile::tempdir().expect("tempdir");
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    for (bin, dir) in [(BIN, &a), (RUNC, &b)] {
        let st = Command::new(bin)
            .arg("spec")
            .current_dir(dir)
            .status()
            .expect("spec");
        assert!(st.success(), "{bin} spec");
    }
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p.join("config.json")).expect("config"))
            .expect("json")
    };
    assert_eq!(read(&a), read(&b));
    // A second spec refuses to overwrite, like runc.
    let o = Command::new(BIN)
        .arg("spec")
        .current_dir(&a)
        .output()
        .expect("spec");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("File config.json exists"));
}

#[test]
fn features_has_runcs_shape() {
    let run = |bin: &str| -> serde_json::Value {
        let o = Command::new(bin)
            .arg("features")
            .output()
            .expect("features");
        assert!(o.status.success());
        serde_json::from_slice(&o.stdout).expect("features json")
    };
    let (ours, theirs) = (run(BIN), run(RUNC));
    assert_eq!(keys(&ours), keys(&theirs));
    assert_eq!(keys(&ours["linux"]), keys(&theirs["linux"]));
    assert_eq!(
        keys(&ours["linux"]["cgroup"]),
        keys(&theirs["linux"]["cgroup"])
    );
    assert_eq!(keys(&ours["annotations"]), keys(&theirs["annotations"]));
    assert_eq!(ours["hooks"], theirs["hooks"]);
    assert_eq!(ours["linux"]["namespaces"], theirs["linux"]["namespaces"]);
    assert_eq!(
        ours["linux"]["capabilities"],
        theirs["linux"]["capabilities"]
    );
    assert_eq!(ours["ociVersionMax"], theirs["ociVersionMax"]);
    assert_eq!(
        ours["annotations"]["io.github.seccomp.libseccomp.version"],
        theirs["annotations"]["io.github.seccomp.libseccomp.version"]
    );
    // The same mount options as runc (recursive ones included).
    let sorted = |v: &serde_json::Value| {
        let mut o: Vec<String> = v
            .as_array()
            .expect("options")
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
        o.sort();
        o
    };
    assert_eq!(
        sorted(&ours["mountOptions"]),
        sorted(&theirs["mountOptions"])
    );
}

#[test]
fn version_lines_like_runc() {
    let lines = |bin: &str| -> Vec<String> {
        let o = Command::new(bin)
            .arg("--version")
            .output()
            .expect("version");
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.split(':').next().unwrap_or("").to_string())
            .collect()
    };
    let ours = lines(BIN);
    assert_eq!(ours[0], "runc-rs version 0.1.0");
    let theirs = lines(RUNC);
    // Same keys, except runc's `go:`.
    let t: Vec<&String> = theirs.iter().skip(1).filter(|k| *k != "go").collect();
    let o: Vec<&String> = ours.iter().skip(1).collect();
    assert_eq!(o, t);
    let short = Command::new(BIN).arg("-v").output().expect("-v");
    assert_eq!(
        short.stdout,
        Command::new(BIN)
            .arg("--version")
            .output()
            .expect("v")
            .stdout
    );
}

#[test]
fn error_lines_in_the_log_match_runcs() {
    let d = tempfile::tempdir().expect("tempdir");
    let mut lines = Vec::new();
    for (bin, name) in [(BIN, "ours"), (RUNC, "runc")] {
        let log = d.path().join(format!("{name}.json"));
        for args in [
            &["state", "nope"][..],
            &["kill", "nope", "KILL"],
            &["start", "nope"],
        ] {
            let o = Command::new(bin)
                .arg("--root")
                .arg(d.path().join(name))
                .arg("--log")
                .arg(&log)
                .args(["--log-format", "json"])
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run");
            assert_eq!(o.status.code(), Some(1), "{bin} {args:?}");
            assert_eq!(
                String::from_utf8_lossy(&o.stderr).trim(),
                "container does not exist"
            );
        }
        let text = std::fs::read_to_string(&log).expect("log");
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(parsed.len(), 3);
        lines.push(parsed);
    }
    for (a, b) in lines[0].iter().zip(&lines[1]) {
        assert_eq!(keys(a), keys(b));
        assert_eq!(a["level"], b["level"]);
        assert_eq!(a["msg"], b["msg"]);
        // logrus's time: RFC 3339 in seconds, UTC.
        let t = a["time"].as_str().expect("time");
        assert_eq!(t.len(), b["time"].as_str().expect("time").len(), "{t}");
        assert!(t.ends_with('Z'), "{t}");
    }
    // Text format: time="..." level=error msg="..."
    let log = d.path().join("text.log");
    Command::new(BIN)
        .arg("--root")
        .arg(d.path())
        .arg("--log")
        .arg(&log)
        .args(["state", "nope"])
        .output()
        .expect("run");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.starts_with("time=\"")
            && text.contains(" level=error msg=\"container does not exist\""),
        "{text}"
    );
}

#[test]
fn list_json_and_table_like_runc() {
    become_subreaper();
    let ours = Bundle::new(&["sleep", "100"]);
    let mut theirs = Bundle::new(&["sleep", "100"]);
    theirs.runtime = RUNC.into();
    for b in [&ours, &theirs] {
        b.edit(|s| s["annotations"] = serde_json::json!({"k": "v"}));
        assert!(
            b.create_piped(&[]).wait().expect("wait").success(),
            "{}",
            b.log()
        );
    }
    let list = |b: &Bundle| -> serde_json::Value {
        serde_json::from_slice(&b.ok(&["list", "--format", "json"]).stdout).expect("list json")
    };
    let (a, t) = (list(&ours), list(&theirs));
    assert_eq!(keys(&a[0]), keys(&t[0]));
    assert_eq!(a[0]["owner"], t[0]["owner"]);
    assert_eq!(a[0]["annotations"], t[0]["annotations"]);
    let table = |b: &Bundle| String::from_utf8_lossy(&b.ok(&["list"]).stdout).into_owned();
    let (ta, tt) = (table(&ours), table(&theirs));
    let header = |s: &str| {
        s.lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(header(&ta), header(&tt));
    // Columns start at the same offsets when the cells have the same widths.
    let starts = |s: &str| {
        let h = s.lines().next().unwrap_or("");
        ["PID", "STATUS", "BUNDLE"].map(|c| h.find(c))
    };
    assert_eq!(starts(&ta)[..2], starts(&tt)[..2]);
    // state prints no trailing newline, as runc.
    let sa = ours.ok(&["state", &ours.id]).stdout;
    assert_eq!(sa.last(), Some(&b'}'));
    let (pa, pt) = (ours.pid(), theirs.pid());
    ours.ok(&["delete", "--force", &ours.id]);
    theirs.ok(&["delete", "--force", &theirs.id]);
    assert_eq!(wait_pid(pa), 137);
    assert_eq!(wait_pid(pt), 137);
}
