//! A snapshotter written in Rust, for what a TOML profile cannot say:
//! volumes from the provisioning system's file, a filter tag derived from
//! userdata, and a PostgreSQL CHECKPOINT just before the freeze (so a
//! restore replays little WAL). Built into its own binary, it is
//! snaptastic with one more name beside the configuration's profiles:
//!
//!     cargo build --release --example custom_snapshotter
//!     sudo target/release/examples/custom_snapshotter make-snapshots pg
use std::process::{Command, ExitCode};

use snaptastic::{
    FileSystem, HookCtx, HookPoint, HostFacts, Snapshotter, SnapshotterError, Volume,
};

/// One line per volume, written by provisioning: `device mount_point size_gib file_system`.
const PROVISIONED: &str = "/etc/provisioning/volumes";

struct Postgres {
    provisioned: String,
}

impl Snapshotter for Postgres {
    fn name(&self) -> &str {
        "pg"
    }

    fn volumes(&self, _: &HostFacts) -> Result<Vec<Volume>, SnapshotterError> {
        let text = std::fs::read_to_string(&self.provisioned)
            .map_err(|e| format!("{}: {e}", self.provisioned))?;
        let lines = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
        lines
            .map(
                |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [device, mount_point, size, fs] => {
                        let fs =
                            FileSystem::parse(fs).ok_or(format!("unknown file system {fs}"))?;
                        Ok(Volume::new(device, mount_point, size.parse()?)?.with_file_system(fs))
                    }
                    _ => Err(format!(
                        "{}: not 'device mount_point size fs': {line}",
                        self.provisioned
                    )
                    .into()),
                },
            )
            .collect()
    }

    /// Snapshots are shared by a shard's replicas: cluster `orders-prod-3`.
    fn filter_tags(&self, host: &HostFacts) -> Result<Vec<(String, String)>, SnapshotterError> {
        let get = |k: &str| {
            host.userdata
                .get_str(k)
                .ok_or(format!("userdata has no '{k}'"))
        };
        let cluster = format!(
            "{}-{}-{}",
            get("cluster")?,
            get("environment")?,
            get("shard")?
        );
        Ok(vec![
            ("role".into(), "postgres".into()),
            ("cluster".into(), cluster),
        ])
    }

    fn description(&self, v: &Volume, host: &HostFacts) -> Result<String, SnapshotterError> {
        Ok(format!(
            "postgres {} of {}",
            v.mount_point,
            host.instance_id().unwrap_or("?")
        ))
    }

    fn hook(&self, point: HookPoint, _: &HookCtx) -> Result<(), SnapshotterError> {
        let argv: &[&str] = match point {
            HookPoint::PreSnapshots => &["psql", "-U", "postgres", "-c", "CHECKPOINT"],
            HookPoint::PostMounts => &["systemctl", "start", "postgresql"],
            HookPoint::PreUnmounts => &["systemctl", "stop", "postgresql"],
            _ => return Ok(()),
        };
        let status = Command::new(argv[0]).args(&argv[1..]).status()?;
        match status.success() {
            true => Ok(()),
            false => Err(format!("{} failed with {status}", argv.join(" ")).into()),
        }
    }
}

fn main() -> ExitCode {
    let provisioned = std::env::var("PG_VOLUMES").unwrap_or_else(|_| PROVISIONED.into());
    snaptastic::main(vec![Box::new(Postgres { provisioned })])
}
