//! The file commands' arguments (tablesnap, tableslurp, tablechop), as
//! clap types: tablesnap 1.2.1's flags and their additions. A part of
//! `cli.rs`, kept apart for size.

use std::path::PathBuf;

use clap::Args;

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
    /// (default 64; 1.2.1 used 4, aws-cli 10). Parts also wait for their
    /// share of 48 MiB of memory, so at most six 8 MiB parts are in
    /// flight whatever -t says.
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
    /// Files downloaded at once, across all directories (default 64:
    /// enough to fill a fast link with small files; each holds at most
    /// 256 KiB of its body in memory). Ranges of large files beyond their
    /// first take up to as many connections again.
    #[arg(short = 't', long, default_value_t = crate::files::REQUESTS_IN_FLIGHT)]
    pub threads: usize,
    /// A file larger than this many MiB is downloaded in ranges of this
    /// size, up to 8 at once (and -t more in all), each from the version
    /// of the object the first one came from: one connection to S3 goes
    /// only so fast. Every range is hashed in order into the file's MD5.
    /// Twice tablesnap's part size: fewer requests, and a range is
    /// hashed soon after it arrives. With --allow-unverified every file
    /// is one stream (S3's stored checksum covers only whole objects).
    #[arg(long, value_name = "MB", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=5120))]
    pub multipart_chunk_size: u64,
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
