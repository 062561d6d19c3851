//! The file commands (tablesnap's job): `keys.rs` is the S3 layout (pure),
//! `upload.rs` one file, `digests.rs` the record of what was read,
//! `queue.rs` the daemon's work queue, `index_writer.rs` its indexes,
//! `snap.rs` the watching daemon, `stale.rs` abandoned multipart uploads,
//! `slurp.rs` the restore, `chop.rs` the retention (its plan pure).

pub(crate) mod chop;
mod digests;
mod index_writer;
pub(crate) mod keys;
mod queue;
pub(crate) mod slurp;
pub(crate) mod snap;
pub(crate) mod stale;
pub(crate) mod upload;

use crate::cli::S3Args;
use crate::cloud::s3::{base64, hex, S3};
use crate::cloud::{AwsConfig, StaticKeys};

/// The host name in keys when none is given: Python's socket.getfqdn(),
/// as tablesnap 1.2.1 used, via `hostname -f` where it resolves, else the
/// plain host name.
pub(crate) fn default_name() -> String {
    if let Ok(out) = std::process::Command::new("hostname").arg("-f").output() {
        let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !name.is_empty() {
            return name;
        }
    }
    crate::host::users::hostname().unwrap_or_else(|| "localhost".into())
}

/// A file's MD5 as the `md5sum` metadata writes it (hex) and as
/// Content-MD5 wants it (base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Md5Sum {
    pub hex: String,
    pub base64: String,
}

impl Md5Sum {
    pub(crate) fn of(digest: &[u8]) -> Self {
        Md5Sum {
            hex: hex(digest),
            base64: base64(digest),
        }
    }
}

/// MD5 and size of a file, read once in 1 MiB chunks: the `md5sum`
/// metadata and Content-MD5 on upload, the check on restore.
pub(crate) fn md5_file(path: &std::path::Path) -> std::io::Result<(Md5Sum, u64)> {
    use std::io::Read;

    use md5::{Digest, Md5};
    let mut f = std::fs::File::open(path)?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Md5Sum::of(h.finalize().as_slice()), size))
}

/// A small file's bytes and MD5, read once (it is uploaded from memory):
/// at most `limit` bytes.
pub(crate) fn read_with_md5(
    path: &std::path::Path,
    limit: u64,
) -> std::io::Result<(Vec<u8>, Md5Sum)> {
    use md5::{Digest, Md5};
    use std::io::Read;
    let mut bytes = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
    std::fs::File::open(path)?
        .take(limit)
        .read_to_end(&mut bytes)?;
    let sum = Md5Sum::of(Md5::digest(&bytes).as_slice());
    Ok((bytes, sum))
}

/// How to reach the bucket.
pub(crate) struct Connection<'a> {
    pub bucket: &'a str,
    pub region: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub force_path_style: bool,
    pub key: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub token: Option<&'a str>,
    pub attempts: u32,
}

impl<'a> Connection<'a> {
    pub(crate) fn from_args(bucket: &'a str, a: &'a S3Args) -> Self {
        Connection {
            bucket,
            region: a.aws_region.as_deref(),
            endpoint: a.endpoint_url.as_deref(),
            force_path_style: a.s3_force_path_style,
            key: a.aws_key.as_deref(),
            secret: a.aws_secret.as_deref(),
            token: a.aws_token.as_deref(),
            attempts: crate::cloud::MAX_ATTEMPTS,
        }
    }
}

/// An S3 client: the SDK's credential chain (or, warned about, keys from
/// the command line), region from the flag, the environment or us-east-1.
pub(crate) async fn connect(c: Connection<'_>) -> S3 {
    let region = match c.region {
        Some(r) => r.to_string(),
        None => crate::cloud::region_from_environment()
            .await
            .unwrap_or_else(|| "us-east-1".into()),
    };
    let mut config = AwsConfig::load_for_transfers(&region, c.attempts).await;
    if let (Some(key), Some(secret)) = (c.key, c.secret) {
        tracing::warn!("keys given with -k/-s show in `ps` to every user; prefer an instance role or AWS_* environment variables");
        config = config.with_keys(StaticKeys {
            key,
            secret,
            token: c.token,
        });
    }
    S3::new(&config, c.bucket, c.endpoint, c.force_path_style)
}

/// The key naming of tableslurp/tablechop arguments.
pub(crate) fn naming(a: &S3Args) -> keys::KeyNaming {
    keys::KeyNaming {
        prefix: a.prefix.clone(),
        name: a.name.clone().unwrap_or_else(default_name),
        separator: a.keyname_separator.clone(),
    }
}
