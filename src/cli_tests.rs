//! The command tree's unit tests: flags, defaults and their bounds.

use super::*;
use clap::CommandFactory;

#[test]
fn command_tree_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_flags_take_both_forms_and_any_position() {
    let a = Cli::try_parse_from([
        "snaptastic",
        "list-volumes",
        "solr",
        "--loglevel=warning",
        "-u",
        "{}",
        "--config",
        "/x.toml",
    ])
    .unwrap();
    assert_eq!(a.global.loglevel, LogLevel::Warning);
    assert_eq!(a.global.userdata.as_deref(), Some("{}"));
    assert_eq!(a.global.config, Some(PathBuf::from("/x.toml")));
    let b = Cli::try_parse_from(["snaptastic", "-l", "DEBUG", "--userdata={}", "test"]).unwrap();
    assert_eq!(b.global.loglevel, LogLevel::Debug);
    assert_eq!(b.global.userdata.as_deref(), Some("{}"));
}

#[test]
fn freeze_timeout_is_bounded() {
    for bad in ["0s", "50ms", "61s", "1h"] {
        let err =
            Cli::try_parse_from(["snaptastic", "make-snapshots", "x", "--freeze-timeout", bad])
                .unwrap_err()
                .to_string();
        assert!(err.contains("is outside 100ms..60s"), "{bad}: {err}");
    }
    for good in ["100ms", "5s", "60s"] {
        Cli::try_parse_from([
            "snaptastic",
            "make-snapshots",
            "x",
            "--freeze-timeout",
            good,
        ])
        .unwrap();
    }
}

#[test]
fn loglevel_rejects_unknown_names() {
    let err = Cli::try_parse_from(["snaptastic", "test", "--loglevel=LOUD"]).unwrap_err();
    assert!(
        err.to_string().contains("unknown log level 'LOUD'"),
        "{err}"
    );
}

#[test]
fn original_short_flags_of_mount_snapshots() {
    let c = Cli::try_parse_from(["snaptastic", "mount-snapshots", "solr", "-i", "-d"]).unwrap();
    match c.command {
        Command::MountSnapshots(m) => {
            assert!(m.ignore_mounted && m.dry_run);
            assert_eq!(m.profile.name, "solr");
        }
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn call_limits_default_to_the_cloud_modules_and_are_bounded() {
    let c = Cli::try_parse_from(["snaptastic", "test"]).unwrap();
    let limits = crate::cloud::CallLimits::DEFAULT;
    assert_eq!(c.global.call_attempts, limits.attempts);
    assert_eq!(c.global.call_timeout, limits.attempt_timeout);
    let c = Cli::try_parse_from([
        "snaptastic",
        "test",
        "--call-attempts=2",
        "--call-timeout=1s",
    ])
    .unwrap();
    assert_eq!(c.global.call_attempts, 2);
    assert_eq!(c.global.call_timeout, std::time::Duration::from_secs(1));
    assert!(Cli::try_parse_from(["snaptastic", "test", "--call-attempts=0"]).is_err());
}
