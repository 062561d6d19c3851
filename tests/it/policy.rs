//! The IAM policy `snaptastic iam-policy` prints covers every AWS call the
//! code makes: the calls are read from the source of `src/cloud/` (each
//! SDK operation is a method called on the client), so adding a call
//! without adding it to the lists fails here.

use std::collections::BTreeSet;

use crate::support::Run;

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
        let json: serde_json::Value = serde_json::from_str(&policy).unwrap();
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
