//! A test snapshotter (built as the example `recording_snapshotter`) that
//! appends `point mount_point` to `$REC_LOG` at every hook, so a test can
//! check the order of all 12 through the real commands. Volumes come from
//! `$REC_VOLUMES` (`device mount_point size_gib file_system` per line),
//! filter tags from userdata's role, cluster and environment.

use std::io::Write;
use std::process::ExitCode;

use snaptastic::{
    FileSystem, HookCtx, HookPoint, HostFacts, Snapshotter, SnapshotterError, Volume,
};

struct Recording;

fn env(k: &str) -> Result<String, SnapshotterError> {
    std::env::var(k).map_err(|_| format!("{k} is not set").into())
}

impl Snapshotter for Recording {
    fn name(&self) -> &str {
        "rec"
    }

    fn volumes(&self, _: &HostFacts) -> Result<Vec<Volume>, SnapshotterError> {
        let text = std::fs::read_to_string(env("REC_VOLUMES")?)?;
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let fs = FileSystem::parse(f[3]).ok_or("file system")?;
                Ok(Volume::new(f[0], f[1], f[2].parse()?)?.with_file_system(fs))
            })
            .collect()
    }

    fn filter_tags(&self, host: &HostFacts) -> Result<Vec<(String, String)>, SnapshotterError> {
        ["role", "cluster", "environment"]
            .iter()
            .map(|k| {
                let v = host.userdata.get_str(k).ok_or(format!("no {k}"))?;
                Ok((k.to_string(), v))
            })
            .collect()
    }

    fn description(&self, v: &Volume, _: &HostFacts) -> Result<String, SnapshotterError> {
        Ok(format!("rec {}", v.mount_point))
    }

    fn hook(&self, point: HookPoint, ctx: &HookCtx) -> Result<(), SnapshotterError> {
        let line = format!(
            "{point} {} {}\n",
            ctx.mount_point.as_deref().unwrap_or("all"),
            ctx.snapshot_id.as_deref().unwrap_or("-")
        );
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(env("REC_LOG")?)?;
        // One write per line: concurrent per-volume hooks do not interleave.
        log.write_all(line.as_bytes())?;
        Ok(())
    }
}

fn main() -> ExitCode {
    snaptastic::main(vec![Box::new(Recording)])
}
