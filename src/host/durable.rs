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
