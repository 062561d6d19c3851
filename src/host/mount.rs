//! mount(2) and umount(2) through nix, with the checks around them: the
//! mount point must be empty (unless allowed), a busy unmount names who
//! holds it, and the options string is split into flags and data the way
//! mount(8) does.

use super::HostError;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::safe_path::{is_refused_link, SafeDir};
use crate::config::FileSystem;

/// Split `mount -o` options into kernel flags and the filesystem's data.
fn parse_options(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match opt {
            "defaults" | "rw" | "auto" | "noauto" | "nouser" | "async" | "nofail" => {}
            "ro" => flags |= MsFlags::MS_RDONLY,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "lazytime" => flags |= MsFlags::MS_LAZYTIME,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Whether a directory has entries (a missing directory counts as empty).
pub(crate) fn is_non_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some())
}

/// Mount `device` at `mount_point`, creating the directory. The mount
/// point is walked from `/` without following any link (mount(2) would
/// follow them: a link inside a parent volume just restored would choose
/// where root mounts) and the mount is made on that directory's
/// descriptor, so what was checked is what is mounted over.
pub(crate) fn mount_device(
    device: &Path,
    mount_point: &Path,
    fs: FileSystem,
    options: &str,
) -> Result<(), HostError> {
    let dir = SafeDir::no_links(mount_point, true).map_err(|source| {
        if is_refused_link(&source) {
            HostError::LinkedMountPoint {
                path: mount_point.to_path_buf(),
            }
        } else {
            HostError::MountPoint {
                path: mount_point.to_path_buf(),
                source,
            }
        }
    })?;
    let (flags, data) = parse_options(options);
    let data = (!data.is_empty()).then_some(data.as_str());
    let target = dir.fd_path();
    mount(Some(device), &target, Some(fs.as_str()), flags, data).map_err(|e| HostError::Mount {
        fs: fs.as_str(),
        options: options.to_string(),
        device: device.to_path_buf(),
        mount_point: mount_point.to_path_buf(),
        reason: e.desc(),
    })
}

/// Why an unmount failed.
#[derive(Debug)]
pub(crate) enum UnmountError {
    /// Processes hold files or directories under the mount point.
    Busy {
        holders: Vec<String>,
    },
    Other(String),
}

impl std::fmt::Display for UnmountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnmountError::Busy { holders } if holders.is_empty() => {
                write!(
                    f,
                    "busy (no process found holding it; a nested mount or the kernel may)"
                )
            }
            UnmountError::Busy { holders } => write!(f, "busy, held by {}", holders.join(", ")),
            UnmountError::Other(e) => f.write_str(e),
        }
    }
}

/// Unmount; `lazy` detaches it from the tree even while busy (umount -l).
pub(crate) fn unmount(mount_point: &Path, lazy: bool) -> Result<(), UnmountError> {
    // A link in the last component is not followed (a mounted directory
    // cannot be replaced by one; an unmounted path can).
    let flags = if lazy {
        MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW
    } else {
        MntFlags::UMOUNT_NOFOLLOW
    };
    match umount2(mount_point, flags) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => Err(UnmountError::Busy {
            holders: holders(mount_point),
        }),
        Err(e) => Err(UnmountError::Other(format!(
            "umount {}: {}",
            mount_point.display(),
            e.desc()
        ))),
    }
}

/// Processes with a cwd, root or open file under `dir`: "name (pid N)".
pub(crate) fn holders(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    let me = std::process::id().to_string();
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let base = p.path();
        let mut links: Vec<PathBuf> = vec![base.join("cwd"), base.join("root")];
        if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
            links.extend(fds.flatten().map(|f| f.path()));
        }
        if links
            .iter()
            .filter_map(|l| std::fs::read_link(l).ok())
            .any(|target| target.starts_with(dir) && dir != Path::new("/"))
        {
            let name = std::fs::read_to_string(base.join("comm")).unwrap_or_default();
            out.push(format!("{} (pid {pid})", name.trim()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) = parse_options("defaults");
        assert_eq!((f, d.as_str()), (MsFlags::empty(), ""));
        let (f, d) = parse_options("noatime,nodiratime,inode64,discard");
        assert_eq!(f, MsFlags::MS_NOATIME | MsFlags::MS_NODIRATIME);
        assert_eq!(d, "inode64,discard");
        let (f, _) = parse_options("ro,nosuid,nodev,noexec");
        assert!(f.contains(
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
        ));
    }

    #[test]
    fn empty_and_missing_dirs() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_non_empty_dir(d.path()));
        assert!(!is_non_empty_dir(&d.path().join("missing")));
        std::fs::write(d.path().join("x"), "").unwrap();
        assert!(is_non_empty_dir(d.path()));
    }

    #[test]
    fn holders_finds_our_child_with_cwd_inside() {
        let d = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .current_dir(d.path())
            .spawn()
            .unwrap();
        let found = holders(d.path());
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            found.iter().any(|h| h.starts_with("sleep (pid ")),
            "{found:?}"
        );
    }
}
