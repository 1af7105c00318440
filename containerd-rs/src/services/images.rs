//! containerd.services.images.v1.Images.

use std::sync::Arc;

use proto::services::images::{self as pb, images_server::Images};
use tonic::Request;

use super::{ok, Resp};
use crate::filter::{label_field, Fields, Filter};
use crate::meta::{DescriptorRecord, ImageRecord};
use crate::util::{namespace, to_btree, to_hash, update_labels, Ts};
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

fn key(ns: &str, name: &str) -> String {
    format!("i/{ns}/{name}")
}

pub fn desc_to_pb(d: &DescriptorRecord) -> proto::types::Descriptor {
    proto::types::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: to_hash(&d.annotations),
    }
}

pub fn desc_from_pb(d: &proto::types::Descriptor) -> DescriptorRecord {
    DescriptorRecord {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: to_btree(&d.annotations),
    }
}

fn to_pb(name: String, r: &ImageRecord) -> pb::Image {
    pb::Image {
        name,
        labels: to_hash(&r.labels),
        target: Some(desc_to_pb(&r.target)),
        created_at: Some(r.created_at.proto()),
        updated_at: Some(r.updated_at.proto()),
    }
}

struct Item<'a>(&'a str, &'a ImageRecord);

impl Fields for Item<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match (path.first().map(String::as_str), path.len()) {
            (Some("name"), 1) => Some(self.0.to_string()),
            (Some("target"), 2) => match path[1].as_str() {
                "digest" => Some(self.1.target.digest.clone()),
                "mediatype" => Some(self.1.target.media_type.clone()),
                _ => None,
            },
            _ => label_field(&self.1.labels, path),
        }
    }
}

fn validate(img: &pb::Image) -> Result<DescriptorRecord, errdefs::Error> {
    if img.name.is_empty() {
        return Err(errdefs::Error::invalid(
            "image name must not be empty: invalid argument",
        ));
    }
    let t = img
        .target
        .as_ref()
        .ok_or_else(|| errdefs::Error::invalid("image target must be set: invalid argument"))?;
    crate::content::digest_hex(&t.digest).map_err(errdefs::Error::from)?;
    if t.media_type.is_empty() {
        return Err(errdefs::Error::invalid(
            "image target media type must be set: invalid argument",
        ));
    }
    Ok(desc_from_pb(t))
}

#[tonic::async_trait]
impl Images for Service {
    async fn get(&self, req: Request<pb::GetImageRequest>) -> Resp<pb::GetImageResponse> {
        let ns = namespace(&req)?;
        let name = req.into_inner().name;
        let r: ImageRecord = self
            .0
            .meta
            .get(&key(&ns, &name))?
            .ok_or_else(|| errdefs::Error::not_found(format!("image \"{name}\": not found")))?;
        ok(pb::GetImageResponse {
            image: Some(to_pb(name, &r)),
        })
    }

    async fn list(&self, req: Request<pb::ListImagesRequest>) -> Resp<pb::ListImagesResponse> {
        let ns = namespace(&req)?;
        let f = Filter::parse_all(&req.into_inner().filters).map_err(errdefs::Error::from)?;
        let images = self
            .0
            .meta
            .list::<ImageRecord>(&format!("i/{ns}/"))?
            .into_iter()
            .filter(|(n, r)| f.matches(&Item(n, r)))
            .map(|(n, r)| to_pb(n, &r))
            .collect();
        ok(pb::ListImagesResponse { images })
    }

    async fn create(&self, req: Request<pb::CreateImageRequest>) -> Resp<pb::CreateImageResponse> {
        let ns = namespace(&req)?;
        let img = req
            .into_inner()
            .image
            .ok_or_else(|| errdefs::Error::invalid("image is required: invalid argument"))?;
        let target = validate(&img)?;
        let now = Ts::now();
        let rec = ImageRecord {
            labels: to_btree(&img.labels),
            target,
            created_at: now,
            updated_at: now,
        };
        self.0.meta.update(|tx| {
            tx.ensure_namespace(&ns)?;
            let k = key(&ns, &img.name);
            if tx.exists(&k)? {
                return Err(errdefs::Error::already_exists(format!(
                    "image \"{}\": already exists",
                    img.name
                )));
            }
            tx.put(&k, &rec)
        })?;
        self.0.events.publish(
            &ns,
            "/images/create",
            &proto::events::ImageCreate {
                name: img.name.clone(),
                labels: img.labels.clone(),
            },
        );
        ok(pb::CreateImageResponse {
            image: Some(to_pb(img.name, &rec)),
        })
    }

    async fn update(&self, req: Request<pb::UpdateImageRequest>) -> Resp<pb::UpdateImageResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let img = r
            .image
            .ok_or_else(|| errdefs::Error::invalid("image is required: invalid argument"))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let rec = self.0.meta.update(|tx| {
            let k = key(&ns, &img.name);
            let mut rec: ImageRecord = tx.get(&k)?.ok_or_else(|| {
                errdefs::Error::not_found(format!("image \"{}\": not found", img.name))
            })?;
            if paths.is_empty() {
                rec.target = validate(&img)?;
                rec.labels = to_btree(&img.labels);
            } else {
                for p in &paths {
                    match p.as_str() {
                        "labels" => rec.labels = to_btree(&img.labels),
                        "target" => rec.target = validate(&img)?,
                        "annotations" => {
                            if let Some(t) = &img.target {
                                rec.target.annotations = to_btree(&t.annotations);
                            }
                        }
                        p if p.starts_with("labels.") => {
                            update_labels(&mut rec.labels, &img.labels, &[p.to_string()]);
                        }
                        p if p.starts_with("annotations.") => {
                            let ak = &p["annotations.".len()..];
                            match img.target.as_ref().and_then(|t| t.annotations.get(ak)) {
                                Some(v) => {
                                    rec.target.annotations.insert(ak.to_string(), v.clone());
                                }
                                None => {
                                    rec.target.annotations.remove(ak);
                                }
                            }
                        }
                        other => {
                            return Err(errdefs::Error::invalid(format!(
                                "cannot update {other:?} field on image {:?}: invalid argument",
                                img.name
                            )))
                        }
                    }
                }
            }
            rec.updated_at = Ts::now();
            tx.put(&k, &rec)?;
            Ok(rec)
        })?;
        self.0.events.publish(
            &ns,
            "/images/update",
            &proto::events::ImageUpdate {
                name: img.name.clone(),
                labels: to_hash(&rec.labels),
            },
        );
        ok(pb::UpdateImageResponse {
            image: Some(to_pb(img.name, &rec)),
        })
    }

    async fn delete(&self, req: Request<pb::DeleteImageRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let name = r.name.clone();
        self.0.meta.update(|tx| {
            let k = key(&ns, &name);
            let rec: ImageRecord = tx
                .get(&k)?
                .ok_or_else(|| errdefs::Error::not_found(format!("image \"{name}\": not found")))?;
            if let Some(t) = &r.target {
                if t.digest != rec.target.digest {
                    return Err(errdefs::Error::precondition(format!(
                        "image {name} has target {}, not {}: failed precondition",
                        rec.target.digest, t.digest
                    )));
                }
            }
            tx.delete(&k)?;
            Ok(())
        })?;
        self.0.events.publish(
            &ns,
            "/images/delete",
            &proto::events::ImageDelete { name: name.clone() },
        );
        if r.sync {
            let d = self.0.clone();
            super::blocking(move || crate::gc::collect(&d).map(|_| ())).await?;
        } else {
            self.0.schedule_gc();
        }
        ok(())
    }
}
