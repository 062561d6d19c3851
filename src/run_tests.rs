//! tablesnap's settings as the command line gives them: what the flags
//! parse to (clap's `-e`/`-i` take every following word) and how they lie
//! over the configuration file's `[tablesnap]` section. Here because only
//! `run.rs` turns parsed flags into settings.

use std::path::PathBuf;

use clap::Parser;

use super::snap_flags;
use crate::cli::{Cli, Command, TablesnapArgs};
use crate::config::Tablesnap;
use crate::files::settings::{SnapSettings, SnapSettingsError};

fn cli(args: &[&str]) -> TablesnapArgs {
    let mut all = vec!["snaptastic", "tablesnap"];
    all.extend_from_slice(args);
    match Cli::try_parse_from(all).unwrap().command {
        Command::Tablesnap(a) => *a,
        other => panic!("{other:?}"),
    }
}

/// The parsed flags over the file's section, as `dispatch` lays them.
fn merge(cli: &TablesnapArgs, file: Option<&Tablesnap>) -> Result<SnapSettings, SnapSettingsError> {
    SnapSettings::merge(&snap_flags(cli), file)
}

#[test]
fn flags_win_over_the_file_and_defaults_fill_the_rest() {
    let file = Tablesnap {
        bucket: Some("from-file".into()),
        paths: vec!["/data".into()],
        recursive: true,
        threads: Some(8),
        exclude: vec!["\\.log$".into()],
        keyname_separator: Some("#".into()),
        ..Default::default()
    };
    let s = merge(&cli(&[]), Some(&file)).unwrap();
    assert_eq!(
        (s.bucket.as_str(), s.threads, s.recursive),
        ("from-file", 8, true)
    );
    assert_eq!(
        (s.keyname_separator.as_str(), s.max_upload_size, s.retries),
        ("#", 5120, 4)
    );
    let s = merge(
        &cli(&[
            "b",
            "/x",
            "-t",
            "2",
            "-e",
            "tmp",
            "--keyname-separator",
            "|",
        ]),
        Some(&file),
    )
    .unwrap();
    assert_eq!(
        (s.bucket.as_str(), s.paths.clone(), s.threads),
        ("b", vec![PathBuf::from("/x")], 2)
    );
    assert_eq!(
        (s.exclude.clone(), s.keyname_separator.as_str()),
        (vec!["tmp".to_string()], "|")
    );
    assert!(merge(&cli(&[]), None)
        .unwrap_err()
        .to_string()
        .starts_with("no bucket"));
    assert!(merge(&cli(&["b"]), None)
        .unwrap_err()
        .to_string()
        .starts_with("no directory to watch"));
}

#[test]
fn patterns_that_swallowed_bucket_and_paths_are_named() {
    let e = merge(&cli(&["-e", "\\.log$", "bkt", "/data"]), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "-e takes every following word as a pattern: 'bkt' and '/data' were read as \
         pattern(s); put -e REGEX after BUCKET PATH..., or write -e=REGEX"
    );
    let e = merge(&cli(&["bkt", "--include", "Data", "/data"]), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("-i takes every following word") && e.contains("'/data' was"),
        "{e}"
    );
    // 1.2.1's shapes still work: patterns after the positionals, and
    // the attached form before them.
    let s = merge(&cli(&["bkt", "/data", "-e", "a", "b"]), None).unwrap();
    assert_eq!((s.bucket.as_str(), s.exclude.len()), ("bkt", 2));
    let s = merge(&cli(&["-e=a", "bkt", "/data"]), None).unwrap();
    assert_eq!(
        (s.bucket.as_str(), s.paths.len(), s.exclude),
        ("bkt", 1, vec!["a".to_string()])
    );
    let s = merge(&cli(&["--exclude=a", "bkt", "/data"]), None).unwrap();
    assert_eq!((s.bucket.as_str(), s.exclude.len()), ("bkt", 1));
}
