//! Logs go to stderr, one line per event (timestamp, level, target,
//! message), as text or (`--log-format json`) as one JSON object per line
//! with the same fields; results go to stdout. `--loglevel=WARNING` silences a cron run
//! unless something is wrong. The AWS SDK's own logs stay at WARN unless
//! DEBUG is asked for.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::cli::{LogFormat, LogLevel};

pub(crate) fn init(level: LogLevel, format: LogFormat) {
    let ours = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        // tracing has no CRITICAL: errors are the most severe it knows.
        LogLevel::Error | LogLevel::Critical => LevelFilter::ERROR,
    };
    let theirs = if level == LogLevel::Debug {
        LevelFilter::INFO
    } else {
        ours.min(LevelFilter::WARN)
    };
    let filter = Targets::new()
        .with_default(theirs)
        .with_target("snaptastic", ours);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(true);
    // A second init (tests) is harmless.
    let _ = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(fmt)
            .with(filter)
            .try_init(),
        // Fields flattened: {"timestamp","level","fields":{"message"},"target"}
        // becomes {"timestamp","level","message","target"}.
        LogFormat::Json => tracing_subscriber::registry()
            .with(fmt.json().flatten_event(true))
            .with(filter)
            .try_init(),
    };
}
