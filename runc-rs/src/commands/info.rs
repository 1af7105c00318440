//! state, list, ps, spec, features.
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Context, Error, Result};
use crate::state::{State, Status};

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    let s =
        serde_json::to_string_pretty(v).map_err(|e| Error::State(format!("encode json: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").ctx(|| "write stdout".into())
}

/// Like runc: indented JSON without a trailing newline.
pub fn state(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    let s = serde_json::to_string_pretty(&st.oci(st.status(root)))
        .map_err(|e| Error::State(format!("encode json: {e}")))?;
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes()).ctx(|| "write stdout".into())
}

/// The user name owning the container's state dir (runc's `owner` in `list`).
fn owner_of(root: &Path, id: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(crate::state::container_dir(root, id))
        .map(|m| m.uid())
        .unwrap_or(0);
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

/// Go's tabwriter as runc sets it up (min width 12, padding 3): aligned columns.
fn tabulate(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct ListEntry<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    id: &'a str,
    pid: i32,
    status: &'a str,
    bundle: &'a Path,
    rootfs: &'a Path,
    created: &'a str,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    annotations: &'a std::collections::HashMap<String, String>,
    owner: String,
}

pub fn list(root: &Path, json: bool, quiet: bool) -> Result<()> {
    let mut states = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if let Ok(st) = State::load(root, &id) {
                states.push(st);
            }
        }
    }
    states.sort_by(|a, b| a.created.cmp(&b.created));
    let rows: Vec<(State, Status)> = states
        .into_iter()
        .map(|s| {
            let st = s.status(root);
            (s, st)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if quiet {
        for (s, _) in &rows {
            writeln!(out, "{}", s.id).ctx(|| "write stdout".into())?;
        }
        return Ok(());
    }
    if json {
        let entries: Vec<ListEntry<'_>> = rows
            .iter()
            .map(|(s, st)| ListEntry {
                oci_version: crate::state::OCI_VERSION,
                id: &s.id,
                pid: if *st == Status::Stopped { 0 } else { s.pid },
                status: st.as_str(),
                bundle: &s.bundle,
                rootfs: &s.rootfs,
                created: &s.created,
                annotations: &s.annotations,
                owner: owner_of(root, &s.id),
            })
            .collect();
        let v = serde_json::to_string(&entries)
            .map_err(|e| Error::State(format!("encode json: {e}")))?;
        return writeln!(out, "{v}").ctx(|| "write stdout".into());
    }
    let mut table = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        .map(String::from)
        .to_vec()];
    for (s, st) in &rows {
        let pid = if *st == Status::Stopped { 0 } else { s.pid };
        table.push(vec![
            s.id.clone(),
            pid.to_string(),
            st.as_str().to_string(),
            s.bundle.display().to_string(),
            s.created.clone(),
            owner_of(root, &s.id),
        ]);
    }
    out.write_all(tabulate(&table).as_bytes())
        .ctx(|| "write stdout".into())?;
    Ok(())
}

pub fn ps(root: &Path, id: &str, json: bool, ps_args: &[String]) -> Result<()> {
    let st = State::load(root, id)?;
    if st.status(root) == Status::Stopped {
        return Err(Error::State("container not running".into()));
    }
    let pids = st.cgroup.pids();
    if json {
        let v =
            serde_json::to_string(&pids).map_err(|e| Error::State(format!("encode json: {e}")))?;
        let mut out = std::io::stdout().lock();
        return writeln!(out, "{v}").ctx(|| "write stdout".into());
    }
    let mut cmd = std::process::Command::new("ps");
    cmd.args(if ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        ps_args.to_vec()
    });
    let out = cmd.output().ctx(|| "run ps".into())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| Error::State("couldn't find PID field in ps output".into()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{header}").ctx(|| "write stdout".into())?;
    for l in lines {
        let pid: Option<i32> = l
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(stdout, "{l}").ctx(|| "write stdout".into())?;
        }
    }
    Ok(())
}

/// `spec`: writes runc's default config.json into the bundle (refuses to overwrite).
pub fn spec(bundle: &Path, rootless: bool) -> Result<()> {
    let p = bundle.join("config.json");
    if p.exists() {
        return Err(Error::InvalidArgument(
            "File config.json exists. Remove it first".into(),
        ));
    }
    let v = crate::spec::default_spec(rootless);
    let s =
        serde_json::to_string_pretty(&v).map_err(|e| Error::State(format!("encode json: {e}")))?;
    std::fs::write(&p, s).ctx(|| format!("write {}", p.display()))
}

pub fn features() -> Result<()> {
    print_json(&crate::spec::features())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_like_go_tabwriter() {
        let rows = vec![
            vec!["ID".to_string(), "PID".into(), "OWNER".into()],
            vec!["a-much-longer-id".to_string(), "1".into(), "root".into()],
        ];
        assert_eq!(
            tabulate(&rows),
            "ID                 PID         OWNER\na-much-longer-id   1           root\n"
        );
    }
}
