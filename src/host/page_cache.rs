//! Reads that never wait for the disk.
//!
//! A large file's `md5sum` must be known before its multipart upload
//! starts (S3 takes metadata only then), yet a file is to be read from
//! disk once. A file tablesnap sees just after Cassandra wrote it is still
//! in the page cache: hashing it from there costs no disk I/O, and the
//! upload then reads it (from the cache again, or from disk if it was
//! evicted meanwhile, which is still one disk read). `preadv2(2)` with
//! `RWF_NOWAIT` (Linux 4.14) returns only bytes already in memory and
//! fails with `EAGAIN` instead of waiting for the disk.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use nix::libc;

/// Read into `buf` from `offset`, from the page cache only: `Some(n)`
/// bytes (fewer than asked when only a part is cached, 0 at the end of
/// the file), `None` when the byte at `offset` is not in memory or the
/// filesystem or kernel cannot tell.
pub(crate) fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<Option<usize>> {
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond off_t"))?;
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    loop {
        // SAFETY: `iov` describes `buf`, which is valid for writes of
        // `buf.len()` bytes and not otherwise used during the call; the
        // descriptor belongs to `file`, open for the whole call.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
        if let Ok(n) = usize::try_from(n) {
            return Ok(Some(n));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Not cached; or RWF_NOWAIT unknown to this filesystem or
            // kernel, or preadv2 itself missing: nothing is known.
            Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS) => return Ok(None),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_just_written_is_read_whole_from_the_cache() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[5u8; 10_000]).unwrap();
        let mut buf = vec![0u8; 16_384];
        let mut read = 0;
        while let Some(n) = read_cached(&f, &mut buf[read..], read as u64).unwrap() {
            if n == 0 {
                break;
            }
            read += n;
        }
        assert_eq!(read, 10_000);
        assert!(buf[..read].iter().all(|&b| b == 5));
    }

    #[test]
    fn an_evicted_file_is_not_read() {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[5u8; 1 << 20]).unwrap();
        f.sync_all().unwrap();
        posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
        let mut buf = vec![0u8; 4096];
        assert_eq!(read_cached(&f, &mut buf, 0).unwrap(), None);
    }
}
