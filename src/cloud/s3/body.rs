//! A GET's body into a file: written where it belongs as it arrives,
//! hashed on the way when asked, its writeback started as it grows; and
//! what a ranged reply says it holds. Shared by whole-object downloads
//! (`read`) and ranges (`ranged`).

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::Progress;
use crate::cloud::CloudError;

/// The operation of every GET, named once for its errors.
pub(super) const GET_OBJECT: &str = "GetObject";

/// Writeback started every this many bytes of a file, and at its end if
/// it has at least `WRITEBACK_FROM` bytes: a smaller file is written out
/// with its batch's `syncfs`, which costs no call of its own per file.
const WRITEBACK_EVERY: u64 = 8 << 20;
const WRITEBACK_FROM: u64 = 1 << 20;

/// A body's chunks are written once this many bytes are in hand (each
/// is hashed as it arrives): one call for several chunks.
const WRITE_EVERY: u64 = 256 << 10;

pub(super) fn write_error(file: &Path, e: std::io::Error) -> CloudError {
    CloudError::Transport {
        op: GET_OBJECT,
        message: format!("writing {}: {e}", file.display()),
    }
}

/// `bytes START-END/TOTAL` (a ranged reply's Content-Range) as numbers.
pub(super) fn content_range(v: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?, total.parse().ok()?))
}

/// Write a body into `out` from offset `at` on, hashing it on the way
/// into `hash` if given: the bytes written. A body longer than `limit`
/// (if given) is an error before its excess is written.
///
/// Each chunk is hashed as it arrives and written with the next few
/// (256 KiB at a time), on the event loop's thread: a write into the
/// page cache is a copy, and a writer
/// thread per download (tried: chunks handed over 256 KiB at a time)
/// used the same CPU for 4 x 256 MiB with more code, and a stalled
/// attempt's late writes to guard against. The downloads of a restore are
/// tasks spread over every core, so are their hashes. Writeback is
/// started as the file grows, so dirty pages stay few and a write seldom
/// waits for the disk; on a disk slower than the network it does (the
/// kernel throttles writers), and the downloads then go at the disk's
/// pace, a write held past the stall timeout counting as a stall.
pub(super) async fn write_body(
    mut body: ByteStream,
    out: &std::fs::File,
    at: u64,
    limit: Option<u64>,
    mut hash: Option<&mut crate::digest::Md5>,
    progress: &Progress,
    file: &Path,
) -> Result<u64, CloudError> {
    use crate::host::durable::write_all_at;
    // Chunks held (not copied) until WRITE_EVERY bytes go in one call.
    let mut held: Vec<Bytes> = Vec::new();
    let (mut written, mut flushed, mut in_hand) = (0u64, 0u64, 0u64);
    while let Some(chunk) = next_chunk(&mut body, progress).await? {
        if limit.is_some_and(|l| written + in_hand + chunk.len() as u64 > l) {
            return Err(CloudError::Transport {
                op: GET_OBJECT,
                message: format!(
                    "{}: more than the {} bytes asked for arrived",
                    file.display(),
                    limit.unwrap_or_default()
                ),
            });
        }
        if let Some(h) = hash.as_deref_mut() {
            h.update(&chunk);
        }
        in_hand += chunk.len() as u64;
        held.push(chunk);
        if in_hand >= WRITE_EVERY {
            write_all_at(out, &held, at + written).map_err(|e| write_error(file, e))?;
            held.clear();
            (written, in_hand) = (written + in_hand, 0);
        }
        if written - flushed >= WRITEBACK_EVERY {
            crate::host::durable::start_writeback(out, at + flushed, written - flushed);
            flushed = written;
        }
    }
    if in_hand > 0 {
        write_all_at(out, &held, at + written).map_err(|e| write_error(file, e))?;
        written += in_hand;
    }
    if written > flushed && at + written >= WRITEBACK_FROM {
        crate::host::durable::start_writeback(out, at + flushed, written - flushed);
    }
    Ok(written)
}

/// The next chunk of a GET's body, stamped as progress for the stall
/// watch (the reply's headers alone would not keep a download alive).
pub(super) async fn next_chunk(
    body: &mut ByteStream,
    progress: &Progress,
) -> Result<Option<Bytes>, CloudError> {
    let chunk = body.try_next().await.map_err(|e| CloudError::Transport {
        op: GET_OBJECT,
        message: e.to_string(),
    })?;
    if chunk.is_some() {
        progress.stamp();
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_ranges_are_read_and_anything_else_is_not() {
        assert_eq!(super::content_range("bytes 0-15/100"), Some((0, 15, 100)));
        assert_eq!(super::content_range("bytes 16-31/32"), Some((16, 31, 32)));
        assert_eq!(super::content_range("bytes */100"), None);
        assert_eq!(super::content_range("0-15/100"), None);
        assert_eq!(super::content_range("bytes 0-15/*"), None);
    }
}
