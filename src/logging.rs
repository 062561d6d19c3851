//! Logs go to stderr, one line per event (timestamp, level, target,
//! message), as text or (`--log-format json`) as one JSON object per line
//! with the same fields; results go to stdout. `--loglevel=WARNING` silences a cron run
//! unless something is wrong. The AWS SDK's own logs stay at WARN unless
//! DEBUG is asked for.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// The log levels of the original tool (Python's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

/// A log level name that is none of Python's.
#[derive(Debug, thiserror::Error)]
#[error("unknown log level '{0}': use DEBUG, INFO, WARNING, ERROR or CRITICAL")]
pub(crate) struct UnknownLogLevel(String);

pub(crate) fn parse_log_level(s: &str) -> Result<LogLevel, UnknownLogLevel> {
    match s.to_ascii_uppercase().as_str() {
        "DEBUG" => Ok(LogLevel::Debug),
        "INFO" => Ok(LogLevel::Info),
        "WARNING" | "WARN" => Ok(LogLevel::Warning),
        "ERROR" => Ok(LogLevel::Error),
        "CRITICAL" | "FATAL" => Ok(LogLevel::Critical),
        _ => Err(UnknownLogLevel(s.to_string())),
    }
}

/// Start logging at `level`, as text or (`json`) one object per line.
pub(crate) fn init(level: LogLevel, json: bool) {
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
    let _ = if json {
        // Fields flattened: {"timestamp","level","fields":{"message"},"target"}
        // becomes {"timestamp","level","message","target"}.
        tracing_subscriber::registry()
            .with(fmt.json().flatten_event(true))
            .with(filter)
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(fmt)
            .with(filter)
            .try_init()
    };
}
