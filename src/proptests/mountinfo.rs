//! `host::mountinfo`: lines of `/proc/self/mountinfo`. Mount point names
//! are chosen by whoever mounts (any byte but NUL); the kernel escapes
//! space, tab, newline and backslash as `\ooo`.

use proptest::prelude::*;

use super::*;
use crate::proptests::{check, hostile_text};

/// A field as the kernel writes it (`mangle()` in fs/proc_namespace.c).
fn kernel_escape(field: &str) -> String {
    let mut out = String::new();
    for c in field.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn line(mount_point: &str, fs_type: &str, source: &str, optional: &str) -> String {
    format!(
        "36 22 202:80 / {} rw,noatime {optional}- {} {} rw,attr2",
        kernel_escape(mount_point),
        kernel_escape(fs_type),
        kernel_escape(source)
    )
}

#[test]
fn any_text_parses() {
    let text = prop_oneof![
        hostile_text(),
        proptest::collection::vec(hostile_text(), 0..6).prop_map(|l| l.join("\n")),
        // Lines of the right shape with hostile fields, unescaped.
        proptest::collection::vec(hostile_text(), 0..12).prop_map(|f| format!(
            "1 2 3:4 / {} - {}",
            f.join(" "),
            f.join(" - ")
        )),
    ];
    check("mountinfo_any_text", text, |t| {
        let mounts = parse(&t);
        prop_assert!(mounts.len() <= t.lines().count());
        for m in &mounts {
            let _ = find(&mounts, &m.mount_point);
        }
        Ok(())
    });
}

/// A field the kernel could write: no NUL, not empty (it writes `none`
/// for an empty source).
fn field() -> impl Strategy<Value = String> {
    hostile_text().prop_map(|s| match s.replace('\0', "") {
        s if s.is_empty() => "none".to_string(),
        s => s,
    })
}

#[test]
fn escaped_names_read_back() {
    let optional = prop_oneof![
        Just(""),
        Just("shared:20 "),
        Just("master:1 propagate_from:2 ")
    ];
    // Mount points are absolute: a field that is just `-` (the separator)
    // is never one.
    let mount_point = field().prop_map(|f| format!("/{f}"));
    let input = (mount_point, field(), field(), optional);
    check("mountinfo_escaped_names", input, |(mp, fs, src, opt)| {
        let text = line(&mp, &fs, &src, opt);
        let mounts = parse(&text);
        prop_assert_eq!(mounts.len(), 1, "{:?}", text);
        let m = &mounts[0];
        prop_assert_eq!(&m.mount_point, &mp);
        prop_assert_eq!(&m.fs_type, &fs);
        prop_assert_eq!(&m.source, &src);
        prop_assert_eq!(&m.dev, "202:80");
        prop_assert!(find(&mounts, &mp).is_some());
        Ok(())
    });
}

/// Found by `any_text_parses`: `\777` is no kernel escape (it writes only
/// bytes, `\000` to `\377`), and decoding it overflowed a `u8`.
#[test]
fn octal_past_a_byte_stays_text() {
    let m = parse("1 2 3:4 / /mnt/\\777\\400\\377x - ext4 /dev/x rw");
    assert_eq!(m[0].mount_point, "/mnt/\\777\\400\u{fffd}x");
}
