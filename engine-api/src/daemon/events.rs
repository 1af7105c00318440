//! The event bus behind `GET /events`: a broadcast channel plus a bounded history for `since`.
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::broadcast;

const HISTORY: usize = 1024;

/// Events as dockerd emits them.
pub struct Events {
    tx: broadcast::Sender<Value>,
    history: Mutex<VecDeque<Value>>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(256);
        Events {
            tx,
            history: Mutex::new(VecDeque::new()),
        }
    }

    /// Emits `{Type, Action, Actor{ID, Attributes}, scope, time, timeNano}` (plus the legacy
    /// `status`/`id`/`from` fields for containers and images).
    pub fn emit(&self, kind: &str, action: &str, id: &str, attrs: BTreeMap<String, String>) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let mut ev = json!({
            "Type": kind,
            "Action": action,
            "Actor": {"ID": id, "Attributes": attrs},
            "scope": "local",
            "time": now.timestamp(),
            "timeNano": nanos,
        });
        if kind == "container" || kind == "image" {
            ev["status"] = json!(action);
            ev["id"] = json!(id);
            if let Some(img) = attrs.get("image") {
                ev["from"] = json!(img);
            }
        }
        if let Ok(mut h) = self.history.lock() {
            if h.len() >= HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    /// Past events (for `since`) and a receiver of new ones.
    pub fn subscribe(&self) -> (Vec<Value>, broadcast::Receiver<Value>) {
        let rx = self.tx.subscribe();
        let past = self
            .history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        (past, rx)
    }
}

/// Docker's `filters` query: `{"type":["container"],"event":{"start":true}}` both shapes.
pub fn parse_filters(raw: Option<&str>) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out = BTreeMap::new();
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(out);
    };
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("invalid filter: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "invalid filter: expected an object".to_string())?;
    for (k, vals) in obj {
        let list: Vec<String> = match vals {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Value::Object(m) => m
                .iter()
                .filter(|(_, b)| b.as_bool().unwrap_or(true))
                .map(|(k, _)| k.clone())
                .collect(),
            Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

/// `busybox:latest` → `busybox`; digests and IDs stay as they are.
fn strip_tag(name: &str) -> &str {
    if name.starts_with("sha256:") || name.contains('@') {
        return name;
    }
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[slash..].rfind(':') {
        Some(i) => &name[..slash + i],
        None => name,
    }
}

/// Whether an event passes `type=`, `event=`, `container=`, `image=` and `label=` filters.
pub fn matches(ev: &Value, f: &BTreeMap<String, Vec<String>>) -> bool {
    let get = |k: &str| ev[k].as_str().unwrap_or_default().to_string();
    let attrs = &ev["Actor"]["Attributes"];
    for (k, vals) in f {
        if vals.is_empty() {
            continue;
        }
        let ok = match k.as_str() {
            "type" => vals.contains(&get("Type")),
            "event" => {
                let a = get("Action");
                let base = a.split(':').next().unwrap_or_default().to_string();
                vals.contains(&a) || vals.contains(&base)
            }
            "container" => {
                get("Type") == "container"
                    && vals.iter().any(|v| {
                        let id = ev["Actor"]["ID"].as_str().unwrap_or_default();
                        id.starts_with(v.as_str()) || attrs["name"].as_str() == Some(v.as_str())
                    })
            }
            "image" => {
                // As dockerd: the actor ID or its image name, each also without its tag.
                let name_attr = if get("Type") == "image" {
                    "name"
                } else {
                    "image"
                };
                let id = ev["Actor"]["ID"].as_str().unwrap_or_default();
                let name = attrs[name_attr].as_str().unwrap_or_default();
                vals.iter().any(|v| {
                    [id, name, strip_tag(id), strip_tag(name)]
                        .iter()
                        .any(|x| !x.is_empty() && *x == v.as_str())
                })
            }
            "label" => vals.iter().all(|v| match v.split_once('=') {
                Some((lk, lv)) => attrs[lk].as_str() == Some(lv),
                None => !attrs[v.as_str()].is_null(),
            }),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}
