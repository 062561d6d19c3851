//! Finding the block device of an attached EBS volume. Where it shows up
//! depends on the instance: Xen names it like the API (`/dev/sdf`) or
//! renamed (`/dev/xvdf`, shifted by an offset on old CentOS); Nitro
//! attaches NVMe devices whose names say nothing (`/dev/nvme1n1`), but whose
//! serial is the volume id, visible as udev's
//! `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…` link or in sysfs.

use super::HostError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A `/dev/...` name under the device root (the lab's, or `/dev` itself).
pub(crate) fn node(root: &Path, device: &str) -> PathBuf {
    root.join(device.strip_prefix("/dev/").unwrap_or(device))
}

/// Where to look, in order, for `volume_id` attached as `device`.
pub(crate) fn candidates(
    root: &Path,
    device: &str,
    kernel_name: &str,
    volume_id: &str,
) -> Vec<PathBuf> {
    let under_root = |d: &str| node(root, d);
    let mut out = vec![
        root.join("disk/by-id").join(format!(
            "nvme-Amazon_Elastic_Block_Store_{}",
            volume_id.replace('-', "")
        )),
        under_root(kernel_name),
    ];
    if device != kernel_name {
        out.push(under_root(device));
    }
    out
}

/// The NVMe namespace whose controller serial is the volume id, from
/// sysfs (for hosts without udev's by-id links). Only under the real /dev.
fn nvme_by_serial(root: &Path, volume_id: &str) -> Option<PathBuf> {
    if root != Path::new("/dev") {
        return None;
    }
    let want = volume_id.replace('-', "");
    for entry in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("nvme") {
            continue;
        }
        let serial =
            std::fs::read_to_string(entry.path().join("device/serial")).unwrap_or_default();
        if serial.trim() == want {
            return Some(root.join(name));
        }
    }
    None
}

/// The device node of `volume_id` found by the id alone: udev's by-id
/// link for Nitro's NVMe devices, else the NVMe serial in sysfs (under the
/// real /dev only). A Xen device (`/dev/xvdf`) says nothing of its volume:
/// `None` there.
pub(crate) fn by_volume_id(root: &Path, volume_id: &str) -> Option<PathBuf> {
    let link = candidates(root, "", "", volume_id).swap_remove(0);
    if link.exists() {
        return Some(link);
    }
    nvme_by_serial(root, volume_id)
}

/// The device node of the volume if it is present now.
pub(crate) fn find(
    root: &Path,
    device: &str,
    kernel_name: &str,
    volume_id: &str,
) -> Option<PathBuf> {
    candidates(root, device, kernel_name, volume_id)
        .into_iter()
        .find(|p| p.exists())
        .or_else(|| nvme_by_serial(root, volume_id))
}

/// The device node of `volume_id` under the first of `names` that has one
/// (`(device, kernel name)` pairs: each name EC2 attached it as, with the
/// kernel's Xen name for it), or every path looked at when none is there:
/// then nothing can say whether the volume is still in use.
pub(crate) fn find_any(
    root: &Path,
    names: &[(String, String)],
    volume_id: &str,
) -> Result<PathBuf, Vec<PathBuf>> {
    if let Some(p) = names
        .iter()
        .find_map(|(device, kernel)| find(root, device, kernel, volume_id))
    {
        return Ok(p);
    }
    let mut looked: Vec<PathBuf> = Vec::new();
    for (device, kernel) in names {
        for p in candidates(root, device, kernel, volume_id) {
            if !looked.contains(&p) {
                looked.push(p);
            }
        }
    }
    Err(looked)
}

/// Wait (polling, as udev may take a moment) for the device to appear.
pub(crate) async fn wait_for(
    root: &Path,
    device: &str,
    kernel_name: &str,
    volume_id: &str,
    deadline: Duration,
) -> Result<PathBuf, HostError> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(p) = find(root, device, kernel_name, volume_id) {
            return Ok(p);
        }
        if Instant::now() >= end {
            let looked: Vec<String> = candidates(root, device, kernel_name, volume_id)
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(HostError::NoDevice {
                volume_id: volume_id.to_string(),
                waited_secs: deadline.as_secs(),
                looked,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a block device is in use (mounted, also lazily unmounted with
/// open files, or claimed by another holder): an exclusive open fails with
/// EBUSY then. Detaching a volume in use corrupts it.
pub(crate) fn in_use(device: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_EXCL.bits())
        .open(device)
    {
        Ok(_) => false,
        Err(e) => e.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32),
    }
}

/// The `major:minor` of a block device (following links), as
/// /proc/self/mountinfo writes it.
pub(crate) fn dev_number(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(path).ok()?.rdev();
    Some(format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_order() {
        let c = candidates(Path::new("/lab/dev"), "/dev/sdf", "/dev/xvdj", "vol-0abc");
        assert_eq!(
            c,
            [
                PathBuf::from("/lab/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc"),
                PathBuf::from("/lab/dev/xvdj"),
                PathBuf::from("/lab/dev/sdf"),
            ]
        );
    }

    #[test]
    fn finds_a_nitro_volume_by_its_id_alone() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(by_volume_id(dir.path(), "vol-0abc"), None);
        let by_id = dir.path().join("disk/by-id");
        std::fs::create_dir_all(&by_id).unwrap();
        let link = by_id.join("nvme-Amazon_Elastic_Block_Store_vol0abc");
        std::fs::write(&link, "").unwrap();
        assert_eq!(by_volume_id(dir.path(), "vol-0abc"), Some(link));
        assert_eq!(by_volume_id(dir.path(), "vol-0abd"), None);
    }

    #[test]
    fn finds_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("xvdf"), "").unwrap();
        assert_eq!(
            find(dir.path(), "/dev/sdf", "/dev/xvdf", "vol-1"),
            Some(dir.path().join("xvdf"))
        );
        assert_eq!(find(dir.path(), "/dev/sdg", "/dev/xvdg", "vol-1"), None);
    }

    #[test]
    fn finds_under_any_name_or_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("xvdg"), "").unwrap();
        let pair = |d: &str, k: &str| (d.to_string(), k.to_string());
        let names = [pair("/dev/sdf", "/dev/xvdf"), pair("/dev/sdg", "/dev/xvdg")];
        assert_eq!(
            find_any(dir.path(), &names, "vol-1"),
            Ok(dir.path().join("xvdg"))
        );
        let by_id = dir
            .path()
            .join("disk/by-id/nvme-Amazon_Elastic_Block_Store_vol1");
        assert_eq!(
            find_any(dir.path(), &names[..1], "vol-1"),
            Err(vec![by_id, dir.path().join("xvdf"), dir.path().join("sdf")])
        );
    }
}
