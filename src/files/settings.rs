//! The file commands' settings, as plain data resolved once before a
//! command runs: `run.rs` turns the flags into these (tablesnap's over the
//! configuration file's `[tablesnap]` section), so no file command reads
//! the command line or the configuration file itself, as no volume command
//! does (`context.rs`). What each command then does with them is its own
//! (`snap.rs`, `slurp.rs`, `chop.rs`).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::keys::KeyNaming;
use super::Connection;
use crate::config::{ConfigError, Tablesnap};
use crate::context::Context;

/// How S3 is reached, as every file command is told: region, endpoint and
/// keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct S3Access {
    /// `None`: the SDK's chain, else us-east-1.
    pub aws_region: Option<String>,
    /// An S3-compatible endpoint (MinIO, Ceph RGW).
    pub endpoint_url: Option<String>,
    pub s3_force_path_style: bool,
    /// Keys from the command line (warned about: they show in `ps`).
    pub aws_key: Option<String>,
    pub aws_secret: Option<String>,
    pub aws_token: Option<String>,
}

impl S3Access {
    /// How to reach `bucket`, with `attempts` tries of each request, each
    /// abandoned after `stall` without progress.
    pub(crate) fn connection<'a>(
        &'a self,
        bucket: &'a str,
        attempts: u32,
        stall: Duration,
    ) -> Connection<'a> {
        Connection {
            bucket,
            region: self.aws_region.as_deref(),
            endpoint: self.endpoint_url.as_deref(),
            force_path_style: self.s3_force_path_style,
            key: self.aws_key.as_deref(),
            secret: self.aws_secret.as_deref(),
            token: self.aws_token.as_deref(),
            attempts,
            stall,
        }
    }
}

/// Where the objects are kept and how S3 is reached: what tableslurp and
/// tablechop share. tablesnap has its own, since its configuration file
/// section can give most of these too ([`SnapSettings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Settings {
    /// Host name in the keys; `None`: this host's FQDN.
    pub name: Option<String>,
    /// Key prefix the backups were written with (tablesnap -p).
    pub prefix: String,
    pub keyname_separator: String,
    pub access: S3Access,
    /// An S3 call that moves nothing this long is tried again.
    pub stall: Duration,
    /// Tries of each S3 call (`--call-attempts`).
    pub attempts: u32,
}

impl S3Settings {
    /// How to reach `bucket`, with `attempts` tries per request.
    pub(crate) fn connection<'a>(&'a self, bucket: &'a str) -> Connection<'a> {
        self.access.connection(bucket, self.attempts, self.stall)
    }

    /// The key naming the backups were written with.
    pub(crate) fn naming(&self) -> KeyNaming {
        KeyNaming {
            prefix: self.prefix.clone(),
            name: self.name.clone().unwrap_or_else(super::default_name),
            separator: self.keyname_separator.clone(),
        }
    }
}

/// tableslurp's settings: which directory to restore from where, and how.
#[derive(Debug, Clone)]
pub(crate) struct SlurpSettings {
    pub bucket: String,
    /// The directory as it was backed up (absolute path).
    pub origin: PathBuf,
    /// Where to restore it.
    pub target: PathBuf,
    pub s3: S3Settings,
    /// Restore from this index (the data file name it was written beside).
    pub file: Option<String>,
    /// Restore the newest index not newer than this time.
    pub at: Option<SystemTime>,
    /// Restore owner and group from the backup.
    pub preserve: bool,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Keep the setuid, setgid and sticky bits of the backed-up mode.
    pub keep_special_bits: bool,
    /// Files downloaded at once, across all directories.
    pub threads: usize,
    /// Larger files come in ranges of this many bytes.
    pub part_size: u64,
    /// ORIGIN is a tree: every directory below it with an index.
    pub recursive: bool,
    /// Download even files already present with the right MD5.
    pub force: bool,
    /// Restore objects without md5sum metadata instead of failing.
    pub allow_unverified: bool,
}

/// tablechop's settings: which directory's backups to prune, and how far.
#[derive(Debug, Clone)]
pub(crate) struct ChopSettings {
    pub bucket: String,
    /// The directory (tree) whose backups to prune.
    pub path: PathBuf,
    /// Keep indexes younger than this many days.
    pub age: f64,
    pub s3: S3Settings,
    /// Print the plan with reasons; delete nothing.
    pub dry_run: bool,
    /// Objects younger than this are kept even if no index lists them.
    pub grace: Duration,
    /// Forget a directory in which nothing is newer than this many days.
    pub forget_after: Option<f64>,
    /// Indexes read at once; `None`: 10.
    pub jobs: Option<usize>,
}

/// tablesnap's flags as given: `None`, empty or the flag's default where
/// one was not given, so that [`SnapSettings::merge`] can tell them from
/// a value the operator chose and let the configuration file fill them.
#[derive(Debug, Clone)]
pub(crate) struct SnapFlags {
    pub bucket: Option<String>,
    pub paths: Vec<PathBuf>,
    pub recursive: bool,
    pub auto_add: bool,
    pub backup: bool,
    /// `""` when not given (the flag's default).
    pub prefix: String,
    pub without_index: bool,
    /// `":"` when not given (the flag's default).
    pub keyname_separator: String,
    pub threads: Option<usize>,
    pub name: Option<String>,
    pub exclude: Vec<String>,
    pub include: Vec<String>,
    pub listen_events: Vec<String>,
    pub max_upload_size: Option<u64>,
    pub multipart_chunk_size: Option<u64>,
    pub access: S3Access,
    pub storage_class: Option<String>,
    pub reduced_redundancy: bool,
    pub with_sse: bool,
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub retries: Option<u32>,
    pub stall_timeout: Option<Duration>,
    pub md5_on_start: bool,
    pub state_dir: Option<PathBuf>,
    pub index_refresh: Option<Duration>,
}

/// The daemon's settings: flags, over `[tablesnap]` of the config, over
/// tablesnap 1.2.1's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapSettings {
    pub bucket: String,
    pub paths: Vec<PathBuf>,
    pub recursive: bool,
    pub auto_add: bool,
    pub backup: bool,
    pub without_index: bool,
    pub prefix: String,
    pub name: Option<String>,
    pub keyname_separator: String,
    pub threads: usize,
    pub exclude: Vec<String>,
    pub include: Vec<String>,
    pub listen_events: Vec<String>,
    pub max_upload_size: u64,
    pub multipart_chunk_size: u64,
    pub access: S3Access,
    pub storage_class: Option<String>,
    pub reduced_redundancy: bool,
    pub with_sse: bool,
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub retries: u32,
    /// An S3 call that moves nothing this long is tried again.
    pub stall: Duration,
    /// Where the digest record is kept.
    pub state_dir: Option<PathBuf>,
    /// Read every file at start (1.2.1's flag): the record is not used.
    pub md5_on_start: bool,
    /// How often each watched directory's index is rewritten when nothing
    /// else rewrote it (files/refresh.rs).
    pub index_refresh: Duration,
}

/// Why the flags and the `[tablesnap]` section make no [`SnapSettings`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapSettingsError {
    #[error("no bucket: give BUCKET and PATH..., or set bucket and paths in the [tablesnap] section of the configuration")]
    NoBucket,
    #[error("no directory to watch for bucket {bucket}: give PATH... or paths in [tablesnap]")]
    NoPaths { bucket: String },
    /// `-e`/`-i` take one or more values (1.2.1's `nargs='+'`), so
    /// `tablesnap -e REGEX BUCKET PATH` reads BUCKET and PATH as patterns
    /// too; "no bucket" alone would send the operator looking in the
    /// wrong place.
    #[error(
        "{flag} takes every following word as a pattern: {} read as pattern(s); \
         put {flag} REGEX after BUCKET PATH..., or write {flag}=REGEX",
        quote_list(.swallowed)
    )]
    PatternsSwallowedArguments {
        flag: &'static str,
        swallowed: Vec<String>,
    },
}

/// `'a'`, `'a' and 'b'`, `'a', 'b' and 'c'`, plus "was"/"were".
fn quote_list(words: &[String]) -> String {
    let q: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    match q.as_slice() {
        [] => "nothing was".to_string(),
        [one] => format!("{one} was"),
        [init @ .., last] => format!("{} and {last} were", init.join(", ")),
    }
}

/// When BUCKET or PATH is missing and `-e`/`-i` got more than one value,
/// the missing words were most likely read as patterns: all but the first
/// value are named (the first is the pattern the operator meant).
fn swallowed(cli: &SnapFlags) -> Option<SnapSettingsError> {
    let (flag, values) = if cli.exclude.len() > 1 {
        ("-e", &cli.exclude)
    } else if cli.include.len() > 1 {
        ("-i", &cli.include)
    } else {
        return None;
    };
    Some(SnapSettingsError::PatternsSwallowedArguments {
        flag,
        swallowed: values[1..].to_vec(),
    })
}

/// The configuration file's `[tablesnap]` section. The file is optional
/// here (flags suffice), but a broken one is an error, not silently
/// ignored.
fn tablesnap_section(ctx: &Context) -> Result<Option<Tablesnap>, ConfigError> {
    match crate::config::locate(ctx.globals.config.as_deref()) {
        Ok(path) if path.exists() => Ok(ctx.config()?.tablesnap),
        _ => Ok(None),
    }
}

impl SnapSettings {
    /// The daemon's settings, resolved once: `flags` over the
    /// configuration file's `[tablesnap]` section, if there is a file.
    pub(crate) fn resolve(ctx: &Context, flags: &SnapFlags) -> anyhow::Result<SnapSettings> {
        let file = tablesnap_section(ctx)?;
        Ok(Self::merge(flags, file.as_ref())?)
    }

    /// Merge flags over the file's section. Pure.
    pub(crate) fn merge(
        cli: &SnapFlags,
        file: Option<&Tablesnap>,
    ) -> Result<SnapSettings, SnapSettingsError> {
        let empty = Tablesnap::default();
        let f = file.unwrap_or(&empty);
        let pick =
            |a: &Vec<String>, b: &Vec<String>| if a.is_empty() { b.clone() } else { a.clone() };
        let Some(bucket) = cli.bucket.clone().or_else(|| f.bucket.clone()) else {
            return Err(swallowed(cli).unwrap_or(SnapSettingsError::NoBucket));
        };
        let paths = if cli.paths.is_empty() {
            f.paths.clone()
        } else {
            cli.paths.clone()
        };
        if paths.is_empty() {
            return Err(swallowed(cli).unwrap_or(SnapSettingsError::NoPaths { bucket }));
        }
        Ok(SnapSettings {
            bucket,
            paths,
            recursive: cli.recursive || f.recursive,
            auto_add: cli.auto_add || f.auto_add,
            backup: cli.backup || f.backup,
            without_index: cli.without_index || f.without_index,
            prefix: if cli.prefix.is_empty() {
                f.prefix.clone().unwrap_or_default()
            } else {
                cli.prefix.clone()
            },
            name: cli.name.clone().or_else(|| f.name.clone()),
            keyname_separator: if cli.keyname_separator == ":" {
                f.keyname_separator.clone().unwrap_or_else(|| ":".into())
            } else {
                cli.keyname_separator.clone()
            },
            threads: cli
                .threads
                .or(f.threads)
                .unwrap_or(super::REQUESTS_IN_FLIGHT),
            exclude: pick(&cli.exclude, &f.exclude),
            include: pick(&cli.include, &f.include),
            listen_events: pick(&cli.listen_events, &f.listen_events),
            max_upload_size: cli.max_upload_size.or(f.max_upload_size).unwrap_or(5120),
            multipart_chunk_size: cli
                .multipart_chunk_size
                .or(f.multipart_chunk_size)
                .unwrap_or(8),
            access: S3Access {
                aws_region: cli
                    .access
                    .aws_region
                    .clone()
                    .or_else(|| f.aws_region.clone()),
                endpoint_url: cli
                    .access
                    .endpoint_url
                    .clone()
                    .or_else(|| f.endpoint_url.clone()),
                s3_force_path_style: cli.access.s3_force_path_style || f.s3_force_path_style,
                ..cli.access.clone()
            },
            storage_class: cli
                .storage_class
                .clone()
                .or_else(|| f.storage_class.clone()),
            reduced_redundancy: cli.reduced_redundancy,
            with_sse: cli.with_sse,
            sse: cli.sse.clone().or_else(|| f.sse.clone()),
            sse_kms_key_id: cli
                .sse_kms_key_id
                .clone()
                .or_else(|| f.sse_kms_key_id.clone()),
            retries: cli.retries.or(f.retries).unwrap_or(4),
            stall: cli
                .stall_timeout
                .or(f.stall_timeout)
                .unwrap_or(super::DEFAULT_STALL),
            state_dir: cli.state_dir.clone().or_else(|| f.state_dir.clone()),
            md5_on_start: cli.md5_on_start || f.md5_on_start,
            index_refresh: cli.index_refresh.unwrap_or(super::refresh::DEFAULT_EVERY),
        })
    }

    /// How the daemon reaches its bucket: `--retries` after the first
    /// attempt of every request.
    pub(crate) fn connection(&self) -> Connection<'_> {
        self.access
            .connection(&self.bucket, self.retries.saturating_add(1), self.stall)
    }

    /// The key naming of the daemon's uploads.
    pub(crate) fn naming(&self) -> KeyNaming {
        KeyNaming {
            prefix: self.prefix.clone(),
            name: self.name.clone().unwrap_or_else(super::default_name),
            separator: self.keyname_separator.clone(),
        }
    }
}
