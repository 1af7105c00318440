//! Small shared helpers: timestamps, identifiers, the namespace of a request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A wall-clock time as stored in the metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ts {
    pub secs: i64,
    pub nanos: i32,
}

impl Ts {
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        }
    }
    pub fn proto(self) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: self.secs,
            nanos: self.nanos,
        }
    }
    pub fn from_proto(t: &prost_types::Timestamp) -> Self {
        Self {
            secs: t.seconds,
            nanos: t.nanos,
        }
    }
}

/// The metadata key carrying the namespace, as containerd's clients send it.
pub const NAMESPACE_HEADER: &str = "containerd-namespace";

/// containerd's identifier rule: alphanumerics separated by single `.`, `_` or `-`, ≤ 76 bytes.
pub fn validate_identifier(s: &str) -> Result<(), errdefs::Error> {
    let ok = !s.is_empty()
        && s.len() <= 76
        && s.split(['.', '_', '-'])
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(errdefs::Error::invalid(format!(
            "identifier {s:?} must match [A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*: invalid argument"
        )))
    }
}

/// The namespace of a request (`containerd-namespace` metadata), validated.
pub fn namespace<T>(req: &tonic::Request<T>) -> Result<String, tonic::Status> {
    let ns = req
        .metadata()
        .get(NAMESPACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if ns.is_empty() {
        return Err(
            errdefs::Error::precondition("namespace is required: failed precondition").into(),
        );
    }
    validate_identifier(&ns)?;
    Ok(ns)
}

/// Applies a field-mask update of a label map: `labels` replaces all, `labels.k` one key.
pub fn update_labels(
    current: &mut std::collections::BTreeMap<String, String>,
    new: &std::collections::HashMap<String, String>,
    paths: &[String],
) -> bool {
    let mut touched = false;
    for p in paths {
        if p == "labels" {
            *current = new.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            touched = true;
        } else if let Some(k) = p.strip_prefix("labels.") {
            match new.get(k) {
                Some(v) if !v.is_empty() => {
                    current.insert(k.to_string(), v.clone());
                }
                _ => {
                    current.remove(k);
                }
            }
            touched = true;
        }
    }
    touched
}

pub fn to_hash(
    m: &std::collections::BTreeMap<String, String>,
) -> std::collections::HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn to_btree(
    m: &std::collections::HashMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(validate_identifier("moby").is_ok());
        assert!(validate_identifier("k8s.io").is_ok());
        assert!(validate_identifier("a..b").is_err());
        assert!(validate_identifier("").is_err());
        assert!(validate_identifier("a/b").is_err());
    }
}
