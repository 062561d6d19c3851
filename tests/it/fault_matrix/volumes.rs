//! The volume commands in the fault matrix: a lab host with a profile of
//! two volumes (ext4 and xfs), in the state each command starts from.

use aws_sdk_ec2::types::Filter;

use super::{matrix, Scenario, QUICK};
use crate::support::{mounted_at, thaw_if_frozen, writable_within, Lab, Run, Setup};

const VOLUMES: [(&str, &str, u32); 2] = [("/dev/sdf", "ext4", 1), ("/dev/sdg", "xfs", 1)];

/// Which command, in which world.
#[derive(Clone, Copy)]
pub(crate) enum Volumes {
    /// mount-snapshots --init-rate 300, from a complete set, nothing
    /// mounted.
    Mount,
    /// make-snapshots of the mounted volumes.
    Make,
    /// unmount-snapshots --delete of the mounted volumes.
    Unmount,
    /// clean snapshots, with a set and expired 0.2.12 snapshots.
    Clean,
    /// copy-snapshots of a complete set to the DR Region.
    Copy,
    /// list-volumes, mounted with a set (changes nothing).
    List,
    /// check-backups, mounted with a set (changes nothing).
    CheckBackups,
    /// test, mounted with a set (changes nothing).
    SelfTest,
}

fn run_ok(s: &Setup, args: &[&str]) {
    s.snaptastic(args).expect_code(0);
}

impl Volumes {
    fn args(self) -> Vec<&'static str> {
        match self {
            // With a rate: its FSR lookup and CreateVolume's refusal
            // fallback are in the matrix too.
            Volumes::Mount => vec!["mount-snapshots", "db", "--init-rate", "300"],
            Volumes::Make => vec!["make-snapshots", "db"],
            Volumes::Unmount => vec!["unmount-snapshots", "db", "--yes", "--delete"],
            Volumes::Clean => vec!["clean", "snapshots", "db", "--yes"],
            Volumes::Copy => vec!["copy-snapshots", "db"],
            Volumes::List => vec!["list-volumes", "db"],
            Volumes::CheckBackups => vec!["check-backups", "1d", "db"],
            Volumes::SelfTest => vec!["test"],
        }
    }

    /// Describe volumes or snapshots of this world's profile.
    fn tagged_volumes(&self, s: &Setup) -> Vec<aws_sdk_ec2::types::Volume> {
        s.describe_ours(&s.lab.moto_ec2())
    }

    fn snapshots(&self, s: &Setup) -> Vec<aws_sdk_ec2::types::Snapshot> {
        of_role(&s.lab.moto_ec2(), s)
    }
}

/// The snapshots tagged with the world's role, as `ec2` sees them.
fn of_role(ec2: &crate::support::Ec2, s: &Setup) -> Vec<aws_sdk_ec2::types::Snapshot> {
    let r = ec2
        .rt
        .block_on(
            ec2.client
                .describe_snapshots()
                .filters(filter("tag:role", &s.role))
                .send(),
        )
        .unwrap();
    r.snapshots().to_vec()
}

/// The copy target of the copy-snapshots world.
const DR: &str = "us-west-2";

/// The profile's copies in the DR Region, straight from the emulator.
fn copies(s: &Setup) -> Vec<aws_sdk_ec2::types::Snapshot> {
    of_role(
        &crate::support::Ec2::in_region(s.lab.var("SNAPTASTIC_LAB_MOTO"), DR, 3),
        s,
    )
}

/// The make-snapshots run a snapshot belongs to.
fn run_of(s: &aws_sdk_ec2::types::Snapshot) -> Option<&str> {
    s.tags()
        .iter()
        .find(|t| t.key() == Some("snaptastic:run"))
        .and_then(|t| t.value())
}

/// The newest run: its id ends in the time it started, in milliseconds
/// (snapshot start times have only seconds here).
fn newest_run(snapshots: &[aws_sdk_ec2::types::Snapshot]) -> Option<String> {
    let started = |run: &str| -> u64 {
        run.rsplit('-')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    };
    snapshots
        .iter()
        .filter_map(run_of)
        .max_by_key(|run| started(run))
        .map(str::to_string)
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Tags as `key=value` where the value says something stable, else `key`.
fn stable_tags(tags: &[aws_sdk_ec2::types::Tag], lab: &Lab) -> String {
    // Which call made a snapshot (one CreateSnapshots for the set, or one
    // CreateSnapshot per volume when the set call is refused) is as good
    // either way.
    let volatile = [
        "snaptastic:call",
        "snaptastic:run",
        "snaptastic:source",
        "snaptastic:copy-of",
        "instance_id",
        "created",
        "expires",
        "Name",
        "role",
    ];
    let mut out: Vec<String> = tags
        .iter()
        .map(|t| {
            let (k, v) = (t.key().unwrap_or(""), t.value().unwrap_or(""));
            if volatile.contains(&k) {
                k.to_string()
            } else {
                format!("{k}={}", v.replace(lab.dir.to_str().unwrap(), "LAB"))
            }
        })
        .collect();
    out.sort();
    out.join(",")
}

impl Scenario for Volumes {
    type World = Setup;

    fn name(&self) -> String {
        self.args().join(" ")
    }

    fn prepare(&self, moto: &str) -> Setup {
        let s = Setup::new(moto, false, None, &VOLUMES);
        if matches!(self, Volumes::Copy) {
            s.add_to_profile(&format!("[[profiles.db.copies]]\nregion = \"{DR}\"\n"));
        }
        run_ok(&s, &["mount-snapshots", "db"]);
        for i in 0..VOLUMES.len() {
            std::fs::write(s.mp(i).join("data"), format!("volume {i}")).unwrap();
        }
        match self {
            Volumes::Make | Volumes::Unmount => {}
            Volumes::Mount => {
                run_ok(&s, &["make-snapshots", "db", "--wait"]);
                run_ok(&s, &["unmount-snapshots", "db", "--yes", "--delete"]);
            }
            Volumes::Clean => {
                // Expired 0.2.12 snapshots, then (a second later, as start
                // times have seconds) a set: the set is the newest.
                let vols = s.our_volumes();
                for i in 0..VOLUMES.len() {
                    s.legacy_snapshot(&vols[0].0, &s.mp(i));
                }
                std::thread::sleep(std::time::Duration::from_millis(1100));
                run_ok(&s, &["make-snapshots", "db", "--wait"]);
            }
            Volumes::List | Volumes::CheckBackups | Volumes::SelfTest | Volumes::Copy => {
                run_ok(&s, &["make-snapshots", "db", "--wait"]);
            }
        }
        s
    }

    fn lab<'a>(&self, w: &'a Setup) -> &'a Lab {
        &w.lab
    }

    fn command(&self, w: &Setup) -> Run {
        let mut args = self.args();
        args.extend(QUICK);
        w.lab.run(&args).config(&w.cfg)
    }

    fn end_state(&self, w: &Setup) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..VOLUMES.len() {
            let mp = w.mp(i);
            out.push(match mounted_at(&mp) {
                Some(_) => format!(
                    "v{i}: mounted, data {:?}",
                    std::fs::read_to_string(mp.join("data")).ok()
                ),
                None => format!("v{i}: not mounted"),
            });
        }
        for v in self.tagged_volumes(w) {
            let attached = v
                .attachments()
                .iter()
                .any(|a| a.instance_id() == Some(w.lab.instance()));
            out.push(format!(
                "volume {} attached={attached} [{}]",
                v.state().map(|s| s.as_str()).unwrap_or("?"),
                stable_tags(v.tags(), &w.lab)
            ));
        }
        let snapshots = self.snapshots(w);
        // make-snapshots makes a new set each run: what must match is the
        // newest set; older ones are judged by `invariants`.
        let newest = newest_run(&snapshots);
        for s in snapshots
            .iter()
            .filter(|s| !matches!(self, Volumes::Make) || run_of(s) == newest.as_deref())
        {
            // Pending or completed is a matter of when the test looked.
            let state = match s.state().map(|s| s.as_str()) {
                Some("pending" | "completed") => "ok",
                other => other.unwrap_or("?"),
            };
            out.push(format!(
                "snapshot {state} [{}]",
                stable_tags(s.tags(), &w.lab)
            ));
        }
        if matches!(self, Volumes::Copy) {
            for c in copies(w) {
                let state = match c.state().map(|s| s.as_str()) {
                    Some("pending" | "completed") => "ok",
                    other => other.unwrap_or("?"),
                };
                out.push(format!(
                    "copy in {DR} {state} [{}]",
                    stable_tags(c.tags(), &w.lab)
                ));
            }
        }
        out.sort();
        out
    }

    fn resources(&self, w: &Setup) -> Vec<String> {
        vec![
            w.lab.dir.display().to_string(),
            "vol-".into(),
            "snap-".into(),
            "/dev/".into(),
            "db".into(),
            w.lab.instance().to_string(),
        ]
    }

    fn invariants(&self, w: &Setup) -> Vec<String> {
        let mut v = Vec::new();
        for i in 0..VOLUMES.len() {
            let mp = w.mp(i);
            if mounted_at(&mp).is_some() && !writable_within(&mp, std::time::Duration::from_secs(3))
            {
                thaw_if_frozen(&mp);
                v.push(format!("v{i} left frozen"));
            }
        }
        if matches!(self, Volumes::Make) {
            // An older set (a faulted or killed run's) is usable (each
            // snapshot knows its mount point) or marked crash-consistent,
            // never a silent half.
            let snapshots = self.snapshots(w);
            let newest = newest_run(&snapshots);
            for s in snapshots.iter().filter(|s| run_of(s) != newest.as_deref()) {
                let tag = |k: &str| {
                    s.tags()
                        .iter()
                        .find(|t| t.key() == Some(k))
                        .and_then(|t| t.value())
                };
                if tag("mount_point").is_none() && tag("consistency") != Some("crash") {
                    v.push(format!(
                        "{} of an earlier run has no mount_point and is not marked consistency=crash",
                        s.snapshot_id().unwrap_or("?")
                    ));
                }
            }
        }
        if matches!(self, Volumes::Copy) {
            // Never two copies of one snapshot (CopySnapshot has no
            // idempotency token: a retry after a lost reply could make one).
            let mut seen = std::collections::BTreeSet::new();
            for c in copies(w) {
                let of = c
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("snaptastic:copy-of"))
                    .and_then(|t| t.value())
                    .unwrap_or("none")
                    .to_string();
                if !seen.insert(of.clone()) {
                    v.push(format!("a second copy of {of} in {DR}"));
                }
            }
        }
        for vol in self.tagged_volumes(w) {
            let attached = vol
                .attachments()
                .iter()
                .any(|a| a.instance_id() == Some(w.lab.instance()));
            let state = vol
                .tags()
                .iter()
                .any(|t| t.key() == Some("snaptastic:state"));
            if attached && !state {
                v.push(format!(
                    "{} attached without a snaptastic:state tag",
                    vol.volume_id().unwrap_or("?")
                ));
            }
        }
        v
    }

    fn read_only(&self) -> bool {
        matches!(
            self,
            Volumes::List | Volumes::CheckBackups | Volumes::SelfTest
        )
    }
}

matrix!(mount_snapshots, super::Volumes::Mount);
matrix!(make_snapshots, super::Volumes::Make);
matrix!(unmount_snapshots, super::Volumes::Unmount);
matrix!(clean_snapshots, super::Volumes::Clean);
matrix!(copy_snapshots, super::Volumes::Copy);
matrix!(list_volumes, super::Volumes::List);
matrix!(check_backups, super::Volumes::CheckBackups);
matrix!(self_test, super::Volumes::SelfTest);
