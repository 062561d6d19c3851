//! The `snaptastic` binary: argv[0] dispatch (`tablesnap`, `tableslurp`,
//! `tablechop` symlinks), parse, run, map the outcome to an exit code:
//! 0 ok, 1 error, 2 usage.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use snaptastic::{app, cli::Cli, logging};

/// Names under which the binary acts as one of its subcommands.
const MULTI_CALL: [&str; 3] = ["tablesnap", "tableslurp", "tablechop"];

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let called_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("snaptastic")
        .to_string();
    if MULTI_CALL.contains(&called_as.as_str()) {
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
    logging::init(cli.global.loglevel);
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
    match runtime.block_on(app::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            for line in format!("{e:#}").lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}
