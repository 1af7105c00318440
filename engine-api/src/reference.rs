//! Docker image references: normalization (`busybox` → `docker.io/library/busybox:latest`) and
//! the familiar form shown to users.

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io/library/busybox`.
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Reference errors.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("invalid reference format")]
    Invalid,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
}

fn is_domain(s: &str) -> bool {
    s.contains('.')
        || s.contains(':')
        || s == "localhost"
        || s.chars().any(|c| c.is_ascii_uppercase())
}

/// Parses and normalizes a reference; a missing tag is `latest` unless a digest is given.
pub fn parse(s: &str) -> Result<Reference, RefError> {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(RefError::Invalid);
    }
    let (name, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (s, None),
    };
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_string())),
        None => (name, None),
    };
    if name.is_empty() || tag.as_deref() == Some("") {
        return Err(RefError::Invalid);
    }
    let (domain, path) = match name.split_once('/') {
        Some((d, rest)) if is_domain(d) => (d.to_string(), rest.to_string()),
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(RefError::Uppercase(path));
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
    {
        return Err(RefError::Invalid);
    }
    let domain = if domain == "index.docker.io" {
        "docker.io".to_string()
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".to_string())
    } else {
        tag
    };
    Ok(Reference {
        repo: format!("{domain}/{path}"),
        tag,
        digest,
    })
}

impl Reference {
    /// The full normalized string.
    pub fn full(&self) -> String {
        let mut s = self.repo.clone();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

/// `docker.io/library/busybox` → `busybox`, `docker.io/foo/bar` → `foo/bar`.
pub fn familiar_repo(repo: &str) -> String {
    if let Some(rest) = repo.strip_prefix("docker.io/") {
        rest.strip_prefix("library/").unwrap_or(rest).to_string()
    } else {
        repo.to_string()
    }
}

/// `docker.io/library/busybox:latest` → `busybox:latest`.
pub fn familiar(full: &str) -> String {
    let slash = full.rfind('/').map(|i| i + 1).unwrap_or(0);
    match full[slash..].find([':', '@']) {
        Some(i) => format!(
            "{}{}",
            familiar_repo(&full[..slash + i]),
            &full[slash + i..]
        ),
        None => familiar_repo(full),
    }
}

/// Splits a normalized name into (repo, tag) for listings; `<none>` when untagged.
pub fn split_repo_tag(full: &str) -> (String, String) {
    let slash = full.rfind('/').map(|i| i + 1).unwrap_or(0);
    match full[slash..].rfind(':') {
        Some(i) => (
            full[..slash + i].to_string(),
            full[slash + i + 1..].to_string(),
        ),
        None => (full.to_string(), "<none>".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            (
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest",
            ),
            ("foo/bar", "docker.io/foo/bar:latest"),
            ("localhost:5000/x/y:z", "localhost:5000/x/y:z"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).expect(input).full(), want, "{input}");
        }
        assert!(parse("Busybox").is_err());
        assert!(parse("a b").is_err());
        assert!(parse("busybox:").is_err());
    }

    #[test]
    fn familiar_names() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("docker.io/foo/bar:1"), "foo/bar:1");
        assert_eq!(familiar("localhost:5000/x:y"), "localhost:5000/x:y");
    }
}
