//! runc-compatible log lines: logrus JSON (`{"level":..,"msg":..,"time":..}`) or text.
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Where and how log lines are written.
pub struct LogConfig {
    pub file: Option<std::path::PathBuf>,
    pub json: bool,
    pub debug: bool,
}

struct RuncLayer {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
    max: Level,
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            self.extra
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            self.extra
                .push((field.name().to_string(), value.to_string()));
        }
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S: Subscriber> Layer<S> for RuncLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = event.metadata().level();
        if *level > self.max {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        // logrus's default: RFC 3339 in seconds, UTC `Z`.
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let line = if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("level".into(), level_name(level).into());
            obj.insert("msg".into(), f.msg.into());
            obj.insert("time".into(), time.into());
            for (k, v) in f.extra {
                obj.insert(k, v.into());
            }
            let mut s = serde_json::Value::Object(obj).to_string();
            s.push('\n');
            s
        } else {
            let mut s = format!(
                "time=\"{time}\" level={} msg={:?}",
                level_name(level),
                f.msg
            );
            for (k, v) in f.extra {
                let _ = write!(s, " {k}={v:?}");
            }
            s.push('\n');
            s
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }
}

/// Installs the global subscriber. Returns whether logs go to stderr.
pub fn init(cfg: &LogConfig) -> bool {
    let (out, to_stderr): (Box<dyn Write + Send>, bool) = match &cfg.file {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => (Box::new(f), false),
            Err(e) => {
                eprintln!("runc-rs: open log file {}: {e}", p.display());
                (Box::new(std::io::stderr()), true)
            }
        },
        None => (Box::new(std::io::stderr()), true),
    };
    let layer = RuncLayer {
        out: Mutex::new(out),
        json: cfg.json,
        max: if cfg.debug { Level::DEBUG } else { Level::INFO },
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
    to_stderr
}
