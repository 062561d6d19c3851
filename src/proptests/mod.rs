//! Property tests: no parser of outside input panics.
//!
//! Each parser of text or bytes that others write (S3 indexes and keys,
//! userdata, TOML profiles, instance metadata replies, EC2 tags,
//! `/proc/self/mountinfo`, the digest record, duration flags) is fed
//! generated input and must return `Ok` or `Err`, never panic; where a
//! writer sits beside the parser, what it writes must read back the same.
//!
//! The property files in this folder are mounted by the module whose
//! parser they test (`#[path = "../proptests/keys.rs"] mod proptests;`),
//! so they reach private functions without widening them; this module
//! holds what they share: the runner ([`check`]) and the strategies of
//! hostile text, JSON and TOML.
//!
//! Each property runs [`CI_CASES`] inputs, so the whole set takes seconds
//! in the normal test run. The long run sets [`CASES_ENV`] (see the
//! docs/security.md, "Outside input never panics"):
//!
//! ```text
//! SNAPTASTIC_PROPTEST_CASES=28000 cargo test --lib proptests -- --nocapture
//! ```
//!
//! A long run is an environment variable, not an `#[ignore]`d test,
//! because CI runs the ignored tests too (`--run-ignored all`, for the
//! root tests); it is a debug build on purpose: overflow checks on, so an
//! arithmetic overflow is a panic here rather than a wrong value.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Inputs per property in the normal test run.
pub(crate) const CI_CASES: u32 = 256;

/// Inputs per property when set (the long run).
pub(crate) const CASES_ENV: &str = "SNAPTASTIC_PROPTEST_CASES";

fn cases() -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(CI_CASES)
}

/// Run `test` on generated inputs. A panic inside it (or a failed
/// `prop_assert!`) fails the test with the smallest input proptest shrinks
/// it to; that input then belongs in a plain regression test beside the
/// property. Prints how many inputs ran (shown with `--nocapture`).
pub(crate) fn check<S>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = cases();
    let config = Config {
        cases,
        // The few strategies that filter reject rarely; never let a long
        // run stop on proptest's fixed default.
        max_global_rejects: cases,
        max_local_rejects: cases.saturating_mul(4),
        // Regressions are kept as plain tests, not as files the runner
        // writes next to the sources.
        failure_persistence: None,
        max_shrink_iters: 10_000,
        ..Config::default()
    };
    let ran = AtomicU64::new(0);
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(input)
    });
    if let Err(e) = result {
        panic!("property {name} failed: {e}");
    }
    eprintln!(
        "proptest {name}: {} inputs, none panicked ({:.1?})",
        ran.load(Ordering::Relaxed),
        started.elapsed()
    );
}

/// Pieces that break parsers: escapes, separators, quotes, brackets,
/// numbers at the edges, multi-byte and odd characters.
#[rustfmt::skip]
const FRAGMENTS: &[&str] = &[
    "", " ", "  ", "\t", "\n", "\r\n", "\r", "\0", "\\", "\\\\", "\\0", "\\040", "\\134",
    "\\377", "\\400", "\\777", "\\x", "\\u00e9", "\\ud800", "\\udc80", "/", "//", ".", "..",
    "/../", "./", ":", "#", "-", "+", "_", "=", ",", ";", "{", "}", "{{", "}}", "[", "]", "[[",
    "]]", "\"", "'", "'''", "\"\"\"", "e", "E", ".5", "0", "-0", "1", "9", "0x", "0o7", "1e400",
    "-1", "255", "256", "65535", "2147483648", "9223372036854775807", "9223372036854775808",
    "18446744073709551615", "18446744073709551616", "99999999999999999999999",
    "ffffffffffffffff", "nan", "inf", "-inf", "true", "false", "null", "é", "ß", "İ", "ﬃ",
    "\u{301}", "\u{200b}", "\u{feff}", "\u{fffd}", "\u{10ffff}", "𝄞", "🦀", "Data.db",
    "-listdir.json", "-tmp", "/dev/sdf", "/dev/xvdz9", "/mnt/a", "2013-08-26", "14:22:02",
    "2013-08-26 14:22:02.361688", "262143-12-31 23:59:59", "-262144-01-01 00:00:00", "T", "Z",
    " - ", "HTTP/1.1 ", "\r\n\r\n", "chunked", "Content-Length: ", "eu-west-1a",
];

/// Text built from [`FRAGMENTS`] and arbitrary characters: what a hostile
/// writer would try, reached far more often than by random characters.
pub(crate) fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
        1 => "[a-z0-9]{1,8}",
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|p| p.concat())
}

/// Arbitrary bytes, mostly short, some long.
pub(crate) fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..4096),
    ]
}

/// Any JSON value, nested up to 8 levels, with hostile strings and keys
/// and numbers at the edges of every integer type.
pub(crate) fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        hostile_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 128, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((hostile_text(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Any TOML value (datetimes, NaN and infinities included), nested up to
/// 6 levels, with hostile strings and keys.
pub(crate) fn toml_value() -> impl Strategy<Value = toml::Value> {
    use toml::Value;
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        hostile_text().prop_map(Value::String),
        proptest::sample::select(
            &[
                "1979-05-27T07:32:00Z",
                "1979-05-27T00:32:00.999999-07:00",
                "1979-05-27 07:32:00",
                "1979-05-27",
                "07:32:00",
                "0000-01-01T00:00:00Z",
                "9999-12-31T23:59:60.999999999+23:59",
            ][..]
        )
        .prop_map(|d| Value::Datetime(d.parse().expect("a valid TOML datetime"))),
    ];
    leaf.prop_recursive(6, 96, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((hostile_text(), inner), 0..6)
                .prop_map(|kv| Value::Table(kv.into_iter().collect())),
        ]
    })
}

/// `n` levels of brackets around nothing: `[[[...]]]` (or `{"a":` ...),
/// past any parser's recursion limit.
pub(crate) fn deep(open: &str, close: &str, n: usize) -> String {
    format!("{}{}", open.repeat(n), close.repeat(n))
}

/// Text from `base` edited at random places: hostile pieces inserted
/// and spans cut, so a parser's error paths see every position (inside a
/// multi-byte character, a string, a number, a key).
pub(crate) fn edited(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    let edit = (any::<proptest::sample::Index>(), 0usize..8, hostile_text());
    (base, proptest::collection::vec(edit, 0..4)).prop_map(|(mut s, edits)| {
        for (at, cut, insert) in edits {
            let mut i = at.index(s.len() + 1);
            while !s.is_char_boundary(i) {
                i -= 1;
            }
            let mut j = (i + cut).min(s.len());
            while !s.is_char_boundary(j) {
                j -= 1;
            }
            s.replace_range(i..j, &insert);
        }
        s
    })
}
