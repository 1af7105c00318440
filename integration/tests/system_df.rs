//! docker system df (-v): each container's size (its writable layer) and virtual size, the
//! images' shared size, and what can be reclaimed.

use integration::{busybox_fixture, Stack};

#[test]
fn system_df_reports_container_and_shared_image_sizes() {
    let s = Stack::start();
    let (_, base) = busybox_fixture();
    let layer = base.layer.len() as i64;
    // A stopped container with a 1 MiB writable layer, and a running one with nothing new.
    s.docker_ok(&[
        "run",
        "--name",
        "writer",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/blob",
        "bs=1024",
        "count=1024",
    ]);
    s.docker_ok(&["run", "-d", "--name", "idle", "busybox", "sleep", "300"]);
    // An image sharing busybox's layer, unused.
    s.docker_ok(&[
        "run",
        "--name",
        "small",
        "busybox",
        "sh",
        "-c",
        "echo 12345 > /f",
    ]);
    s.docker_ok(&["commit", "small", "child"]);
    s.docker_ok(&["rm", "small"]);

    let r = s.api("GET", "/system/df", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let df = r.json();
    let ctr = |name: &str| {
        df["Containers"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c["Names"][0] == format!("/{name}"))
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {df}"))
    };
    let w = ctr("writer");
    let rw = w["SizeRw"].as_i64().expect("SizeRw");
    assert!(
        (1 << 20..(1 << 20) + 64 * 1024).contains(&rw),
        "writer's writable layer is its 1 MiB file: {w}"
    );
    assert_eq!(w["SizeRootFs"].as_i64(), Some(rw + layer), "{w}");
    let i = ctr("idle");
    assert!(i["SizeRw"].as_i64().expect("SizeRw") < 64 * 1024, "{i}");

    let img = |tag: &str| {
        df["Images"]
            .as_array()
            .expect("images")
            .iter()
            .find(|i| i["RepoTags"][0] == tag)
            .cloned()
            .unwrap_or_else(|| panic!("{tag} in {df}"))
    };
    let bb = img("busybox:latest");
    let child = img("child:latest");
    assert_eq!(bb["Size"].as_i64(), Some(layer), "{bb}");
    assert_eq!(
        bb["SharedSize"].as_i64(),
        Some(layer),
        "shared with child: {bb}"
    );
    assert_eq!(bb["Containers"], 2, "{bb}");
    let child_size = child["Size"].as_i64().expect("size");
    assert!(child_size > layer, "{child}");
    assert_eq!(child["SharedSize"].as_i64(), Some(layer), "{child}");
    assert_eq!(child["Containers"], 0, "{child}");
    assert_eq!(
        df["LayersSize"].as_i64(),
        Some(child_size),
        "the shared layer is counted once"
    );

    // The CLI's table: the stopped container's writable layer is reclaimable (the CLI computes
    // the images' share from Size - SharedSize of the used ones).
    let table = s.docker_ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Reclaimable}}",
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("Images|2|1|"), "{table}");
    assert!(lines[1].starts_with("Containers|2|1|1.0"), "{table}");
    let v = s.docker_ok(&["system", "df", "-v"]);
    let row = v
        .lines()
        .find(|l| l.contains(" writer"))
        .unwrap_or_else(|| panic!("{v}"));
    // go-units' HumanSizeWithPrecision(size, 3) of a size between 1 and 10 MB.
    let mb = format!("{:.2}", rw as f64 / 1e6);
    let shown = format!("{}MB", mb.trim_end_matches('0').trim_end_matches('.'));
    assert!(
        row.contains(&format!(" {shown} ")),
        "container SIZE column {shown}: {row}"
    );
    let row = v
        .lines()
        .find(|l| l.starts_with("busybox "))
        .unwrap_or_else(|| panic!("{v}"));
    assert!(row.contains("2.13MB") && row.ends_with(" 2"), "{row}");
}
