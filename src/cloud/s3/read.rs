//! Reading objects: HEAD, small objects into memory (the indexes), and
//! downloads streamed into a file with their MD5 computed on the way.

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_s3::operation::get_object::GetObjectOutput;

use super::body::{content_range, next_chunk, write_body, write_error, GET_OBJECT};
use super::ranged::Ranges;
use super::{found, hex, Call, S3};
use crate::cloud::{cloud_error, to_chrono, CloudError};

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

/// What HEAD says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectHead {
    pub size: u64,
    pub metadata: HashMap<String, String>,
}

impl S3 {
    /// HEAD; `None` if there is no such object.
    pub(crate) async fn head(&self, key: &str) -> Result<Option<ObjectHead>, CloudError> {
        let op = "HeadObject";
        let r = self
            .call(Call::new(op, key), |_| {
                let req = self.client.head_object().bucket(&self.bucket).key(key);
                async move { found(op, req.send().await) }
            })
            .await?;
        Ok(r.map(|r| ObjectHead {
            size: r
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            metadata: r.metadata().cloned().unwrap_or_default(),
        }))
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
        self.call(Call::new(GET_OBJECT, key), |progress| {
            let req = self.client.get_object().bucket(&self.bucket).key(key);
            async move {
                let r = req.send().await.map_err(|e| cloud_error(GET_OBJECT, e))?;
                progress.stamp();
                let metadata = r.metadata.unwrap_or_default();
                let mut body = r.body;
                let mut bytes = Vec::new();
                while let Some(chunk) = next_chunk(&mut body, &progress).await? {
                    bytes.extend_from_slice(&chunk);
                }
                Ok((bytes, metadata))
            }
        })
        .await
    }

    /// Stream an object into `out` (the empty file the caller created
    /// safely, `O_EXCL|O_NOFOLLOW`; `file` only names it), hashing it on
    /// the way. `Ok(None)` if there is no such object. Waiting longer than
    /// the stall timeout for the reply or for the next bytes of the body is
    /// a stall, and the request starts again: the SDK's read timeout does
    /// not cover the body, so a stalled download would otherwise hang
    /// forever. With `checksums`, S3 sends the object's stored full-object
    /// checksum (if it has one) and the SDK checks the bytes against it (a
    /// mismatch fails the body); only asked for where nothing better proves
    /// the bytes, and such a download is one stream.
    ///
    /// With `ranges`, the first request asks for the first part only; an
    /// object larger than that comes in the rest of its parts, several at
    /// once, each from the same version of the object (`If-Match` its
    /// ETag) and written where it belongs ([`S3::rest_in_ranges`]). A
    /// single stream goes only as fast as one connection (on S3, tens of
    /// MiB/s), however fast the link.
    ///
    /// The bytes' writeback is started as they are written; the caller
    /// makes them durable (`host::durable`), in a batch.
    pub(crate) async fn get_to_file(
        &self,
        key: &str,
        out: &std::fs::File,
        file: &Path,
        checksums: bool,
        ranges: Option<&Ranges>,
    ) -> Result<Option<Fetched>, CloudError> {
        let ranges = ranges.filter(|_| !checksums);
        // Emptied before an attempt only when one before wrote into it.
        let written_before = std::sync::atomic::AtomicBool::new(false);
        let first = self
            .call(Call::new(GET_OBJECT, key), |progress| {
                let written_before = &written_before;
                let req = self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .set_range(ranges.map(|r| format!("bytes=0-{}", r.part - 1)))
                    .set_checksum_mode(
                        checksums.then_some(aws_sdk_s3::types::ChecksumMode::Enabled),
                    );
                async move {
                    let r = match found(GET_OBJECT, req.send().await) {
                        Ok(Some(r)) => r,
                        Ok(None) => return Ok(None),
                        // The range of an empty object: it has no first byte.
                        Err(e) if ranges.is_some() && e.code() == Some("InvalidRange") => {
                            return Ok(Some(None))
                        }
                        Err(e) => return Err(e),
                    };
                    progress.stamp();
                    if written_before.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        out.set_len(0).map_err(|e| write_error(file, e))?;
                    }
                    let etag = r.e_tag.as_deref().map(|e| e.trim_matches('"').to_string());
                    let etag_not_md5 = etag_not_md5(
                        etag.as_deref().unwrap_or(""),
                        r.server_side_encryption.as_ref().map(|s| s.as_str()),
                        r.sse_customer_algorithm.is_some(),
                    );
                    let checked_checksum = full_object_checksum(&r);
                    let length = r.content_length.and_then(|n| u64::try_from(n).ok());
                    // A ranged reply states the whole object's size after
                    // the slash; a server that ignored the range sent it all.
                    let stated_size = match r.content_range.as_deref() {
                        None => length,
                        Some(v) => match content_range(v) {
                            Some((0, _, total)) => Some(total),
                            _ => {
                                return Err(CloudError::Transport {
                                    op: GET_OBJECT,
                                    message: format!(
                                        "asked for the start of {key}, S3 sent Content-Range {v}"
                                    ),
                                })
                            }
                        },
                    };
                    let mut hash = crate::digest::Md5::new();
                    let written =
                        write_body(r.body, out, 0, None, Some(&mut hash), &progress, file).await?;
                    Ok(Some(Some((
                        Fetched {
                            metadata: r.metadata.unwrap_or_default(),
                            etag,
                            md5_hex: String::new(),
                            last_modified: r.last_modified.as_ref().and_then(to_chrono),
                            written,
                            stated_size,
                            etag_not_md5,
                            checked_checksum,
                        },
                        hash,
                    ))))
                }
            })
            .await?;
        // One plain GET instead: an empty object (no first byte to ask
        // for), or one without an ETag to hold its ranges to one version.
        let whole = || async {
            out.set_len(0).map_err(|e| write_error(file, e))?;
            Box::pin(self.get_to_file(key, out, file, checksums, None)).await
        };
        let (mut fetched, mut hash) = match first {
            None => return Ok(None),
            Some(None) => return whole().await,
            Some(Some(f)) => f,
        };
        if let (Some(r), Some(total)) = (ranges, fetched.stated_size) {
            if total > fetched.written && fetched.written == r.part {
                let Some(etag) = fetched.etag.clone().filter(|e| !e.starts_with("W/")) else {
                    return whole().await;
                };
                hash = self
                    .rest_in_ranges(key, &etag, out, file, r, total, hash)
                    .await?;
                fetched.written = total;
            }
        }
        // The file holds exactly the bytes hashed: nothing an attempt cut
        // short (or a longer reply) left behind it.
        let len = out.metadata().map_err(|e| write_error(file, e))?.len();
        if len != fetched.written {
            return Err(CloudError::Transport {
                op: GET_OBJECT,
                message: format!(
                    "{}: {len} bytes on disk, {} downloaded and hashed",
                    file.display(),
                    fetched.written
                ),
            });
        }
        fetched.md5_hex = hex(&hash.finalize());
        Ok(Some(fetched))
    }
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
fn full_object_checksum(r: &GetObjectOutput) -> Option<&'static str> {
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
}
