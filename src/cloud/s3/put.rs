//! Single PUTs from memory (small files, the JSON indexes), and how every
//! write stores its object (`PutOptions`).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};

use super::{base64, Call, S3};
use crate::cloud::stall::{Progress, ProgressBody};
use crate::cloud::CloudError;

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
    pub(super) fn class(&self) -> Option<StorageClass> {
        self.storage_class.as_deref().map(StorageClass::from)
    }

    pub(super) fn encryption(&self) -> Option<ServerSideEncryption> {
        self.sse.as_deref().map(ServerSideEncryption::from)
    }

    pub(super) fn kms_key(&self) -> Option<String> {
        self.sse_kms_key_id.clone()
    }
}

/// What a PUT from memory says about its body.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Content<'a> {
    pub content_type: Option<&'a str>,
    /// Content-MD5 (base64), if already known.
    pub md5: Option<&'a str>,
}

/// A body from memory whose chunks, as the connection takes them, are
/// progress for the stall watch (retryable: each attempt sends it again).
pub(super) fn progress_body(bytes: bytes::Bytes, progress: Arc<Progress>) -> ByteStream {
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(ProgressBody::new(bytes.clone(), progress.clone()))
    }))
}

impl S3 {
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
            None => base64(&crate::digest::Md5::digest(&body)),
        };
        let body = bytes::Bytes::from(body);
        self.send(Call::new("PutObject", key), |progress| {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .set_content_type(content.content_type.map(str::to_string))
                .content_md5(&md5)
                .set_metadata(Some(metadata.clone()))
                .body(progress_body(body.clone(), progress))
                .set_storage_class(opts.class())
                .set_server_side_encryption(opts.encryption())
                .set_ssekms_key_id(opts.kms_key())
                .customize()
                .disable_payload_signing()
                .send()
        })
        .await
        .map(drop)
    }
}
