//! Multipart uploads: the parts the caller reads once and hands over, each
//! with its CRC32, and the completion that makes the object appear whole
//! (or the abort that leaves nothing behind).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};

use super::put::progress_body;
use super::{Call, PutOptions, S3};
use crate::cloud::CloudError;

/// S3 refuses more parts than this.
pub(crate) const MAX_PARTS: u64 = 10_000;
/// And parts smaller than this (but the last).
pub(crate) const MIN_PART: u64 = 5 << 20;

/// S3 assembles a completed multipart upload before it answers: this per
/// part, besides the stall timeout.
const COMPLETE_PER_PART: Duration = Duration::from_millis(100);

/// The part size for a file: at least `chunk`, at least S3's minimum, and
/// large enough to stay within 10,000 parts (rounded up to a MiB).
pub(crate) fn part_size(size: u64, chunk: u64) -> u64 {
    let needed = size.div_ceil(MAX_PARTS);
    let mib = 1 << 20;
    chunk.max(MIN_PART).max(needed.div_ceil(mib) * mib)
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
    pub(super) s3: S3,
    pub(super) key: String,
    pub(super) upload_id: String,
    parts: std::sync::Mutex<Vec<CompletedPart>>,
}

impl S3 {
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
    pub(super) async fn create_multipart(
        &self,
        key: &str,
        metadata: &HashMap<String, String>,
        opts: &PutOptions,
        part_crc32: bool,
    ) -> Result<Multipart, CloudError> {
        let upload = self
            .send(Call::new("CreateMultipartUpload", key), |_| {
                self.client
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
                    .set_ssekms_key_id(opts.kms_key())
                    .send()
            })
            .await?;
        Ok(Multipart {
            s3: self.clone(),
            key: key.to_string(),
            upload_id: upload.upload_id().unwrap_or_default().to_string(),
            parts: std::sync::Mutex::new(Vec::new()),
        })
    }
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
        let target = self.part_target(number);
        let r = self
            .s3
            .send(Call::new("UploadPart", &target), |progress| {
                self.s3
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
                    .disable_payload_signing()
                    .send()
            })
            .await?;
        self.done(number, r.e_tag(), Some(crc32));
        Ok(())
    }

    /// What a part's call is about, for its stall watch and its error.
    pub(super) fn part_target(&self, number: i32) -> String {
        format!("{} part {number}", self.key)
    }

    /// Record a part S3 holds: the completion lists every part, with its
    /// ETag and (when the upload was created for them) its CRC32.
    pub(super) fn done(&self, number: i32, etag: Option<&str>, crc32: Option<String>) {
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
        let call = Call::new("CompleteMultipartUpload", &self.key).working(work);
        let done = self
            .s3
            .send(call, |_| {
                self.s3
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.s3.bucket)
                    .key(&self.key)
                    .upload_id(&self.upload_id)
                    .multipart_upload(completed.clone())
                    .send()
            })
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

/// A part's number as S3 takes it (parts are counted from 1, at most
/// [`MAX_PARTS`], so the conversion never saturates in practice).
pub(super) fn part_number(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
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
}
