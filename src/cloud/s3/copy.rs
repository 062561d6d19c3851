//! New metadata for an object already uploaded (the whole file's MD5,
//! known only once every byte went up). S3 cannot change metadata in
//! place, so the object is copied onto itself inside S3: nothing is read
//! or sent from here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::types::MetadataDirective;
use tokio::sync::Semaphore;

use super::multipart::part_number;
use super::{Call, Multipart, PutOptions, S3};
use crate::cloud::CloudError;

/// S3 copies inside itself at well over this (tens to hundreds of MiB/s);
/// a copy gets the time to copy at it besides the stall timeout, as S3
/// says nothing until the copy is done.
const COPY_RATE: u64 = 16 << 20;

/// The operation of a copied part, named once for its errors.
const UPLOAD_PART_COPY: &str = "UploadPartCopy";

/// The time a copy of `bytes` inside S3 is given (see [`COPY_RATE`]).
fn copy_time(bytes: u64) -> Duration {
    Duration::from_secs(bytes / COPY_RATE)
}

/// An object to copy onto itself with new metadata: what each way of
/// copying it needs.
struct Recopy<'a> {
    key: &'a str,
    /// `x-amz-copy-source`, from [`copy_source`].
    source: String,
    /// The object as this process wrote it: the copy's precondition.
    etag: &'a str,
    size: u64,
    metadata: &'a HashMap<String, String>,
    opts: &'a PutOptions,
}

impl S3 {
    /// Give an object new user metadata. S3 cannot change metadata in
    /// place: the object is copied onto itself inside S3 (nothing is read
    /// or sent from here), by one CopyObject up to `single_max` bytes,
    /// else in ranges of `part` bytes, `permits` at once. `etag` (the
    /// object as this process wrote it) guards against copying an object
    /// someone replaced meanwhile.
    // The copy's pieces come from the caller, as for the upload.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn replace_metadata(
        &self,
        key: &str,
        etag: &str,
        size: u64,
        metadata: &HashMap<String, String>,
        opts: &PutOptions,
        single_max: u64,
        part: u64,
        permits: Arc<Semaphore>,
    ) -> Result<(), CloudError> {
        let copy = Recopy {
            key,
            source: copy_source(&self.bucket, key),
            etag,
            size,
            metadata,
            opts,
        };
        if size <= single_max {
            self.copy_whole(&copy).await
        } else {
            self.copy_in_parts(&copy, part, permits).await
        }
    }

    /// One CopyObject, which replaces the metadata as it copies: the way
    /// for an object no larger than one copy request may take.
    async fn copy_whole(&self, copy: &Recopy<'_>) -> Result<(), CloudError> {
        let call = Call::new("CopyObject", copy.key).working(copy_time(copy.size));
        self.send(call, |_| {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(copy.key)
                .copy_source(&copy.source)
                .set_copy_source_if_match(if_match(copy.etag))
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(Some(copy.metadata.clone()))
                .set_storage_class(copy.opts.class())
                .set_server_side_encryption(copy.opts.encryption())
                .set_ssekms_key_id(copy.opts.kms_key())
                .send()
        })
        .await
        .map(drop)
    }

    /// A larger object: a multipart upload (which takes the new metadata
    /// at its start) whose parts are ranges copied from the object itself;
    /// completed once every part is copied, else aborted, so a failed copy
    /// leaves the object as it was.
    async fn copy_in_parts(
        &self,
        copy: &Recopy<'_>,
        part: u64,
        permits: Arc<Semaphore>,
    ) -> Result<(), CloudError> {
        // Copied parts carry no CRC32 of their own.
        let upload = self
            .create_multipart(copy.key, copy.metadata, copy.opts, false)
            .await?;
        let upload = Arc::new(upload);
        match copy_ranges(&upload, copy, part, permits).await {
            Ok(()) => upload.complete().await.map(drop),
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }
}

/// Copy the object in ranges of `part` bytes, as parts of `upload`, as
/// many at once as `permits` allows. Every part started is waited for
/// before the answer (the first error, if any), so nothing is still
/// copying when the upload is completed or aborted.
async fn copy_ranges(
    upload: &Arc<Multipart>,
    copy: &Recopy<'_>,
    part: u64,
    permits: Arc<Semaphore>,
) -> Result<(), CloudError> {
    let mut tasks = tokio::task::JoinSet::new();
    let count = copy.size.div_ceil(part).max(1);
    let mut result = Ok(());
    for n in 0..count {
        let first = n * part;
        let last = (first + part).min(copy.size) - 1;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            result = Err(shutting_down(UPLOAD_PART_COPY));
            break;
        };
        let (upload, source, etag) = (upload.clone(), copy.source.clone(), copy.etag.to_string());
        tasks.spawn(async move {
            let _permit = permit;
            upload.copy_part(n + 1, &source, &etag, first, last).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        let r = done.unwrap_or_else(|e| {
            Err(CloudError::Transport {
                op: UPLOAD_PART_COPY,
                message: e.to_string(),
            })
        });
        if result.is_ok() {
            result = r;
        }
    }
    result
}

impl Multipart {
    /// One part copied inside S3 from bytes `first..=last` of `source`
    /// (`bucket/key`, encoded), if it still has ETag `etag`.
    async fn copy_part(
        &self,
        number: u64,
        source: &str,
        etag: &str,
        first: u64,
        last: u64,
    ) -> Result<(), CloudError> {
        let number = part_number(number);
        let target = self.part_target(number);
        let call = Call::new(UPLOAD_PART_COPY, &target).working(copy_time(last + 1 - first));
        let r = self
            .s3
            .send(call, |_| {
                self.s3
                    .client
                    .upload_part_copy()
                    .bucket(&self.s3.bucket)
                    .key(&self.key)
                    .upload_id(&self.upload_id)
                    .part_number(number)
                    .copy_source(source)
                    .set_copy_source_if_match(if_match(etag))
                    .copy_source_range(format!("bytes={first}-{last}"))
                    .send()
            })
            .await?;
        self.done(number, r.copy_part_result().and_then(|p| p.e_tag()), None);
        Ok(())
    }
}

/// A copy's precondition: the ETag, when S3 gave one.
fn if_match(etag: &str) -> Option<String> {
    (!etag.is_empty()).then(|| etag.to_string())
}

/// The error of a copy that could not start its next part because its
/// semaphore was closed: no more work is to start.
fn shutting_down(op: &'static str) -> CloudError {
    CloudError::Transport {
        op,
        message: "shutting down".into(),
    }
}

/// `x-amz-copy-source`: the bucket and the key, the key percent-encoded
/// (its `/` kept), as S3 expects.
fn copy_source(bucket: &str, key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!(
        "{bucket}/{}",
        percent_encoding::utf8_percent_encode(key, KEEP)
    )
}
