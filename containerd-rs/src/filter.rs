//! containerd's filter syntax: `a==b,c!=d` (comma = and), several filters (or), field paths with
//! dots and quoted parts (`labels."io.x"==y`), operators `==` `!=` `~=` (regex), or presence.

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
        skip_ws(&mut i);
        let mut path = Vec::new();
        loop {
            skip_ws(&mut i);
            let part = if i < chars.len() && chars[i] == '"' {
                quoted(&chars, &mut i, '"').ok_or_else(|| err("unterminated quote"))?
            } else {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                {
                    i += 1;
                }
                if start == i {
                    return Err(err("expected a field name"));
                }
                chars[start..i].iter().collect()
            };
            path.push(part);
            if i < chars.len() && chars[i] == '.' {
                i += 1;
                continue;
            }
            break;
        }
        skip_ws(&mut i);
        let op =
            if i + 1 < chars.len() && matches!(chars[i], '=' | '!' | '~') && chars[i + 1] == '=' {
                let o = chars[i];
                i += 2;
                skip_ws(&mut i);
                let value = if i < chars.len() && chars[i] == '"' {
                    quoted(&chars, &mut i, '"').ok_or_else(|| err("unterminated quote"))?
                } else if i < chars.len() && chars[i] == '/' && o == '~' {
                    quoted(&chars, &mut i, '/').ok_or_else(|| err("unterminated regex"))?
                } else {
                    let start = i;
                    while i < chars.len() && chars[i] != ',' {
                        i += 1;
                    }
                    chars[start..i]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_string()
                };
                match o {
                    '=' => Op::Eq(value),
                    '!' => Op::Ne(value),
                    _ => Op::Match(Regex::new(&value).map_err(|e| err(&e.to_string()))?),
                }
            } else {
                Op::Present
            };
        out.push(Selector { path, op });
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        if chars[i] != ',' {
            return Err(err("expected ','"));
        }
        i += 1;
    }
    Ok(out)
}

fn quoted(chars: &[char], i: &mut usize, q: char) -> Option<String> {
    *i += 1;
    let mut s = String::new();
    while *i < chars.len() {
        let c = chars[*i];
        *i += 1;
        if c == '\\' && *i < chars.len() {
            s.push(chars[*i]);
            *i += 1;
        } else if c == q {
            return Some(s);
        } else {
            s.push(c);
        }
    }
    None
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
        assert!(Filter::parse(r#"labels."io.x"==y,topic!=/x"#)
            .expect("p")
            .matches(&o));
        assert!(Filter::parse("labels.\"io.x\"").expect("p").matches(&o));
        let or = Filter::parse_all(&["topic==/a".into(), "topic==/tasks/exit".into()]).expect("p");
        assert!(or.matches(&o));
        assert!(Filter::parse("==").is_err());
    }
}
