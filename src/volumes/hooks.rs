//! Running a profile's hooks: each command an argv, no shell, with what it
//! is about in the environment. A failing hook is an error naming the hook
//! and the command; the caller decides what that stops.

use crate::config::{HookPoint, Profile};

/// What a per-volume hook is about.
#[derive(Debug, Default, Clone)]
pub struct HookEnv {
    pub mount_point: Option<String>,
    pub device: Option<String>,
    pub block_device: Option<String>,
    pub volume_id: Option<String>,
    pub snapshot_id: Option<String>,
}

/// Run every command of the profile's `point`, in order; stop at the
/// first failure.
pub async fn run(profile: &Profile, point: HookPoint, env: &HookEnv) -> Result<(), String> {
    for argv in profile.hooks.commands(point) {
        let Some((prog, args)) = argv.split_first() else {
            continue;
        };
        tracing::info!(hook = point.as_str(), command = %argv.join(" "), "running hook");
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args)
            .env("SNAPTASTIC_PROFILE", &profile.name)
            .env("SNAPTASTIC_HOOK", point.as_str())
            .stdin(std::process::Stdio::null());
        for (k, v) in [
            ("SNAPTASTIC_MOUNT_POINT", &env.mount_point),
            ("SNAPTASTIC_DEVICE", &env.device),
            ("SNAPTASTIC_BLOCK_DEVICE", &env.block_device),
            ("SNAPTASTIC_VOLUME_ID", &env.volume_id),
            ("SNAPTASTIC_SNAPSHOT_ID", &env.snapshot_id),
        ] {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let status = cmd.status().await.map_err(|e| {
            format!(
                "hook {} ({}): cannot run {prog}: {e}",
                point.as_str(),
                argv.join(" ")
            )
        })?;
        if !status.success() {
            return Err(format!(
                "hook {} ({}) failed with {status}",
                point.as_str(),
                argv.join(" ")
            ));
        }
    }
    Ok(())
}
