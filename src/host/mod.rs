//! The Linux side: block devices, filesystems, mounts. `nix` types stay
//! here; callers get paths, strings and our own error types.

pub mod devices;
pub mod freeze;
pub mod fs;
pub mod mount;
pub mod mountinfo;
pub mod users;
pub mod watch;
