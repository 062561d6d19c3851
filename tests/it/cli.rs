//! The command line without AWS: help, version, usage and input errors.

use crate::support::{write_config, Run};

const GOOD: &str = r#"
[profiles.solr]
[[profiles.solr.volumes]]
device = "/dev/sdf"
mount_point = "/mnt/solr"
"#;

#[test]
fn help_teaches_every_command_with_an_example() {
    let out = Run::new(&["--help"]).run().expect_code(0).stdout();
    for cmd in [
        "test",
        "list-volumes",
        "mount-snapshots",
        "make-snapshots",
        "unmount-snapshots",
        "clean",
        "check-backups",
        "tablesnap",
        "tableslurp",
        "tablechop",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
        let sub = Run::new(&[cmd, "--help"]).run().expect_code(0).stdout();
        assert!(
            sub.contains("Example"),
            "{cmd} --help has no example:\n{sub}"
        );
    }
    assert!(out.contains("--userdata") && out.contains("--loglevel") && out.contains("--config"));
}

#[test]
fn version_prints_and_exits_zero() {
    let out = Run::new(&["--version"]).run().expect_code(0).stdout();
    assert_eq!(
        out.trim(),
        format!("snaptastic {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    Run::new(&["list-volumes"]).run().expect_code(2);
    Run::new(&["frobnicate"]).run().expect_code(2);
    let d = Run::new(&["test", "--loglevel=chatty"])
        .run()
        .expect_code(2);
    assert!(
        d.stderr().contains("unknown log level 'chatty'"),
        "{}",
        d.stderr()
    );
}

#[test]
fn bad_config_is_one_line_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &format!("{GOOD}size = 0\n"));
    let d = Run::new(&["list-volumes", "solr", "--config", path.to_str().unwrap()])
        .run()
        .expect_code(1);
    let lines = d.error_lines();
    assert_eq!(
        lines,
        [format!(
            "error: {}:6:8: profile 'solr', volume 1 (/mnt/solr): size must be 1 to 16384 GiB for gp3, got 0",
            path.display()
        )],
        "{}",
        d.stderr()
    );
}

#[test]
fn unknown_profile_lists_the_defined_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, GOOD);
    let d = Run::new(&["list-volumes", "solar"])
        .config(&path)
        .run()
        .expect_code(1);
    assert_eq!(
        d.error_lines(),
        [format!(
            "error: no profile 'solar' in {}; defined profiles: solr",
            path.display()
        )]
    );
}

#[test]
fn malformed_userdata_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, GOOD);
    let d = Run::new(&["list-volumes", "solr", "--userdata={\"role\": solr}"])
        .config(&path)
        .run()
        .expect_code(1);
    let lines = d.error_lines();
    assert_eq!(lines.len(), 1, "{}", d.stderr());
    assert!(
        lines[0]
            .starts_with("error: --userdata is not valid JSON: expected value at line 1 column 10"),
        "{lines:?}"
    );
    let d = Run::new(&["list-volumes", "solr", "-u", "[]"])
        .config(&path)
        .run()
        .expect_code(1);
    assert_eq!(
        d.error_lines(),
        ["error: --userdata must be a JSON object like '{\"role\": \"db\"}', got a list"]
    );
}

#[test]
fn unreachable_metadata_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, GOOD);
    // Metadata points at a closed port (support::Run's default).
    let d = Run::new(&["list-volumes", "solr"])
        .config(&path)
        .run()
        .expect_code(1);
    let lines = d.error_lines();
    assert_eq!(lines.len(), 1, "{}", d.stderr());
    assert!(
        lines[0].starts_with("error: instance metadata at http://127.0.0.1:1: cannot connect:")
            && lines[0]
                .ends_with("(not on EC2 or metadata unreachable; pass --userdata and set region)"),
        "{lines:?}"
    );
}

#[test]
fn missing_config_names_where_it_looked() {
    let d = Run::new(&["list-volumes", "solr", "--config", "/nonexistent/x.toml"])
        .run()
        .expect_code(1);
    assert_eq!(d.error_lines(), ["error: cannot read configuration file /nonexistent/x.toml: No such file or directory (os error 2)"]);
}

#[test]
fn multi_call_names_act_as_their_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("tableslurp");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_snaptastic"), &link).unwrap();
    let out = std::process::Command::new(&link)
        .arg("bucket")
        .output()
        .unwrap();
    // Parsed as tableslurp: its own arguments are missing.
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("<ORIGIN>") && err.contains("tableslurp"),
        "{err}"
    );
}

/// The visible commands, read from `--help` (not from a list of ours).
fn visible_commands() -> Vec<String> {
    let help = Run::new(&["--help"]).run().expect_code(0).stdout();
    let section = help
        .split("Commands:")
        .nth(1)
        .and_then(|s| s.split("Options:").next())
        .unwrap_or_default()
        .to_string();
    section
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// Every `--long` flag a command's help shows (its examples, which may
/// call other tools, left out).
fn long_flags(help: &str) -> Vec<String> {
    let help = help.split("\nExample").next().unwrap_or_default();
    let mut flags: Vec<String> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches([',', '.', ':', ')'])
                .split(['=', '<', '['])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|f| f.len() > 2 && f[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn generated_completions_name_every_command_and_the_man_page_every_flag() {
    let commands = visible_commands();
    assert!(commands.len() >= 11, "{commands:?}");
    for shell in ["complete-bash", "complete-zsh", "complete-fish"] {
        let script = Run::new(&["generate", shell]).run().expect_code(0).stdout();
        for c in &commands {
            assert!(script.contains(c.as_str()), "{shell} lacks {c}");
        }
    }
    let man = Run::new(&["generate", "man"]).run().expect_code(0).stdout();
    // roff escapes '-' as '\-'.
    let man = man.replace("\\-", "-");
    for c in &commands {
        let help = Run::new(&[c.as_str(), "--help"])
            .run()
            .expect_code(0)
            .stdout();
        for flag in long_flags(&help) {
            assert!(man.contains(&flag), "the man page lacks {c} {flag}");
        }
    }

    // The files a package installs, the symlinked names' included.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    for what in ["man", "complete-bash", "complete-zsh", "complete-fish"] {
        Run::new(&["generate", what, out]).run().expect_code(0);
    }
    for name in ["snaptastic", "tablesnap", "tableslurp", "tablechop"] {
        for file in [
            format!("{name}.1"),
            name.to_string(),
            format!("_{name}"),
            format!("{name}.fish"),
        ] {
            let text = std::fs::read_to_string(dir.path().join(&file)).unwrap();
            assert!(text.contains(name), "{file}");
        }
    }
    let page = std::fs::read_to_string(dir.path().join("tablesnap.1")).unwrap();
    assert!(
        page.contains("state\\-dir") && page.starts_with(".ie"),
        "{page}"
    );
    Run::new(&["generate", "nonsense"]).run().expect_code(2);
}

#[test]
fn json_logs_are_one_object_per_line_the_final_error_too() {
    let secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY";
    let d = Run::new(&[
        "--log-format",
        "json",
        "tableslurp",
        "my-bucket",
        "relative/dir",
        "/tmp/x",
        "-k",
        "AKIAEXAMPLE",
        "-s",
        secret,
    ])
    .run()
    .expect_code(1);
    let err = d.stderr();
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 2, "{err}");
    for l in &lines {
        assert!(
            l["timestamp"].is_string() && l["message"].is_string(),
            "{l}"
        );
    }
    // The SDK's own lines come too; ours are under the crate's target.
    let ours: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("snaptastic"))
        })
        .collect();
    assert_eq!(ours[0]["level"], "WARN", "{err}");
    assert!(
        ours[0]["message"].as_str().unwrap().contains("-k/-s"),
        "{err}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert!(
        last["message"].as_str().unwrap().contains("ORIGIN must be"),
        "{err}"
    );
    assert!(!err.contains(secret));

    // The text format says the same as lines.
    let text = Run::new(&["tableslurp", "my-bucket", "relative/dir", "/tmp/x"])
        .run()
        .expect_code(1)
        .stderr();
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("error: ORIGIN must be"),
        "{text}"
    );
}
