//! The entry point: argv[0] dispatch (`tablesnap`, `tableslurp`,
//! `tablechop` symlinks), parse, resolve, run one command, and map the
//! outcome to an exit code: 0 ok, 1 error, 2 usage. Only this file knows
//! every command; no command imports it.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Parser;

use crate::cli::{self, Cli, Command};
use crate::context::{Context, Globals, Needs};
use crate::files::settings::{
    ChopSettings, S3Access, S3Settings, SlurpSettings, SnapFlags, SnapSettings,
};
use crate::report::Report;
use crate::snapshotter::Snapshotter;
use crate::volumes::{clean, freshness, list, mount, snapshot, thaw, unmount};
use crate::{files, generate, logging, policy, prewarm, selftest};

/// Run the command line of this process, with the configuration's profiles
/// and `extra` (a program's own snapshotters) as the known snapshotters.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     snaptastic::main(Vec::new())
/// }
/// ```
pub fn main(extra: Vec<Box<dyn Snapshotter>>) -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    // The thaw watchdog make-snapshots starts: no runtime, no logging.
    if args
        .get(1)
        .is_some_and(|a| a == crate::host::watchdog::MODE)
    {
        return crate::host::watchdog::serve(&args[2..]);
    }
    let called_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("snaptastic")
        .to_string();
    if cli::MULTI_CALL.contains(&called_as.as_str()) {
        args.insert(1, OsString::from(&called_as));
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors
            // to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let json_logs = cli.global.log_format == cli::LogFormat::Json;
    logging::init(cli.global.loglevel, json_logs);
    crate::host::memory::return_large_blocks();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Context {
        globals: Globals {
            userdata: cli.global.userdata.clone(),
            config: cli.global.config.clone(),
            calls: crate::cloud::CallLimits {
                attempts: cli.global.call_attempts,
                attempt_timeout: cli.global.call_timeout,
            },
            region: cli.global.region.clone(),
        },
        extra: extra.into_iter().map(Arc::from).collect(),
    };
    let daemon = matches!(cli.command, Command::Tablesnap(_));
    let outcome = runtime.block_on(dispatch(&ctx, cli.command));
    if daemon {
        // The daemon has given its stop its grace and said what is owed:
        // blocking work still running (cut off, and ending at its next
        // look at the stop) does not hold the exit past this, whatever
        // it is stuck in. Dropping the runtime would wait for all of it.
        runtime.shutdown_timeout(DAEMON_EXIT_WAIT);
    }
    match outcome {
        Ok(code) => code,
        // A log shipper reads one object per line, the final error too.
        Err(e) if json_logs => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            for line in format!("{e:#}").lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// How long tablesnap's exit waits for blocking work left behind by its
/// stop: a walk, a listing or a read looks at the stop flag every few
/// milliseconds of work, so this is for a read stuck in the kernel (a
/// saturated disk at idle I/O priority). Its stop takes at most 8 s of
/// grace plus this.
const DAEMON_EXIT_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Resolve what the command needs, then run it; `Err` exits 1.
async fn dispatch(ctx: &Context, command: Command) -> Result<ExitCode> {
    match command {
        Command::Test => selftest::run(ctx).await,
        Command::ListVolumes(a) => {
            let v = ctx.volumes(&a.profile.name, Needs::Userdata, true).await?;
            let opts = list::ListOptions {
                json: a.json,
                check_ready: a.check_ready,
            };
            list::run(&v, &opts).await
        }
        Command::MountSnapshots(a) => {
            let report = Report::new(a.json);
            let opts = mount::MountOptions {
                ignore_mounted: a.ignore_mounted,
                dry_run: a.dry_run,
                wait_pending: a.wait_pending,
                allow_non_empty: a.allow_non_empty,
                allow_mixed: a.allow_mixed,
                set: a.set.clone(),
                from_snapshot: a.from_snapshot,
                report: report.clone(),
                init_rate: a.init_rate.map(|r| r.0),
                prewarm: a.prewarm,
            };
            let result = async {
                let v = ctx.volumes(&a.profile.name, Needs::Instance, true).await?;
                mount::run(&v, &opts).await
            };
            report.finish("mount-snapshots", result.await)
        }
        Command::MakeSnapshots(a) => {
            let report = Report::new(a.json);
            let opts = snapshot::MakeOptions {
                wait: a.wait,
                freeze_timeout: a.freeze_timeout,
                allow_unfrozen: a.allow_unfrozen,
                per_volume: a.per_volume,
                report: report.clone(),
            };
            let result = async {
                let v = ctx.volumes(&a.profile.name, Needs::Instance, true).await?;
                snapshot::run(&v, &opts).await
            };
            report.finish("make-snapshots", result.await)
        }
        Command::UnmountSnapshots(a) => {
            // Ask before anything is looked up (as 0.2.12 did).
            let config = ctx.config()?;
            ctx.registry(Some(&config))?.get(&a.profile.name)?;
            if !a.yes && !crate::prompt::confirm("Are you sure you want to unmount?")? {
                println!("not unmounting");
                return Ok(ExitCode::SUCCESS);
            }
            let v = ctx.volumes(&a.profile.name, Needs::Instance, true).await?;
            let opts = unmount::UnmountOptions {
                delete: a.delete,
                lazy: a.lazy,
            };
            unmount::run(&v, &opts).await
        }
        Command::Clean(a) => {
            let v = ctx.volumes(&a.profile.name, Needs::Userdata, false).await?;
            let opts = clean::CleanOptions {
                what: match a.what {
                    cli::CleanTarget::Snapshots => clean::Target::Snapshots,
                    cli::CleanTarget::Volumes => clean::Target::Volumes,
                },
                keep_last: a.keep_last,
                older_than: a.older_than,
                dry_run: a.dry_run,
                yes: a.yes,
                include_detached: a.include_detached,
            };
            clean::run(&v, &opts).await
        }
        Command::CopySnapshots(a) => {
            let v = ctx.volumes(&a.profile.name, Needs::Userdata, true).await?;
            let opts = crate::volumes::copies::CopyOptions {
                dry_run: a.dry_run,
                wait: a.wait,
            };
            crate::volumes::copies::run(&v, &opts).await
        }
        Command::FastRestore(a) => {
            use crate::volumes::fast_restore::{self, Action, FastRestoreOptions};
            let (profile, opts) = match a.action {
                cli::FastRestoreAction::Enable {
                    profile,
                    duration,
                    zones,
                } => (
                    profile,
                    FastRestoreOptions {
                        action: Action::Enable { hours: duration },
                        zones,
                    },
                ),
                cli::FastRestoreAction::Disable { profile, expired } => (
                    profile,
                    FastRestoreOptions {
                        action: Action::Disable {
                            expired_only: expired,
                        },
                        zones: Vec::new(),
                    },
                ),
                cli::FastRestoreAction::Status { profile } => (
                    profile,
                    FastRestoreOptions {
                        action: Action::Status,
                        zones: Vec::new(),
                    },
                ),
            };
            let v = ctx.volumes(&profile.name, Needs::Userdata, true).await?;
            fast_restore::run(&v, &opts).await
        }
        Command::CheckBackups(a) => {
            let tags = [
                ("role", &a.role),
                ("cluster", &a.cluster),
                ("environment", &a.environment),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
            .collect();
            let report = Report::new(a.json);
            let opts = freshness::CheckOptions {
                age: a.age,
                name: a.name,
                tags,
                prometheus: a.prometheus,
                this_host: a.this_host,
                report: report.clone(),
            };
            report.finish("check-backups", freshness::run(ctx, &opts).await)
        }
        Command::Thaw(a) => thaw::run(ctx, &a.name).await,
        Command::Tablesnap(a) => {
            let settings = SnapSettings::resolve(ctx, &snap_flags(&a))?;
            files::snap::run(&settings).await
        }
        Command::Tableslurp(a) => {
            let report = Report::new(a.json);
            let settings = slurp_settings(*a, ctx.globals.calls.attempts);
            report.finish(
                "tableslurp",
                files::slurp::run(&settings, report.clone()).await,
            )
        }
        Command::Tablechop(a) => {
            files::chop::run(&chop_settings(*a, ctx.globals.calls.attempts)).await
        }
        Command::Generate(a) => generate::run(&a),
        Command::IamPolicy(a) => policy::run(ctx, &a).await,
        Command::Prewarm(a) => prewarm::run(&prewarm_options(a)).await,
    }
}

/// prewarm's flags as its settings.
fn prewarm_options(a: cli::PrewarmArgs) -> prewarm::PrewarmOptions {
    prewarm::PrewarmOptions {
        device: a.device,
        volume_id: a.volume_id,
        warm: prewarm::WarmOptions {
            depth: a.depth as usize,
            request: (a.request_kib as usize) << 10,
            max_rate_mib: a.max_rate,
        },
        detach: a.detach,
        status: a.status,
    }
}

/// tablesnap's flags as plain values; [`SnapSettings::resolve`] lays them
/// over the configuration file's section.
fn snap_flags(a: &cli::TablesnapArgs) -> SnapFlags {
    SnapFlags {
        bucket: a.bucket.clone(),
        paths: a.paths.clone(),
        recursive: a.recursive,
        auto_add: a.auto_add,
        backup: a.backup,
        prefix: a.prefix.clone(),
        without_index: a.without_index,
        keyname_separator: a.keyname_separator.clone(),
        threads: a.threads,
        name: a.name.clone(),
        exclude: a.exclude.clone(),
        include: a.include.clone(),
        listen_events: a.listen_events.clone(),
        max_upload_size: a.max_upload_size,
        multipart_chunk_size: a.multipart_chunk_size,
        access: S3Access {
            aws_region: a.aws_region.clone(),
            endpoint_url: a.endpoint_url.clone(),
            s3_force_path_style: a.s3_force_path_style,
            aws_key: a.aws_key.clone(),
            aws_secret: a.aws_secret.clone(),
            aws_token: a.aws_token.clone(),
        },
        storage_class: a.storage_class.clone(),
        reduced_redundancy: a.reduced_redundancy,
        with_sse: a.with_sse,
        sse: a.sse.clone(),
        sse_kms_key_id: a.sse_kms_key_id.clone(),
        retries: a.retries,
        stall_timeout: a.stall_timeout,
        md5_on_start: a.md5_on_start,
        state_dir: a.state_dir.clone(),
        index_refresh: a.index_refresh,
    }
}

/// The S3 flags tableslurp and tablechop share, with `--call-attempts`.
fn s3_settings(a: cli::S3Args, attempts: u32) -> S3Settings {
    S3Settings {
        name: a.name,
        prefix: a.prefix,
        keyname_separator: a.keyname_separator,
        access: S3Access {
            aws_region: a.aws_region,
            endpoint_url: a.endpoint_url,
            s3_force_path_style: a.s3_force_path_style,
            aws_key: a.aws_key,
            aws_secret: a.aws_secret,
            aws_token: a.aws_token,
        },
        stall: a.stall_timeout,
        attempts,
    }
}

/// tableslurp's flags as its settings (`--json` is the report's).
fn slurp_settings(a: cli::TableslurpArgs, attempts: u32) -> SlurpSettings {
    SlurpSettings {
        bucket: a.bucket,
        origin: a.origin,
        target: a.target,
        s3: s3_settings(a.s3, attempts),
        file: a.file,
        at: a.at,
        preserve: a.preserve,
        owner: a.owner,
        group: a.group,
        keep_special_bits: a.keep_special_bits,
        threads: a.threads,
        part_size: a.multipart_chunk_size << 20,
        recursive: a.recursive,
        force: a.force,
        allow_unverified: a.allow_unverified,
    }
}

/// tablechop's flags as its settings (`--list-deletes` is accepted and
/// means nothing: every deletion is printed).
fn chop_settings(a: cli::TablechopArgs, attempts: u32) -> ChopSettings {
    ChopSettings {
        bucket: a.bucket,
        path: a.path,
        age: a.age,
        s3: s3_settings(a.s3, attempts),
        dry_run: a.dry_run,
        grace: a.grace,
        forget_after: a.forget_after,
        jobs: a.jobs,
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
