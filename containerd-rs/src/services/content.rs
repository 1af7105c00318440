//! containerd.services.content.v1.Content: blobs on disk, per-namespace records in redb.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use proto::services::content::{self as pb, content_server::Content, WriteAction};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Status, Streaming};

use super::{blocking, ok, Resp};
use crate::content::{digest_hex, IngestState};
use crate::filter::{label_field, Fields, Filter};
use crate::meta::BlobRecord;
use crate::util::{namespace, to_btree, to_hash, update_labels, Ts};
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

const CHUNK: usize = 1 << 20;

fn key(ns: &str, digest: &str) -> String {
    format!("b/{ns}/{digest}")
}

fn info(digest: String, r: &BlobRecord) -> pb::Info {
    pb::Info {
        digest,
        size: r.size,
        created_at: Some(r.created_at.proto()),
        updated_at: Some(r.updated_at.proto()),
        labels: to_hash(&r.labels),
    }
}

fn status(st: &IngestState) -> pb::Status {
    pb::Status {
        started_at: Some(st.started_at.proto()),
        updated_at: Some(st.updated_at.proto()),
        r#ref: st.r#ref.clone(),
        offset: st.offset,
        total: st.total,
        expected: st.expected.clone(),
    }
}

struct Item<'a>(&'a str, &'a BlobRecord);

impl Fields for Item<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match (path.first().map(String::as_str), path.len()) {
            (Some("digest"), 1) => Some(self.0.to_string()),
            (Some("size"), 1) => Some(self.1.size.to_string()),
            _ => label_field(&self.1.labels, path),
        }
    }
}

impl Daemon {
    /// The record of a blob in a namespace, or NotFound.
    pub fn blob_info(&self, ns: &str, digest: &str) -> Result<BlobRecord, errdefs::Error> {
        digest_hex(digest)?;
        self.meta
            .get::<BlobRecord>(&key(ns, digest))?
            .ok_or_else(|| errdefs::Error::not_found(format!("content digest {digest}: not found")))
    }

    /// Records a committed blob in a namespace; AlreadyExists if it was there.
    pub fn record_blob(
        &self,
        ns: &str,
        digest: &str,
        size: i64,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<(), errdefs::Error> {
        self.meta.update(|tx| {
            tx.ensure_namespace(ns)?;
            if tx.exists(&key(ns, digest))? {
                return Err(errdefs::Error::already_exists(format!(
                    "content {digest}: already exists"
                )));
            }
            put_blob(tx, ns, digest, size, labels)
        })
    }

    /// Records a blob made here (Diff.Diff) unless the namespace has it already, and adds it to
    /// `lease` in the same transaction, so no collection can come in between (NotFound if the
    /// lease does not exist).
    pub fn record_leased_blob(
        &self,
        ns: &str,
        lease: Option<&str>,
        digest: &str,
        size: i64,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<(), errdefs::Error> {
        self.meta.update(|tx| {
            if let Some(lease) = lease {
                crate::services::leases::add_resource(tx, ns, lease, "content", digest)?;
            }
            tx.ensure_namespace(ns)?;
            if tx.exists(&key(ns, digest))? {
                return Ok(());
            }
            put_blob(tx, ns, digest, size, labels)
        })
    }
}

fn put_blob(
    tx: &mut crate::meta::Tx<'_>,
    ns: &str,
    digest: &str,
    size: i64,
    labels: std::collections::BTreeMap<String, String>,
) -> Result<(), errdefs::Error> {
    let now = Ts::now();
    tx.put(
        &key(ns, digest),
        &BlobRecord {
            size,
            labels,
            created_at: now,
            updated_at: now,
        },
    )
}

async fn write_loop(
    d: Arc<Daemon>,
    ns: String,
    lease: Option<String>,
    mut input: Streaming<pb::WriteContentRequest>,
    out: tokio::sync::mpsc::Sender<Result<pb::WriteContentResponse, Status>>,
) -> Result<(), Status> {
    let Some(first) = input.next().await else {
        return Ok(());
    };
    let first = first?;
    let r = first.r#ref.clone();
    if r.is_empty() {
        return Err(errdefs::Error::invalid(
            "first message must have a reference: invalid argument",
        )
        .into());
    }
    let _lock = d.content.lock(&ns, &r).map_err(errdefs::Error::from)?;
    if let Some(l) = &lease {
        d.lease_add(&ns, l, "ingests", &r)?;
        // Content that already exists is leased too, as containerd does.
        if !first.expected.is_empty() {
            digest_hex(&first.expected).map_err(errdefs::Error::from)?;
            d.lease_add(&ns, l, "content", &first.expected)?;
        }
    }
    if !first.expected.is_empty() {
        digest_hex(&first.expected).map_err(errdefs::Error::from)?;
        if d.meta
            .get::<BlobRecord>(&key(&ns, &first.expected))?
            .is_some()
        {
            return Err(errdefs::Error::already_exists(format!(
                "content {}: already exists",
                first.expected
            ))
            .into());
        }
        // Shared content: present on disk from another namespace.
        if let Ok(size) = d.content.blob_size(&first.expected) {
            if first.total == 0 || first.total == size {
                d.record_blob(&ns, &first.expected, size, to_btree(&first.labels))?;
                return Err(errdefs::Error::already_exists(format!(
                    "content {}: already exists",
                    first.expected
                ))
                .into());
            }
        }
    }
    let mut st = d
        .content
        .open_ingest(&ns, &r, first.total, &first.expected)
        .map_err(errdefs::Error::from)?;
    let mut next = Some(first);
    while let Some(req) = next.take() {
        if req.total > 0 {
            st.total = req.total;
        }
        if !req.expected.is_empty() {
            st.expected = req.expected.clone();
        }
        let action = WriteAction::try_from(req.action).map_err(|_| {
            Status::invalid_argument(format!("unknown write action {}", req.action))
        })?;
        let mut resp = pb::WriteContentResponse {
            action: req.action,
            started_at: Some(st.started_at.proto()),
            updated_at: Some(Ts::now().proto()),
            offset: st.offset,
            total: st.total,
            digest: String::new(),
        };
        match action {
            WriteAction::Stat => {}
            WriteAction::Write | WriteAction::Commit => {
                if !req.data.is_empty() || (req.offset == 0 && st.offset > 0) {
                    st.offset = d
                        .content
                        .write(&ns, &r, req.offset, &req.data)
                        .map_err(errdefs::Error::from)?;
                }
                resp.offset = st.offset;
                if action == WriteAction::Commit {
                    let _gate = d.content.gate();
                    if let (Some(l), false) = (&lease, st.expected.is_empty()) {
                        d.lease_add(&ns, l, "content", &st.expected)?;
                    }
                    let (digest, size) = d
                        .content
                        .commit(&ns, &r, st.total, &st.expected)
                        .map_err(errdefs::Error::from)?;
                    if let (Some(l), true) = (&lease, st.expected.is_empty()) {
                        d.lease_add(&ns, l, "content", &digest)?;
                    }
                    d.record_blob(&ns, &digest, size, to_btree(&req.labels))?;
                    resp.digest = digest;
                    resp.total = size;
                }
            }
        }
        if out.send(Ok(resp)).await.is_err() {
            return Ok(());
        }
        next = match input.next().await {
            Some(m) => Some(m?),
            None => None,
        };
    }
    Ok(())
}

#[tonic::async_trait]
impl Content for Service {
    async fn info(&self, req: Request<pb::InfoRequest>) -> Resp<pb::InfoResponse> {
        let ns = namespace(&req)?;
        let digest = req.into_inner().digest;
        let r = self.0.blob_info(&ns, &digest)?;
        ok(pb::InfoResponse {
            info: Some(info(digest, &r)),
        })
    }

    async fn update(&self, req: Request<pb::UpdateRequest>) -> Resp<pb::UpdateResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let i = r
            .info
            .ok_or_else(|| errdefs::Error::invalid("info is required: invalid argument"))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        digest_hex(&i.digest).map_err(errdefs::Error::from)?;
        let rec = self.0.meta.update(|tx| {
            let k = key(&ns, &i.digest);
            let mut rec: BlobRecord = tx.get(&k)?.ok_or_else(|| {
                errdefs::Error::not_found(format!("content digest {}: not found", i.digest))
            })?;
            if paths.is_empty() {
                rec.labels = to_btree(&i.labels);
            } else {
                for p in &paths {
                    if p != "labels" && !p.starts_with("labels.") {
                        return Err(errdefs::Error::invalid(format!(
                            "cannot update {p:?} field on content info: invalid argument"
                        )));
                    }
                }
                update_labels(&mut rec.labels, &i.labels, &paths);
            }
            rec.updated_at = Ts::now();
            tx.put(&k, &rec)?;
            Ok(rec)
        })?;
        ok(pb::UpdateResponse {
            info: Some(info(i.digest, &rec)),
        })
    }

    type ListStream = ReceiverStream<Result<pb::ListContentResponse, Status>>;

    async fn list(&self, req: Request<pb::ListContentRequest>) -> Resp<Self::ListStream> {
        let ns = namespace(&req)?;
        let f = Filter::parse_all(&req.into_inner().filters).map_err(errdefs::Error::from)?;
        let all: Vec<pb::Info> = self
            .0
            .meta
            .list::<BlobRecord>(&format!("b/{ns}/"))?
            .into_iter()
            .filter(|(d, r)| f.matches(&Item(d, r)))
            .map(|(d, r)| info(d, &r))
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for chunk in all.chunks(100) {
                if tx
                    .send(Ok(pb::ListContentResponse {
                        info: chunk.to_vec(),
                    }))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        ok(ReceiverStream::new(rx))
    }

    async fn delete(&self, req: Request<pb::DeleteContentRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let digest = req.into_inner().digest;
        digest_hex(&digest).map_err(errdefs::Error::from)?;
        let unused = self.0.meta.update(|tx| {
            if !tx.delete(&key(&ns, &digest))? {
                return Err(errdefs::Error::not_found(format!(
                    "content digest {digest}: not found"
                )));
            }
            let others: Vec<(String, crate::meta::NamespaceRecord)> = tx.list("ns/")?;
            for (other, _) in others {
                if tx.exists(&key(&other, &digest))? {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if unused {
            self.0
                .content
                .remove_blob(&digest)
                .map_err(errdefs::Error::from)?;
        }
        self.0.schedule_gc();
        self.0.events.publish(
            &ns,
            "/content/delete",
            &proto::events::ContentDelete { digest },
        );
        ok(())
    }

    type ReadStream = ReceiverStream<Result<pb::ReadContentResponse, Status>>;

    async fn read(&self, req: Request<pb::ReadContentRequest>) -> Resp<Self::ReadStream> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let rec = self.0.blob_info(&ns, &r.digest)?;
        let mut file = self
            .0
            .content
            .open_blob(&r.digest)
            .map_err(errdefs::Error::from)?;
        if r.offset < 0 || r.offset > rec.size {
            return Err(errdefs::Error::invalid(format!(
                "offset {} out of range: invalid argument",
                r.offset
            ))
            .into());
        }
        let end = if r.size > 0 {
            (r.offset + r.size).min(rec.size)
        } else {
            rec.size
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut off = r.offset;
            if let Err(e) = file.seek(SeekFrom::Start(off as u64)) {
                let _ = tx.blocking_send(Err(Status::internal(format!("seek: {e}"))));
                return;
            }
            let mut buf = vec![0u8; CHUNK];
            while off < end {
                let want = ((end - off) as usize).min(CHUNK);
                let n = match file.read(&mut buf[..want]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!("read: {e}"))));
                        return;
                    }
                };
                let msg = pb::ReadContentResponse {
                    offset: off,
                    data: buf[..n].to_vec(),
                };
                if tx.blocking_send(Ok(msg)).is_err() {
                    return;
                }
                off += n as i64;
            }
        });
        ok(ReceiverStream::new(rx))
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Resp<pb::StatusResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner().r#ref;
        let st = self
            .0
            .content
            .status(&ns, &r)
            .map_err(errdefs::Error::from)?;
        ok(pb::StatusResponse {
            status: Some(status(&st)),
        })
    }

    async fn list_statuses(
        &self,
        req: Request<pb::ListStatusesRequest>,
    ) -> Resp<pb::ListStatusesResponse> {
        let ns = namespace(&req)?;
        let filters = req.into_inner().filters;
        let f = Filter::parse_all(&filters).map_err(errdefs::Error::from)?;
        struct S<'a>(&'a IngestState);
        impl Fields for S<'_> {
            fn field(&self, path: &[String]) -> Option<String> {
                (path.len() == 1 && path[0] == "ref").then(|| self.0.r#ref.clone())
            }
        }
        let d = self.0.clone();
        let statuses = blocking(move || Ok(d.content.statuses(&ns)?)).await?;
        ok(pb::ListStatusesResponse {
            statuses: statuses
                .iter()
                .filter(|s| f.matches(&S(s)))
                .map(status)
                .collect(),
        })
    }

    type WriteStream = ReceiverStream<Result<pb::WriteContentResponse, Status>>;

    async fn write(
        &self,
        req: Request<Streaming<pb::WriteContentRequest>>,
    ) -> Resp<Self::WriteStream> {
        let ns = namespace(&req)?;
        let lease = crate::services::leases::lease_of(&req);
        let input = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let d = self.0.clone();
        tokio::spawn(async move {
            if let Err(st) = write_loop(d, ns, lease, input, tx.clone()).await {
                let _ = tx.send(Err(st)).await;
            }
        });
        ok(ReceiverStream::new(rx))
    }

    async fn abort(&self, req: Request<pb::AbortRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner().r#ref;
        self.0
            .content
            .abort(&ns, &r)
            .map_err(errdefs::Error::from)?;
        ok(())
    }
}
