//! Filesystems on block devices: is there one, and making one. `mkfs` is
//! only ever run on a device that holds no filesystem signature, whatever
//! the caller believes: formatting a restored volume would destroy data.

use std::path::Path;
use std::process::Command;

use super::HostError;

use crate::config::FileSystem;

/// What is on a device (per `blkid -p`): a filesystem type, `partition
/// table (dos)` style text for a partitioned disk, or `None` when blank.
pub(crate) fn probe(device: &Path) -> Result<Option<String>, HostError> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(device)
        .output()
        .map_err(|source| HostError::Spawn {
            program: "blkid",
            hint: " (install util-linux)",
            source,
        })?;
    match out.status.code() {
        Some(0) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                    .map(str::to_string)
            };
            Ok(Some(match (field("TYPE"), field("PTTYPE")) {
                (Some(t), _) => t,
                (None, Some(pt)) => format!("partition table ({pt})"),
                // Something blkid recognised without naming it: not blank.
                (None, None) => "unknown signature".to_string(),
            }))
        }
        // blkid exits 2 when it finds nothing.
        Some(2) => Ok(None),
        _ => Err(HostError::Command {
            command: format!("blkid -p {}", device.display()),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
    }
}

/// The program that formats a filesystem type.
pub(crate) fn mkfs_program(fs: FileSystem) -> &'static str {
    match fs {
        FileSystem::Ext4 => "mkfs.ext4",
        FileSystem::Xfs => "mkfs.xfs",
    }
}

/// Whether a program is on PATH (or the sbin directories root uses).
pub(crate) fn have_program(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/sbin", "/usr/sbin"].map(Into::into))
        .any(|d| d.join(name).is_file())
}

/// Format a blank device. Refuses if it holds any filesystem signature.
pub(crate) fn mkfs(device: &Path, fs: FileSystem) -> Result<(), HostError> {
    if let Some(found) = probe(device)? {
        return Err(HostError::NotBlank {
            device: device.to_path_buf(),
            found,
        });
    }
    let prog = mkfs_program(fs);
    let mut cmd = Command::new(prog);
    match fs {
        // -F: the target may be a symlink or a whole disk; quiet output.
        FileSystem::Ext4 => cmd.args(["-q", "-F"]),
        FileSystem::Xfs => cmd.args(["-q"]),
    };
    let out = cmd
        .arg(device)
        .output()
        .map_err(|source| HostError::Spawn {
            program: prog,
            hint: "",
            source,
        })?;
    if !out.status.success() {
        return Err(HostError::Command {
            command: format!("{prog} {}", device.display()),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
