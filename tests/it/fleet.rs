//! The fleet recipes in `fleet/`: the SSM Command documents parse, use
//! only parameters they declare, and run snaptastic command lines that
//! parse (each is run with `--help` appended: clap refuses an unknown
//! command, flag or bad value before it prints help); the send-command and
//! State Manager inputs name those documents and their parameters, with
//! rate control.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::Run;

fn fleet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fleet")
}

fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(fleet().join(name)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fleet/{name}: {e}"))
}

/// The documents: `snaptastic-*.json`, by name (file stem).
fn documents() -> Vec<(String, Value)> {
    let mut docs: Vec<(String, Value)> = std::fs::read_dir(fleet())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("snaptastic-") && n.ends_with(".json"))
        .map(|n| (n.trim_end_matches(".json").to_string(), read(&n)))
        .collect();
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    docs
}

/// `{{ name }}` references in a line.
fn references(line: &str) -> Vec<String> {
    line.split("{{")
        .skip(1)
        .filter_map(|r| r.split("}}").next())
        .map(|r| r.trim().to_string())
        .collect()
}

#[test]
fn ssm_documents_run_command_lines_that_parse() {
    let docs = documents();
    assert!(docs.len() >= 2, "{docs:?}");
    for (name, doc) in &docs {
        assert_eq!(doc["schemaVersion"], "2.2", "{name}");
        let params = doc["parameters"].as_object().unwrap();
        let mut used = BTreeSet::new();
        let mut invocations = 0;
        for step in doc["mainSteps"].as_array().unwrap() {
            assert_eq!(step["action"], "aws:runShellScript", "{name}");
            for line in step["inputs"]["runCommand"].as_array().unwrap() {
                let line = line.as_str().unwrap();
                let mut concrete = line.to_string();
                for r in references(line) {
                    let p = params
                        .get(&r)
                        .unwrap_or_else(|| panic!("{name}: {{{{ {r} }}}} is not a parameter"));
                    let value = p["default"].as_str().unwrap_or("solr").to_string();
                    concrete = concrete.replace(&format!("{{{{ {r} }}}}"), &value);
                    used.insert(r);
                }
                let Some(cmd) = concrete.split("snaptastic ").nth(1) else {
                    continue;
                };
                invocations += 1;
                let mut args: Vec<String> = cmd
                    .split_whitespace()
                    .map(|w| w.trim_matches('\'').to_string())
                    .collect();
                args.push("--help".into());
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let d = Run::new(&argv).run();
                assert_eq!(
                    d.code(),
                    0,
                    "{name}: `snaptastic {cmd}` does not parse: {}",
                    d.stderr()
                );
            }
        }
        assert!(invocations > 0, "{name} runs no snaptastic command");
        let declared: BTreeSet<String> = params.keys().cloned().collect();
        assert_eq!(
            used, declared,
            "{name}: declared and used parameters differ"
        );
    }
}

#[test]
fn send_command_and_association_inputs_name_real_documents_with_rate_control() {
    let docs = documents();
    for (file, key) in [
        ("send-command-check-backups.json", "DocumentName"),
        ("association-daily-snapshots.json", "Name"),
    ] {
        let input = read(file);
        let doc_name = input[key].as_str().unwrap();
        let (_, doc) = docs
            .iter()
            .find(|(n, _)| n == doc_name)
            .unwrap_or_else(|| panic!("{file}: no document {doc_name} in fleet/"));
        let declared = doc["parameters"].as_object().unwrap();
        let given = input["Parameters"].as_object().unwrap();
        for k in given.keys() {
            assert!(
                declared.contains_key(k),
                "{file}: {k} is not a parameter of {doc_name}"
            );
        }
        for (k, p) in declared {
            assert!(
                p.get("default").is_some() || given.contains_key(k),
                "{file}: {doc_name} needs {k}"
            );
        }
        for rate in ["MaxConcurrency", "MaxErrors"] {
            assert!(input[rate].is_string(), "{file}: no {rate}");
        }
        assert!(!input["Targets"].as_array().unwrap().is_empty(), "{file}");
    }
}
