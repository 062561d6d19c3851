//! The Linux side: block devices, filesystems, mounts. `nix` types stay
//! here; callers get paths, strings and our own error types.

pub(crate) mod detach;
pub(crate) mod devices;
pub(crate) mod dirs;
pub(crate) mod durable;
mod error;
pub(crate) mod freeze;
pub(crate) mod fs;
mod ioctl;
pub(crate) mod limits;
pub(crate) mod lock;
pub(crate) mod memory;
pub(crate) mod mount;
pub(crate) mod mountinfo;
pub(crate) mod page_cache;
pub(crate) mod prewarm;
pub(crate) mod privileges;
pub(crate) mod safe_path;
pub(crate) mod signals;
pub(crate) mod users;
pub(crate) mod watch;
pub(crate) mod watchdog;

pub(crate) use error::HostError;
