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
    /// Print one JSON document on stdout at the end (what was done, per
    /// item, and whether all went well) instead of a line per item; logs
    /// stay on stderr.
    #[arg(long)]
    pub json: bool,
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

/// tablesnap 1.2.1's flags, plus endpoint, storage class and KMS options.
#[derive(Debug, Args)]
pub(crate) struct TablesnapArgs {
    /// S3 bucket (or `bucket` in the config's [tablesnap] section).
    #[arg(value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// Directories to watch.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Watch subdirectories too.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Watch directories created after start (and upload what is in them).
    #[arg(short = 'a', long = "auto-add")]
    pub auto_add: bool,
    /// At start, upload the files already there that S3 lacks.
    #[arg(short = 'B', long)]
    pub backup: bool,
    /// Key prefix, used as is (add the trailing '/' yourself).
    #[arg(short = 'p', long, default_value = "")]
    pub prefix: String,
    /// Do not write -listdir.json indexes.
    #[arg(long)]
    pub without_index: bool,
    #[arg(long, default_value = ":", value_name = "SEP")]
    pub keyname_separator: String,
    /// Files uploaded at once, and multipart parts in flight in all
    /// (default 10, as aws-cli; 1.2.1 used 4).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Host name in the keys (default: this host's FQDN).
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Skip files whose path matches any of these regexes.
    #[arg(short = 'e', long, num_args = 1.., value_name = "REGEX")]
    pub exclude: Vec<String>,
    /// Only files whose path matches one of these regexes.
    #[arg(short = 'i', long, num_args = 1.., value_name = "REGEX", conflicts_with = "exclude")]
    pub include: Vec<String>,
    /// inotify events that mean "a file is ready" (repeatable; default
    /// IN_MOVED_TO and IN_CLOSE_WRITE; add IN_CREATE for hard links).
    #[arg(long, value_parser = ["IN_MOVED_TO", "IN_CLOSE_WRITE", "IN_CREATE"], value_name = "EVENT")]
    pub listen_events: Vec<String>,
    /// A file over 8 MiB goes up in parts and then gets its md5sum by a
    /// copy inside S3: objects larger than this many MB are copied in
    /// ranges (default 5120, S3's one-request limit). In 1.2.1 this chose
    /// between one PUT and parts.
    #[arg(long, value_name = "MB")]
    pub max_upload_size: Option<u64>,
    /// Part size in MB, raised as needed to stay under 10,000 parts
    /// (default 8, as aws-cli). Parts in flight are held in memory, 48 MiB
    /// at most in all.
    #[arg(long, value_name = "MB")]
    pub multipart_chunk_size: Option<u64>,
    /// Accepted for compatibility; keys on the command line show in `ps`:
    /// prefer the instance role or the environment.
    #[arg(short = 'k', long = "aws-key", hide = true)]
    pub aws_key: Option<String>,
    #[arg(short = 's', long = "aws-secret", hide = true)]
    pub aws_secret: Option<String>,
    #[arg(long = "aws-token", hide = true)]
    pub aws_token: Option<String>,
    /// AWS region (default: the SDK's chain, else us-east-1).
    #[arg(long)]
    pub aws_region: Option<String>,
    /// S3-compatible endpoint (MinIO, Ceph RGW); AWS_ENDPOINT_URL works too.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Path-style addressing (automatic for IP and localhost endpoints).
    #[arg(long)]
    pub s3_force_path_style: bool,
    /// STANDARD, STANDARD_IA, INTELLIGENT_TIERING, ...
    #[arg(long)]
    pub storage_class: Option<String>,
    /// tablesnap's -R: REDUCED_REDUNDANCY.
    #[arg(short = 'R', long)]
    pub reduced_redundancy: bool,
    /// tablesnap's --with-sse: AES256.
    #[arg(long)]
    pub with_sse: bool,
    /// Server-side encryption: AES256 or aws:kms.
    #[arg(long, value_parser = ["AES256", "aws:kms"])]
    pub sse: Option<String>,
    #[arg(long, value_name = "KEY_ID")]
    pub sse_kms_key_id: Option<String>,
    /// Retries per request after the first attempt, with backoff
    /// (default 4).
    #[arg(long)]
    pub retries: Option<u32>,
    /// An S3 call that sends and receives nothing for this long is
    /// abandoned and tried again (--retries more times), then fails
    /// naming its action and key (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_stall)]
    pub stall_timeout: Option<std::time::Duration>,
    /// Read every file for its MD5 at start instead of taking it from the
    /// digest record for files unchanged since they were read (the S3
    /// copy is compared by size and md5sum either way).
    #[arg(long)]
    pub md5_on_start: bool,
    /// Where the digest record is kept (default: $STATE_DIRECTORY, else
    /// /var/lib/snaptastic for root, else ~/.local/state/snaptastic).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// How often a watched directory's index is rewritten when nothing
    /// else rewrote it (default 1 day, which `tablechop --forget-after`
    /// relies on). Hidden: only the tests shorten it, to watch a refresh
    /// happen in seconds.
    #[arg(long, value_name = "DURATION", hide = true, value_parser = humantime::parse_duration)]
    pub index_refresh: Option<std::time::Duration>,
}

/// Where the S3 objects are, for tableslurp and tablechop.
#[derive(Debug, Args, Clone)]
pub(crate) struct S3Args {
    /// Host name used in the keys (default: this host's FQDN).
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Key prefix the backups were written with (tablesnap -p).
    #[arg(long, default_value = "")]
    pub prefix: String,
    #[arg(long, default_value = ":", value_name = "SEP")]
    pub keyname_separator: String,
    /// AWS region (default: the SDK's chain, else us-east-1).
    #[arg(long)]
    pub aws_region: Option<String>,
    /// S3-compatible endpoint; AWS_ENDPOINT_URL works too.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Path-style addressing (automatic for IP and localhost endpoints).
    #[arg(long)]
    pub s3_force_path_style: bool,
    /// Accepted for compatibility (keys show in `ps`).
    #[arg(short = 'k', long = "aws-key", hide = true)]
    pub aws_key: Option<String>,
    #[arg(short = 's', long = "aws-secret", hide = true)]
    pub aws_secret: Option<String>,
    #[arg(long = "aws-token", hide = true)]
    pub aws_token: Option<String>,
    /// An S3 call (a listing, a HEAD, a download, a delete) that sends
    /// and receives nothing for this long is abandoned and retried (5
    /// attempts, then it fails naming its action and key).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_stall)]
    pub stall_timeout: std::time::Duration,
}

/// A stall timeout: a duration (humantime) longer than zero.
fn parse_stall(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// tableslurp's arguments.
#[derive(Debug, Args)]
pub(crate) struct TableslurpArgs {
    #[arg(value_name = "BUCKET")]
    pub bucket: String,
    /// The directory as it was backed up (absolute path).
    #[arg(value_name = "ORIGIN")]
    pub origin: PathBuf,
    /// Where to restore it.
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
    #[command(flatten)]
    pub s3: S3Args,
    /// Restore from this index (the data file name it was written beside).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<String>,
    /// Restore the newest index not newer than this time (RFC 3339, e.g.
    /// 2026-11-20T06:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = humantime::parse_rfc3339_weak)]
    pub at: Option<std::time::SystemTime>,
    /// Restore owner and group (by name, else by id) from the backup.
    #[arg(short = 'p', long)]
    pub preserve: bool,
    #[arg(short = 'o', long)]
    pub owner: Option<String>,
    #[arg(short = 'g', long)]
    pub group: Option<String>,
    /// Keep the setuid, setgid and sticky bits of the backed-up mode.
    /// Without it they are dropped (and each file that had them is named):
    /// anyone who can write the bucket, or chmod a file before it is
    /// backed up, could otherwise have root restore a setuid-root binary.
    /// Needs -p, so the bits come back only with the owner they had.
    #[arg(long, requires = "preserve")]
    pub keep_special_bits: bool,
    /// Files downloaded at once, across all directories (aws-cli's
    /// default too).
    #[arg(short = 't', long, default_value_t = 10)]
    pub threads: usize,
    /// ORIGIN is a tree: restore every directory below it that has an index.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Download even files already present with the right MD5.
    #[arg(long)]
    pub force: bool,
    /// Restore objects without md5sum metadata instead of failing.
    /// tablesnap (1.2.1 and ours) always writes it, so its absence means
    /// the object was rewritten by another tool. Its bytes are checked
    /// against what S3 holds: its ETag where that is an MD5 (single-part,
    /// not SSE-KMS or SSE-C), else its size and S3's stored full-object
    /// checksum if it has one. That proves the download, not that the data
    /// is what was backed up; each such file gets a warning saying which.
    #[arg(long)]
    pub allow_unverified: bool,
    /// Print one JSON document on stdout at the end (what was done, per
    /// item, and whether all went well) instead of a line per item; logs
    /// stay on stderr.
    #[arg(long)]
    pub json: bool,
}

/// tablechop's arguments.
#[derive(Debug, Args)]
pub(crate) struct TablechopArgs {
    #[arg(value_name = "BUCKET")]
    pub bucket: String,
    /// The directory (tree) whose backups to prune.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Keep indexes younger than this many days (and the newest of every
    /// directory, whatever its age).
    #[arg(value_name = "AGE_DAYS", allow_negative_numbers = true)]
    pub age: f64,
    #[command(flatten)]
    pub s3: S3Args,
    /// Print the plan with reasons; delete nothing.
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Objects younger than this are kept even if no index lists them yet
    /// (uploads in flight).
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
    /// Delete everything of a directory in which nothing (index or data)
    /// is newer than this many days: a table dropped long ago. Off by
    /// default: the newest index of every directory is kept forever. A
    /// running tablesnap rewrites the index of every directory it watches
    /// once a day (within an hour of being due) even when nothing lands
    /// there, so a live, quiet table is never forgotten; values under 3
    /// days (3 refreshes) are warned about.
    #[arg(long, value_name = "DAYS")]
    pub forget_after: Option<f64>,
    /// Accepted for compatibility (every deletion is printed anyway).
    #[arg(long = "list-deletes", hide = true)]
    pub list_deletes: bool,
    /// Indexes read at once (default 10).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "proptests/cli.rs"]
mod proptests;
