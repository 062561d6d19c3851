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
//! answers with. A call that is one request and its reply goes through
//! `S3::send`, which names the operation once for both.
//!
//! This module is the client and that machinery; what is done with it is
//! split by concern: `read` (HEAD and GETs), `ranged` (the rest of a
//! large object in ranges at once), `body` (a GET's body into a file,
//! for both), `put` (single PUTs),
//! `multipart` (multipart uploads), `copy` (new metadata by a copy inside
//! S3), `list` (objects and unfinished uploads under a prefix) and
//! `delete` (objects, and the parts of abandoned uploads).

mod body;
mod copy;
mod delete;
mod list;
mod multipart;
mod put;
mod ranged;
mod read;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::stall::{backoff, watched, Patience, Progress};
use super::{cloud_error, is_not_found, CloudError};

pub(crate) use list::ObjectInfo;
pub(crate) use multipart::{part_size, Multipart, PartCrc};
pub(crate) use put::{Content, PutOptions};
pub(crate) use ranged::Ranges;
pub(crate) use read::{Fetched, ObjectHead};

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

/// `op` tried again after a passing failure (a throttle, a 500, a
/// reset; not a stall, which [`S3::call`] already tried as often as it
/// may), up to `attempts` in all, after 0.5 s, 1 s, ...; each retry is a
/// warning naming `what`. For work the SDK's own retries do not cover: a
/// body that fails midway.
pub(crate) async fn again_if_passing<T, F, Fut>(
    attempts: u32,
    what: &str,
    mut op: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_transient() && !e.is_stall() && attempt < attempts => {
                tracing::warn!("{what}: {e}; retrying ({attempt}/{attempts})");
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// An SDK reply in the tool's terms, where a missing object is an answer
/// rather than a failure: `None` for a 404, the error named by `op` for
/// anything else.
fn found<T, E>(
    op: &'static str,
    reply: Result<T, SdkError<E, HttpResponse>>,
) -> Result<Option<T>, CloudError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match reply {
        Ok(r) => Ok(Some(r)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(cloud_error(op, e)),
    }
}

impl S3 {
    /// The bucket this client works on, for messages.
    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

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

    /// A call that is one request and its reply: `request` builds the
    /// request afresh for each attempt and sends it (an SDK `send()`), and
    /// an error is named by the call's operation, so each call site names
    /// its operation once. Attempts, stalls and retries are `call`'s.
    async fn send<T, E, F, Fut>(&self, call: Call<'_>, mut request: F) -> Result<T, CloudError>
    where
        F: FnMut(Arc<Progress>) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let op = call.op;
        self.call(call, |progress| {
            let reply = request(progress);
            async move { reply.await.map_err(|e| cloud_error(op, e)) }
        })
        .await
    }

    /// Fail fast on a missing bucket or bad credentials.
    pub(crate) async fn check_bucket(&self) -> Result<(), CloudError> {
        let target = format!("bucket {}", self.bucket);
        self.send(Call::new("HeadBucket", &target), |_| {
            self.client.head_bucket().bucket(&self.bucket).send()
        })
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_for_ips_and_localhost() {
        assert!(needs_path_style("http://127.0.0.1:5000"));
        assert!(needs_path_style("http://localhost:9000/"));
        assert!(needs_path_style("http://[::1]:9000"));
        assert!(!needs_path_style("https://s3.eu-west-1.amazonaws.com"));
        assert!(!needs_path_style("https://minio.internal:9000"));
    }
}
