//! Persistent state in redb (`<data-root>/engine.redb`): one table of container records.
use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

use crate::types::ContainerRecord;

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("redb: {0}")]
    Db(String),
    #[error("decode record {id}: {source}")]
    Decode {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

fn dbe<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> Self {
        crate::error::ApiError::io("store", e)
    }
}

/// The container store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // Create the table only when it is missing: a write transaction costs fsyncs, and
        // start-up time is what `docker info` users wait for after a restart.
        let exists = db.begin_read().map_err(dbe)?.open_table(CONTAINERS).is_ok();
        if !exists {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(CONTAINERS).map_err(dbe)?;
            tx.commit().map_err(dbe)?;
        }
        Ok(Store { db })
    }

    /// Writes (inserts or replaces) one record.
    pub fn put(&self, rec: &ContainerRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(rec).map_err(dbe)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(CONTAINERS).map_err(dbe)?;
            t.insert(rec.id.as_str(), bytes.as_slice()).map_err(dbe)?;
        }
        tx.commit().map_err(dbe)
    }

    /// Deletes one record (no error when it is absent).
    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(CONTAINERS).map_err(dbe)?;
            t.remove(id).map_err(dbe)?;
        }
        tx.commit().map_err(dbe)
    }

    /// Every record.
    pub fn all(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(dbe)?;
        let t = tx.open_table(CONTAINERS).map_err(dbe)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(dbe)? {
            let (k, v) = item.map_err(dbe)?;
            let rec = serde_json::from_slice(v.value()).map_err(|source| StoreError::Decode {
                id: k.value().to_string(),
                source,
            })?;
            out.push(rec);
        }
        Ok(out)
    }
}

fn db_err(e: redb::TransactionError) -> StoreError {
    StoreError::Db(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ContainerConfig, HostConfig, State};

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("engine.redb");
        let rec = ContainerRecord {
            id: "abc".into(),
            name: "/x".into(),
            created: crate::types::now_rfc3339(),
            path: "sh".into(),
            args: vec![],
            config: ContainerConfig::default(),
            host_config: HostConfig::default(),
            image: "sha256:00".into(),
            snapshot_parent: String::new(),
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            runtime: "runc".into(),
            has_been_started: false,
        };
        {
            let s = Store::open(&path).expect("open");
            s.put(&rec).expect("put");
        }
        let s = Store::open(&path).expect("reopen");
        let all = s.all().expect("all");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "/x");
        s.delete("abc").expect("delete");
        assert!(s.all().expect("all").is_empty());
    }
}
