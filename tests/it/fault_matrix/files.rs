//! The file commands in the fault matrix: a bucket (straight on the
//! emulator, where the test reads it), the lab's proxy in front of it for
//! the command, and a table directory of three files, one large enough to
//! go up in parts.

use std::path::{Path, PathBuf};

use super::{matrix, Scenario};
use crate::support::{md5_hex, snaptastic_bin, varied_bytes, Lab, LabOpts, Run, S3};

/// Which command, in which world.
#[derive(Clone, Copy)]
pub(crate) enum Files {
    /// tablesnap -B of a directory not yet backed up, stopped (SIGTERM)
    /// once its scan is done and its index written, or after 10 s.
    Snap,
    /// tableslurp of that backup into an empty directory.
    Slurp,
    /// tablechop of a backup with an older index, AGE_DAYS 0.
    Chop,
}

pub(crate) struct FileWorld {
    lab: Lab,
    s3: S3,
    /// The backed-up directory.
    origin: PathBuf,
    /// Where tableslurp restores to.
    target: PathBuf,
}

const FILES: [(&str, u32); 3] = [
    ("ks-tbl-1-Data.db", 4096),
    ("ks-tbl-1-Index.db", 70_000),
    ("ks-tbl-2-Data.db", 6 << 20),
];

/// The tablesnap flags every run here uses: small parts (the large file
/// goes up in two), quick gives-up.
const SNAP_FLAGS: &str = "-B -n host1 --multipart-chunk-size 5 --stall-timeout 2s --retries 1";

impl Files {
    /// tablesnap in the background, stopped once its scan is done and a
    /// moment has passed for its index (or after 10 s), its log on stderr
    /// and its exit code kept. A kill of the shell kills tablesnap with it
    /// (setpriv --pdeathsig), as a kill point wants.
    fn snap(&self, w: &FileWorld) -> Run {
        let script = format!(
            "log=$(mktemp); setpriv --pdeathsig KILL '{bin}' tablesnap {bucket} '{dir}' {SNAP_FLAGS} 2>\"$log\" & pid=$!; \
             for i in $(seq 100); do grep -q 'backup scan done' \"$log\" && break; sleep 0.1; done; \
             sleep 1.5; kill -TERM $pid; wait $pid; rc=$?; cat \"$log\" >&2; rm -f \"$log\"; exit $rc",
            bin = snaptastic_bin().display(),
            bucket = w.s3.bucket,
            dir = w.origin.display(),
        );
        w.lab.run_program(Path::new("/bin/sh"), &["-c", &script])
    }

    fn keys(w: &FileWorld) -> Vec<String> {
        w.s3.keys()
    }

    /// What the bucket holds: each key with whether its bytes match its
    /// `md5sum` (and the index's listing).
    fn bucket_state(w: &FileWorld) -> Vec<String> {
        let origin = w.origin.display().to_string();
        Self::keys(w)
            .into_iter()
            .map(|k| {
                let body = w.s3.get(&k);
                let meta = w.s3.metadata(&k);
                let shown = k.replace(&origin, "ORIGIN");
                if k.ends_with("-listdir.json") {
                    let listing: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    let mut files: Vec<String> = listing
                        .as_object()
                        .into_iter()
                        .flat_map(|m| m.values())
                        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect();
                    files.sort();
                    format!("{shown} lists {files:?}")
                } else {
                    let sum = meta.get("md5sum").cloned().unwrap_or_default();
                    format!("{shown} md5sum ok: {}", sum == md5_hex(&body))
                }
            })
            .collect()
    }
}

impl Scenario for Files {
    type World = FileWorld;

    fn name(&self) -> String {
        match self {
            Files::Snap => "tablesnap -B".into(),
            Files::Slurp => "tableslurp".into(),
            Files::Chop => "tablechop".into(),
        }
    }

    fn prepare(&self, moto: &str) -> FileWorld {
        let lab = Lab::start(moto, LabOpts::default());
        let s3 = S3::new(moto);
        let origin = lab.dir.join("data/ks/tbl");
        std::fs::create_dir_all(&origin).unwrap();
        for (i, (name, len)) in FILES.iter().enumerate() {
            std::fs::write(origin.join(name), varied_bytes(*len, i as u32)).unwrap();
        }
        let target = lab.dir.join("restore");
        let w = FileWorld {
            lab,
            s3,
            origin,
            target,
        };
        match self {
            Files::Snap => {}
            Files::Slurp => {
                let done = super::run_within(self.snap(&w), super::BOUND);
                assert_eq!(done.code, 0, "backing up:\n{}", done.text());
            }
            Files::Chop => {
                let done = super::run_within(Files::Snap.snap(&w), super::BOUND);
                assert_eq!(done.code, 0, "backing up:\n{}", done.text());
                // A newer index of the same directory: the older one (and
                // nothing it alone lists) is what AGE_DAYS 0 lets go.
                std::thread::sleep(std::time::Duration::from_millis(1100));
                let key = format!("host1:{}/ks-tbl-3-Data.db", w.origin.display());
                let body = varied_bytes(100, 9);
                let stat = r#"{"uid": 0, "gid": 0, "mode": 33188}"#.to_string();
                w.s3.put(&key, &body, &[("md5sum", md5_hex(&body)), ("stat", stat)]);
                let names: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
                w.s3.put(
                    &format!("{key}-listdir.json"),
                    format!(
                        r#"{{"{}": {:?}}}"#,
                        w.origin.display(),
                        [names.as_slice(), &["ks-tbl-3-Data.db"]].concat()
                    )
                    .as_bytes(),
                    &[("snaptastic-index", "1".into())],
                );
            }
        }
        w
    }

    fn lab<'a>(&self, w: &'a FileWorld) -> &'a Lab {
        &w.lab
    }

    fn command(&self, w: &FileWorld) -> Run {
        let origin = w.origin.display().to_string();
        let quick = ["-n", "host1", "--stall-timeout", "2s", "--call-attempts=2"];
        match self {
            Files::Snap => self.snap(w),
            Files::Slurp => {
                let target = w.target.display().to_string();
                let mut args = vec!["tableslurp", &w.s3.bucket, &origin, &target];
                args.extend(quick);
                // The 6 MiB file in three ranges, each faulted as a GET.
                args.extend(["--multipart-chunk-size", "2"]);
                w.lab.run(&args)
            }
            Files::Chop => {
                let mut args = vec!["tablechop", &w.s3.bucket, &origin, "0"];
                args.extend(quick);
                w.lab.run(&args)
            }
        }
    }

    fn end_state(&self, w: &FileWorld) -> Vec<String> {
        let mut out = Self::bucket_state(w);
        if matches!(self, Files::Slurp) {
            for (name, _) in FILES {
                let restored = std::fs::read(w.target.join(name)).ok();
                out.push(format!(
                    "restored {name}: {:?}",
                    restored.map(|b| md5_hex(&b))
                ));
            }
        }
        out.sort();
        out
    }

    fn resources(&self, w: &FileWorld) -> Vec<String> {
        vec![
            w.s3.bucket.clone(),
            "host1:".into(),
            w.origin.display().to_string(),
            w.target.display().to_string(),
        ]
    }

    /// An index never lists an object a restore would refuse: each file
    /// an index lists is in the bucket with an `md5sum` its bytes match.
    fn invariants(&self, w: &FileWorld) -> Vec<String> {
        let keys = Self::keys(w);
        let mut v = Vec::new();
        for index in keys.iter().filter(|k| k.ends_with("-listdir.json")) {
            let body = w.s3.get(index);
            let Ok(listing) = serde_json::from_slice::<serde_json::Value>(&body) else {
                v.push(format!("{index} is not JSON"));
                continue;
            };
            for (dir, files) in listing.as_object().into_iter().flatten() {
                for f in files.as_array().into_iter().flatten() {
                    let key = format!("host1:{dir}/{}", f.as_str().unwrap_or(""));
                    let ok = keys.contains(&key) && {
                        let meta = w.s3.metadata(&key);
                        meta.get("md5sum") == Some(&md5_hex(&w.s3.get(&key)))
                    };
                    if !ok {
                        v.push(format!("{index} lists {key}, which a restore would refuse"));
                    }
                }
            }
        }
        v
    }
}

matrix!(tablesnap, super::Files::Snap);
matrix!(tableslurp, super::Files::Slurp);
matrix!(tablechop, super::Files::Chop);
