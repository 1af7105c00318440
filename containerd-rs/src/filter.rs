//! containerd's filter syntax: `a==b,c!=d` (comma = and), several filters (or), field paths with
//! dots and quoted parts (`labels."io.x"==y`), operators `==` `!=` `~=` (regex, value also quoted
//! `/…/` or `|…|`), or presence. Mirrors containerd's `filters` scanner and parser.

use regex::Regex;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("filter {0:?}: {1}: invalid argument")]
    Syntax(String, String),
}

impl From<FilterError> for errdefs::Error {
    fn from(e: FilterError) -> Self {
        errdefs::Error::invalid(e.to_string())
    }
}

#[derive(Debug, Clone)]
enum Op {
    Present,
    Eq(String),
    Ne(String),
    Match(Regex),
}

#[derive(Debug, Clone)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

/// A parsed filter set: matches when any of its conjunctions matches (or when empty).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    any_of: Vec<Vec<Selector>>,
}

/// What a filter can ask of an object: the value at a field path.
pub trait Fields {
    fn field(&self, path: &[String]) -> Option<String>;
}

impl Filter {
    pub fn parse_all(filters: &[String]) -> Result<Self, FilterError> {
        let mut any_of = Vec::new();
        for f in filters {
            if f.trim().is_empty() {
                continue;
            }
            any_of.push(parse_one(f)?);
        }
        Ok(Self { any_of })
    }

    pub fn parse(filter: &str) -> Result<Self, FilterError> {
        Self::parse_all(&[filter.to_string()])
    }

    pub fn matches(&self, obj: &dyn Fields) -> bool {
        self.any_of.is_empty()
            || self.any_of.iter().any(|sels| {
                sels.iter().all(|s| {
                    let v = obj.field(&s.path);
                    match (&s.op, v) {
                        (Op::Present, v) => v.is_some(),
                        (Op::Eq(want), Some(v)) => &v == want,
                        (Op::Ne(want), Some(v)) => &v != want,
                        (Op::Ne(_), None) => true,
                        (Op::Match(re), Some(v)) => re.is_match(&v),
                        _ => false,
                    }
                })
            })
    }
}

/// One selector list, as containerd's `filters.Parse` reads it:
/// `fieldpath (op value)? ("," ...)*`, a fieldpath is fields joined by `.`, a field is
/// `[A-Za-z0-9_-]+` or a `"`-quoted string, a value is a quoted string or `[^\s,]+`. After `~=`
/// the value may also be quoted with `/…/` or `|…|` (dockerd subscribes with `topic~=|^/tasks/|`).
/// Quoted strings take Go's escapes (`\n`, `\x41`, `\u00e9`, `\\`, and the quote itself).
fn parse_one(src: &str) -> Result<Vec<Selector>, FilterError> {
    let err = |m: &str| FilterError::Syntax(src.to_string(), m.to_string());
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        let mut path = Vec::new();
        loop {
            skip_ws(&mut i);
            let part = match chars.get(i) {
                Some('"') => quoted(&chars, &mut i).map_err(|m| err(&m))?,
                Some('/' | '|') => return Err(err("invalid quote encountered")),
                _ => {
                    let start = i;
                    while i < chars.len()
                        && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                    {
                        i += 1;
                    }
                    if start == i {
                        return Err(err("expected field or quoted"));
                    }
                    chars[start..i].iter().collect()
                }
            };
            path.push(part);
            skip_ws(&mut i);
            if chars.get(i) == Some(&'.') {
                i += 1;
                continue;
            }
            break;
        }
        skip_ws(&mut i);
        let op = if matches!(chars.get(i), Some('=' | '!' | '~')) {
            let start = i;
            while matches!(chars.get(i), Some('=' | '!' | '~')) {
                i += 1;
            }
            let o: String = chars[start..i].iter().collect();
            skip_ws(&mut i);
            let regex = o == "~=";
            let value = match chars.get(i) {
                Some('"') => quoted(&chars, &mut i).map_err(|m| err(&m))?,
                Some('/' | '|') if regex => quoted(&chars, &mut i).map_err(|m| err(&m))?,
                Some('/' | '|') => return Err(err("invalid quote encountered")),
                Some(c) if *c != ',' => {
                    let start = i;
                    while i < chars.len() && chars[i] != ',' && !chars[i].is_whitespace() {
                        i += 1;
                    }
                    chars[start..i].iter().collect()
                }
                _ => return Err(err("expected value or quoted")),
            };
            match o.as_str() {
                "==" => Op::Eq(value),
                "!=" => Op::Ne(value),
                "~=" => Op::Match(Regex::new(&value).map_err(|e| err(&e.to_string()))?),
                _ => return Err(err(&format!("unsupported operator {o:?}"))),
            }
        } else {
            Op::Present
        };
        out.push(Selector { path, op });
        skip_ws(&mut i);
        match chars.get(i) {
            None => break,
            Some(',') => i += 1,
            Some(c) => return Err(err(&format!("unexpected input: {c}"))),
        }
    }
    Ok(out)
}

/// A quoted string starting at `chars[*i]` (the quote), with Go's escape sequences.
fn quoted(chars: &[char], i: &mut usize) -> Result<String, String> {
    let q = chars[*i];
    *i += 1;
    let mut s = String::new();
    loop {
        let Some(&c) = chars.get(*i) else {
            return Err("quoted literal not terminated".into());
        };
        *i += 1;
        if c == q {
            return Ok(s);
        }
        if c == '\n' {
            return Err("quoted literal not terminated".into());
        }
        if c != '\\' {
            s.push(c);
            continue;
        }
        let Some(&e) = chars.get(*i) else {
            return Err("quoted literal not terminated".into());
        };
        *i += 1;
        let simple = match e {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            _ if e == q => Some(q),
            _ => None,
        };
        if let Some(ch) = simple {
            s.push(ch);
            continue;
        }
        let (radix, n, first) = match e {
            '0'..='7' => (8, 3, Some(e)),
            'x' => (16, 2, None),
            'u' => (16, 4, None),
            'U' => (16, 8, None),
            _ => return Err("illegal escape sequence".into()),
        };
        let mut digits: String = first.into_iter().collect();
        while digits.len() < n {
            match chars.get(*i) {
                Some(d) if d.is_digit(radix) => {
                    digits.push(*d);
                    *i += 1;
                }
                _ => return Err("illegal numeric escape sequence".into()),
            }
        }
        let v = u32::from_str_radix(&digits, radix).map_err(|e| e.to_string())?;
        s.push(char::from_u32(v).ok_or("illegal numeric escape sequence")?);
    }
}

/// Field lookup for `labels.<k>` in a label map.
pub fn label_field(
    labels: &std::collections::BTreeMap<String, String>,
    path: &[String],
) -> Option<String> {
    if path.len() >= 2 && path[0] == "labels" {
        return labels.get(&path[1..].join(".")).cloned();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Obj(&'static str, std::collections::BTreeMap<String, String>);
    impl Fields for Obj {
        fn field(&self, path: &[String]) -> Option<String> {
            if path.len() == 1 && path[0] == "topic" {
                return Some(self.0.to_string());
            }
            label_field(&self.1, path)
        }
    }

    #[test]
    fn topics_labels_regex() {
        let mut l = std::collections::BTreeMap::new();
        l.insert("io.x".to_string(), "y".to_string());
        let o = Obj("/tasks/exit", l);
        assert!(Filter::parse(r#"topic=="/tasks/exit""#)
            .expect("p")
            .matches(&o));
        assert!(!Filter::parse(r#"topic=="/tasks/start""#)
            .expect("p")
            .matches(&o));
        assert!(Filter::parse(r#"topic~="/tasks/.*""#)
            .expect("p")
            .matches(&o));
        assert!(Filter::parse(r#"labels."io.x"==y,topic!="/x""#)
            .expect("p")
            .matches(&o));
        assert!(Filter::parse("labels.\"io.x\"").expect("p").matches(&o));
        let or =
            Filter::parse_all(&["topic==a".into(), r#"topic=="/tasks/exit""#.into()]).expect("p");
        assert!(or.matches(&o));
        assert!(Filter::parse("==").is_err());
    }

    #[test]
    fn containerd_quotes_and_escapes() {
        let o = Obj("/tasks/exit", Default::default());
        // dockerd's subscription filter.
        let f = Filter::parse_all(&["namespace==moby,topic~=|^/tasks/|".into()]).expect("parse");
        assert!(!f.matches(&o), "no namespace field on Obj");
        assert!(Filter::parse("topic~=|^/tasks/|").expect("p").matches(&o));
        assert!(!Filter::parse("topic~=|^/images/|").expect("p").matches(&o));
        assert!(Filter::parse("topic~=/^.tasks.exit$/")
            .expect("p")
            .matches(&o));
        assert!(Filter::parse(r#"topic=="\x2ftasks\u002fexit""#)
            .expect("p")
            .matches(&o));
        assert!(Filter::parse(r#" topic == "/tasks/exit" , topic "#)
            .expect("p")
            .matches(&o));
        for bad in [
            "topic==|x|",
            // As in containerd, `/` starts a quoted value: only `~=` takes it.
            "topic==/tasks/exit",
            "topic~=\"open",
            "topic=x",
            "topic===x",
            "topic==a b",
            r#"topic=="\q""#,
            ",",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
