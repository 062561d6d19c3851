//! `files::keys`: the `-listdir.json` index (ours and tablesnap 1.2.1's),
//! the keys of paths and directories, and tablechop's plan over a listing
//! of keys anyone with write access to the bucket may have made.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::cloud::s3::ObjectInfo;
use crate::files::chop;
use crate::proptests::{bytes, check, deep, hostile_text, json_value};

/// One path component as bytes: hostile text or any bytes (not UTF-8
/// either), without `/`.
fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        hostile_text().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 1..12),
    ]
    .prop_map(|mut b| {
        b.retain(|&c| c != b'/');
        b
    })
}

/// An absolute path of any bytes, trailing `/`, `//`, `.` and `..` included.
fn absolute_path() -> impl Strategy<Value = PathBuf> {
    (proptest::collection::vec(component(), 0..6), any::<bool>()).prop_map(|(parts, slash)| {
        let mut b = vec![b'/'];
        b.extend(parts.join(&b'/'));
        if slash {
            b.push(b'/');
        }
        PathBuf::from(OsStr::from_bytes(&b))
    })
}

fn naming() -> impl Strategy<Value = KeyNaming> {
    (hostile_text(), hostile_text(), hostile_text()).prop_map(|(prefix, name, separator)| {
        KeyNaming {
            prefix,
            name,
            separator,
        }
    })
}

/// A string as Python 2's `json.dumps` wrote it for tablesnap 1.2.1:
/// ASCII only, `\uXXXX` escapes (surrogate pairs above the BMP).
fn python_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// tablesnap 1.2.1's index: `{"<dir>": ["name", ...]}` in `json.dumps`'s
/// default layout (`", "` and `": "`), names in directory order.
fn python_index(dir: &str, names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| python_json_string(n)).collect();
    format!("{{{}: [{}]}}", python_json_string(dir), names.join(", "))
}

/// What `parse_index` must accept: an object of exactly one member whose
/// value is a list of strings.
fn is_index_shape(v: &Value) -> bool {
    match v {
        Value::Object(m) if m.len() == 1 => m
            .values()
            .all(|l| l.as_array().is_some_and(|a| a.iter().all(Value::is_string))),
        _ => false,
    }
}

/// Objects shaped like an index but not quite: 0 to 3 members, lists
/// mixing names with other values, members that are no list.
fn index_like_json() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        4 => hostile_text().prop_map(Value::String),
        1 => json_value(),
    ];
    let member = prop_oneof![
        4 => proptest::collection::vec(name, 0..8).prop_map(Value::Array),
        1 => json_value(),
    ];
    proptest::collection::vec((hostile_text(), member), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

#[test]
fn index_from_any_bytes() {
    check("index_from_any_bytes", bytes(), |b| {
        // As tableslurp and tablechop read a body.
        let _ = parse_index(&String::from_utf8_lossy(&b));
        Ok(())
    });
    check("index_from_hostile_text", hostile_text(), |t| {
        let _ = parse_index(&t);
        Ok(())
    });
}

#[test]
fn index_from_any_json_is_ok_exactly_for_the_index_shape() {
    let any_json = prop_oneof![json_value(), index_like_json()];
    check("index_from_any_json", any_json, |v| {
        let parsed = parse_index(&v.to_string());
        prop_assert_eq!(parsed.is_ok(), is_index_shape(&v), "{:?}", parsed);
        Ok(())
    });
}

#[test]
fn index_nested_past_any_limit_is_an_error() {
    let nesting = prop_oneof![Just(0usize), 1usize..200, 200usize..20_000];
    check("index_nested_deep", nesting, |n| {
        let lists = deep("[", "]", n);
        prop_assert!(parse_index(&lists).is_err());
        let objects = deep("{\"a\":", "}", n);
        prop_assert!(parse_index(&objects).is_err());
        let inside = format!("{{\"/d\": [{lists}]}}");
        prop_assert_eq!(parse_index(&inside).is_ok(), n == 0);
        Ok(())
    });
}

#[test]
fn our_index_reads_back() {
    let input = (
        absolute_path(),
        proptest::collection::vec(hostile_text(), 0..10),
    );
    check("our_index_reads_back", input, |(dir, names)| {
        let body = index_json(&dir, &names);
        let mut sorted = names.clone();
        sorted.sort();
        prop_assert_eq!(parse_index(&body), Ok((dir.display().to_string(), sorted)));
        Ok(())
    });
}

#[test]
fn tablesnap_1_2_1_index_reads_back() {
    let input = (
        hostile_text(),
        proptest::collection::vec(hostile_text(), 0..10),
    );
    check("tablesnap_index_reads_back", input, |(dir, names)| {
        let body = python_index(&dir, &names);
        prop_assert_eq!(parse_index(&body), Ok((dir, names)));
        Ok(())
    });
}

#[test]
fn keys_decode_back_to_paths_and_names() {
    let input = (naming(), absolute_path(), component());
    check("keys_decode_back", input, |(n, dir, name)| {
        let head = format!("{}{}{}", n.prefix, n.name, n.separator);
        let key = n.key(&dir);
        prop_assert_eq!(key.strip_prefix(&head), Some(&*dir.display().to_string()));
        let index = n.index_key(&dir);
        prop_assert_eq!(index.strip_suffix(INDEX_SUFFIX), Some(&*key));

        // A listing of dir_prefix(dir) holds the keys of its entries, and
        // each decodes back to the entry's name.
        let prefix = n.dir_prefix(&dir);
        prop_assert!(prefix.ends_with('/'));
        let name = OsStr::from_bytes(if name.is_empty() { b"x" } else { &name });
        let child = n.key(&dir.join(name));
        prop_assert_eq!(
            child.strip_prefix(&prefix),
            Some(&*name.to_string_lossy()),
            "{:?}",
            child
        );
        Ok(())
    });
}

#[test]
fn tablechop_lists_the_keys_an_index_names() {
    let input = (
        naming(),
        absolute_path(),
        proptest::collection::vec(component(), 0..8),
    );
    check("tablechop_listed_keys", input, |(n, dir, names)| {
        // As tablesnap writes them: each name one component, UTF-8.
        let names: Vec<String> = names
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let dir = PathBuf::from(dir.to_string_lossy().into_owned());
        let listed =
            chop::listed_keys(&n, &index_json(&dir, &names)).map_err(TestCaseError::fail)?;
        let mut want: Vec<String> = names.iter().map(|name| n.key(&dir.join(name))).collect();
        want.sort();
        let mut listed = listed;
        listed.sort();
        prop_assert_eq!(listed, want);
        Ok(())
    });
    check(
        "tablechop_listed_keys_any_body",
        (naming(), bytes()),
        |(n, b)| {
            let _ = chop::listed_keys(&n, &String::from_utf8_lossy(&b));
            Ok(())
        },
    );
}

fn any_time() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    let (lo, hi) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    let around_now = 1_700_000_000i64..1_900_000_000;
    proptest::option::weighted(
        0.9,
        (prop_oneof![lo..=hi, around_now], 0u32..1_000_000_000)
            .prop_filter_map("in chrono's range", |(s, ns)| {
                DateTime::from_timestamp(s, ns)
            }),
    )
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..10_000_000).prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_secs),
        Just(Duration::MAX),
    ]
}

/// A bucket listing: keys of one key space mixed with hostile ones, some
/// of them indexes.
fn listing() -> impl Strategy<Value = Vec<ObjectInfo>> {
    let key = prop_oneof![
        (absolute_path(), any::<bool>()).prop_map(|(p, index)| {
            let k = format!("h:{}", p.display());
            if index {
                k + INDEX_SUFFIX
            } else {
                k
            }
        }),
        hostile_text(),
    ];
    let object =
        (key, any::<u64>(), any_time()).prop_map(|(key, size, last_modified)| ObjectInfo {
            key,
            size,
            last_modified,
        });
    proptest::collection::vec(object, 0..16)
}

#[test]
fn tablechop_plans_any_listing_and_keeps_each_newest_index() {
    let input = (
        listing(),
        any_duration(),
        proptest::option::of(any_duration()),
        any_duration(),
        any_time(),
    );
    check(
        "tablechop_plan",
        input,
        |(objects, age, forget, grace, now)| {
            let now = now.unwrap_or(DateTime::<Utc>::MAX_UTC);
            let kept = chop::kept_indexes(&objects, age, now);
            let dropped = chop::dropped_dirs(&objects, forget, now);
            let listed: BTreeSet<String> = objects
                .iter()
                .filter(|o| !o.key.ends_with(INDEX_SUFFIX))
                .step_by(2)
                .map(|o| o.key.clone())
                .collect();
            let plan = chop::plan(&objects, &kept, &listed, &dropped, grace, now);
            prop_assert_eq!(plan.len(), objects.len());
            let deleted: BTreeSet<&str> = plan
                .iter()
                .filter(|d| d.delete)
                .map(|d| d.key.as_str())
                .collect();
            for o in objects.iter().filter(|o| o.key.ends_with(INDEX_SUFFIX)) {
                // Each directory keeps an index unless forgotten on purpose.
                let dir = o.key.rsplit_once('/').map_or("", |(d, _)| d);
                let same_dir = |k: &str| k.rsplit_once('/').map_or("", |(d, _)| d) == dir;
                if !dropped.contains(dir) {
                    prop_assert!(
                        kept.iter()
                            .any(|k| same_dir(k) && !deleted.contains(k.as_str())),
                        "no index of {:?} survives",
                        dir
                    );
                }
            }
            for k in &listed {
                if !dropped.contains(k.rsplit_once('/').map_or("", |(d, _)| d)) {
                    prop_assert!(!deleted.contains(k.as_str()), "listed {:?} deleted", k);
                }
            }
            Ok(())
        },
    );
}

#[test]
fn index_anchor_and_filter_take_any_path() {
    let input = (
        absolute_path(),
        proptest::collection::vec(hostile_text(), 0..3),
    );
    check("index_anchor_and_filter", input, |(p, patterns)| {
        let _ = is_index_anchor(&p);
        for f in [Filter::new(&patterns, &[]), Filter::new(&[], &patterns)]
            .into_iter()
            .flatten()
        {
            let _ = f.accepts(&p);
        }
        Ok(())
    });
}

#[test]
fn stat_metadata_from_anything_and_back() {
    // Anyone who can write the bucket writes `stat`: any text, any JSON.
    let hostile = prop_oneof![
        hostile_text(),
        json_value().prop_map(|v| v.to_string()),
        bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    check("stat_metadata_from_anything", hostile, |s| {
        let _ = StatMeta::parse(&s);
        Ok(())
    });
    let written = (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(hostile_text()),
        proptest::option::of(hostile_text()),
    );
    check(
        "stat_metadata_reads_back",
        written,
        |(uid, gid, mode, user, group)| {
            let s = stat_json(uid, gid, mode, user.as_deref(), group.as_deref());
            let back = StatMeta::parse(&s);
            prop_assert_eq!(
                back,
                StatMeta {
                    mode: Some(mode),
                    uid: Some(uid),
                    gid: Some(gid),
                    user,
                    group
                }
            );
            Ok(())
        },
    );
}
