//! Just enough XML for EC2's query-protocol replies: find leaf elements
//! (`<name>text</name>`) with their path, and rewrite their text. moto's
//! replies have no attributes on leaves, no CDATA and no comments.

use std::ops::Range;

/// A leaf element: its path from the root and where its text is.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub path: Vec<String>,
    /// Start offsets of each ancestor element (same length as `path`), so
    /// leaves can be grouped by the item they belong to.
    pub starts: Vec<usize>,
    pub text: Range<usize>,
}

/// Every leaf element, in document order.
pub(crate) fn leaves(xml: &str) -> Vec<Leaf> {
    let mut out = Vec::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut last_open_end: Option<usize> = None;
    let mut i = 0;
    while let Some(off) = xml[i..].find('<') {
        let start = i + off;
        let Some(end_off) = xml[start..].find('>') else {
            break;
        };
        let end = start + end_off;
        let tag = &xml[start + 1..end];
        i = end + 1;
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            if let Some(open_end) = last_open_end.take() {
                if stack.last().is_some_and(|(n, _)| n == name) {
                    out.push(Leaf {
                        path: stack.iter().map(|(n, _)| n.clone()).collect(),
                        starts: stack.iter().map(|(_, s)| *s).collect(),
                        text: open_end..start,
                    });
                }
            }
            if let Some(pos) = stack.iter().rposition(|(n, _)| n == name) {
                stack.truncate(pos);
            }
        } else if tag.ends_with('/') {
            last_open_end = None;
        } else {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            stack.push((name, start));
            last_open_end = Some(end + 1);
        }
    }
    out
}

/// Unescape the five XML entities.
pub(crate) fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The text of the first leaf whose path ends with `suffix`.
pub(crate) fn first(xml: &str, suffix: &[&str]) -> Option<String> {
    leaves(xml)
        .into_iter()
        .find(|l| ends_with(&l.path, suffix))
        .map(|l| unescape(&xml[l.text]))
}

pub(crate) fn ends_with(path: &[String], suffix: &[&str]) -> bool {
    path.len() >= suffix.len()
        && path[path.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(a, b)| a == b)
}

/// Rewrite leaf texts: `f(item key, leaf path relative to the item, text)`
/// may return a replacement. Items are the elements at `item_path`'s end
/// (e.g. `["volumeSet", "item"]`); the key is the text of the item's direct
/// child `key` (e.g. `volumeId`).
pub(crate) fn rewrite(
    xml: &str,
    item_path: &[&str],
    key: &str,
    mut f: impl FnMut(&str, &[String], &str) -> Option<String>,
) -> String {
    let all = leaves(xml);
    // item start offset -> key text
    let mut keys = std::collections::HashMap::new();
    let depth_of = |l: &Leaf| -> Option<usize> {
        (item_path.len()..=l.path.len())
            .rev()
            .find(|&d| ends_with(&l.path[..d], item_path))
    };
    for l in &all {
        if let Some(d) = depth_of(l) {
            if l.path.len() == d + 1 && l.path[d] == key {
                keys.insert(l.starts[d - 1], xml[l.text.clone()].to_string());
            }
        }
    }
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for l in &all {
        let Some(d) = depth_of(l) else { continue };
        let Some(k) = keys.get(&l.starts[d - 1]) else {
            continue;
        };
        if let Some(new) = f(k, &l.path[d..], &xml[l.text.clone()]) {
            edits.push((l.text.clone(), new));
        }
    }
    let mut out = xml.to_string();
    for (range, new) in edits.into_iter().rev() {
        out.replace_range(range, &new);
    }
    out
}

/// Insert `f(item key)`'s XML, where it returns some, into each item
/// right after its key element (new elements EC2 sends that moto does
/// not).
pub(crate) fn add_to_items(
    xml: &str,
    item_path: &[&str],
    key: &str,
    mut f: impl FnMut(&str) -> Option<String>,
) -> String {
    let mut edits: Vec<(usize, String)> = Vec::new();
    for l in leaves(xml) {
        let d = l.path.len() - 1;
        if d >= item_path.len() && l.path[d] == key && ends_with(&l.path[..d], item_path) {
            if let Some(add) = f(&xml[l.text.clone()]) {
                edits.push((l.text.end + key.len() + 3, add));
            }
        }
    }
    let mut out = xml.to_string();
    for (at, add) in edits.into_iter().rev() {
        out.insert_str(at, &add);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOLS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeVolumesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <volumeSet>
    <item>
      <volumeId>vol-1</volumeId>
      <status>available</status>
      <attachmentSet/>
    </item>
    <item>
      <volumeId>vol-2</volumeId>
      <status>in-use</status>
      <attachmentSet>
        <item><volumeId>vol-2</volumeId><instanceId>i-1</instanceId><status>attached</status></item>
      </attachmentSet>
    </item>
  </volumeSet>
</DescribeVolumesResponse>"#;

    #[test]
    fn finds_leaves() {
        assert_eq!(first(VOLS, &["item", "volumeId"]).as_deref(), Some("vol-1"));
        assert_eq!(
            first(VOLS, &["attachmentSet", "item", "instanceId"]).as_deref(),
            Some("i-1")
        );
        assert_eq!(
            first("<a><b>x &amp; y</b></a>", &["b"]).as_deref(),
            Some("x & y")
        );
    }

    #[test]
    fn adds_to_items_after_their_key_only() {
        let out = add_to_items(VOLS, &["volumeSet", "item"], "volumeId", |k| {
            (k == "vol-1").then(|| "<fastRestored>true</fastRestored>".to_string())
        });
        assert!(out.contains("<volumeId>vol-1</volumeId><fastRestored>true</fastRestored>"));
        assert_eq!(out.matches("fastRestored>").count(), 2, "{out}");
    }

    #[test]
    fn rewrites_per_item() {
        let out = rewrite(
            VOLS,
            &["volumeSet", "item"],
            "volumeId",
            |k, rel, text| match (
                k,
                rel.iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .as_slice(),
            ) {
                ("vol-1", ["status"]) => Some("creating".into()),
                ("vol-2", ["attachmentSet", "item", "status"]) => Some(format!("{text}-not-yet")),
                _ => None,
            },
        );
        assert!(
            out.contains("<volumeId>vol-1</volumeId>\n      <status>creating</status>"),
            "{out}"
        );
        assert!(out.contains("<status>in-use</status>"), "{out}");
        assert!(out.contains("<status>attached-not-yet</status>"), "{out}");
    }
}
