//! Durability in batches. A restore writes many files and must have them
//! all on disk before it says so, but an `fsync` per file waits for one
//! journal commit each (a thousand small files took three seconds that
//! way). Instead each file's writeback is started as it is written
//! (`sync_file_range(2)` with `SYNC_FILE_RANGE_WRITE`: queued, not waited
//! for, so the disk works while the network does), and one `syncfs(2)`
//! per batch waits for all of it, metadata included; each file's own
//! data sync after it finds nothing left to write but reports that
//! file's write errors (`syncfs` reports an error once per descriptor,
//! and before Linux 5.8 never).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use nix::libc;

/// Start writing `len` bytes of `file` from `offset` back to disk without
/// waiting for it. Only a hint: an error here is not one of the data's
/// (the file's own data sync after the batch's `syncfs` reports those),
/// so none is returned.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: sync_file_range only reads the descriptor, which `file`
    // keeps open for the duration of the call; no memory is passed.
    let _ = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Wait until everything written to the filesystem holding `fd` is on
/// disk (`syncfs(2)`: since Linux 5.8 it also reports a writeback error
/// that happened since the descriptor was opened).
pub(crate) fn sync_filesystem(fd: impl std::os::fd::AsFd) -> io::Result<()> {
    Ok(nix::unistd::syncfs(fd)?)
}

/// Write all of `chunks` into `file` at `offset`, in as few calls as the
/// kernel allows (`pwritev(2)`): a download arrives in chunks of a few
/// tens of KiB when many streams share the link, and a call per chunk
/// cost a quarter of the restore's system time.
pub(crate) fn write_all_at(
    file: &File,
    chunks: &[bytes::Bytes],
    mut offset: u64,
) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let at = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // At most IOV_MAX slices a call.
        let n = rest.len().min(1024);
        let written = match nix::sys::uio::pwritev(file, &rest[..n], at) {
            Ok(w) => w,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if written == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        offset += written as u64;
        io::IoSlice::advance_slices(&mut rest, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_land_at_their_offset_in_order_whatever_their_number() {
        use std::os::unix::fs::FileExt;
        let f = tempfile::tempfile().unwrap();
        // More slices than one call takes, of uneven sizes.
        let chunks: Vec<bytes::Bytes> = (0..2500u32)
            .map(|i| bytes::Bytes::from(vec![(i % 251) as u8; (i % 7 + 1) as usize]))
            .collect();
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        super::write_all_at(&f, &chunks, 100).unwrap();
        let mut have = vec![0u8; want.len()];
        f.read_exact_at(&mut have, 100).unwrap();
        assert!(have == want);
        assert_eq!(f.metadata().unwrap().len(), 100 + want.len() as u64);
    }
}
