//! What removes data from the bucket: objects (tablechop's old backups),
//! and the parts of multipart uploads that were never finished (S3 bills
//! them until they are aborted).

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::{Call, S3};
use crate::cloud::CloudError;

/// S3 deletes at most this many keys in one DeleteObjects.
const KEYS_PER_DELETE: usize = 1000;

impl S3 {
    /// Delete keys, 1,000 per request; returns the ones that failed.
    pub(crate) async fn delete(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, String)>, CloudError> {
        let op = "DeleteObjects";
        let mut failed = Vec::new();
        for chunk in keys.chunks(KEYS_PER_DELETE) {
            let ids: Vec<ObjectIdentifier> = chunk
                .iter()
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| CloudError::Transport {
                    op,
                    message: e.to_string(),
                })?;
            let target = match chunk {
                [one] => one.clone(),
                [first, ..] => format!("{} keys from {first}", chunk.len()),
                [] => continue,
            };
            let r = self
                .send(Call::new(op, &target), |_| {
                    self.client
                        .delete_objects()
                        .bucket(&self.bucket)
                        .delete(delete.clone())
                        .send()
                })
                .await?;
            failed.extend(r.errors().iter().map(|e| {
                (
                    e.key().unwrap_or_default().to_string(),
                    e.message().unwrap_or_default().to_string(),
                )
            }));
        }
        Ok(failed)
    }

    /// Abort a multipart upload (best effort, logged).
    pub(crate) async fn abort(&self, key: &str, upload_id: &str) {
        if let Err(e) = self.abort_multipart_upload(key, upload_id).await {
            tracing::warn!("could not abort the multipart upload of {key}: {e}");
        }
    }

    /// Abort a multipart upload: its parts are deleted (and no longer
    /// billed).
    pub(crate) async fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), CloudError> {
        self.send(Call::new("AbortMultipartUpload", key), |_| {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
        })
        .await
        .map(drop)
    }
}
