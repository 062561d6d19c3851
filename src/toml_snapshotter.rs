//! The TOML profile as a `Snapshotter`: volumes and filter tags resolved
//! from the configuration and userdata, the description from the
//! profile's template, and each hook point's commands run in order (argv,
//! no shell) with what they are about in the environment.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{HookPoint, Profile, Volume};
use crate::snapshotter::{HookCtx, HostFacts, Snapshotter, SnapshotterError};

impl Snapshotter for Profile {
    fn name(&self) -> &str {
        &self.name
    }

    fn volumes(&self, host: &HostFacts) -> Result<Vec<Volume>, SnapshotterError> {
        Ok(self.resolve_volumes(&host.userdata)?)
    }

    fn filter_tags(&self, host: &HostFacts) -> Result<Vec<(String, String)>, SnapshotterError> {
        Ok(self.filter_values(&host.userdata)?)
    }

    /// The template filled in, then finished in the profile's
    /// `description_style` (0.2.12's turns every `_` into `-`).
    fn description(&self, volume: &Volume, host: &HostFacts) -> Result<String, SnapshotterError> {
        self.description
            .render(|k| match k {
                "mount_point" => Some(volume.mount_point.clone()),
                "device" => Some(volume.device.clone()),
                "instance_id" => host.instance_id().map(str::to_string),
                other => host.userdata.get_str(other),
            })
            .map_err(|key| {
                format!(
                    "description needs '{}', which userdata does not have",
                    key.0
                )
                .into()
            })
            .map(|d| self.description_style.apply(d))
    }

    fn retention(&self) -> Duration {
        self.retention
    }

    fn snapshot_owners(&self) -> Vec<String> {
        self.snapshot_owners.clone()
    }

    fn prewarm(&self) -> crate::config::Prewarm {
        self.prewarm
    }

    fn copies(&self) -> Vec<crate::config::CopyTarget> {
        self.copies.clone()
    }

    fn archive_after(&self) -> Option<std::time::Duration> {
        self.archive_after
    }

    /// Every command of the point, in order; the first failure stops.
    fn hook(&self, point: HookPoint, ctx: &HookCtx) -> Result<(), SnapshotterError> {
        for argv in self.hooks.commands(point) {
            let Some((prog, args)) = argv.split_first() else {
                continue;
            };
            let shown = argv.join(" ");
            tracing::info!(hook = point.as_str(), command = %shown, "running hook");
            let mut cmd = Command::new(prog);
            cmd.args(args)
                .env("SNAPTASTIC_PROFILE", &self.name)
                .env("SNAPTASTIC_HOOK", point.as_str())
                .stdin(Stdio::null())
                // Our stdout is the command's result (`--json`, the
                // per-volume lines): a hook's chatter goes to the log.
                .stdout(std::io::stderr());
            for (k, v) in [
                ("SNAPTASTIC_MOUNT_POINT", &ctx.mount_point),
                ("SNAPTASTIC_DEVICE", &ctx.device),
                ("SNAPTASTIC_BLOCK_DEVICE", &ctx.block_device),
                ("SNAPTASTIC_VOLUME_ID", &ctx.volume_id),
                ("SNAPTASTIC_SNAPSHOT_ID", &ctx.snapshot_id),
            ] {
                if let Some(v) = v {
                    cmd.env(k, v);
                }
            }
            let status = cmd
                .status()
                .map_err(|e| format!("hook {point} ({shown}): cannot run {prog}: {e}"))?;
            if !status.success() {
                return Err(format!("hook {point} ({shown}) failed with {status}").into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Template, Userdata, DEFAULT_DESCRIPTION};
    use crate::instance::Identity;

    fn profile(template: &str) -> Profile {
        let config = crate::config::parse(
            "[profiles.p]\n[[profiles.p.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/a\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let mut p = config.profile("p").unwrap().clone();
        p.description = Template::parse(template).unwrap();
        p
    }

    #[test]
    fn descriptions_fill_placeholders() {
        let p = profile(DEFAULT_DESCRIPTION);
        let host = HostFacts::new(
            None,
            Userdata::parse(r#"{"cluster": "my_cluster"}"#, "x").unwrap(),
        );
        let v = Volume::with_defaults("/dev/sdf", "/var/lib/pg/_q", 10);
        assert_eq!(
            p.description(&v, &host).unwrap(),
            "my_cluster snapshot of /var/lib/pg/_q"
        );
        assert_eq!(
            p.description(&v, &HostFacts::default())
                .unwrap_err()
                .to_string(),
            "description needs 'cluster', which userdata does not have"
        );
        let p = profile("{device} of {instance_id}");
        let host = HostFacts::new(
            Some(Identity {
                instance_id: "i-1".into(),
                availability_zone: "us-east-1a".into(),
                region: "us-east-1".into(),
            }),
            Userdata::default(),
        );
        assert_eq!(p.description(&v, &host).unwrap(), "/dev/sdf of i-1");
    }

    #[test]
    fn description_style_0_2_12_replaces_every_underscore() {
        let config = crate::config::parse(
            "[profiles.p]\ndescription_style = \"0.2.12\"\n[[profiles.p.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/var/lib/pg/_user_queue\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let p = config.profile("p").unwrap();
        let crate::config::VolumeSource::Listed(v) = &p.volumes else {
            panic!()
        };
        let host = HostFacts::new(
            None,
            Userdata::parse(r#"{"cluster": "my_cluster"}"#, "x").unwrap(),
        );
        // The reference's own example.
        assert_eq!(
            p.description(&v[0], &host).unwrap(),
            "my-cluster snapshot of /var/lib/pg/-user-queue"
        );
        // The default style keeps them.
        assert_eq!(
            profile(DEFAULT_DESCRIPTION)
                .description(&v[0], &host)
                .unwrap(),
            "my_cluster snapshot of /var/lib/pg/_user_queue"
        );
    }

    #[test]
    fn hooks_run_in_order_and_the_first_failure_stops() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut p = profile(DEFAULT_DESCRIPTION);
        let append = |word: &str| {
            vec![
                "sh".to_string(),
                "-c".to_string(),
                format!("echo {word} $SNAPTASTIC_MOUNT_POINT >> {}", log.display()),
            ]
        };
        p.hooks.0.insert(
            HookPoint::PreMount,
            vec![append("one"), vec!["false".into()], append("never")],
        );
        let ctx = HookCtx::volume("p", "/a", "/dev/sdf");
        let e = p.hook(HookPoint::PreMount, &ctx).unwrap_err().to_string();
        assert!(e.starts_with("hook pre_mount (false) failed"), "{e}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one /a\n");
        p.hook(HookPoint::PostMount, &ctx).unwrap();
    }
}
