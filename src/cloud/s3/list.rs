//! What is under a prefix: the objects (and the "directories" one level
//! down), and the multipart uploads started and never finished. Both are
//! read page by page until S3 says there is no more.

use super::{Call, S3};
use crate::cloud::{to_chrono, CloudError};

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A multipart upload that was started and neither completed nor aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MultipartUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<chrono::DateTime<chrono::Utc>>,
}

impl S3 {
    /// Objects under `prefix` (all pages); with a delimiter, also the
    /// "directories" one level down.
    pub(crate) async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<(Vec<ObjectInfo>, Vec<String>), CloudError> {
        let (mut objects, mut dirs) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        let target = format!("prefix {prefix}");
        loop {
            let page = token.take();
            let r = self
                .send(Call::new("ListObjectsV2", &target), |_| {
                    self.client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(prefix)
                        .set_delimiter(delimiter.map(str::to_string))
                        .set_continuation_token(page.clone())
                        .send()
                })
                .await?;
            for o in r.contents() {
                let Some(key) = o.key() else { continue };
                objects.push(ObjectInfo {
                    key: key.to_string(),
                    size: o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    last_modified: o.last_modified().and_then(to_chrono),
                });
            }
            dirs.extend(
                r.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string)),
            );
            match r.next_continuation_token() {
                Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok((objects, dirs)),
            }
        }
    }

    /// The unfinished multipart uploads of keys under `prefix` (all pages).
    pub(crate) async fn list_multipart_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<MultipartUpload>, CloudError> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        let target = format!("prefix {prefix}");
        loop {
            let (keys, ids) = (key_marker.take(), id_marker.take());
            let r = self
                .send(Call::new("ListMultipartUploads", &target), |_| {
                    self.client
                        .list_multipart_uploads()
                        .bucket(&self.bucket)
                        .prefix(prefix)
                        .set_key_marker(keys.clone())
                        .set_upload_id_marker(ids.clone())
                        .send()
                })
                .await?;
            for u in r.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                out.push(MultipartUpload {
                    key: key.to_string(),
                    upload_id: id.to_string(),
                    initiated: u.initiated().and_then(to_chrono),
                });
            }
            if r.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = r.next_key_marker().map(str::to_string);
            id_marker = r.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(out);
            }
        }
    }
}
