//! The house rules, checked on the source text: AWS SDK and `nix` types
//! are named only inside `src/cloud/` and `src/host/` (and never in a
//! `pub` signature there), and no module of `src/` imports one that
//! imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FOREIGN: [&str; 6] = [
    "aws_sdk_",
    "aws_config",
    "aws_smithy_",
    "aws_types",
    "nix::",
    "SdkConfig",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src() -> (PathBuf, Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    (root, files)
}

/// Lines that are code (not comments).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
}

/// `word` in `line` at the start of a path (so `unix::` is not `nix::`).
fn names(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(i, _)| {
        !line[..i]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn sdk_and_nix_types_stay_in_cloud_and_host() {
    let (root, files) = src();
    let mut leaks = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().to_string();
        let inside = rel.starts_with("cloud/") || rel.starts_with("host/");
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&text) {
            let named = FOREIGN.iter().find(|w| names(line, w));
            let Some(word) = named else { continue };
            let t = line.trim_start();
            // Inside, a foreign type may be used but not shown: no `pub`
            // item or field names one (pub(crate) and private are fine).
            let public =
                t.starts_with("pub ") || t.starts_with("pub fn") || t.starts_with("pub async");
            if !inside || public {
                leaks.push(format!("src/{rel}:{n}: {word}: {}", line.trim()));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "AWS SDK / nix types outside cloud/ and host/ (wrap them there):\n{}",
        leaks.join("\n")
    );
}

/// The module file a `crate::a::b::c` path lands in: the longest prefix
/// that is a file (`a/b.rs`, `a/b/mod.rs`, `a.rs`, `a/mod.rs`).
fn module_of(root: &Path, segments: &[&str]) -> Option<PathBuf> {
    for n in (1..=segments.len()).rev() {
        let base: PathBuf = segments[..n].iter().collect();
        for cand in [base.with_extension("rs"), base.join("mod.rs")] {
            if root.join(&cand).is_file() {
                return Some(cand);
            }
        }
    }
    None
}

/// The directory whose `mod.rs` a file's `super::` names.
fn parent_dir(rel: &Path) -> PathBuf {
    let dir = rel.parent().unwrap_or(Path::new(""));
    if rel.file_name().is_some_and(|n| n == "mod.rs") {
        dir.parent().unwrap_or(Path::new("")).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Every `crate::...` and `super::...` path in the text, braces expanded
/// one level (`use crate::{a, b::c}`).
fn paths(text: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    let code: String = code_lines(text)
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n");
    for start in ["crate::", "super::"] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().last();
            rest = &rest[i + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let is_super = start == "super::";
            let prefix: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let after = &rest[prefix.len()..];
            let split = |p: &str| -> Vec<String> {
                p.split("::")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty() && s != "self")
                    .collect()
            };
            let base = split(&prefix);
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    // `a::{b, c}` inside a group: `a` is the module.
                    let item = item.split('{').next().unwrap_or("");
                    let mut segs = base.clone();
                    segs.extend(split(item));
                    if !segs.is_empty() {
                        out.push((is_super, segs));
                    }
                }
            } else if !base.is_empty() {
                out.push((is_super, base));
            }
        }
    }
    out
}

#[test]
fn no_import_circle_among_modules() {
    let (root, files) = src();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().to_path_buf();
        let text = std::fs::read_to_string(f).unwrap();
        // A file's own tests may use anything.
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        for (is_super, segs) in paths(text) {
            let mut full: Vec<String> = Vec::new();
            if is_super {
                full.extend(
                    parent_dir(&rel)
                        .iter()
                        .map(|c| c.to_string_lossy().to_string()),
                );
            }
            full.extend(segs);
            let segs: Vec<&str> = full.iter().map(String::as_str).collect();
            if let Some(to) = module_of(&root, &segs) {
                let is_parent_mod = to.file_name().is_some_and(|n| n == "mod.rs")
                    && rel.starts_with(to.parent().unwrap());
                if to != rel && !is_parent_mod && to != Path::new("lib.rs") {
                    edges.entry(rel.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        stack: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            return Some(stack[i..].to_vec());
        }
        if !done.insert(n.clone()) {
            return None;
        }
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        let mut stack = Vec::new();
        if let Some(circle) = visit(n, &edges, &mut stack, &mut done) {
            panic!(
                "import circle: {}",
                circle
                    .iter()
                    .map(|p| format!("src/{}", p.display()))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            );
        }
    }
    // The checker sees the dispatcher's imports (it would not find a
    // circle it cannot see).
    assert!(
        edges
            .get(Path::new("run.rs"))
            .is_some_and(|e| e.contains(Path::new("volumes/mount.rs"))),
        "{edges:#?}"
    );
}

/// Files of `src/` that may open, create, write, list or change a path
/// with `std::fs` themselves, each for a place the tool owns, the kernel
/// serves or the operator names for reading. Everything else reaches
/// paths through `host/safe_path.rs` (descriptors, no link followed),
/// because the tool runs as root among directories other users own.
const PLAIN_FS_ALLOWED: &[(&str, &str)] = &[
    ("host/safe_path.rs", "the safe-path layer itself"),
    (
        "host/lock.rs",
        "the lock file in the tool's own state directory",
    ),
    (
        "files/digests.rs",
        "the digest record in the tool's own state directory",
    ),
    (
        "host/mount.rs",
        "/proc (who holds a mount) and the pre-mount emptiness check",
    ),
    ("host/mountinfo.rs", "/proc/self/mountinfo"),
    ("host/privileges.rs", "/proc/self/status"),
    ("host/devices.rs", "/sys/block and block devices under /dev"),
    (
        "host/prewarm.rs",
        "the block device a warm-up reads, read-only (O_DIRECT)",
    ),
    ("host/watch.rs", "/proc/sys/fs/inotify"),
    ("host/watchdog.rs", "/proc/self/oom_score_adj"),
    (
        "host/freeze.rs",
        "device numbers of mount points and outputs (the freeze itself goes through safe_path)",
    ),
    (
        "config/mod.rs",
        "reading the configuration file the operator names",
    ),
    (
        "generate.rs",
        "man pages and completions into a directory the packager names",
    ),
];

/// Calls that act on a path by name.
const PLAIN_FS: &[&str] = &[
    "File::create",
    "File::open",
    "OpenOptions",
    "read_dir(",
    "fs::create_dir",
    "fs::write(",
    "fs::read(",
    "fs::read_to_string(",
    "fs::rename(",
    "fs::remove_file(",
    "fs::set_permissions(",
    "fs::metadata(",
    "symlink_metadata(",
    "fs::chown(",
];

#[test]
fn user_controlled_paths_are_opened_only_through_the_safe_path_layer() {
    let (root, files) = src();
    let mut found = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().to_string();
        if rel.ends_with("_tests.rs")
            || rel.ends_with("/tests.rs")
            || PLAIN_FS_ALLOWED.iter().any(|(a, _)| *a == rel)
        {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests in the file may make their fixtures by path.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code_lines(code) {
            if let Some(call) = PLAIN_FS.iter().find(|c| line.contains(*c)) {
                found.push(format!("src/{rel}:{n}: {call}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "paths opened by name outside host/safe_path.rs (use SafeDir/Roots, or add the file to \
         PLAIN_FS_ALLOWED with the reason its paths are the tool's own):\n{}",
        found.join("\n")
    );
}

/// The files that may know the command line's types: the tree itself, its
/// tests, and the top-level dispatch that turns it into plain settings
/// (`run.rs`), the man pages and completions (`generate.rs`) and the IAM
/// policy command (`policy.rs`, whose kinds are a clap value enum).
const KNOWS_CLAP: [&str; 7] = [
    "cli.rs",
    "cli_files.rs",
    "cli_tests.rs",
    "run.rs",
    "run_tests.rs",
    "generate.rs",
    "policy.rs",
];

#[test]
fn only_the_top_level_dispatch_knows_clap() {
    let (root, files) = src();
    let mut leaks = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().to_string();
        if KNOWS_CLAP.contains(&rel.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&text) {
            if names(line, "clap") || line.contains("crate::cli") || names(line, "cli::") {
                leaks.push(format!("src/{rel}:{n}: {}", line.trim()));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "command-line types outside the dispatch (resolve them into plain settings in run.rs):\n{}",
        leaks.join("\n")
    );
}

/// A room a reader can hold in mind: no source file over 800 lines
/// (split it by concern, move a dominating test table to a sibling file).
#[test]
fn no_source_file_is_over_800_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("lab/src"), &mut files);
    let big: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 800).then(|| format!("{}: {n} lines", f.strip_prefix(root).unwrap().display()))
        })
        .collect();
    assert!(big.is_empty(), "files over 800 lines:\n{}", big.join("\n"));
}
