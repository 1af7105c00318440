//! The metadata store: one redb table of JSON records under string keys, in transactions.
//!
//! Keys (`<ns>` never contains `/`):
//! `ns/<ns>` namespaces, `c/<ns>/<id>` containers, `i/<ns>/<name>` images,
//! `b/<ns>/<digest>` content records, `s/<snapshotter>/<ns>/<key>` snapshots,
//! `l/<ns>/<id>` leases, `seq/<name>` counters.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::util::Ts;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("open metadata {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("metadata: {0}")]
    Db(String),
    #[error("metadata record {key}: {source}")]
    Decode {
        key: String,
        source: serde_json::Error,
    },
}

impl From<MetaError> for errdefs::Error {
    fn from(e: MetaError) -> Self {
        tracing::error!(error = %e, "metadata failure");
        errdefs::Error::internal(e.to_string())
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for MetaError {
            fn from(e: $t) -> Self { MetaError::Db(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The database.
pub struct Meta {
    db: redb::Database,
}

/// A write transaction over the objects table.
pub struct Tx<'a> {
    table: redb::Table<'a, &'static str, &'static [u8]>,
    /// Whether anything was written: a transaction that changed nothing is aborted rather than
    /// committed, so it costs no fsync.
    dirty: bool,
}

/// redb's page cache. The metadata of a busy daemon is a few hundred KiB; redb's default (1 GiB,
/// grown on use) would keep every page it ever read resident.
const CACHE_BYTES: usize = 4 << 20;

impl Meta {
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        let db = redb::Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|source| MetaError::Open {
                path: path.display().to_string(),
                source,
            })?;
        // Creating the table costs a commit (an fsync): only when it is not there yet.
        if db.begin_read()?.open_table(OBJECTS).is_err() {
            let tx = db.begin_write()?;
            tx.open_table(OBJECTS)?;
            tx.commit()?;
        }
        Ok(Self { db })
    }

    /// Runs `f` in a write transaction; commits when it returns Ok and wrote something, aborts
    /// otherwise.
    pub fn update<R>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, errdefs::Error>,
    ) -> Result<R, errdefs::Error> {
        let txn = self.db.begin_write().map_err(MetaError::from)?;
        let (r, dirty) = {
            let table = txn.open_table(OBJECTS).map_err(MetaError::from)?;
            let mut tx = Tx {
                table,
                dirty: false,
            };
            let r = f(&mut tx)?;
            (r, tx.dirty)
        };
        if dirty {
            txn.commit().map_err(MetaError::from)?;
        } else {
            txn.abort().map_err(MetaError::from)?;
        }
        Ok(r)
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, errdefs::Error> {
        let txn = self.db.begin_read().map_err(MetaError::from)?;
        let table = txn.open_table(OBJECTS).map_err(MetaError::from)?;
        let v = table.get(key).map_err(MetaError::from)?;
        match v {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// Every record whose key starts with `prefix`, with the rest of the key.
    pub fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, errdefs::Error> {
        let txn = self.db.begin_read().map_err(MetaError::from)?;
        let table = txn.open_table(OBJECTS).map_err(MetaError::from)?;
        scan(&table, prefix)
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, MetaError> {
    serde_json::from_slice(bytes).map_err(|source| MetaError::Decode {
        key: key.to_string(),
        source,
    })
}

fn scan<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<(String, T)>, errdefs::Error> {
    let mut out = Vec::new();
    for item in table.range(prefix..).map_err(MetaError::from)? {
        let (k, v) = item.map_err(MetaError::from)?;
        let key = k.value();
        let Some(rest) = key.strip_prefix(prefix) else {
            break;
        };
        out.push((rest.to_string(), decode(key, v.value())?));
    }
    Ok(out)
}

impl Tx<'_> {
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, errdefs::Error> {
        let v = self.table.get(key).map_err(MetaError::from)?;
        match v {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }
    pub fn exists(&self, key: &str) -> Result<bool, errdefs::Error> {
        Ok(self.table.get(key).map_err(MetaError::from)?.is_some())
    }
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), errdefs::Error> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| errdefs::Error::internal(format!("encode {key}: {e}")))?;
        self.dirty = true;
        self.table
            .insert(key, bytes.as_slice())
            .map_err(MetaError::from)?;
        Ok(())
    }
    pub fn delete(&mut self, key: &str) -> Result<bool, errdefs::Error> {
        let removed = self.table.remove(key).map_err(MetaError::from)?.is_some();
        self.dirty |= removed;
        Ok(removed)
    }
    pub fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, errdefs::Error> {
        scan(&self.table, prefix)
    }
    pub fn any_with_prefix(&self, prefix: &str) -> Result<bool, errdefs::Error> {
        let mut it = self.table.range(prefix..).map_err(MetaError::from)?;
        match it.next() {
            Some(item) => {
                let (k, _) = item.map_err(MetaError::from)?;
                Ok(k.value().starts_with(prefix))
            }
            None => Ok(false),
        }
    }
    /// The next value of a counter (starting at 1).
    pub fn next_seq(&mut self, name: &str) -> Result<u64, errdefs::Error> {
        let key = format!("seq/{name}");
        let n: u64 = self.get(&key)?.unwrap_or(0) + 1;
        self.put(&key, &n)?;
        Ok(n)
    }
    /// Creates the namespace record if it is missing (containerd does this on every write).
    pub fn ensure_namespace(&mut self, ns: &str) -> Result<(), errdefs::Error> {
        let key = format!("ns/{ns}");
        if !self.exists(&key)? {
            self.put(
                &key,
                &NamespaceRecord {
                    labels: BTreeMap::new(),
                },
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnyRecord {
    pub type_url: String,
    pub value: Vec<u8>,
}

impl AnyRecord {
    pub fn from_proto(a: &prost_types::Any) -> Self {
        Self {
            type_url: a.type_url.clone(),
            value: a.value.clone(),
        }
    }
    pub fn proto(&self) -> prost_types::Any {
        prost_types::Any {
            type_url: self.type_url.clone(),
            value: self.value.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub runtime_name: String,
    pub runtime_options: Option<AnyRecord>,
    pub spec: Option<AnyRecord>,
    pub snapshotter: String,
    pub snapshot_key: String,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub extensions: BTreeMap<String, AnyRecord>,
    pub sandbox: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DescriptorRecord {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageRecord {
    pub labels: BTreeMap<String, String>,
    pub target: DescriptorRecord,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: i64,
    pub labels: BTreeMap<String, String>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapKind {
    View,
    Active,
    Committed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The directory number under the snapshotter root.
    pub id: u64,
    pub kind: SnapKind,
    pub parent: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: Ts,
    pub updated_at: Ts,
    /// Usage measured at commit.
    pub size: i64,
    pub inodes: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub labels: BTreeMap<String, String>,
    pub created_at: Ts,
    /// (type, id) pairs: `content`/digest, `snapshots/<snapshotter>`/key, `ingests`/ref.
    pub resources: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_and_prefix_scans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Meta::open(&dir.path().join("m.redb")).expect("open");
        meta.update(|tx| {
            tx.put("i/a/x", &1u32)?;
            tx.put("i/a/y/z", &2u32)?;
            tx.put("i/b/x", &3u32)?;
            Ok(())
        })
        .expect("update");
        let got: Vec<(String, u32)> = meta.list("i/a/").expect("list");
        assert_eq!(got, vec![("x".into(), 1), ("y/z".into(), 2)]);
        let r: Result<(), _> = meta.update(|tx| {
            tx.put("i/a/q", &9u32)?;
            Err(errdefs::Error::invalid("abort"))
        });
        assert!(r.is_err());
        assert!(meta.get::<u32>("i/a/q").expect("get").is_none());
    }
}
