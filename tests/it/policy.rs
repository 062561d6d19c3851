//! The IAM policy `snaptastic iam-policy` prints covers every AWS call the
//! code makes: the calls are read from the source of `src/cloud/` (each
//! SDK operation is a method called on the client), so adding a call
//! without adding it to the lists fails here.

use std::collections::BTreeSet;

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

/// The SDK operations called in one source file: methods called on
/// `client` (or `c`, the client in the DryRun probes).
fn operations(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap();
    let call = regex::Regex::new(r"\b(?:client|c)\s*\.\s*([a-z][a-z0-9_]*)\s*\(").unwrap();
    call.captures_iter(&text)
        .map(|c| c[1].to_string())
        // Not operations: the client's clone, and builders named `c`.
        .filter(|m| !["clone", "as_str", "build"].contains(&m.as_str()))
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
        (
            "files",
            "src/cloud/s3.rs",
            vec!["--bucket", "b", "--prefix", "p/"],
        ),
    ] {
        let found = operations(file);
        assert!(found.len() >= 5, "{kind}: {found:?}");
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
