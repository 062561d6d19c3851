//! Whether this process may do what the volume commands do to the host:
//! attach-and-mount, mkfs, FIFREEZE all need root or CAP_SYS_ADMIN.
//! Checked before anything is created in EC2, so a run without the
//! privilege stops with one line instead of leaving a volume attached.

/// CAP_SYS_ADMIN's bit in /proc/self/status's CapEff mask.
const CAP_SYS_ADMIN: u32 = 21;

/// The effective user id.
pub(crate) fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Root, or CAP_SYS_ADMIN in the effective set (a container or a unit
/// with `AmbientCapabilities=`).
pub(crate) fn can_administer() -> bool {
    euid() == 0 || effective_caps().is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}
