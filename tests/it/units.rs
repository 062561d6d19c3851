//! The packaged systemd units (`packaging/systemd/`) as the .deb ships
//! them: each service's exposure per `systemd-analyze security
//! --offline=yes` stays at or below the value recorded here, every unit
//! passes `systemd-analyze verify` without a warning, and the settings the
//! code depends on are there (and the ones that would break it are not).
//!
//! PID 1 is not systemd where the tests run, so no unit is started here:
//! what systemd does with these settings when it stops a run is described
//! in the unit files and the README, not driven by a test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Each packaged service's overall exposure (systemd 252's scale, 0 to
/// 10) as reached when the units were hardened: a ceiling. Lower it when a
/// unit gets stricter; raising it needs a reason in the unit file. Before
/// the hardening: 9.6 for every snaptastic-*@ unit, 9.1 for tablesnap.
const EXPOSURE_CEILING: [(&str, f64); 8] = [
    ("snaptastic-check@.service", 1.1),
    ("snaptastic-clean@.service", 1.1),
    ("snaptastic-copy@.service", 1.1),
    ("snaptastic-fast-restore-expire@.service", 1.1),
    ("snaptastic-mount@.service", 4.7),
    ("snaptastic-prewarm@.service", 1.2),
    ("snaptastic-snapshot@.service", 4.7),
    ("tablesnap.service", 1.6),
];

/// `--freeze-timeout`'s upper bound (src/cli.rs refuses more).
const MAX_FREEZE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long tablesnap gives uploads in flight after SIGTERM.
const TABLESNAP_STOP_GRACE: Duration = Duration::from_secs(8);

fn unit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd")
}

fn unit_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(unit_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// `systemd-analyze`, or `None` after saying why the test is skipped. In
/// CI its absence fails the test instead.
fn systemd_analyze() -> Option<String> {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if out.status.success() => Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        ),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "systemd-analyze is missing in CI (apt-get install systemd)"
            );
            eprintln!("SKIPPED: systemd-analyze is missing (apt-get install systemd)");
            None
        }
    }
}

/// The `[Service]` assignments of a unit file, in order (a key may come
/// more than once; an empty value resets it, as systemd reads it).
fn service_settings(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if section == "Service" {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The value in force for a single-valued key.
fn last<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The words a list-valued key adds up to (an empty assignment resets).
fn list(settings: &[(String, String)], key: &str) -> Vec<String> {
    let mut words = Vec::new();
    for (_, v) in settings.iter().filter(|(k, _)| k == key) {
        if v.is_empty() {
            words.clear();
        }
        words.extend(v.split_whitespace().map(str::to_string));
    }
    words
}

/// A systemd time span in seconds: `90`, `150s`, `2min 30s`, `1h`.
fn time_span(v: &str) -> Duration {
    let mut total = Duration::ZERO;
    for word in v.split_whitespace() {
        let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
        let n: u64 = digits.parse().unwrap_or_else(|_| panic!("time span {v:?}"));
        let unit = &word[digits.len()..];
        total += match unit {
            "" | "s" | "sec" => Duration::from_secs(n),
            "min" | "m" => Duration::from_secs(60 * n),
            "h" => Duration::from_secs(3600 * n),
            "ms" => Duration::from_millis(n),
            other => panic!("time span unit {other:?} in {v:?}"),
        };
    }
    total
}

#[test]
fn every_service_stays_within_its_exposure_ceiling() {
    let Some(version) = systemd_analyze() else {
        return;
    };
    let ceilings: BTreeMap<&str, f64> = EXPOSURE_CEILING.into_iter().collect();
    let services: Vec<PathBuf> = unit_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    let names: Vec<String> = services.iter().map(|p| file_name(p)).collect();
    for name in ceilings.keys() {
        assert!(
            names.iter().any(|n| n == name),
            "{name} is in EXPOSURE_CEILING but not in packaging/systemd"
        );
    }
    let mut report = Vec::new();
    let mut over = Vec::new();
    for (path, name) in services.iter().zip(&names) {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let exposure: f64 = text
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for "))
            .and_then(|(_, rest)| rest.split_once(": "))
            .and_then(|(_, v)| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no overall exposure for {name} in:\n{text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let Some(&ceiling) = ceilings.get(name.as_str()) else {
            panic!("{name} scores {exposure}: record it in EXPOSURE_CEILING");
        };
        report.push(format!("{name} {exposure} (ceiling {ceiling})"));
        // The analyzer prints one decimal.
        if exposure > ceiling + 0.01 {
            over.push(format!(
                "{name}: exposure {exposure} is above its ceiling {ceiling}; \
                 `systemd-analyze security --offline=yes {}` says what got looser:\n{text}",
                path.display()
            ));
        }
    }
    eprintln!("{version}: {}", report.join(", "));
    assert!(over.is_empty(), "{}", over.join("\n"));
}

/// Every unit as the package installs it, templates as an instance (as
/// scripts/check-package.sh does after installing the .deb), with the
/// binary's path pointed at the one built here, so this runs without root
/// or a package.
#[test]
fn every_unit_verifies_without_a_warning() {
    if systemd_analyze().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_snaptastic");
    for path in unit_files() {
        let name = file_name(&path).replace("@.", "@solr.");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/usr/bin/snaptastic", bin);
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut args: Vec<String> = vec!["verify".into(), "--man=no".into()];
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| format!("./{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    names.sort();
    args.extend(names);
    let out = Command::new("systemd-analyze")
        .args(&args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {}\n{said}",
        out.status
    );
}

/// Any of these gives a unit its own mount namespace, where a mount is
/// not propagated back to the host (systemd.exec(5)); mount-snapshots
/// would mount the volumes where no one else sees them. They also stay
/// out of make-snapshots' unit: it freezes the host's file systems and
/// runs the same hooks.
const MOUNT_NAMESPACE: [&str; 21] = [
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "PrivateNetwork",
    "PrivateIPC",
    "PrivateUsers",
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "BindPaths",
    "BindReadOnlyPaths",
    "TemporaryFileSystem",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectProc",
    "ProcSubset",
    "MountFlags",
];

#[test]
fn the_volume_units_mount_in_the_hosts_namespace() {
    for name in ["snaptastic-mount@.service", "snaptastic-snapshot@.service"] {
        let s = service_settings(&unit_dir().join(name));
        for key in MOUNT_NAMESPACE {
            if let Some(v) = last(&s, key) {
                assert!(
                    v.is_empty() || v == "no" || v == "false" || v == "default" || v == "all",
                    "{name} sets {key}={v}: that gives it a mount namespace of its own"
                );
            }
        }
        for key in ["DynamicUser", "User", "RootDirectory", "RootImage"] {
            assert!(
                last(&s, key).is_none(),
                "{name} sets {key}=: it must run as root on the host's root"
            );
        }
        let caps = list(&s, "CapabilityBoundingSet");
        assert!(
            caps.iter().any(|c| c == "CAP_SYS_ADMIN"),
            "{name}: mount(2) and FIFREEZE need CAP_SYS_ADMIN, bounding set {caps:?}"
        );
        assert!(
            caps.iter().all(|c| !c.starts_with('~')),
            "{name}: the bounding set is a list of what is kept, not of what is dropped"
        );
    }
    let mount = service_settings(&unit_dir().join("snaptastic-mount@.service"));
    let filter = list(&mount, "SystemCallFilter");
    assert!(
        filter.iter().any(|f| f == "@mount"),
        "mount-snapshots calls mount(2): @mount must be allowed, filter {filter:?}"
    );
    assert!(
        last(&mount, "UMask").is_none_or(|u| u == "0022"),
        "mount points it creates must stay traversable by the application"
    );
}

/// make-snapshots' thaw watchdog (src/host/watchdog.rs) must get the
/// chance to thaw whatever stops the run. With the default
/// KillMode=control-group systemd sends SIGTERM to the main process and
/// the watchdog together (both thaw at once; tests/it/freeze_safety.rs
/// drives exactly that) and waits for both. KillMode=mixed would not
/// signal the watchdog but SIGKILL it the moment the main process is
/// gone, racing its last thaw; `process`/`none` would leave it behind.
#[test]
fn the_snapshot_unit_lets_the_watchdog_thaw_before_it_is_killed() {
    let s = service_settings(&unit_dir().join("snaptastic-snapshot@.service"));
    let mode = last(&s, "KillMode").unwrap_or("control-group");
    assert_eq!(
        mode, "control-group",
        "snaptastic-snapshot@.service KillMode"
    );
    assert_ne!(last(&s, "SendSIGTERM"), Some("no"));
    let stop = time_span(last(&s, "TimeoutStopSec").expect("TimeoutStopSec= is set"));
    // The watchdog thaws on its own at the end of the freeze phase and of
    // the call phase, each at most MAX_FREEZE_TIMEOUT.
    assert!(
        stop > 2 * MAX_FREEZE_TIMEOUT,
        "TimeoutStopSec {stop:?} must outlast the watchdog's deadlines (2 x {MAX_FREEZE_TIMEOUT:?})"
    );
    let caps = list(&s, "CapabilityBoundingSet");
    assert!(
        caps.iter().any(|c| c == "CAP_SYS_RESOURCE"),
        "the watchdog sets oom_score_adj=-1000, which needs CAP_SYS_RESOURCE; bounding set {caps:?}"
    );
}

#[test]
fn tablesnap_runs_as_its_own_user_with_read_search_only() {
    let s = service_settings(&unit_dir().join("tablesnap.service"));
    let user = last(&s, "User").expect("tablesnap.service sets User=");
    assert_eq!(user, "tablesnap");
    assert_eq!(list(&s, "AmbientCapabilities"), ["CAP_DAC_READ_SEARCH"]);
    assert_eq!(list(&s, "CapabilityBoundingSet"), ["CAP_DAC_READ_SEARCH"]);
    assert_eq!(last(&s, "NoNewPrivileges"), Some("yes"));
    // The digest record and the lock files live in $STATE_DIRECTORY.
    assert_eq!(last(&s, "StateDirectory"), Some("snaptastic"));
    assert!(last(&s, "RuntimeDirectory").is_none());
    // In a user namespace the capability would not reach other users' files.
    assert!(last(&s, "PrivateUsers").is_none_or(|v| v == "no"));
    let stop = time_span(last(&s, "TimeoutStopSec").expect("TimeoutStopSec= is set"));
    assert!(
        stop > TABLESNAP_STOP_GRACE,
        "TimeoutStopSec {stop:?} must outlast the daemon's own grace {TABLESNAP_STOP_GRACE:?}"
    );
    // The package makes the user the unit names.
    let postinst = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/debian/postinst"),
    )
    .unwrap();
    assert!(
        postinst.contains("adduser --system")
            && postinst.contains(&format!(" {user}\n"))
            && postinst.contains(&format!("getent passwd {user}")),
        "packaging/debian/postinst does not make the system user {user}"
    );
}

/// The check unit's run writes its metric to its runtime directory
/// (`%t/snaptastic-check-%i/`); its ExecStopPost= publishes it to
/// $TEXTFILE_DIR. Run that command as systemd would, with the specifiers
/// filled in and the directories in a temporary one.
#[test]
fn the_check_unit_publishes_its_metric_or_withdraws_it() {
    let s = service_settings(&unit_dir().join("snaptastic-check@.service"));
    let start = last(&s, "ExecStart").unwrap();
    assert!(
        start.contains("--prometheus %t/snaptastic-check-%i/snaptastic-%i.prom"),
        "{start}"
    );
    assert_eq!(last(&s, "RuntimeDirectory"), Some("snaptastic-check-%i"));
    let post = last(&s, "ExecStopPost").expect("ExecStopPost=");
    let post = post
        .strip_prefix('+')
        .expect("ExecStopPost runs privileged (+)");
    let argv = split_command(post);
    assert_eq!(argv[..2], ["/bin/sh", "-c"], "{post}");
    let textfile_default = s
        .iter()
        .filter(|(k, _)| k == "Environment")
        .find_map(|(_, v)| v.strip_prefix("TEXTFILE_DIR="))
        .expect("Environment=TEXTFILE_DIR=");
    assert_eq!(textfile_default, "/var/lib/prometheus/node-exporter");

    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("run");
    let staged_dir = runtime.join("snaptastic-check-solr");
    let textfile = tmp.path().join("node-exporter");
    std::fs::create_dir_all(&staged_dir).unwrap();
    let script = argv[2]
        .replace("%t", runtime.to_str().unwrap())
        .replace("%i", "solr");
    // The unit's umask is in force for the command too.
    let umask = last(&s, "UMask").unwrap_or("0022");
    let script = format!("umask {umask}\n{script}");
    let publish = || {
        let out = Command::new(&argv[0])
            .args(["-c", &script])
            .env("TEXTFILE_DIR", &textfile)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let staged = staged_dir.join("snaptastic-solr.prom");
    let published = textfile.join("snaptastic-solr.prom");

    // A run that wrote its metric (mode 0600 under the unit's umask): it
    // is published readable by the collector, the directory made.
    std::fs::write(&staged, "snaptastic_backup_age_seconds 60\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).unwrap();
    publish();
    assert_eq!(
        std::fs::read_to_string(&published).unwrap(),
        "snaptastic_backup_age_seconds 60\n"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&published), 0o644);
    assert_eq!(
        mode(&textfile),
        0o755,
        "the collector's user reads the directory"
    );
    let left: Vec<String> = std::fs::read_dir(&textfile)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["snaptastic-solr.prom"], "no temporary file is left");

    // A run that failed before it knew the ages wrote none: the old
    // metric goes, so the collector's absence alert fires.
    std::fs::remove_file(&staged).unwrap();
    publish();
    assert!(!published.exists());

    // A link left in the runtime directory is not followed (the publish
    // step runs as root; the run does not).
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, "not a metric").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&secret, &staged).unwrap();
    publish();
    assert!(!published.exists(), "a link was published");
}

/// A systemd command line split into words (single and double quotes,
/// no escapes: enough for the packaged units).
fn split_command(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), _) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quotes in {line}");
    if in_word {
        words.push(word);
    }
    words
}

/// The warm-up's unit: a stop is a success (the binary exits 143 on
/// SIGTERM, 130 on SIGINT, its place saved), its checkpoints go where
/// `snaptastic prewarm --status` and list-volumes read them, and
/// StateDirectory= names only the checkpoint directory: systemd hands the
/// whole named directory to the unit's user, and /var/lib/snaptastic is
/// tablesnap's.
#[test]
fn the_prewarm_unit_counts_a_stop_as_success_and_leaves_tablesnaps_state_alone() {
    let s = service_settings(&unit_dir().join("snaptastic-prewarm@.service"));
    let start = last(&s, "ExecStart").unwrap();
    assert_eq!(start, "/usr/bin/snaptastic prewarm --volume-id %i");
    let ok = list(&s, "SuccessExitStatus");
    assert!(
        ok.iter().any(|c| c == "143") && ok.iter().any(|c| c == "130"),
        "{ok:?}"
    );
    assert_eq!(last(&s, "StateDirectory"), Some("snaptastic/prewarm"));
    assert!(s
        .iter()
        .any(|(k, v)| k == "Environment" && v == "SNAPTASTIC_STATE_DIR=/var/lib/snaptastic"));
    assert_eq!(last(&s, "IOSchedulingClass"), Some("idle"));
    let stop = time_span(last(&s, "TimeoutStopSec").expect("TimeoutStopSec= is set"));
    assert!(stop >= Duration::from_secs(10), "{stop:?}");
}
