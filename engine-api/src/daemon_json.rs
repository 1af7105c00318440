//! The daemon configuration file (`--config-file`, default `/etc/engine-api/daemon.json`), in
//! dockerd's daemon.json shape. Read here: `runtimes` (`{"crun": {"path": "/usr/bin/crun"}}`)
//! and `default-runtime`; other keys are ignored (flags set them).
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// Where engine-api looks when `--config-file` is not given (a missing file is fine there).
pub const DEFAULT_PATH: &str = "/etc/engine-api/daemon.json";

/// One `runtimes` entry (`runtimeArgs` is not supported: the runc options carry no arguments).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeEntry {
    #[serde(default)]
    pub path: String,
}

/// The keys of daemon.json that engine-api reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DaemonJson {
    #[serde(default)]
    pub runtimes: BTreeMap<String, RuntimeEntry>,
    #[serde(default)]
    pub default_runtime: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Config file failures.
#[derive(Debug, thiserror::Error)]
pub enum DaemonJsonError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("runtime {0:?} in {1} has no path")]
    NoPath(String, String),
}

impl DaemonJson {
    /// Reads `path`; with `explicit == false` a missing file is an empty configuration.
    pub fn read(path: &Path, explicit: bool) -> Result<Self, DaemonJsonError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Self::default())
            }
            Err(source) => {
                return Err(DaemonJsonError::Read {
                    path: shown,
                    source,
                })
            }
        };
        Self::parse(&text, &shown)
    }

    /// Parses the file's text (`shown` names it in errors).
    pub fn parse(text: &str, shown: &str) -> Result<Self, DaemonJsonError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let cfg: DaemonJson =
            serde_json::from_str(text).map_err(|source| DaemonJsonError::Parse {
                path: shown.to_string(),
                source,
            })?;
        for (name, r) in &cfg.runtimes {
            if r.path.is_empty() {
                return Err(DaemonJsonError::NoPath(name.clone(), shown.to_string()));
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_runtimes_and_default() {
        let c = DaemonJson::parse(
            r#"{"runtimes": {"crun": {"path": "/usr/bin/crun"}},
                "default-runtime": "crun", "live-restore": true}"#,
            "daemon.json",
        )
        .expect("valid");
        assert_eq!(c.runtimes["crun"].path, "/usr/bin/crun");
        assert_eq!(c.default_runtime.as_deref(), Some("crun"));
        assert!(c.other.contains_key("live-restore"));
        assert!(DaemonJson::parse(r#"{"runtimes": {"x": {}}}"#, "f").is_err());
        assert!(DaemonJson::parse("{", "f").is_err());
        assert!(DaemonJson::parse("", "f")
            .expect("empty")
            .runtimes
            .is_empty());
        let missing = Path::new("/nonexistent/daemon.json");
        assert!(DaemonJson::read(missing, false).is_ok());
        assert!(DaemonJson::read(missing, true).is_err());
    }
}
