//! The Dockerfile instructions that `docker commit --change` and `docker import --change`
//! accept (dockerd's `validCommitCommands`: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL,
//! ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR), applied to the `config` object of an image
//! config. Words are split as the Dockerfile parser does: quotes, backslash escapes and
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` from the config's Env.
use serde_json::{json, Map, Value};

use crate::error::{ApiError, Result};

const VALID: [&str; 11] = [
    "cmd",
    "entrypoint",
    "env",
    "expose",
    "healthcheck",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Joins the changes as dockerd does (one Dockerfile, one instruction a line, `\` continues
/// a line) and applies them in order.
pub fn apply_changes(config: &mut Value, changes: &[String]) -> Result<()> {
    if !config.is_object() {
        *config = json!({});
    }
    let text = changes.join("\n");
    let mut cmd_set = false;
    for line in logical_lines(&text) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (inst, rest) = match line.split_once(char::is_whitespace) {
            Some((i, r)) => (i.to_ascii_lowercase(), r.trim()),
            None => (line.to_ascii_lowercase(), ""),
        };
        if !VALID.contains(&inst.as_str()) {
            return Err(ApiError::invalid(format!(
                "{inst} is not a valid change command"
            )));
        }
        apply_one(config, &inst, rest, &mut cmd_set)?;
    }
    Ok(())
}

fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in text.lines() {
        match l.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
            }
            None => {
                cur.push_str(l);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn need(inst: &str, rest: &str) -> Result<()> {
    if rest.is_empty() {
        return Err(ApiError::invalid(format!(
            "{} requires at least one argument",
            inst.to_ascii_uppercase()
        )));
    }
    Ok(())
}

fn apply_one(c: &mut Value, inst: &str, rest: &str, cmd_set: &mut bool) -> Result<()> {
    let env = env_of(c);
    match inst {
        "cmd" => {
            c["Cmd"] = json!(command(c, rest));
            *cmd_set = true;
        }
        "entrypoint" => {
            c["Entrypoint"] = json!(command(c, rest));
            if !*cmd_set {
                c["Cmd"] = Value::Null;
            }
        }
        "env" => {
            need(inst, rest)?;
            let mut cur = env;
            for (k, v) in name_values(inst, rest, &cur)? {
                cur.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                cur.push(format!("{k}={v}"));
            }
            c["Env"] = json!(cur);
        }
        "label" => {
            need(inst, rest)?;
            let pairs = name_values(inst, rest, &env)?;
            let labels = obj(c, "Labels");
            for (k, v) in pairs {
                labels.insert(k, json!(v));
            }
        }
        "expose" => {
            need(inst, rest)?;
            let mut ports = Vec::new();
            for w in words(rest, &env)? {
                let (p, proto) = w.split_once('/').unwrap_or((w.as_str(), "tcp"));
                let proto = proto.to_ascii_lowercase();
                if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                    return Err(ApiError::invalid(format!("invalid proto: {proto}")));
                }
                let (lo, hi) = p.split_once('-').unwrap_or((p, p));
                let (lo, hi): (u16, u16) = match (lo.parse(), hi.parse()) {
                    (Ok(l), Ok(h)) if l <= h => (l, h),
                    _ => return Err(ApiError::invalid(format!("invalid containerPort: {p}"))),
                };
                for n in lo..=hi {
                    ports.push(format!("{n}/{proto}"));
                }
            }
            let exposed = obj(c, "ExposedPorts");
            for p in ports {
                exposed.insert(p, json!({}));
            }
        }
        "volume" => {
            need(inst, rest)?;
            let list = match json_array(rest) {
                Some(v) => v,
                None => words(rest, &env)?,
            };
            let vols = obj(c, "Volumes");
            for v in list.into_iter().filter(|v| !v.is_empty()) {
                vols.insert(v, json!({}));
            }
        }
        "workdir" => {
            need(inst, rest)?;
            let w = words(rest, &env)?.join(" ");
            let dir = if w.starts_with('/') {
                w
            } else {
                let base = c["WorkingDir"].as_str().unwrap_or("/").to_string();
                format!("{}/{w}", base.trim_end_matches('/'))
            };
            c["WorkingDir"] = json!(clean_path(&dir));
        }
        "user" => {
            need(inst, rest)?;
            c["User"] = json!(words(rest, &env)?.join(" "));
        }
        "stopsignal" => {
            need(inst, rest)?;
            c["StopSignal"] = json!(words(rest, &env)?.join(" "));
        }
        "onbuild" => {
            need(inst, rest)?;
            let (trigger, _) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let t = trigger.to_ascii_uppercase();
            if matches!(t.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(ApiError::invalid(format!(
                    "{t} isn't allowed as an ONBUILD trigger"
                )));
            }
            let mut list: Vec<Value> = c["OnBuild"].as_array().cloned().unwrap_or_default();
            let body = rest[trigger.len()..].trim();
            list.push(json!(format!("{t} {body}").trim_end().to_string()));
            c["OnBuild"] = json!(list);
        }
        "healthcheck" => c["Healthcheck"] = healthcheck(rest)?,
        _ => {}
    }
    Ok(())
}

fn obj<'a>(c: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !c[key].is_object() {
        c[key] = json!({});
    }
    c[key].as_object_mut().expect("just made an object")
}

fn env_of(c: &Value) -> Vec<String> {
    c["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn json_array(rest: &str) -> Option<Vec<String>> {
    let v: Value = serde_json::from_str(rest.trim()).ok()?;
    v.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// CMD / ENTRYPOINT: the JSON form, or the shell form run by the config's Shell.
fn command(c: &Value, rest: &str) -> Vec<String> {
    if let Some(v) = json_array(rest) {
        return v;
    }
    let mut shell: Vec<String> = c["Shell"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if shell.is_empty() {
        shell = vec!["/bin/sh".to_string(), "-c".to_string()];
    }
    if rest.is_empty() {
        return Vec::new();
    }
    shell.push(rest.to_string());
    shell
}

/// `ENV a=b c="d e"` or the legacy `ENV a b c` (name, then the rest of the line).
fn name_values(inst: &str, rest: &str, env: &[String]) -> Result<Vec<(String, String)>> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let value = rest[first.len()..].trim();
        if value.is_empty() {
            return Err(ApiError::invalid(format!(
                "{} must have two arguments",
                inst.to_ascii_uppercase()
            )));
        }
        let v = words(value, env)?.join(" ");
        return Ok(vec![(first.to_string(), v)]);
    }
    let mut out = Vec::new();
    for w in words(rest, env)? {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => {
                return Err(ApiError::invalid(format!(
                    "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
                )))
            }
        }
    }
    Ok(out)
}

fn lookup(env: &[String], name: &str) -> Option<String> {
    env.iter().rev().find_map(|e| {
        e.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
}

/// Splits a line into words: whitespace separates, quotes group, `\` escapes, `$` expands
/// (not inside single quotes).
fn words(s: &str, env: &[String]) -> Result<Vec<String>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        match ch {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                i += 1;
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.get(i + 1) {
                    cur.push(*n);
                }
                i += 2;
            }
            '\'' => {
                in_word = true;
                let end = chars[i + 1..]
                    .iter()
                    .position(|c| *c == '\'')
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "unexpected end of statement while looking for matching single-quote",
                        )
                    })?;
                cur.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                in_word = true;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(ApiError::invalid(
                            "unexpected end of statement while looking for matching double-quote",
                        )),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\' | '$')) => {
                            cur.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('$') => i = expand(&chars, i, env, &mut cur),
                        Some(c) => {
                            cur.push(*c);
                            i += 1;
                        }
                    }
                }
            }
            '$' => {
                in_word = true;
                i = expand(&chars, i, env, &mut cur);
            }
            c => {
                in_word = true;
                cur.push(c);
                i += 1;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Expands the variable at `chars[i] == '$'` into `out`; returns the index after it.
fn expand(chars: &[char], i: usize, env: &[String], out: &mut String) -> usize {
    let ident = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    match chars.get(i + 1) {
        Some('{') => {
            let Some(close) = chars[i + 2..].iter().position(|c| *c == '}') else {
                out.push('$');
                return i + 1;
            };
            let inner: String = chars[i + 2..i + 2 + close].iter().collect();
            let val = match inner.split_once(':') {
                Some((name, m)) if m.starts_with('-') => lookup(env, name)
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| m[1..].to_string()),
                Some((name, m)) if m.starts_with('+') => match lookup(env, name) {
                    Some(v) if !v.is_empty() => m[1..].to_string(),
                    _ => String::new(),
                },
                _ => lookup(env, &inner).unwrap_or_default(),
            };
            out.push_str(&val);
            i + 3 + close
        }
        Some(c) if ident(c) => {
            let len = chars[i + 1..].iter().take_while(|c| ident(c)).count();
            let name: String = chars[i + 1..i + 1 + len].iter().collect();
            out.push_str(&lookup(env, &name).unwrap_or_default());
            i + 1 + len
        }
        _ => {
            out.push('$');
            i + 1
        }
    }
}

fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Go's `time.ParseDuration` for the units a health check uses.
fn duration_ns(s: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut rest = s;
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=… --timeout=… --start-period=…
/// --start-interval=… --retries=…] CMD …`.
fn healthcheck(rest: &str) -> Result<Value> {
    if rest.trim().eq_ignore_ascii_case("none") {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let mut hc = json!({});
    let mut rest = rest.trim();
    while let Some(flag) = rest.strip_prefix("--") {
        let (f, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| ApiError::invalid(format!("invalid HEALTHCHECK flag --{f}")))?;
        let field = match k {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            _ => return Err(ApiError::invalid(format!("unknown flag: --{k}"))),
        };
        hc[field] = if field == "Retries" {
            json!(v
                .parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("invalid --retries {v}")))?)
        } else {
            json!(duration_ns(v)
                .ok_or_else(|| ApiError::invalid(format!("invalid duration {v} for --{k}")))?)
        };
        rest = tail.trim_start();
    }
    let (word, body) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !word.eq_ignore_ascii_case("cmd") {
        return Err(ApiError::invalid(format!(
            "Unknown type \"{}\" in HEALTHCHECK (try CMD)",
            word.to_ascii_uppercase()
        )));
    }
    let body = body.trim();
    need("healthcheck", body)?;
    hc["Test"] = match json_array(body) {
        Some(v) => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v);
            json!(t)
        }
        None => json!(["CMD-SHELL", body]),
    };
    Ok(hc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(start: Value, changes: &[&str]) -> Result<Value> {
        let mut c = start;
        let ch: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &ch)?;
        Ok(c)
    }

    #[test]
    fn instructions_like_dockerd() {
        let c = apply(
            json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/srv"}),
            &[
                "ENV A=2 B=\"x y\" C=$A-${A:+set}-${NOPE:-dflt}",
                "ENV LEGACY some value",
                "LABEL version=1.0 'quoted key'=v",
                "EXPOSE 80 53/udp 8000-8001",
                "WORKDIR app",
                "USER nobody",
                "VOLUME [\"/data\"]",
                "STOPSIGNAL SIGINT",
                "ENTRYPOINT [\"/bin/echo\"]",
                "onbuild run echo hi",
            ],
        )
        .expect("valid changes");
        assert_eq!(
            c["Env"],
            json!([
                "PATH=/bin",
                "A=2",
                "B=x y",
                "C=1-set-dflt",
                "LEGACY=some value"
            ])
        );
        assert_eq!(c["Labels"], json!({"version": "1.0", "quoted key": "v"}));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(c["WorkingDir"], "/srv/app");
        assert_eq!(c["User"], "nobody");
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
        assert_eq!(c["Entrypoint"], json!(["/bin/echo"]));
        assert_eq!(c["Cmd"], Value::Null, "ENTRYPOINT resets CMD");
        assert_eq!(c["OnBuild"], json!(["RUN echo hi"]));
    }

    #[test]
    fn cmd_forms_and_healthcheck() {
        let c = apply(json!({}), &["CMD echo hello", "ENTRYPOINT [\"/x\"]"]).expect("ok");
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hello"]), "kept");
        let c = apply(
            json!({}),
            &["HEALTHCHECK --interval=1m30s --retries=3 CMD [\"true\"]"],
        )
        .expect("ok");
        assert_eq!(
            c["Healthcheck"],
            json!({"Interval": 90_000_000_000i64, "Retries": 3, "Test": ["CMD", "true"]})
        );
        let c = apply(json!({}), &["HEALTHCHECK NONE"]).expect("ok");
        assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
    }

    #[test]
    fn invalid_changes_are_rejected() {
        let e = apply(json!({}), &["FROM busybox"]).expect_err("FROM");
        assert_eq!(e.message(), "from is not a valid change command");
        assert!(apply(json!({}), &["RUN true"]).is_err());
        assert!(apply(json!({}), &["ENV"]).is_err());
        assert!(apply(json!({}), &["EXPOSE 80/xyz"]).is_err());
        assert!(apply(json!({}), &["ENV a=\"open"]).is_err());
        assert!(apply(json!({}), &["LABEL novalue"]).is_err());
    }
}
