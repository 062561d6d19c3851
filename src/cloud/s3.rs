//! S3 calls for the file commands: HEAD, single PUTs from memory (small
//! files, the JSON indexes), multipart uploads whose parts the caller
//! reads once and hands over (`Multipart`), and the copy of an object onto
//! itself that stamps metadata known only after the upload (the whole
//! file's MD5). SDK types stay here.
//!
//! Checksums: a PUT carries Content-MD5 (S3 refuses a body that does not
//! match), so the SDK's own request checksum (an `aws-chunked` body with a
//! CRC32 trailer, one more pass over every byte) is turned off for it;
//! parts, which have no MD5, carry a CRC32 computed by the caller as it
//! reads them (the upload is created for it). Those checksums are in
//! signed headers, so the body itself is sent unsigned (`UNSIGNED-PAYLOAD`,
//! as aws-cli does on S3): signing it would be a SHA-256 over every byte
//! uploaded, a fifth of the upload's CPU.
//! Downloads are checked by their MD5 against `md5sum`, not by the SDK.
//!
//! Every call goes through one wrapper, `S3::call`: each attempt runs
//! under the stall watch of `cloud::stall` (no progress for the stall
//! timeout: abandoned and tried again, then one error naming the
//! operation and the key), around the SDK's own retries of errors S3
//! answers with.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart, MetadataDirective,
    ServerSideEncryption, StorageClass,
};
use aws_sdk_s3::Client;
use tokio::sync::Semaphore;

use super::stall::{backoff, watched, Patience, Progress, ProgressBody};
use super::{cloud_error, is_not_found, to_chrono, CloudError};

/// S3 refuses more parts than this.
pub(crate) const MAX_PARTS: u64 = 10_000;
/// And parts smaller than this (but the last).
pub(crate) const MIN_PART: u64 = 5 << 20;

/// How objects are stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct PutOptions {
    pub storage_class: Option<String>,
    /// `AES256` or `aws:kms`.
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
}

/// The same three settings go on every request that writes an object
/// (PutObject, CreateMultipartUpload, CopyObject): `set_storage_class(
/// opts.class())`, `set_server_side_encryption(opts.encryption())`,
/// `set_ssekms_key_id(opts.kms_key())`.
impl PutOptions {
    fn class(&self) -> Option<StorageClass> {
        self.storage_class.as_deref().map(StorageClass::from)
    }

    fn encryption(&self) -> Option<ServerSideEncryption> {
        self.sse.as_deref().map(ServerSideEncryption::from)
    }

    fn kms_key(&self) -> Option<String> {
        self.sse_kms_key_id.clone()
    }
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a GET brought: its metadata and the MD5 of what was written.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub metadata: HashMap<String, String>,
    pub etag: Option<String>,
    pub md5_hex: String,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
    /// Bytes written, and the size S3 stated for the object.
    pub written: u64,
    pub stated_size: Option<u64>,
    /// Why the ETag is not the MD5 of the bytes, when it is not: S3's
    /// ETag of a multipart, SSE-KMS or SSE-C object is something else.
    pub etag_not_md5: Option<&'static str>,
    /// The full-object checksum S3 stored, which the SDK checked against
    /// the bytes (asked for with `checksums`): its algorithm.
    pub checked_checksum: Option<&'static str>,
}

/// What a PUT from memory says about its body.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Content<'a> {
    pub content_type: Option<&'a str>,
    /// Content-MD5 (base64), if already known.
    pub md5: Option<&'a str>,
}

/// What HEAD says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectHead {
    pub size: u64,
    pub metadata: HashMap<String, String>,
}

/// A multipart upload that was started and neither completed nor aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MultipartUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Clone)]
pub(crate) struct S3 {
    client: Client,
    bucket: String,
    patience: Patience,
}

/// One S3 call, for its stall watch and its error: the operation, what
/// it is about (a key, a prefix, the bucket), and how long S3 may work
/// before it answers (a copy inside S3: nothing moves meanwhile).
#[derive(Debug, Clone, Copy)]
struct Call<'a> {
    op: &'static str,
    target: &'a str,
    work: Duration,
}

impl<'a> Call<'a> {
    fn new(op: &'static str, target: &'a str) -> Self {
        Call {
            op,
            target,
            work: Duration::ZERO,
        }
    }

    fn working(self, work: Duration) -> Self {
        Call { work, ..self }
    }
}

/// S3 copies inside itself at well over this (tens to hundreds of MiB/s);
/// a copy gets the time to copy at it besides the stall timeout, as S3
/// says nothing until the copy is done.
const COPY_RATE: u64 = 16 << 20;

/// The time a copy of `bytes` inside S3 is given (see [`COPY_RATE`]).
fn copy_time(bytes: u64) -> Duration {
    Duration::from_secs(bytes / COPY_RATE)
}

/// S3 assembles a completed multipart upload before it answers: this per
/// part, besides the stall timeout.
const COMPLETE_PER_PART: Duration = Duration::from_millis(100);

/// A body from memory whose chunks, as the connection takes them, are
/// progress for the stall watch (retryable: each attempt sends it again).
fn progress_body(bytes: bytes::Bytes, progress: Arc<Progress>) -> ByteStream {
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(ProgressBody::new(bytes.clone(), progress.clone()))
    }))
}

/// Lower-case hex, as tablesnap's `md5sum` metadata writes a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64, as S3 wants Content-MD5.
pub(crate) fn base64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
}

/// Whether an endpoint needs path-style addressing (IP addresses and
/// localhost cannot carry the bucket as a subdomain).
pub(crate) fn needs_path_style(endpoint: &str) -> bool {
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[')
}

impl S3 {
    /// A client for `bucket`; `endpoint` overrides the SDK's (which already
    /// honours `AWS_ENDPOINT_URL`).
    pub(crate) fn new(
        config: &super::AwsConfig,
        bucket: &str,
        endpoint: Option<&str>,
        force_path_style: bool,
        patience: Patience,
    ) -> Self {
        let config = config.sdk();
        let mut b = aws_sdk_s3::config::Builder::from(config);
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| config.endpoint_url().map(str::to_string));
        if let Some(e) = &endpoint {
            b = b.endpoint_url(e);
        }
        let path_style = force_path_style || endpoint.as_deref().is_some_and(needs_path_style);
        b = b
            .force_path_style(path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        Self {
            client: Client::from_conf(b.build()),
            bucket: bucket.to_string(),
            patience,
        }
    }

    /// Run `attempt` (which makes the call afresh each time, given the
    /// attempt's [`Progress`] to stamp) under the stall watch: an attempt
    /// that shows no progress for the stall timeout (plus the call's
    /// `work`) is dropped, which cancels its request, and tried again
    /// after a short pause, up to the attempts of [`Patience`]; then
    /// [`CloudError::Stalled`] names the
    /// operation and its target. Errors S3 answers with are the SDK's to
    /// retry and come back as they are. A repeated call is harmless: HEADs
    /// and listings read; PUTs, copies (conditional on the ETag) and
    /// deletes give the same result twice; a second CreateMultipartUpload
    /// leaves the first unfinished, which the next start aborts, and a
    /// CompleteMultipartUpload S3 already carried out is answered again.
    async fn call<T, F, Fut>(&self, call: Call<'_>, mut attempt: F) -> Result<T, CloudError>
    where
        F: FnMut(Arc<Progress>) -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let Patience { stall, attempts } = self.patience;
        let attempts = attempts.max(1);
        let mut n = 1;
        loop {
            let progress = Progress::new();
            if let Some(done) =
                watched(attempt(progress.clone()), &progress, stall, call.work).await
            {
                return done;
            }
            let after = stall.saturating_add(call.work);
            if n >= attempts {
                return Err(CloudError::Stalled {
                    op: call.op,
                    target: call.target.to_string(),
                    after,
                    attempts,
                });
            }
            tracing::warn!(
                "{} of {}: nothing sent or received for {}s (stalled); trying again ({n}/{attempts})",
                call.op,
                call.target,
                after.as_secs_f32()
            );
            tokio::time::sleep(backoff(n)).await;
            n += 1;
        }
    }

    /// Fail fast on a missing bucket or bad credentials.
    pub(crate) async fn check_bucket(&self) -> Result<(), CloudError> {
        let target = format!("bucket {}", self.bucket);
        self.call(Call::new("HeadBucket", &target), |_| {
            let req = self.client.head_bucket().bucket(&self.bucket);
            async move {
                req.send()
                    .await
                    .map(drop)
                    .map_err(|e| cloud_error("HeadBucket", e))
            }
        })
        .await
    }

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
                .call(Call::new("ListObjectsV2", &target), |_| {
                    let req = self
                        .client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(prefix)
                        .set_delimiter(delimiter.map(str::to_string))
                        .set_continuation_token(page.clone());
                    async move {
                        req.send()
                            .await
                            .map_err(|e| cloud_error("ListObjectsV2", e))
                    }
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

    /// A small object into memory (indexes).
    pub(crate) async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, CloudError> {
        self.get_bytes_with_metadata(key).await.map(|(b, _)| b)
    }

    /// A small object and its user metadata (`x-amz-meta-*`): tableslurp
    /// tells our indexes from tablesnap 1.2.1's by it.
    pub(crate) async fn get_bytes_with_metadata(
        &self,
        key: &str,
    ) -> Result<(Vec<u8>, HashMap<String, String>), CloudError> {
        self.call(Call::new("GetObject", key), |progress| {
            let req = self.client.get_object().bucket(&self.bucket).key(key);
            async move {
                let r = req.send().await.map_err(|e| cloud_error("GetObject", e))?;
                progress.stamp();
                let metadata = r.metadata.unwrap_or_default();
                let mut body = r.body;
                let mut bytes = Vec::new();
                while let Some(chunk) =
                    body.try_next().await.map_err(|e| CloudError::Transport {
                        op: "GetObject",
                        message: e.to_string(),
                    })?
                {
                    progress.stamp();
                    bytes.extend_from_slice(&chunk);
                }
                Ok((bytes, metadata))
            }
        })
        .await
    }

    /// Stream an object into `out` (the file the caller created safely,
    /// `O_EXCL|O_NOFOLLOW`; `file` only names it), hashing it on the way.
    /// `Ok(None)` if there is no such object. Waiting longer than the
    /// stall timeout for the reply or for the next bytes of the body is a
    /// stall, and the download starts again from an emptied file: the
    /// SDK's read timeout does not cover the body, so a stalled download
    /// would otherwise hang forever. With `checksums`, S3 sends the
    /// object's stored full-object checksum (if it has one) and the SDK
    /// checks the bytes against it (a mismatch fails the body); only asked
    /// for where nothing better proves the bytes.
    pub(crate) async fn get_to_file(
        &self,
        key: &str,
        out: &std::fs::File,
        file: &Path,
        checksums: bool,
    ) -> Result<Option<Fetched>, CloudError> {
        use md5::Digest;
        use tokio::io::{AsyncSeekExt, AsyncWriteExt};
        let io = |e: std::io::Error| CloudError::Transport {
            op: "GetObject",
            message: format!("writing {}: {e}", file.display()),
        };
        self.call(Call::new("GetObject", key), |progress| {
            let req = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .set_checksum_mode(checksums.then_some(aws_sdk_s3::types::ChecksumMode::Enabled));
            async move {
                // What an earlier attempt wrote goes.
                let mut out = tokio::fs::File::from_std(out.try_clone().map_err(io)?);
                out.set_len(0).await.map_err(io)?;
                out.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
                let r = match req.send().await {
                    Ok(r) => r,
                    Err(e) if is_not_found(&e) => return Ok(None),
                    Err(e) => return Err(cloud_error("GetObject", e)),
                };
                progress.stamp();
                let mut hash = md5::Md5::new();
                let etag = r.e_tag.as_deref().map(|e| e.trim_matches('"').to_string());
                let etag_not_md5 = etag_not_md5(
                    etag.as_deref().unwrap_or(""),
                    r.server_side_encryption.as_ref().map(|s| s.as_str()),
                    r.sse_customer_algorithm.is_some(),
                );
                let checked_checksum = full_object_checksum(&r);
                let stated_size = r.content_length.and_then(|n| u64::try_from(n).ok());
                let mut written = 0u64;
                let mut body = r.body;
                while let Some(chunk) =
                    body.try_next().await.map_err(|e| CloudError::Transport {
                        op: "GetObject",
                        message: e.to_string(),
                    })?
                {
                    progress.stamp();
                    hash.update(&chunk);
                    written += chunk.len() as u64;
                    out.write_all(&chunk).await.map_err(io)?;
                }
                out.sync_all().await.map_err(io)?;
                Ok(Some(Fetched {
                    metadata: r.metadata.unwrap_or_default(),
                    etag,
                    md5_hex: hex(&hash.finalize()),
                    last_modified: r.last_modified.as_ref().and_then(to_chrono),
                    written,
                    stated_size,
                    etag_not_md5,
                    checked_checksum,
                }))
            }
        })
        .await
    }

    /// Delete keys, 1,000 per request; returns the ones that failed.
    pub(crate) async fn delete(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, String)>, CloudError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let mut failed = Vec::new();
        for chunk in keys.chunks(1000) {
            let ids: Vec<ObjectIdentifier> = chunk
                .iter()
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| CloudError::Transport {
                    op: "DeleteObjects",
                    message: e.to_string(),
                })?;
            let target = match chunk {
                [one] => one.clone(),
                [first, ..] => format!("{} keys from {first}", chunk.len()),
                [] => continue,
            };
            let r = self
                .call(Call::new("DeleteObjects", &target), |_| {
                    let req = self
                        .client
                        .delete_objects()
                        .bucket(&self.bucket)
                        .delete(delete.clone());
                    async move {
                        req.send()
                            .await
                            .map_err(|e| cloud_error("DeleteObjects", e))
                    }
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

    /// HEAD; `None` if there is no such object.
    pub(crate) async fn head(&self, key: &str) -> Result<Option<ObjectHead>, CloudError> {
        self.call(Call::new("HeadObject", key), |_| {
            let req = self.client.head_object().bucket(&self.bucket).key(key);
            async move {
                match req.send().await {
                    Ok(r) => Ok(Some(ObjectHead {
                        size: r
                            .content_length()
                            .and_then(|n| u64::try_from(n).ok())
                            .unwrap_or(0),
                        metadata: r.metadata().cloned().unwrap_or_default(),
                    })),
                    Err(e) if is_not_found(&e) => Ok(None),
                    Err(e) => Err(cloud_error("HeadObject", e)),
                }
            }
        })
        .await
    }

    /// An object from memory (indexes, small files), with user metadata
    /// and Content-MD5 (base64; computed here when not given).
    pub(crate) async fn put_bytes(
        &self,
        key: &str,
        body: Vec<u8>,
        content: Content<'_>,
        metadata: &HashMap<String, String>,
        opts: &PutOptions,
    ) -> Result<(), CloudError> {
        let md5 = match content.md5 {
            Some(m) => m.to_string(),
            None => {
                use md5::{Digest, Md5};
                base64(Md5::digest(&body).as_slice())
            }
        };
        let body = bytes::Bytes::from(body);
        self.call(Call::new("PutObject", key), |progress| {
            let req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .set_content_type(content.content_type.map(str::to_string))
                .content_md5(&md5)
                .set_metadata(Some(metadata.clone()))
                .body(progress_body(body.clone(), progress));
            let req = apply_put(req, opts).customize().disable_payload_signing();
            async move {
                req.send()
                    .await
                    .map(drop)
                    .map_err(|e| cloud_error("PutObject", e))
            }
        })
        .await
    }

    /// Start a multipart upload of `key` with its user metadata (S3 takes
    /// metadata only here, before any part).
    pub(crate) async fn start_multipart(
        &self,
        key: &str,
        metadata: &HashMap<String, String>,
        opts: &PutOptions,
    ) -> Result<Multipart, CloudError> {
        self.create_multipart(key, metadata, opts, true).await
    }

    /// `part_crc32`: the parts will carry a CRC32 each (`put_part`). S3
    /// refuses part checksums an upload was not created for, and then
    /// wants each part's in the completion; copied parts have none.
    async fn create_multipart(
        &self,
        key: &str,
        metadata: &HashMap<String, String>,
        opts: &PutOptions,
        part_crc32: bool,
    ) -> Result<Multipart, CloudError> {
        let upload = self
            .call(Call::new("CreateMultipartUpload", key), |_| {
                let req = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .set_checksum_algorithm(part_crc32.then_some(ChecksumAlgorithm::Crc32))
                    // Of the parts' checksums, as S3 takes CRC32 by default;
                    // said outright, an emulator that guesses otherwise (moto
                    // 5.2.5 serves a whole-object CRC32 it never computed) is
                    // not asked to.
                    .set_checksum_type(part_crc32.then_some(ChecksumType::Composite))
                    .set_metadata(Some(metadata.clone()))
                    .set_storage_class(opts.class())
                    .set_server_side_encryption(opts.encryption())
                    .set_ssekms_key_id(opts.kms_key());
                async move {
                    req.send()
                        .await
                        .map_err(|e| cloud_error("CreateMultipartUpload", e))
                }
            })
            .await?;
        Ok(Multipart {
            s3: self.clone(),
            key: key.to_string(),
            upload_id: upload.upload_id().unwrap_or_default().to_string(),
            parts: std::sync::Mutex::new(Vec::new()),
        })
    }

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
        let source = copy_source(&self.bucket, key);
        if size <= single_max {
            let call = Call::new("CopyObject", key).working(copy_time(size));
            return self
                .call(call, |_| {
                    let req = self
                        .client
                        .copy_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .copy_source(&source)
                        .set_copy_source_if_match(if_match(etag))
                        .metadata_directive(MetadataDirective::Replace)
                        .set_metadata(Some(metadata.clone()))
                        .set_storage_class(opts.class())
                        .set_server_side_encryption(opts.encryption())
                        .set_ssekms_key_id(opts.kms_key());
                    async move {
                        req.send()
                            .await
                            .map(drop)
                            .map_err(|e| cloud_error("CopyObject", e))
                    }
                })
                .await;
        }
        let upload = Arc::new(self.create_multipart(key, metadata, opts, false).await?);
        let mut tasks = tokio::task::JoinSet::new();
        let count = size.div_ceil(part).max(1);
        let mut result = Ok(());
        for n in 0..count {
            let first = n * part;
            let last = (first + part).min(size) - 1;
            let Ok(permit) = permits.clone().acquire_owned().await else {
                result = Err(shutting_down("UploadPartCopy"));
                break;
            };
            let (upload, source, etag) = (upload.clone(), source.clone(), etag.to_string());
            tasks.spawn(async move {
                let _permit = permit;
                upload.copy_part(n + 1, &source, &etag, first, last).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            let r = done.unwrap_or_else(|e| {
                Err(CloudError::Transport {
                    op: "UploadPartCopy",
                    message: e.to_string(),
                })
            });
            if result.is_ok() {
                result = r;
            }
        }
        match result {
            Ok(()) => upload.complete().await.map(drop),
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
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
        self.call(Call::new("AbortMultipartUpload", key), |_| {
            let req = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id);
            async move {
                req.send()
                    .await
                    .map(drop)
                    .map_err(|e| cloud_error("AbortMultipartUpload", e))
            }
        })
        .await
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
                .call(Call::new("ListMultipartUploads", &target), |_| {
                    let req = self
                        .client
                        .list_multipart_uploads()
                        .bucket(&self.bucket)
                        .prefix(prefix)
                        .set_key_marker(keys.clone())
                        .set_upload_id_marker(ids.clone());
                    async move {
                        req.send()
                            .await
                            .map_err(|e| cloud_error("ListMultipartUploads", e))
                    }
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

/// The CRC32 of a part, computed ahead of its upload (the SDK's own
/// implementation), in the form its header takes.
pub(crate) struct PartCrc(Box<dyn aws_smithy_checksums::http::HttpChecksum>);

impl PartCrc {
    pub(crate) fn new() -> Self {
        PartCrc(aws_smithy_checksums::ChecksumAlgorithm::Crc32.into_impl())
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Base64, as `x-amz-checksum-crc32` carries it.
    pub(crate) fn finish(self) -> String {
        let value = self.0.header_value();
        String::from_utf8_lossy(value.as_bytes()).into_owned()
    }
}

/// A multipart upload under way. Parts go up in any order and at once
/// (`&self`); `complete` makes the object appear whole, `abort` drops the
/// parts, so a failed upload leaves no half object (and nothing billed).
pub(crate) struct Multipart {
    s3: S3,
    key: String,
    upload_id: String,
    parts: std::sync::Mutex<Vec<CompletedPart>>,
}

impl Multipart {
    /// One part from memory, numbered from 1, with the CRC32 of the bytes
    /// it should hold (`PartCrc`, base64) in a header: the checksum is
    /// given, so the SDK sends the body as it is (no `aws-chunked`
    /// re-encoding), and S3 refuses a part that does not match, damaged on
    /// the way or unlike the bytes the CRC was computed from. (The SDK adds
    /// none itself: request checksums are computed only where an operation
    /// requires one.)
    pub(crate) async fn put_part(
        &self,
        number: u64,
        body: Vec<u8>,
        crc32: String,
    ) -> Result<(), CloudError> {
        let number = part_number(number);
        let len = body.len() as u64;
        let body = bytes::Bytes::from(body);
        let target = format!("{} part {number}", self.key);
        let r = self
            .s3
            .call(Call::new("UploadPart", &target), |progress| {
                let req = self
                    .s3
                    .client
                    .upload_part()
                    .bucket(&self.s3.bucket)
                    .key(&self.key)
                    .upload_id(&self.upload_id)
                    .part_number(number)
                    .content_length(i64::try_from(len).unwrap_or(i64::MAX))
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .checksum_crc32(&crc32)
                    .body(progress_body(body.clone(), progress))
                    .customize()
                    .disable_payload_signing();
                async move { req.send().await.map_err(|e| cloud_error("UploadPart", e)) }
            })
            .await?;
        self.done(number, r.e_tag(), Some(crc32));
        Ok(())
    }

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
        let target = format!("{} part {number}", self.key);
        let call = Call::new("UploadPartCopy", &target).working(copy_time(last + 1 - first));
        let r = self
            .s3
            .call(call, |_| {
                let req = self
                    .s3
                    .client
                    .upload_part_copy()
                    .bucket(&self.s3.bucket)
                    .key(&self.key)
                    .upload_id(&self.upload_id)
                    .part_number(number)
                    .copy_source(source)
                    .set_copy_source_if_match(if_match(etag))
                    .copy_source_range(format!("bytes={first}-{last}"));
                async move {
                    req.send()
                        .await
                        .map_err(|e| cloud_error("UploadPartCopy", e))
                }
            })
            .await?;
        self.done(number, r.copy_part_result().and_then(|p| p.e_tag()), None);
        Ok(())
    }

    fn done(&self, number: i32, etag: Option<&str>, crc32: Option<String>) {
        let part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(etag.map(str::to_string))
            .set_checksum_crc32(crc32)
            .build();
        self.parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(part);
    }

    /// Join the parts into the object; returns its ETag. On failure the
    /// parts are dropped.
    pub(crate) async fn complete(&self) -> Result<String, CloudError> {
        let mut parts = std::mem::take(
            &mut *self
                .parts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        parts.sort_by_key(|p| p.part_number());
        let work = COMPLETE_PER_PART.saturating_mul(u32::try_from(parts.len()).unwrap_or(u32::MAX));
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let done = self
            .s3
            .call(
                Call::new("CompleteMultipartUpload", &self.key).working(work),
                |_| {
                    let req = self
                        .s3
                        .client
                        .complete_multipart_upload()
                        .bucket(&self.s3.bucket)
                        .key(&self.key)
                        .upload_id(&self.upload_id)
                        .multipart_upload(completed.clone());
                    async move {
                        req.send()
                            .await
                            .map_err(|e| cloud_error("CompleteMultipartUpload", e))
                    }
                },
            )
            .await;
        match done {
            Ok(r) => Ok(r.e_tag().unwrap_or_default().to_string()),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    /// Drop the parts (best effort, logged).
    pub(crate) async fn abort(&self) {
        self.s3.abort(&self.key, &self.upload_id).await;
    }
}

fn part_number(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Why an object's ETag is not the MD5 of its bytes, if it is not: a
/// multipart object's is `md5-of-part-md5s-N`; S3 documents SSE-KMS (and
/// DSSE-KMS) and SSE-C ETags as not an MD5 of the data.
fn etag_not_md5(etag: &str, sse: Option<&str>, customer_key: bool) -> Option<&'static str> {
    if etag.contains('-') {
        Some("a multipart object's ETag")
    } else if sse.is_some_and(|s| s.starts_with("aws:kms")) {
        Some("an SSE-KMS object's ETag")
    } else if customer_key {
        Some("an SSE-C object's ETag")
    } else if etag.len() != 32 || !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some("an ETag that is not an MD5")
    } else {
        None
    }
}

/// The algorithm of the full-object checksum a GET (with checksum mode)
/// carried: the SDK validates it against the body. A composite one (of
/// the parts, `...-N`) is not validated and does not count.
fn full_object_checksum(
    r: &aws_sdk_s3::operation::get_object::GetObjectOutput,
) -> Option<&'static str> {
    let whole = |v: Option<&str>| v.is_some_and(|v| !v.contains('-'));
    [
        ("CRC64NVME", r.checksum_crc64_nvme()),
        ("CRC32", r.checksum_crc32()),
        ("CRC32C", r.checksum_crc32_c()),
        ("SHA1", r.checksum_sha1()),
        ("SHA256", r.checksum_sha256()),
    ]
    .into_iter()
    .find(|(_, v)| whole(*v))
    .map(|(name, _)| name)
}

/// A copy's precondition: the ETag, when S3 gave one.
fn if_match(etag: &str) -> Option<String> {
    (!etag.is_empty()).then(|| etag.to_string())
}

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

fn apply_put(
    req: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    opts: &PutOptions,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    req.set_storage_class(opts.class())
        .set_server_side_encryption(opts.encryption())
        .set_ssekms_key_id(opts.kms_key())
}

/// The part size for a file: at least `chunk`, at least S3's minimum, and
/// large enough to stay within 10,000 parts (rounded up to a MiB).
pub(crate) fn part_size(size: u64, chunk: u64) -> u64 {
    let needed = size.div_ceil(MAX_PARTS);
    let mib = 1 << 20;
    chunk.max(MIN_PART).max(needed.div_ceil(mib) * mib)
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_etag_is_an_md5_only_for_single_part_objects_without_kms_or_customer_keys() {
        let md5 = "0cc175b9c0f1b6a831c399e269772661";
        assert_eq!(super::etag_not_md5(md5, None, false), None);
        assert_eq!(super::etag_not_md5(md5, Some("AES256"), false), None);
        assert!(super::etag_not_md5(md5, Some("aws:kms"), false).is_some());
        assert!(super::etag_not_md5(md5, Some("aws:kms:dsse"), false).is_some());
        assert!(super::etag_not_md5(md5, None, true).is_some());
        assert!(super::etag_not_md5(&format!("{md5}-3"), None, false).is_some());
        assert!(super::etag_not_md5("", None, false).is_some());
        assert!(super::etag_not_md5("not-hex", None, false).is_some());
    }
    use super::*;

    #[test]
    fn part_sizes_stay_within_s3_limits() {
        let mib = 1u64 << 20;
        assert_eq!(part_size(100 * mib, 256 * mib), 256 * mib);
        assert_eq!(part_size(100 * mib, mib), 5 * mib);
        // 5 TiB with 256 MiB parts would be 20,480 parts: raised.
        let tib5 = 5u64 << 40;
        let p = part_size(tib5, 256 * mib);
        assert!(tib5.div_ceil(p) <= MAX_PARTS && p % mib == 0, "{p}");
    }

    #[test]
    fn path_style_for_ips_and_localhost() {
        assert!(needs_path_style("http://127.0.0.1:5000"));
        assert!(needs_path_style("http://localhost:9000/"));
        assert!(needs_path_style("http://[::1]:9000"));
        assert!(!needs_path_style("https://s3.eu-west-1.amazonaws.com"));
        assert!(!needs_path_style("https://minio.internal:9000"));
    }
}
