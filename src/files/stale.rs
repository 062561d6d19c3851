//! Multipart uploads left behind by a tablesnap that died mid-upload
//! (kill -9, OOM, power loss): S3 keeps their parts, invisible and
//! billed, forever (unless a bucket lifecycle rule aborts them). A
//! starting daemon aborts those of its own host name.
//!
//! The rule, so that no live upload is ever aborted:
//! - only keys of this exact key space: under `<prefix><name><separator>`
//!   and followed by a path inside one of this daemon's watched
//!   directories (a key space can be a prefix of another: prefix `h:` with
//!   name `x` writes keys under name `h`'s `h:` too);
//! - only when this daemon holds its key space's lock file alone
//!   ([`crate::host::lock`]): every running tablesnap of this key space on
//!   this machine holds it (shared) for its whole life, so holding it
//!   exclusively means none is running here, and if one is the cleanup is
//!   skipped. The lock file lives in the state directory, beside the
//!   digest record: a runtime directory is removed when a systemd unit
//!   stops, while a daemon started by hand may still hold its lock there
//!   (a new file of the same name would then be locked by nobody);
//! - only uploads initiated before this process started: an upload begun
//!   by a daemon started after this one cannot be touched.
//!
//! The lock covers one machine: two machines writing under the same host
//! name (`-n`) are not protected from each other (their keys would collide
//! anyway).

use std::path::{Path, PathBuf};

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
    space: Space<'_>,
    started: DateTime<Utc>,
) -> Option<HostLock> {
    let dir = space
        .state_dir
        .map_or_else(dirs::state_dir, Path::to_path_buf);
    let shown = dir.clone();
    let file_name = format!("tablesnap-{}.lock", space.naming.space_id(space.bucket));
    let mut held =
        match tokio::task::spawn_blocking(move || HostLock::acquire(&dir, &file_name)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::warn!(
                "cannot take the lock file in {}: {e}; leaving unfinished multipart uploads alone",
                shown.display()
            );
                return None;
            }
            Err(e) => {
                tracing::warn!("taking the lock file: {e}");
                return None;
            }
        };
    let naming = space.naming;
    let prefix = format!("{}{}{}", naming.prefix, naming.name, naming.separator);
    if held.sole {
        abort_older(s3, &prefix, space.roots, started).await;
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

/// A daemon's key space: what its lock is for and which keys are its.
pub(crate) struct Space<'a> {
    pub bucket: &'a str,
    pub naming: &'a KeyNaming,
    /// The watched directories: its keys are of paths below them.
    pub roots: &'a [PathBuf],
    /// `--state-dir`, else the default state directory.
    pub state_dir: Option<&'a Path>,
}

/// Whether `key` is one this daemon writes: `prefix` then the absolute
/// path of a file below one of `roots`.
pub(crate) fn is_own_key(key: &str, prefix: &str, roots: &[PathBuf]) -> bool {
    let Some(path) = key.strip_prefix(prefix) else {
        return false;
    };
    let path = Path::new(path);
    path.is_absolute() && roots.iter().any(|r| path.starts_with(r) && path != r)
}

async fn abort_older(s3: &S3, prefix: &str, roots: &[PathBuf], started: DateTime<Utc>) {
    let uploads = match s3.list_multipart_uploads(prefix).await {
        Ok(u) => u,
        Err(e) => {
            // A refusal is most likely the policy; a stall is not.
            let hint = if e.code().is_some() {
                " (needs s3:ListBucketMultipartUploads)"
            } else {
                ""
            };
            tracing::warn!("cannot list unfinished multipart uploads under {prefix}{hint}: {e}");
            return;
        }
    };
    for u in uploads {
        if !is_own_key(&u.key, prefix, roots) {
            tracing::debug!("{}: another key space's upload, left alone", u.key);
            continue;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_of_this_exact_space_are_ours() {
        let roots = [PathBuf::from("/data/ks")];
        assert!(is_own_key("h:/data/ks/t/a-Data.db", "h:", &roots));
        // Name `x` under prefix `h:` shares the listing prefix `h:`.
        assert!(!is_own_key("h:x:/data/ks/t/a-Data.db", "h:", &roots));
        assert!(!is_own_key("h:/x:/data/ks/a", "h:", &roots));
        assert!(!is_own_key("h:/data/ksother/a", "h:", &roots));
        assert!(!is_own_key("h:/data/ks", "h:", &roots));
        assert!(!is_own_key("g:/data/ks/a", "h:", &roots));
    }
}
