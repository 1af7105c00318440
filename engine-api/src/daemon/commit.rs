//! `POST /commit`: the container (paused unless told otherwise, as dockerd does) becomes an
//! image; the image work is in `images::commit`.
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::{Ctr, Daemon};
use crate::error::{ApiError, Result};
use crate::images::CommitOptions;

/// The query and body of `POST /commit`.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub name: Option<String>,
    pub comment: String,
    pub author: String,
    pub changes: Vec<String>,
    pub pause: bool,
    /// The request body's container config (`null` or absent for the CLI).
    pub overrides: Value,
}

impl Daemon {
    /// Commits a container; returns the new image ID.
    pub async fn commit(self: &Arc<Self>, c: &Arc<Ctr>, req: CommitRequest) -> Result<String> {
        let rec = c.record();
        if rec.state.status == "removing" || rec.state.dead {
            return Err(ApiError::conflict(format!(
                "You cannot commit container {} which is being removed",
                rec.id
            )));
        }
        let config =
            serde_json::to_value(&rec.config).map_err(|e| ApiError::io("encode config", e))?;
        let opts = CommitOptions {
            container_id: rec.id.clone(),
            snapshot_key: rec.id.clone(),
            image_id: rec.image.clone(),
            config,
            overrides: req.overrides,
            changes: req.changes,
            comment: req.comment.clone(),
            author: req.author,
            name: req.name.clone(),
        };
        let pause = req.pause && rec.state.running && !rec.state.paused;
        if pause {
            self.pause(c, true).await?;
        }
        let result = self.images.commit(&opts).await;
        if let Ok(id) = &result {
            // dockerd logs the commit before its deferred unpause.
            let mut attrs = BTreeMap::new();
            attrs.insert("comment".to_string(), req.comment);
            attrs.insert("imageID".to_string(), id.clone());
            attrs.insert(
                "imageRef".to_string(),
                req.name
                    .as_deref()
                    .map(crate::reference::familiar)
                    .unwrap_or_default(),
            );
            self.emit_container_with(c, "commit", attrs);
        }
        if pause {
            if let Err(e) = self.pause(c, false).await {
                tracing::warn!(container_id = %rec.id, error = %e, "unpause after commit");
            }
        }
        result
    }
}
