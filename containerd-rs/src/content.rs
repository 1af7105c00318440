//! The content store: blobs addressed by digest under `R/content/blobs/sha256/<hex>`, and ingests
//! (resumable writes) under `R/content/ingest/<sha256 of ns/ref>/`. A blob is written to its
//! ingest's `data`, verified and renamed into `blobs/`, so a crash leaves no half-written blob.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::util::Ts;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("invalid digest {0:?}: invalid argument")]
    BadDigest(String),
    #[error("content {0}: not found")]
    NotFound(String),
    #[error("ref {0}: not found")]
    NoIngest(String),
    #[error("ref {0} locked: unavailable")]
    Locked(String),
    #[error("content {0}: already exists")]
    Exists(String),
    #[error("unexpected commit size {got}, expected {want}: failed precondition")]
    Size { got: i64, want: i64 },
    #[error("unexpected commit digest {got}, expected {want}: failed precondition")]
    Digest { got: String, want: String },
    #[error("write @{got} must occur at current offset {cur}: out of range")]
    Offset { got: i64, cur: i64 },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
}

impl From<ContentError> for errdefs::Error {
    fn from(e: ContentError) -> Self {
        use ContentError::*;
        let msg = e.to_string();
        match e {
            BadDigest(_) | Offset { .. } => errdefs::Error::invalid(msg),
            NotFound(_) | NoIngest(_) => errdefs::Error::not_found(msg),
            Locked(_) => errdefs::Error::unavailable(msg),
            Exists(_) => errdefs::Error::already_exists(msg),
            Size { .. } | Digest { .. } => errdefs::Error::precondition(msg),
            Io { .. } => {
                tracing::error!(error = %msg, "content store");
                errdefs::Error::internal(msg)
            }
        }
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ContentError + 'a {
    move |source| ContentError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// The on-disk state of one ingest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestState {
    /// The namespace of the writer (ingest dirs are named by a hash of namespace and ref).
    #[serde(default)]
    pub ns: String,
    pub r#ref: String,
    pub total: i64,
    pub expected: String,
    pub started_at: Ts,
    pub updated_at: Ts,
    #[serde(skip)]
    pub offset: i64,
}

pub struct ContentStore {
    root: PathBuf,
    locks: Mutex<HashSet<String>>,
    /// Held by whoever puts a blob file in place and records it (Write commit, Diff.Diff), and
    /// by the collector while it re-checks a blob and removes its file: a blob recorded anew
    /// after the collection's transaction keeps its file.
    gate: Mutex<()>,
}

/// Holds a ref's lock for the life of a Write stream.
pub struct IngestLock<'a> {
    store: &'a ContentStore,
    key: String,
}

impl Drop for IngestLock<'_> {
    fn drop(&mut self) {
        if let Ok(mut l) = self.store.locks.lock() {
            l.remove(&self.key);
        }
    }
}

/// Validates `sha256:<64 hex>` and returns the hex.
pub fn digest_hex(digest: &str) -> Result<&str, ContentError> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| ContentError::BadDigest(digest.to_string()))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ContentError::BadDigest(digest.to_string()));
    }
    Ok(hex)
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        for d in ["blobs/sha256", "ingest"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io("mkdir", &p))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            locks: Mutex::new(HashSet::new()),
            gate: Mutex::new(()),
        })
    }

    /// See the `gate` field.
    pub fn gate(&self) -> std::sync::MutexGuard<'_, ()> {
        match self.gate.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ContentError> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// The size of a blob on disk, or NotFound.
    pub fn blob_size(&self, digest: &str) -> Result<i64, ContentError> {
        let p = self.blob_path(digest)?;
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len() as i64),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.to_string()))
            }
            Err(e) => Err(io("stat", &p)(e)),
        }
    }

    pub fn read_all(&self, digest: &str) -> Result<Vec<u8>, ContentError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ContentError::NotFound(digest.to_string())
            } else {
                io("read", &p)(e)
            }
        })
    }

    pub fn open_blob(&self, digest: &str) -> Result<fs::File, ContentError> {
        let p = self.blob_path(digest)?;
        fs::File::open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ContentError::NotFound(digest.to_string())
            } else {
                io("open", &p)(e)
            }
        })
    }

    pub fn remove_blob(&self, digest: &str) -> Result<(), ContentError> {
        let p = self.blob_path(digest)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &p)(e)),
        }
    }

    /// Digests of every blob on disk.
    pub fn all_blobs(&self) -> Result<Vec<String>, ContentError> {
        let p = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&p).map_err(io("readdir", &p))? {
            let e = e.map_err(io("readdir", &p))?;
            if let Some(n) = e.file_name().to_str() {
                out.push(format!("sha256:{n}"));
            }
        }
        Ok(out)
    }

    fn ingest_dir(&self, ns: &str, r: &str) -> PathBuf {
        let h = hex::encode(Sha256::digest(format!("{ns}/{r}").as_bytes()));
        self.root.join("ingest").join(h)
    }

    /// Every ingest on disk, of all namespaces.
    pub fn all_ingests(&self) -> Result<Vec<IngestState>, ContentError> {
        let p = self.root.join("ingest");
        let mut out = Vec::new();
        for e in fs::read_dir(&p).map_err(io("readdir", &p))? {
            let e = e.map_err(io("readdir", &p))?;
            // No state yet: being created (or left by a crash between mkdir and the state write).
            if let Some(st) = fs::read(e.path().join("state.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<IngestState>(&b).ok())
            {
                out.push(st);
            }
        }
        Ok(out)
    }

    /// Whether a writer holds the ref now.
    pub fn is_locked(&self, ns: &str, r: &str) -> bool {
        self.locks
            .lock()
            .map(|l| l.contains(&format!("{ns}/{r}")))
            .unwrap_or(true)
    }

    /// Locks a ref for one writer.
    pub fn lock(&self, ns: &str, r: &str) -> Result<IngestLock<'_>, ContentError> {
        let key = format!("{ns}/{r}");
        let mut l = self
            .locks
            .lock()
            .map_err(|_| ContentError::Locked(r.to_string()))?;
        if !l.insert(key.clone()) {
            return Err(ContentError::Locked(r.to_string()));
        }
        Ok(IngestLock { store: self, key })
    }

    /// Opens (creating if needed) the ingest for `r`.
    pub fn open_ingest(
        &self,
        ns: &str,
        r: &str,
        total: i64,
        expected: &str,
    ) -> Result<IngestState, ContentError> {
        if !expected.is_empty() {
            digest_hex(expected)?;
        }
        let dir = self.ingest_dir(ns, r);
        if let Ok(st) = self.status(ns, r) {
            let mut st = st;
            if total > 0 {
                st.total = total;
            }
            if !expected.is_empty() {
                st.expected = expected.to_string();
            }
            self.save_state(&dir, &st)?;
            return Ok(st);
        }
        fs::create_dir_all(&dir).map_err(io("mkdir", &dir))?;
        let data = dir.join("data");
        fs::File::create(&data).map_err(io("create", &data))?;
        let now = Ts::now();
        let st = IngestState {
            ns: ns.to_string(),
            r#ref: r.to_string(),
            total,
            expected: expected.to_string(),
            started_at: now,
            updated_at: now,
            offset: 0,
        };
        self.save_state(&dir, &st)?;
        Ok(st)
    }

    fn save_state(&self, dir: &Path, st: &IngestState) -> Result<(), ContentError> {
        let p = dir.join("state.json");
        let bytes = serde_json::to_vec(st).map_err(|e| ContentError::Io {
            op: "encode",
            path: p.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        fs::write(&p, bytes).map_err(io("write", &p))
    }

    pub fn status(&self, ns: &str, r: &str) -> Result<IngestState, ContentError> {
        let dir = self.ingest_dir(ns, r);
        let p = dir.join("state.json");
        let bytes = fs::read(&p).map_err(|_| ContentError::NoIngest(r.to_string()))?;
        let mut st: IngestState =
            serde_json::from_slice(&bytes).map_err(|_| ContentError::NoIngest(r.to_string()))?;
        let data = dir.join("data");
        st.offset = fs::metadata(&data).map_err(io("stat", &data))?.len() as i64;
        Ok(st)
    }

    /// Every ingest of a namespace.
    pub fn statuses(&self, ns: &str) -> Result<Vec<IngestState>, ContentError> {
        let p = self.root.join("ingest");
        let mut out = Vec::new();
        for e in fs::read_dir(&p).map_err(io("readdir", &p))? {
            let e = e.map_err(io("readdir", &p))?;
            let Ok(bytes) = fs::read(e.path().join("state.json")) else {
                continue;
            };
            let Ok(st) = serde_json::from_slice::<IngestState>(&bytes) else {
                continue;
            };
            if let Ok(st) = self.status(ns, &st.r#ref) {
                out.push(st);
            }
        }
        Ok(out)
    }

    /// Writes at `offset` (0 truncates, otherwise must equal the current offset); returns the new offset.
    pub fn write(&self, ns: &str, r: &str, offset: i64, data: &[u8]) -> Result<i64, ContentError> {
        let dir = self.ingest_dir(ns, r);
        let st = self.status(ns, r)?;
        let p = dir.join("data");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(io("open", &p))?;
        let mut cur = st.offset;
        if offset > 0 && offset != cur {
            return Err(ContentError::Offset { got: offset, cur });
        }
        if offset == 0 && cur > 0 {
            f.set_len(0).map_err(io("truncate", &p))?;
            cur = 0;
        }
        f.seek(SeekFrom::Start(cur as u64))
            .map_err(io("seek", &p))?;
        f.write_all(data).map_err(io("write", &p))?;
        let mut st = st;
        st.updated_at = Ts::now();
        self.save_state(&dir, &st)?;
        Ok(cur + data.len() as i64)
    }

    /// Verifies size and digest and moves the data into `blobs/`. Returns the digest and size.
    pub fn commit(
        &self,
        ns: &str,
        r: &str,
        total: i64,
        expected: &str,
    ) -> Result<(String, i64), ContentError> {
        let dir = self.ingest_dir(ns, r);
        let st = self.status(ns, r)?;
        let total = if total > 0 { total } else { st.total };
        let expected = if expected.is_empty() {
            st.expected.clone()
        } else {
            expected.to_string()
        };
        let p = dir.join("data");
        let mut f = fs::File::open(&p).map_err(io("open", &p))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0i64;
        loop {
            let n = f.read(&mut buf).map_err(io("read", &p))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            size += n as i64;
        }
        if total > 0 && size != total {
            return Err(ContentError::Size {
                got: size,
                want: total,
            });
        }
        let digest = format!("sha256:{}", hex::encode(h.finalize()));
        if !expected.is_empty() && digest != expected {
            return Err(ContentError::Digest {
                got: digest,
                want: expected,
            });
        }
        f.sync_all().map_err(io("sync", &p))?;
        let target = self.blob_path(&digest)?;
        let existed = target.exists();
        if !existed {
            fs::rename(&p, &target).map_err(io("rename", &target))?;
        }
        let _ = fs::remove_dir_all(&dir);
        Ok((digest, size))
    }

    pub fn abort(&self, ns: &str, r: &str) -> Result<(), ContentError> {
        let dir = self.ingest_dir(ns, r);
        if !dir.exists() {
            return Err(ContentError::NoIngest(r.to_string()));
        }
        fs::remove_dir_all(&dir).map_err(io("remove", &dir))
    }

    /// Writes a whole blob (used by Diff.Diff); returns its digest.
    pub fn put_blob(&self, data_path: &Path) -> Result<(String, i64), ContentError> {
        let bytes = fs::read(data_path).map_err(io("read", data_path))?;
        let digest = sha256_digest(&bytes);
        let target = self.blob_path(&digest)?;
        if !target.exists() {
            fs::rename(data_path, &target).map_err(io("rename", &target))?;
        }
        Ok((digest, bytes.len() as i64))
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }
}
