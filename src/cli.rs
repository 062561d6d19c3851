//! The command tree and global flags, as clap types. No I/O and no logic
//! lives here: `run.rs` parses and dispatches.
//!
//! Flag names follow snaptastic 0.2.12 (`-u/--userdata`, `-l/--loglevel`,
//! `-i/--ignore-mounted`, `-d/--dry-run`) so existing cron lines and boot
//! scripts keep working. Global flags may come before or after the command
//! and take their value as `--opt=value` or `--opt value`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::logging::{parse_log_level, LogLevel};

#[path = "cli_files.rs"]
mod files;
pub(crate) use files::{S3Args, TablechopArgs, TableslurpArgs, TablesnapArgs};

/// Names under which the binary acts as one of its subcommands (symlinks
/// to it); each gets its own man page and completion.
pub(crate) const MULTI_CALL: [&str; 3] = ["tablesnap", "tableslurp", "tablechop"];

/// Keep EBS data volumes and immutable files safe on EC2 hosts.
///
/// Volumes: restore a host's data volumes from the newest matching snapshot
/// at boot (mount-snapshots), take consistent snapshots with a short,
/// bounded filesystem freeze (make-snapshots), and inspect what would happen
/// (list-volumes, test).
///
/// Files: watch directories of immutable files and back them up to S3
/// (tablesnap), restore them (tableslurp) and prune old ones (tablechop).
#[derive(Debug, Parser)]
#[command(
    name = "snaptastic",
    version,
    propagate_version = true,
    after_help = "Examples:\n  \
        snaptastic test\n  \
        snaptastic list-volumes solr\n  \
        sudo snaptastic mount-snapshots solr\n  \
        snaptastic make-snapshots solr --loglevel=WARNING\n  \
        snaptastic make-snapshots solr --userdata='{\"role\": \"solr\", \"cluster\": \"solr\", \"environment\": \"aws\"}'\n\n\
        Configuration is read from --config, $SNAPTASTIC_CONFIG, /etc/snaptastic/snaptastic.toml\n\
        or /etc/snaptastic.toml (the first that is given or exists)."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args, Clone)]
pub(crate) struct GlobalArgs {
    /// Userdata as a JSON object; replaces the instance's userdata entirely
    /// (for porting old hosts, or running off EC2).
    #[arg(short = 'u', long, global = true, value_name = "JSON")]
    pub userdata: Option<String>,

    /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).
    /// Logs go to stderr; WARNING keeps a cron run silent unless something
    /// is wrong.
    #[arg(
        short = 'l',
        long,
        global = true,
        value_name = "LEVEL",
        default_value = "INFO",
        value_parser = parse_log_level
    )]
    pub loglevel: LogLevel,

    /// Log lines as text (the default; journald keeps them) or as one
    /// JSON object per line with the same fields, for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Configuration file (default: $SNAPTASTIC_CONFIG, then
    /// /etc/snaptastic/snaptastic.toml, then /etc/snaptastic.toml).
    #[arg(short = 'c', long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The AWS Region of the volume commands, over the configuration's
    /// `region`, AWS_REGION and the instance's: e.g. restore on a DR
    /// host from the copies copy-snapshots made there, or check their
    /// freshness (`check-backups 26h solr --region us-west-2`).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,

    /// Tries of each AWS call, the first included, before it fails:
    /// throttling, 5xx replies, resets and timeouts are retried with
    /// backoff. Lower it where a deadline matters more than riding out an
    /// outage (an SSM run, a health check). tablesnap has --retries.
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = crate::cloud::CallLimits::DEFAULT.attempts,
        value_parser = clap::value_parser!(u32).range(1..=20)
    )]
    pub call_attempts: u32,

    /// How long one try of an EC2 call may take before it is abandoned
    /// (and retried). S3 transfers are bounded by tablesnap's and
    /// tableslurp's --stall-timeout instead.
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        default_value = "30s", // CallLimits::DEFAULT.attempt_timeout (a unit test checks)
        value_parser = humantime::parse_duration
    )]
    pub call_timeout: std::time::Duration,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// A freeze bound an operator would mean: long enough for one API round
/// trip under load, short enough that a database waits seconds, not
/// minutes.
const FREEZE_TIMEOUT_RANGE: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_millis(100),
    std::time::Duration::from_secs(60),
);

/// A `--freeze-timeout` outside the sane range.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FreezeTimeoutError {
    #[error(transparent)]
    Parse(#[from] humantime::DurationError),
    #[error("{0} is outside 100ms..60s: filesystems must stay frozen long enough for one API call and no longer than a database can wait")]
    OutOfRange(String),
}

fn parse_freeze_timeout(s: &str) -> Result<std::time::Duration, FreezeTimeoutError> {
    let d = humantime::parse_duration(s)?;
    let (lo, hi) = FREEZE_TIMEOUT_RANGE;
    if d < lo || d > hi {
        return Err(FreezeTimeoutError::OutOfRange(s.to_string()));
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check the configuration, instance metadata, credentials and the IAM
    /// permissions of every EC2 action the tool uses (with DryRun).
    ///
    /// Prints one line per check with OK or FAIL and a hint; exits 1 if any
    /// check failed. Nothing is created or changed.
    #[command(
        after_help = "Example:\n  snaptastic test\n  snaptastic test --config ./snaptastic.toml"
    )]
    Test,

    /// Show each volume of a profile: device, mount point, size, type,
    /// whether it is mounted and attached, and the snapshot mount-snapshots
    /// would restore it from.
    #[command(
        after_help = "Examples:\n  snaptastic list-volumes solr\n  snaptastic list-volumes solr --json | jq '.[].restore'"
    )]
    ListVolumes(ListVolumesArgs),

    /// Restore every volume of a profile from its newest usable snapshot
    /// (or create and format an empty one), attach and mount it.
    #[command(
        after_help = "Examples:\n  sudo snaptastic mount-snapshots solr\n  sudo snaptastic mount-snapshots solr --dry-run\n  sudo snaptastic mount-snapshots solr --ignore-mounted"
    )]
    MountSnapshots(MountSnapshotsArgs),

    /// Freeze the profile's filesystems for the moment it takes to start
    /// their snapshots, then thaw.
    #[command(after_help = "Example:\n  sudo snaptastic make-snapshots solr --loglevel=WARNING")]
    MakeSnapshots(MakeSnapshotsArgs),

    /// Thaw the profile's filesystems if they are frozen (after a run that
    /// was killed while frozen, or a stuck watchdog); safe to run anytime.
    #[command(
        after_help = "Example:\n  sudo snaptastic thaw solr\n\nThe same by hand, per mount point: fsfreeze -u MOUNTPOINT"
    )]
    Thaw(ProfileArg),

    /// Unmount and detach every volume of a profile (asks first).
    #[command(
        after_help = "Examples:\n  sudo snaptastic unmount-snapshots solr\n  sudo snaptastic unmount-snapshots solr --yes"
    )]
    UnmountSnapshots(UnmountSnapshotsArgs),

    /// Delete this profile's expired snapshots or leftover volumes.
    #[command(
        after_help = "Examples:\n  snaptastic clean snapshots solr --dry-run\n  snaptastic clean snapshots solr --older-than 30d --keep-last 3 --yes\n  snaptastic clean volumes solr --dry-run"
    )]
    Clean(CleanArgs),

    /// Copy the profile's newest complete snapshot set to each of its copy
    /// targets' Regions ([[profiles.NAME.copies]]): starts the copies that
    /// are missing, within each target's limit of copies in progress, and
    /// reports those under way. Run it after make-snapshots (a timer):
    /// each run goes on where the last stopped, and never copies twice.
    #[command(
        after_help = "Examples:\n  snaptastic copy-snapshots solr\n  snaptastic copy-snapshots solr --dry-run\n  snaptastic copy-snapshots solr --wait 1h\n\nRestore from the copies on a host in the other Region:\n  sudo snaptastic mount-snapshots solr --region us-west-2"
    )]
    CopySnapshots(CopySnapshotsArgs),

    /// Fast snapshot restore (FSR) for the snapshots a profile restores
    /// from, for a bounded time: a volume created from them is fully
    /// initialized at once (while the snapshot's credits last), at $0.75
    /// per snapshot per zone per hour (us-east-1), billed until disabled.
    #[command(
        after_help = "Examples:\n  snaptastic fast-restore enable solr --for 3h\n  snaptastic fast-restore enable solr --for 1h --zones us-east-1a,us-east-1b\n  snaptastic fast-restore status solr\n  snaptastic fast-restore disable solr --expired   # from a timer: ends what is past its time\n  snaptastic fast-restore disable solr"
    )]
    FastRestore(FastRestoreArgs),

    /// Exit 0 if every mount point has a completed snapshot younger than
    /// AGE, else name the stale ones and exit 1 (for monitoring).
    ///
    /// By default the check is cluster-wide: a snapshot any host made with
    /// the profile's filter tags counts (as 0.2.12 found snapshots), so one
    /// host whose job broke is masked by its peers. --this-host counts only
    /// this instance's own snapshots (of its attached volumes, or tagged
    /// with its instance id): run it on every host.
    #[command(
        after_help = "Examples:\n  snaptastic check-backups 26h solr --this-host\n  snaptastic check-backups 26h solr\n  snaptastic check-backups 2d --environment prod --cluster main --role solr"
    )]
    CheckBackups(CheckBackupsArgs),

    /// Read every block of a volume restored from a snapshot once, so the
    /// application does not wait for blocks still in S3.
    ///
    /// A volume created from a snapshot loads each block from S3 the first
    /// time it is read (tens of ms each) until all are loaded. This reads
    /// the whole device once with direct I/O, --depth requests of
    /// --request-kib at a time, at the idle I/O priority, optionally
    /// capped at --max-rate. Progress is kept in
    /// <state dir>/prewarm/VOLUME_ID.json: a warm-up stopped (SIGTERM,
    /// SIGINT), killed or cut by a reboot resumes where it was; one whose
    /// checkpoint says it finished exits 0 at once ("already warmed").
    ///
    /// Exit status: 0 every block read (now or before), 1 an error (a
    /// read, the device, another warm-up of the volume running), 143
    /// (SIGTERM) or 130 (SIGINT) stopped, with its place saved.
    #[command(
        after_help = "Examples:\n  sudo snaptastic prewarm /dev/nvme1n1 --volume-id vol-0123456789abcdef0\n  sudo snaptastic prewarm --volume-id vol-0123456789abcdef0 --max-rate 100\n  sudo snaptastic prewarm /dev/xvdf --volume-id vol-0123456789abcdef0 --detach\n  snaptastic prewarm --volume-id vol-0123456789abcdef0 --status | jq .percent\n  sudo systemctl start snaptastic-prewarm@vol-0123456789abcdef0.service\n\nThe state directory is $SNAPTASTIC_STATE_DIR, else $STATE_DIRECTORY, else /var/lib/snaptastic."
    )]
    Prewarm(PrewarmArgs),

    /// Print the least-privilege IAM policy (JSON) for the volume commands
    /// or for the file commands on one bucket and prefix.
    ///
    /// The volume policy lets a host act only on itself and on volumes and
    /// snapshots carrying the tags the tool writes (or snaptastic 0.2.12's
    /// tag set). With a PROFILE, the conditions name that profile and its
    /// filter tag values as this host resolves them (its userdata, or
    /// --userdata), so a host cannot touch another profile's or cluster's.
    #[command(
        after_help = "Examples:\n  snaptastic iam-policy volumes > snaptastic-ec2.json\n  snaptastic iam-policy volumes solr > snaptastic-ec2-solr.json\n  snaptastic iam-policy files --bucket my-backups --prefix cassandra/ > snaptastic-s3.json\n  aws iam put-role-policy --role-name db --policy-name snaptastic --policy-document file://snaptastic-ec2.json"
    )]
    IamPolicy(IamPolicyArgs),

    /// Write man pages or shell completions (for packagers).
    #[command(
        hide = true,
        after_help = "Examples:\n  snaptastic generate man target/man\n  snaptastic generate complete-bash > /usr/share/bash-completion/completions/snaptastic"
    )]
    Generate(GenerateArgs),

    /// Watch directories and upload new immutable files to S3, in
    /// tablesnap 1.2.1's layout (tablesnap).
    ///
    /// Each file goes to `<prefix><name><separator><absolute path>` with
    /// its md5sum and stat as metadata; after the files of a directory are
    /// uploaded, a `<data key>-listdir.json` index lists them. Runs until
    /// SIGTERM/SIGINT, finishing the uploads in flight.
    #[command(
        after_help = "Examples:\n  tablesnap my-bucket /var/lib/cassandra/data -r -a -B\n  snaptastic tablesnap my-bucket /var/lib/cassandra/data -r -a --endpoint-url http://127.0.0.1:9000 -e '\\.log$'"
    )]
    Tablesnap(Box<TablesnapArgs>),

    /// Restore files uploaded by tablesnap (tableslurp).
    #[command(
        after_help = "Example:\n  snaptastic tableslurp my-bucket /var/lib/cassandra/data/ks/tbl /restore/tbl"
    )]
    Tableslurp(Box<TableslurpArgs>),

    /// Delete old tablesnap backups no kept index needs (tablechop).
    #[command(
        after_help = "Example:\n  snaptastic tablechop my-bucket /var/lib/cassandra/data/ks/tbl 14 --dry-run"
    )]
    Tablechop(Box<TablechopArgs>),
}

/// `prewarm`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct PrewarmArgs {
    /// The volume's block device. Without it the device is found by the
    /// volume id: the NVMe device whose serial it is (Nitro instances);
    /// a Xen device (/dev/xvdf) must be named.
    #[arg(value_name = "DEVICE")]
    pub device: Option<PathBuf>,
    /// The EBS volume id on DEVICE: names its checkpoint and lock.
    #[arg(long, value_name = "VOLUME_ID")]
    pub volume_id: String,
    /// Read at most this many MiB per second (default: as fast as the
    /// volume goes; the idle I/O class already yields to other reads
    /// where the I/O scheduler honours it).
    #[arg(long, value_name = "MIB_S", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rate: Option<u32>,
    /// Read requests in flight.
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::prewarm::DEFAULT_DEPTH as u32,
        value_parser = clap::value_parser!(u32).range(1..=256)
    )]
    pub depth: u32,
    /// KiB per read request, a multiple of 4.
    #[arg(
        long,
        value_name = "KIB",
        default_value_t = (crate::prewarm::DEFAULT_REQUEST >> 10) as u32,
        value_parser = parse_request_kib
    )]
    pub request_kib: u32,
    /// Start the warm-up in the background and return: a transient
    /// systemd unit (snaptastic-prewarm-VOLUME_ID.service) where PID 1 is
    /// systemd, else a detached process logging to
    /// <state dir>/prewarm/VOLUME_ID.log.
    #[arg(long, conflicts_with = "status")]
    pub detach: bool,
    /// Print the volume's warm-up progress from its checkpoint as JSON
    /// (bytes done and in all, finished, running, rate, ETA, last error)
    /// and exit; 1 when none is recorded.
    #[arg(long)]
    pub status: bool,
}

/// A request size in KiB: 4 KiB to 64 MiB, whole 4 KiB pages (what
/// direct I/O needs).
fn parse_request_kib(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !(4..=65536).contains(&n) || n % 4 != 0 {
        return Err("must be a multiple of 4 from 4 to 65536".into());
    }
    Ok(n)
}

/// Which commands a policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PolicyKind {
    /// EC2: mount-snapshots, make-snapshots, clean, check-backups, test, ...
    Volumes,
    /// S3: tablesnap, tableslurp, tablechop.
    Files,
}

#[derive(Debug, Args)]
pub(crate) struct IamPolicyArgs {
    #[arg(value_enum)]
    pub kind: PolicyKind,
    /// Volumes: limit the policy to this profile's tags (its name and
    /// filter tag values on this host) instead of any profile's.
    #[arg(value_name = "PROFILE")]
    pub profile: Option<String>,
    /// The bucket (files).
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// The key prefix tablesnap writes under (`-p`), if any.
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub prefix: String,
    /// List each AWS call the commands make and the IAM action it needs.
    #[arg(long, hide = true)]
    pub calls: bool,
}

/// What `generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Generated {
    /// Man pages: snaptastic.1, tablesnap.1, tableslurp.1, tablechop.1.
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    #[arg(value_enum)]
    pub what: Generated,
    /// Write the files for snaptastic and its tablesnap, tableslurp and
    /// tablechop names into DIR (each under its standard file name);
    /// without it, snaptastic's alone goes to stdout.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The name of a profile in the configuration file.
#[derive(Debug, Args, Clone)]
pub(crate) struct ProfileArg {
    /// Profile name, as in `[profiles.NAME]` of the configuration.
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub(crate) struct ListVolumesArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Print a JSON array instead of a table (for scripts).
    #[arg(long)]
    pub json: bool,
    /// For health checks: exit 1 (with one line naming the first) while a
    /// volume is not mounted or is still loading its blocks from its
    /// snapshot (EC2's initialization, the SPEED column), else 0.
    #[arg(long)]
    pub check_ready: bool,
}

#[derive(Debug, Args)]
pub(crate) struct MountSnapshotsArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Leave volumes already mounted at their mount point alone.
    #[arg(short = 'i', long)]
    pub ignore_mounted: bool,
    /// Print the plan and change nothing.
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// How long to wait for a newer snapshot that is still pending before
    /// falling back to the newest completed one.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub wait_pending: std::time::Duration,
    /// Mount even over a mount point directory that is not empty (its
    /// files are hidden while the volume is mounted).
    #[arg(long)]
    pub allow_non_empty: bool,
    /// When no snapshot set (make-snapshots run) covers every volume,
    /// restore each volume from its own newest snapshot anyway: the
    /// volumes then hold data from different points in time.
    #[arg(long)]
    pub allow_mixed: bool,
    /// Restore the snapshots of this make-snapshots run (its `snaptastic:run`
    /// tag, shown by list-volumes) instead of the newest point in time; it
    /// must cover every mount point that has snapshots.
    #[arg(long, value_name = "RUN")]
    pub set: Option<String>,
    /// Restore from the snapshot even where unmount-snapshots left a
    /// detached volume (newer data) in another availability zone, or
    /// leave such a volume in this zone unused.
    #[arg(long)]
    pub from_snapshot: bool,
    /// Load a restored volume's blocks at this provisioned rate (MiB/s,
    /// 100-300; billed once per GiB of snapshot data), or `off`: over
    /// every volume's `init_rate`. Not sent when fast snapshot restore is
    /// enabled for the snapshot here; dropped with a warning when EC2
    /// refuses it (capacity, the Regional quota): the restore goes on.
    #[arg(long, value_name = "MIB_S|off", value_parser = parse_init_rate)]
    pub init_rate: Option<InitRate>,
    /// After mounting a volume restored from a snapshot, read every block
    /// once in the background (`block`) so the first reads of the
    /// application are not the ones that load it from S3; over the
    /// profile's `prewarm`. Resumes after a reboot; see `snaptastic
    /// prewarm --help`.
    #[arg(long, value_name = "block|off", value_parser = parse_prewarm)]
    pub prewarm: Option<crate::config::Prewarm>,
    /// Print one JSON document on stdout at the end (what was done, per
    /// item, and whether all went well) instead of a line per item; logs
    /// stay on stderr.
    #[arg(long)]
    pub json: bool,
}

/// `--init-rate`: a rate in MiB/s, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InitRate(pub Option<u32>);

fn parse_init_rate(s: &str) -> Result<InitRate, String> {
    if s == "off" {
        return Ok(InitRate(None));
    }
    match s.parse::<i64>() {
        Ok(n) if crate::config::INIT_RATES.contains(&n) => Ok(InitRate(u32::try_from(n).ok())),
        _ => Err(format!(
            "expected 100 to 300 (MiB/s, EC2's range) or off, got {s:?}"
        )),
    }
}

fn parse_prewarm(s: &str) -> Result<crate::config::Prewarm, String> {
    crate::config::Prewarm::parse(s)
        .ok_or_else(|| format!("expected {}, got {s:?}", crate::config::Prewarm::NAMES))
}

#[derive(Debug, Args)]
pub(crate) struct MakeSnapshotsArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Wait until the snapshots are completed, with progress.
    #[arg(long)]
    pub wait: bool,
    /// Hard limit on how long filesystems stay frozen once frozen (and,
    /// separately, on how long freezing them may take): a watchdog process
    /// thaws them then even if the snapshot calls have not returned, or
    /// this process was killed (and the run fails). 100ms to 60s.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_freeze_timeout)]
    pub freeze_timeout: std::time::Duration,
    /// If a filesystem cannot be frozen, snapshot it anyway and tag the
    /// snapshot consistency=crash (default: take no snapshot, exit 1).
    #[arg(long)]
    pub allow_unfrozen: bool,
    /// Start one CreateSnapshot per volume (concurrently) instead of one
    /// CreateSnapshots for the whole set. The set is one request and one
    /// point in time for every volume; it shares one description.
    #[arg(long)]
    pub per_volume: bool,
    /// Print one JSON document on stdout at the end (what was done, per
    /// item, and whether all went well) instead of a line per item; logs
    /// stay on stderr.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UnmountSnapshotsArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Do not ask for confirmation (for cron and scripts).
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Delete the volumes after detaching them.
    #[arg(long)]
    pub delete: bool,
    /// Lazily unmount a busy filesystem (umount -l).
    #[arg(long)]
    pub lazy: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CleanArgs {
    /// What to clean.
    #[arg(value_enum)]
    pub what: CleanTarget,
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Keep at least this many newest snapshots of each mount point.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Delete snapshots older than this (e.g. 30d), not only expired ones.
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Print what would be kept and deleted, with reasons; delete nothing.
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// clean volumes: also delete volumes unmount-snapshots detached, or
    /// that a terminated instance left mounted; they may hold data newer
    /// than any snapshot.
    #[arg(long)]
    pub include_detached: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CopySnapshotsArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Print what would be copied and start nothing.
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Wait until the set's copies have completed (at most DURATION,
    /// default 2h); exit 1 if one ends in error.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "2h", value_parser = humantime::parse_duration)]
    pub wait: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct FastRestoreArgs {
    #[command(subcommand)]
    pub action: FastRestoreAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FastRestoreAction {
    /// Turn FSR on for the snapshots mount-snapshots would restore from
    /// now, in each zone, after printing the cost. Each snapshot is first
    /// tagged snaptastic:fast-restore-until (now + --for).
    Enable {
        #[command(flatten)]
        profile: ProfileArg,
        /// How long it should stay on (1h to 7d); `disable --expired`
        /// turns it off after that.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_fsr_duration)]
        duration: std::time::Duration,
        /// Availability Zones (comma-separated); default: this instance's.
        #[arg(long, value_name = "ZONE,...", value_delimiter = ',')]
        zones: Vec<String>,
    },
    /// Turn FSR off for the profile's snapshots (with --expired, only
    /// those whose snaptastic:fast-restore-until has passed).
    Disable {
        #[command(flatten)]
        profile: ProfileArg,
        /// Only snapshots past their snaptastic:fast-restore-until.
        #[arg(long)]
        expired: bool,
    },
    /// Show the profile's snapshots with FSR on, where, until when, and
    /// the hourly cost.
    Status {
        #[command(flatten)]
        profile: ProfileArg,
    },
}

fn parse_fsr_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    let (min, max) = (3600, 7 * 24 * 3600);
    if (min..=max).contains(&d.as_secs()) {
        Ok(d)
    } else {
        Err(format!("expected 1h to 7d, got {s}"))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CleanTarget {
    Snapshots,
    Volumes,
}

#[derive(Debug, Args)]
pub(crate) struct CheckBackupsArgs {
    /// Maximum age of the newest completed snapshot, e.g. 26h, 2d, 1w.
    #[arg(value_name = "AGE", value_parser = humantime::parse_duration)]
    pub age: std::time::Duration,
    /// Profile whose mount points to check.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    #[arg(long)]
    pub cluster: Option<String>,
    #[arg(long)]
    pub role: Option<String>,
    /// Write the newest backup age per mount point as a Prometheus
    /// textfile-collector metric.
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// Count only this instance's snapshots (of its attached volumes or
    /// tagged with its instance id); default: any host's with the tags.
    #[arg(long)]
    pub this_host: bool,
    /// Print one JSON document on stdout at the end (what was done, per
    /// item, and whether all went well) instead of a line per item; logs
    /// stay on stderr.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "proptests/cli.rs"]
mod proptests;
