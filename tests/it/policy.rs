//! The IAM policy `snaptastic iam-policy` prints covers every AWS call the
//! code makes: the calls are read from the source of `src/cloud/` (each
//! SDK operation is a method called on the client), so adding a call
//! without adding it to the lists fails here. And an IAM policy linter
//! (parliament) finds nothing wrong with what it prints.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{write_config, Run};

/// `describe_snapshots` -> `DescribeSnapshots`, `list_objects_v2` ->
/// `ListObjectsV2`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The SDK operations called in one source file, or in every file of a
/// directory: methods called on `client` (or `c`, the client in the
/// DryRun probes).
fn operations(path: &str) -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect()
    } else {
        vec![path]
    };
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let call = regex::Regex::new(r"\b(?:client|c)\s*\.\s*([a-z][a-z0-9_]*)\s*\(").unwrap();
    call.captures_iter(&text)
        .map(|c| c[1].to_string())
        // Not operations: the client's clone, and builders named `c`.
        .filter(|m| !["clone", "as_str", "build", "config"].contains(&m.as_str()))
        .map(|m| pascal(&m))
        .collect()
}

/// (call, action) lines of `iam-policy KIND --calls`.
fn listed(kind: &str) -> Vec<(String, String)> {
    Run::new(&["iam-policy", kind, "--calls"])
        .run()
        .expect_code(0)
        .stdout()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(c, a)| (c.to_string(), a.to_string()))
        .collect()
}

#[test]
fn every_aws_call_in_the_code_is_in_the_printed_policy() {
    for (kind, file, extra) in [
        ("volumes", "src/cloud/ec2.rs", vec![]),
        ("volumes", "src/cloud/restore_speed.rs", vec![]),
        ("volumes", "src/cloud/copies.rs", vec![]),
        ("volumes", "src/cloud/tiers.rs", vec![]),
        (
            "files",
            "src/cloud/s3",
            vec!["--bucket", "b", "--prefix", "p/"],
        ),
    ] {
        let found = operations(file);
        assert!(!found.is_empty(), "{kind}: {found:?}");
        let calls = listed(kind);
        let names: BTreeSet<String> = calls.iter().map(|(c, _)| c.clone()).collect();
        let missing: Vec<&String> = found.difference(&names).collect();
        assert!(
            missing.is_empty(),
            "{file} calls {missing:?}, which `iam-policy {kind}` does not list"
        );
        let mut args = vec!["iam-policy", kind];
        args.extend(extra);
        let policy = Run::new(&args).run().expect_code(0).stdout();
        let json: Value = serde_json::from_str(&policy).unwrap();
        let actions: BTreeSet<String> = json["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap().clone())
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        for (call, action) in &calls {
            assert!(actions.contains(action), "{call} needs {action}: {policy}");
        }
    }
    Run::new(&["iam-policy", "files"]).run().expect_code(1);
}

/// A profile whose filter tags come from `--userdata`, restoring DR copies
/// another account shares too.
const PROFILE: &str = r#"
[profiles.solr]
snapshot_owners = ["self", "444455556666"]
[[profiles.solr.volumes]]
device = "/dev/sdf"
mount_point = "/mnt/solr"
"#;
const USERDATA: &str = r#"{"role": "solr", "cluster": "c1", "environment": "prod"}"#;

#[test]
fn a_profile_names_its_tag_values_in_the_volume_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, PROFILE);
    let policy = Run::new(&["iam-policy", "volumes", "solr", "--userdata", USERDATA])
        .config(&cfg)
        .run()
        .expect_code(0)
        .stdout();
    let json: Value = serde_json::from_str(&policy).unwrap();
    let own = json["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "SnaptasticOwnSnapshots")
        .unwrap();
    assert_eq!(
        own["Condition"]["StringEquals"],
        serde_json::json!({
            "aws:ResourceTag/snaptastic:profile": "solr",
            "aws:ResourceTag/role": "solr",
            "aws:ResourceTag/cluster": "c1",
            "aws:ResourceTag/environment": "prod",
        }),
        "{policy}"
    );
    assert!(
        policy.contains(
            r#""ec2:Owner": [
            "444455556666"
          ]"#
        ),
        "{policy}"
    );
    // Any profile's, without one; a profile is for volumes only.
    let any = Run::new(&["iam-policy", "volumes"])
        .run()
        .expect_code(0)
        .stdout();
    assert!(
        any.contains(r#""aws:ResourceTag/snaptastic:profile": "false""#),
        "{any}"
    );
    assert!(!any.contains("c1"), "{any}");
    Run::new(&["iam-policy", "files", "solr", "--bucket", "b"])
        .run()
        .expect_code(1);
}

/// The linter: `$SNAPTASTIC_PARLIAMENT`, else the venv that
/// `scripts/policy-lint.sh install` (run by scripts/setup.sh, so by CI)
/// makes in the cache. `None` (after saying why) when it is not there,
/// except in CI, where that fails.
fn parliament() -> Option<PathBuf> {
    let path = match std::env::var_os("SNAPTASTIC_PARLIAMENT") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("SNAPTASTIC_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/snaptastic-cache"))
            .join("parliament-venv/bin/parliament"),
    };
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "the IAM policy linter is not at {}: run scripts/policy-lint.sh install (scripts/setup.sh does)",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED: needs the IAM policy linter at {}; run scripts/policy-lint.sh install (or set SNAPTASTIC_PARLIAMENT)",
        path.display()
    );
    None
}

/// parliament's findings (one JSON object a line) on `policy`, given on
/// stdin as a pipe. Every check at every severity, the community
/// auditors' too.
fn lint(parliament: &Path, policy: &str) -> Vec<Value> {
    let mut child = Command::new(parliament)
        .args([
            "--json",
            "--minimum_severity",
            "INFO",
            "--include-community-auditors",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start parliament");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(policy.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 0: no findings; 1: findings, printed.
    assert!(
        matches!(out.status.code(), Some(0 | 1)) && stderr.trim().is_empty(),
        "parliament failed ({}): {stderr}",
        out.status
    );
    let findings: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        out.status.code() == Some(0),
        findings.is_empty(),
        "{stdout}"
    );
    findings
}

/// The resource type an ARN (or ARN format) names: `volume` of
/// `arn:aws:ec2:*:*:volume/*`; `instance` of the policy variable that
/// stands for the calling instance's ARN.
fn resource_type(arn: &str) -> &str {
    if arn == "${ec2:SourceInstanceARN}" {
        return "instance";
    }
    arn.splitn(6, ':')
        .nth(5)
        .and_then(|r| r.split('/').next())
        .unwrap_or(arn)
}

/// Why a finding is a false positive, or `None` for a real one. Only two
/// kinds, each as narrowly as it can be told:
fn false_positive(finding: &Value, policy: &Value) -> Option<&'static str> {
    match finding["issue"].as_str()? {
        // parliament checks the Resource element's ARN syntax before any
        // policy variable is substituted; this one is the ARN of the
        // instance whose role credentials sign the request (EC2 sets
        // ec2:SourceInstanceARN, a global condition key, which IAM allows
        // as a variable).
        "INVALID_ARN" if finding["location"]["string"] == "${ec2:SourceInstanceARN}" => {
            Some("policy variable")
        }
        // parliament wants every resource type an action requires in each
        // statement that grants it; EC2 authorizes each resource of a
        // request on its own, and the policy gives each type its own
        // statement because a tag condition fails for a resource type it
        // does not apply to. False only if another statement grants the
        // action on the type this one lacks.
        "RESOURCE_MISMATCH" => {
            let statements = policy["Statement"].as_array()?;
            let covered = finding["detail"].as_array()?.iter().all(|d| {
                let (Some(action), Some(format)) =
                    (d["action"].as_str(), d["required_format"].as_str())
                else {
                    return false;
                };
                statements.iter().any(|s| {
                    let has = |field: &str, want: &dyn Fn(&str) -> bool| match &s[field] {
                        Value::String(v) => want(v),
                        Value::Array(a) => a.iter().filter_map(Value::as_str).any(want),
                        _ => false,
                    };
                    has("Action", &|a| a == action)
                        && has("Resource", &|r| resource_type(r) == resource_type(format))
                })
            });
            covered.then_some("one statement per resource type")
        }
        _ => None,
    }
}

#[test]
fn the_printed_policies_pass_the_iam_policy_linter() {
    let Some(parliament) = parliament() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, PROFILE);
    let policies = [
        ("volumes", Run::new(&["iam-policy", "volumes"])),
        (
            "volumes solr",
            Run::new(&["iam-policy", "volumes", "solr", "--userdata", USERDATA]).config(&cfg),
        ),
        (
            "files",
            Run::new(&["iam-policy", "files", "--bucket", "b", "--prefix", "p/"]),
        ),
    ];
    for (what, run) in policies {
        let text = run.run().expect_code(0).stdout();
        let policy: Value = serde_json::from_str(&text).unwrap();
        let findings = lint(&parliament, &text);
        let real: Vec<&Value> = findings
            .iter()
            .filter(|f| false_positive(f, &policy).is_none())
            .collect();
        assert!(real.is_empty(), "iam-policy {what}: {real:#?}\n{text}");
    }
    // The linter does find what it should: the old policy, everything on
    // every resource.
    let old = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["ec2:DeleteSnapshot", "ec2:DeleteVolume"], "Resource": "*"}]}"#;
    let old_json: Value = serde_json::from_str(old).unwrap();
    assert!(
        lint(&parliament, old)
            .iter()
            .any(|f| false_positive(f, &old_json).is_none()),
        "no finding on the old policy"
    );
}
