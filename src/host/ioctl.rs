//! The two ioctls of a filesystem freeze, on a descriptor of any file or
//! directory of the filesystem (the kernel freezes its superblock). The
//! only `unsafe` of the freeze, in one place.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::errno::Errno;

// FIFREEZE = _IOWR('X', 119, int), FITHAW = _IOWR('X', 120, int)
// (linux/fs.h). The int argument is ignored by the kernel.
nix::ioctl_readwrite!(fifreeze, b'X', 119, libc_int);
nix::ioctl_readwrite!(fithaw, b'X', 120, libc_int);
#[allow(non_camel_case_types)]
type libc_int = std::ffi::c_int;

pub(super) fn freeze_fd(f: &File) -> Result<(), Errno> {
    let mut arg: libc_int = 0;
    // SAFETY: `f` is an open descriptor of a directory we own for the whole
    // call, and `arg` is a valid, writable int that outlives it; FIFREEZE
    // neither reads nor writes through the pointer.
    unsafe { fifreeze(f.as_raw_fd(), &mut arg) }.map(drop)
}

pub(super) fn thaw_fd(f: &File) -> Result<(), Errno> {
    let mut arg: libc_int = 0;
    // SAFETY: as for `freeze_fd`: a live descriptor and a valid int.
    unsafe { fithaw(f.as_raw_fd(), &mut arg) }.map(drop)
}
