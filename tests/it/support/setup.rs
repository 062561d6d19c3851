//! The main lab fixture: a lab with userdata for a fresh role and a
//! profile `db` of the given volumes, mounted under the lab's directory;
//! and what tests ask of mounts.

use std::path::{Path, PathBuf};

use aws_sdk_ec2::types::{Filter, Volume};

use super::{lab_prerequisites, unique, Lab, LabOpts};

/// A lab with userdata for a fresh role, and a config with `volumes`
/// (device, file system) mounted under the lab's directory.
pub(crate) struct Setup {
    pub lab: Lab,
    pub role: String,
    pub cfg: PathBuf,
    _cfg_dir: tempfile::TempDir,
}

impl Setup {
    pub(crate) fn new(
        moto: &str,
        nvme: bool,
        rules: Option<&str>,
        volumes: &[(&str, &str, u32)],
    ) -> Setup {
        let opts = LabOpts {
            nvme,
            rules: rules.map(str::to_string),
            ..Default::default()
        };
        Setup::with_lab(moto, opts, volumes)
    }

    /// As `new`, with the lab's options as given (its directory, say);
    /// the user data is the profile's.
    pub(crate) fn with_lab(moto: &str, opts: LabOpts, volumes: &[(&str, &str, u32)]) -> Setup {
        let role = unique("mnt");
        let lab = Lab::start(
            moto,
            LabOpts {
                userdata: Some(format!(
                    r#"{{"role": "{role}", "cluster": "c", "environment": "e"}}"#
                )),
                ..opts
            },
        );
        let mut text = "[profiles.db]\n".to_string();
        for (i, (device, fs, size)) in volumes.iter().enumerate() {
            text.push_str(&format!(
                "[[profiles.db.volumes]]\ndevice = \"{device}\"\nmount_point = \"{}\"\nfile_system = \"{fs}\"\nsize = {size}\n",
                lab.dir.join(format!("mnt/v{i}")).display()
            ));
        }
        let cfg_dir = tempfile::tempdir().unwrap();
        let cfg = crate::support::write_config(&cfg_dir, &text);
        Setup {
            lab,
            role,
            cfg,
            _cfg_dir: cfg_dir,
        }
    }

    /// Add keys to the profile (before its volume tables).
    pub(crate) fn add_to_profile(&self, keys: &str) {
        let text = std::fs::read_to_string(&self.cfg).unwrap();
        let text = text.replacen("[profiles.db]\n", &format!("[profiles.db]\n{keys}\n"), 1);
        std::fs::write(&self.cfg, text).unwrap();
    }

    pub(crate) fn mp(&self, i: usize) -> PathBuf {
        self.lab.dir.join(format!("mnt/v{i}"))
    }

    pub(crate) fn snaptastic(&self, args: &[&str]) -> crate::support::Done {
        self.lab.run(args).config(&self.cfg).run()
    }

    /// Volumes this profile's runs created for the lab's instance, as
    /// `ec2` (the lab's, or the emulator's behind it) describes them.
    pub(crate) fn describe_ours(&self, ec2: &crate::support::Ec2) -> Vec<Volume> {
        let tag = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
        let r = ec2
            .rt
            .block_on(
                ec2.client
                    .describe_volumes()
                    .filters(tag("tag:snaptastic:profile", "db"))
                    .filters(tag("tag:instance_id", self.lab.instance()))
                    .send(),
            )
            .unwrap();
        r.volumes().to_vec()
    }

    /// Volumes this profile's runs created for the lab's instance: (id,
    /// state), through the lab.
    pub(crate) fn our_volumes(&self) -> Vec<(String, String)> {
        self.describe_ours(&self.lab.ec2())
            .iter()
            .map(|v| {
                (
                    v.volume_id().unwrap().to_string(),
                    v.state().unwrap().as_str().to_string(),
                )
            })
            .collect()
    }

    /// A snapshot of the volume at `mp`, tagged as snaptastic 0.2.12 did.
    pub(crate) fn legacy_snapshot(&self, volume: &str, mp: &Path) -> String {
        let ec2 = self.lab.ec2();
        let mp = mp.to_str().unwrap();
        ec2.legacy_snapshot(
            volume,
            "c snapshot of x",
            &[
                ("instance_id", self.lab.instance()),
                ("mount_point", mp),
                ("role", &self.role),
                ("cluster", "c"),
                ("environment", "e"),
                ("expires", "2013-09-02 14:22:02.361688"),
                ("created", "2013-08-26 14:22:02"),
            ],
        )
    }

    pub(crate) fn calls(&self, action: &str) -> u64 {
        self.lab.state()["calls"][action].as_u64().unwrap_or(0)
    }

    /// Calls that start snapshots: CreateSnapshot (per volume) and
    /// CreateSnapshots (a set).
    pub(crate) fn snapshot_calls(&self) -> u64 {
        self.calls("CreateSnapshot") + self.calls("CreateSnapshots")
    }
}

pub(crate) fn mounted_at(mp: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (Path::new(f[4]) == mp).then(|| {
            l.split(" - ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        })
    })
}

/// The volume id from a "mounted  MP: vol-… on …" summary line.
pub(crate) fn mounted_volume(out: &str, mp: &Path) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with("mounted") && l.contains(&format!("{}:", mp.display())))
        .unwrap_or_else(|| panic!("{} not mounted:\n{out}", mp.display()));
    line.split_whitespace().nth(2).unwrap().to_string()
}

/// The lab fixture with `volumes` restored and mounted (`mount-snapshots
/// db`), or `None` (with the reason printed) where the lab cannot run.
pub(crate) fn mounted_lab(volumes: &[(&str, &str, u32)]) -> Option<Setup> {
    let moto = lab_prerequisites()?;
    let s = Setup::new(&moto, false, None, volumes);
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    Some(s)
}
