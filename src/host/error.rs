//! What can go wrong on the Linux side, in the tool's words.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub(crate) enum HostError {
    #[error("running {program}: {source}{hint}")]
    Spawn {
        program: &'static str,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },

    #[error("refusing to format {}: it already holds a {found} filesystem", .device.display())]
    NotBlank { device: PathBuf, found: String },

    #[error(
        "refusing to mount on {}: a symbolic link is on its path (a parent volume's data may hold one); \
         mount points are never reached through links: name the real directory in the profile",
        .path.display()
    )]
    LinkedMountPoint { path: PathBuf },

    #[error("creating mount point {}: {source}", .path.display())]
    MountPoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("mount -t {fs} -o {options} {} {}: {reason}", .device.display(), .mount_point.display())]
    Mount {
        fs: &'static str,
        options: String,
        device: PathBuf,
        mount_point: PathBuf,
        reason: &'static str,
    },

    #[error("cannot start the thaw watchdog: {0}; nothing was frozen")]
    Watchdog(String),

    #[error("syncfs {}: {reason}", .mount_point.display())]
    Sync {
        mount_point: PathBuf,
        reason: String,
    },

    #[error("the block device of {volume_id} did not appear within {}s (looked at {})", .waited_secs, .looked.join(", "))]
    NoDevice {
        volume_id: String,
        waited_secs: u64,
        looked: Vec<String>,
    },
}
