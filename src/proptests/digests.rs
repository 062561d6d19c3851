//! `files::digests`: the digest record in the state directory. A kill
//! mid-write tears its last line and any line may be damaged; each such
//! line is dropped, never a panic, and what `format_line` writes reads back.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::proptests::{bytes, check, hostile_text};

fn fingerprint() -> impl Strategy<Value = Fingerprint> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(|(dev, ino, size, mtime_s, mtime_ns)| Fingerprint {
            dev,
            ino,
            size,
            mtime_s,
            mtime_ns,
        })
}

/// An absolute path of any bytes but NUL (spaces, `\`, newlines included).
fn path() -> impl Strategy<Value = PathBuf> {
    proptest::collection::vec(any::<u8>().prop_map(|b| b.max(1)), 0..48).prop_map(|mut b| {
        b.insert(0, b'/');
        PathBuf::from(OsStr::from_bytes(&b))
    })
}

#[test]
fn any_record_text_parses() {
    let text = prop_oneof![
        bytes(),
        hostile_text().prop_map(String::into_bytes),
        // Damaged lines of the record's own shape.
        (hostile_text(), hostile_text()).prop_map(|(a, b)| {
            format!("0123456789ABCDEF0123456789abcdef {a} 2 3 4 5 /{b}\n{HEADER}{a}").into_bytes()
        }),
    ];
    check("digest_record_any_text", text, |t| {
        let (known, lines) = parse_all(&t);
        prop_assert!(known.len() <= lines);
        Ok(())
    });
}

#[test]
fn written_lines_read_back_and_torn_ones_are_dropped() {
    let input = (
        path(),
        fingerprint(),
        "[0-9a-fA-F]{32}",
        any::<prop::sample::Index>(),
    );
    check("digest_record_round_trip", input, |(p, fp, md5, cut)| {
        let line = format_line(&p, &fp, &md5);
        prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let body = &line[..line.len() - 1];
        prop_assert_eq!(
            parse_line(body),
            Some((p.clone(), fp, md5.to_ascii_lowercase()))
        );
        // Torn anywhere: either dropped or (cut inside the path) a shorter
        // path, never a panic.
        let torn = &body[..cut.index(body.len())];
        if let Some((q, _, _)) = parse_line(torn) {
            prop_assert!(p
                .as_os_str()
                .as_bytes()
                .starts_with(q.as_os_str().as_bytes()));
        }
        Ok(())
    });
}
