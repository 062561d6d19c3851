//! Multipart uploads left behind by a tablesnap that died mid-upload
//! (kill -9, OOM, power loss): S3 keeps their parts, invisible and
//! billed, forever (unless a bucket lifecycle rule aborts them). A
//! starting daemon aborts those of its own host name.
//!
//! The rule, so that no live upload is ever aborted:
//! - only keys under `<prefix><name><separator>`: another host's uploads
//!   (a different name) are never listed;
//! - only when this daemon holds its host name's lock file alone
//!   ([`crate::host::lock`]): every running tablesnap of this name on this
//!   machine holds it (shared) for its whole life, so holding it
//!   exclusively means none is running here, and if one is the cleanup is
//!   skipped;
//! - only uploads initiated before this process started: an upload begun
//!   by a daemon started after this one cannot be touched.
//!
//! The lock covers one machine: two machines writing under the same host
//! name (`-n`) are not protected from each other (their keys would collide
//! anyway).

use chrono::{DateTime, Utc};

use super::keys::KeyNaming;
use crate::cloud::s3::S3;
use crate::host::dirs;
use crate::host::lock::HostLock;

/// Take this host name's lock and, if no other tablesnap of the name runs
/// here, abort its multipart uploads initiated before `started`. Returns
/// the lock, to be held (shared) until the daemon exits; `None` when it
/// cannot be taken (then nothing is aborted).
pub(crate) async fn abort_stale_uploads(
    s3: &S3,
    bucket: &str,
    naming: &KeyNaming,
    started: DateTime<Utc>,
) -> Option<HostLock> {
    let dir = dirs::runtime_dir();
    let file_name = format!("tablesnap-{}.lock", naming.space_id(bucket));
    let mut held =
        match tokio::task::spawn_blocking(move || HostLock::acquire(&dir, &file_name)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::warn!(
                "cannot take the lock file in {}: {e}; leaving unfinished multipart uploads alone",
                dirs::runtime_dir().display()
            );
                return None;
            }
            Err(e) => {
                tracing::warn!("taking the lock file: {e}");
                return None;
            }
        };
    let prefix = format!("{}{}{}", naming.prefix, naming.name, naming.separator);
    if held.sole {
        abort_older(s3, &prefix, started).await;
    } else {
        tracing::info!(
            "another tablesnap for {prefix} is running here (lock {}): leaving unfinished multipart uploads alone",
            held.path.display()
        );
    }
    if let Err(e) = held.share() {
        tracing::warn!("lock file {}: {e}", held.path.display());
    }
    Some(held)
}

async fn abort_older(s3: &S3, prefix: &str, started: DateTime<Utc>) {
    let uploads = match s3.list_multipart_uploads(prefix).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(
                "cannot list unfinished multipart uploads under {prefix} (needs s3:ListBucketMultipartUploads): {e}"
            );
            return;
        }
    };
    for u in uploads {
        // No date: cannot prove it is older than this process.
        let Some(when) = u.initiated.filter(|t| *t < started) else {
            continue;
        };
        match s3.abort_multipart_upload(&u.key, &u.upload_id).await {
            Ok(()) => tracing::warn!(
                "aborted the unfinished multipart upload of {} (started {when}, before this daemon; its process is gone)",
                u.key
            ),
            Err(e) => tracing::warn!(
                "could not abort the stale multipart upload of {}: {e}",
                u.key
            ),
        }
    }
}
