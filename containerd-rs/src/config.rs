//! The configuration file (`--config`, default `/etc/containerd-rs/config.toml` when it exists),
//! in the shape of containerd's `config.toml` where the two overlap:
//!
//! ```toml
//! version = 2
//! root = "/var/lib/containerd-rs"          # flags win over the file
//! state = "/run/containerd-rs"
//! [grpc]
//! address = "/run/containerd-rs/containerd.sock"
//! [debug]
//! level = "debug"
//!
//! # A runtime name (Container.Runtime.Name) -> a shim binary plus runtime options, the keys of
//! # containerd's CRI runtime options (containerd.runc.v1.Options).
//! [runtimes."io.containerd.crun.v2"]
//! shim = "containerd-shim-rs"              # alias runtime_path; beside containerd-rs or on PATH
//! [runtimes."io.containerd.crun.v2".options]
//! BinaryName = "/usr/bin/crun"
//! Root = "/run/containerd-rs/crun"
//! SystemdCgroup = false
//! ```
//!
//! The runc names (`io.containerd.runc.v2`, `io.containerd.runc.v1`,
//! `io.containerd.runtime.v1.linux`) are built in: our shim with `--runtime-binary` (default
//! `runc-rs`); a `[runtimes]` entry of the same name replaces the built-in one. Other keys of a
//! containerd config are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default configuration file, read when `--config` is not given and it exists.
pub const DEFAULT_PATH: &str = "/etc/containerd-rs/config.toml";

/// The runtime names that mean "runc" to containerd's clients.
pub const RUNC_NAMES: &[&str] = &[
    "io.containerd.runc.v2",
    "io.containerd.runc.v1",
    "io.containerd.runtime.v1.linux",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parse config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path}: version {version} is not supported (use 2)")]
    Version { path: String, version: i64 },
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FileConfig {
    pub version: Option<i64>,
    pub root: Option<PathBuf>,
    pub state: Option<PathBuf>,
    #[serde(default)]
    pub grpc: Grpc,
    #[serde(default)]
    pub debug: DebugSection,
    #[serde(default)]
    pub runtimes: BTreeMap<String, RuntimeConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Grpc {
    pub address: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DebugSection {
    pub level: Option<String>,
}

/// One `[runtimes.<name>]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The shim binary: a path, or a name found beside containerd-rs or on PATH.
    #[serde(default, alias = "runtime_path")]
    pub shim: Option<PathBuf>,
    #[serde(default)]
    pub options: RuntimeOptions,
}

/// Defaults for `containerd.runc.v1.Options`; the client's non-empty fields win.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RuntimeOptions {
    #[serde(rename = "BinaryName", alias = "binary_name", default)]
    pub binary_name: Option<String>,
    #[serde(rename = "Root", alias = "root", default)]
    pub root: Option<String>,
    #[serde(rename = "SystemdCgroup", alias = "systemd_cgroup", default)]
    pub systemd_cgroup: Option<bool>,
}

impl FileConfig {
    /// Reads `path`; `None` reads the default file if it exists.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Self::parse(&text, &path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        match cfg.version {
            None | Some(2) => Ok(cfg),
            Some(version) => Err(ConfigError::Version {
                path: path.display().to_string(),
                version,
            }),
        }
    }
}

/// What a runtime name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub name: String,
    pub shim: PathBuf,
    pub options: RuntimeOptions,
}

/// The runtime table: configured entries plus the built-in runc names.
#[derive(Debug, Clone)]
pub struct Runtimes {
    default_shim: PathBuf,
    default_binary: Option<String>,
    configured: BTreeMap<String, RuntimeConfig>,
}

impl Runtimes {
    pub fn new(
        default_shim: PathBuf,
        default_binary: Option<String>,
        configured: BTreeMap<String, RuntimeConfig>,
    ) -> Self {
        Self {
            default_shim,
            default_binary,
            configured,
        }
    }

    /// The shim and default options for `name`, or NotFound for a name nobody configured.
    pub fn resolve(&self, name: &str) -> Result<Runtime, errdefs::Error> {
        if let Some(rc) = self.configured.get(name) {
            let mut options = rc.options.clone();
            if options.binary_name.is_none() && RUNC_NAMES.contains(&name) {
                options.binary_name = self.default_binary.clone();
            }
            return Ok(Runtime {
                name: name.to_string(),
                shim: rc
                    .shim
                    .as_deref()
                    .map(crate::shim::resolve_shim)
                    .unwrap_or_else(|| self.default_shim.clone()),
                options,
            });
        }
        if RUNC_NAMES.contains(&name) {
            return Ok(Runtime {
                name: name.to_string(),
                shim: self.default_shim.clone(),
                options: RuntimeOptions {
                    binary_name: self.default_binary.clone(),
                    ..Default::default()
                },
            });
        }
        Err(errdefs::Error::not_found(format!(
            "runtime {name:?} is not configured (add [runtimes.{name:?}] to the config file): not found"
        )))
    }

    /// Every runtime name this daemon can run, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = RUNC_NAMES.iter().map(|s| s.to_string()).collect();
        v.extend(self.configured.keys().cloned());
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
version = 2
root = "/r"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
address = "/a.sock"
[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "ignored"
[runtimes."io.containerd.crun.v2"]
shim = "/opt/shim"
[runtimes."io.containerd.crun.v2".options]
BinaryName = "/usr/bin/crun"
Root = "/run/crun"
SystemdCgroup = false
[runtimes."io.containerd.runc.v2"]
options = { Root = "/run/x" }
"#;

    #[test]
    fn parses_containerd_shaped_config_and_resolves_runtimes() {
        let cfg = FileConfig::parse(SAMPLE, Path::new("t.toml")).expect("parse");
        assert_eq!(cfg.root.as_deref(), Some(Path::new("/r")));
        assert_eq!(cfg.grpc.address.as_deref(), Some(Path::new("/a.sock")));
        let rts = Runtimes::new("/bin/shim".into(), Some("runc-rs".into()), cfg.runtimes);
        let crun = rts.resolve("io.containerd.crun.v2").expect("crun");
        assert_eq!(crun.shim, PathBuf::from("/opt/shim"));
        assert_eq!(crun.options.binary_name.as_deref(), Some("/usr/bin/crun"));
        assert_eq!(crun.options.root.as_deref(), Some("/run/crun"));
        let runc = rts.resolve("io.containerd.runc.v2").expect("runc");
        assert_eq!(runc.shim, PathBuf::from("/bin/shim"));
        assert_eq!(runc.options.binary_name.as_deref(), Some("runc-rs"));
        assert_eq!(runc.options.root.as_deref(), Some("/run/x"));
        assert_eq!(
            rts.resolve("io.containerd.runtime.v1.linux")
                .expect("v1")
                .options
                .binary_name
                .as_deref(),
            Some("runc-rs")
        );
        let e = rts.resolve("io.containerd.kata.v2").expect_err("unknown");
        assert_eq!(e.kind, errdefs::Kind::NotFound);
        assert!(e.message.contains("io.containerd.kata.v2"), "{}", e.message);
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(FileConfig::parse("version = 1", Path::new("t")).is_err());
        assert!(FileConfig::parse("root = [", Path::new("t")).is_err());
        assert!(FileConfig::parse("[runtimes.x]\nshim = 3", Path::new("t")).is_err());
        assert!(FileConfig::load(Some(Path::new("/nonexistent/c.toml"))).is_err());
    }
}
