//! `config`: TOML profiles (`parse`: file text -> validated `Config`),
//! volume tables (`Volume::from_toml`), mount points and description
//! templates. Userdata: `userdata.rs` beside this file.
//!
//! Besides noise, the documents are built from the real keys with values
//! that are near-valid, at the edges, of the wrong type or nested deep,
//! then edited at random places, so validation (not only the TOML
//! parser) and the error placing (`file:line:col`) see hostile input.

use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use toml::Value as Toml;

use super::device_name::check_device;
use super::profile::TemplatePart;
use super::*;
use crate::proptests::{bytes, check, deep, edited, hostile_text, toml_value};

fn s(v: &[&'static str]) -> BoxedStrategy<Toml> {
    proptest::sample::select(v.to_vec())
        .prop_map(|s| Toml::String(s.to_string()))
        .boxed()
}

fn int(edges: &[i64]) -> BoxedStrategy<Toml> {
    prop_oneof![
        proptest::sample::select(edges.to_vec()),
        -100i64..100_000,
        any::<i64>()
    ]
    .prop_map(Toml::Integer)
    .boxed()
}

/// A value for a key: usually one its validation has to think about,
/// sometimes any TOML value (wrong type, nested), sometimes absent.
fn field(plausible: BoxedStrategy<Toml>) -> BoxedStrategy<Option<Toml>> {
    prop_oneof![
        2 => Just(None),
        6 => plausible.prop_map(Some),
        1 => hostile_text().prop_map(|t| Some(Toml::String(t))),
        1 => toml_value().prop_map(Some),
    ]
    .boxed()
}

fn table(fields: Vec<(&'static str, Option<Toml>)>, extra: Option<(String, Toml)>) -> Toml {
    let mut t: toml::Table = fields
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v?)))
        .collect();
    if let Some((k, v)) = extra {
        t.insert(k, v);
    }
    Toml::Table(t)
}

fn unknown_key() -> BoxedStrategy<Option<(String, Toml)>> {
    proptest::option::weighted(0.1, (hostile_text(), toml_value())).boxed()
}

fn device() -> BoxedStrategy<Toml> {
    let letters = "[a-z]{0,3}";
    let digits = prop_oneof![Just(String::new()), "[0-9]{1,3}", "[0-9]{20}"];
    let prefix =
        proptest::sample::select(vec!["/dev/sd", "/dev/xvd", "/dev/nvme", "/dev/", "sd", ""]);
    (prefix, letters, digits)
        .prop_map(|(p, l, d)| Toml::String(format!("{p}{l}{d}")))
        .boxed()
}

fn path_like() -> BoxedStrategy<Toml> {
    let piece = prop_oneof![
        proptest::sample::select(vec![
            "/", "//", ".", "..", "mnt", "a", " ", "\n", "\0", "é", "A"
        ])
        .prop_map(str::to_string),
        hostile_text(),
    ];
    proptest::collection::vec(piece, 0..6)
        .prop_map(|p| Toml::String(p.concat()))
        .boxed()
}

fn volume() -> BoxedStrategy<Toml> {
    (
        (
            field(device()),
            field(path_like()),
            field(int(&[
                0,
                1,
                3,
                4,
                1024,
                1025,
                16_384,
                16_385,
                u32::MAX as i64 + 1,
            ])),
            field(s(&[
                "ext4",
                "xfs",
                "XFS",
                "FILESYSTEMS.XFS",
                "ext3",
                "jfs",
                "",
            ])),
            field(s(&["defaults", "noatime,nodiratime", "", " ", "a b"])),
            field(s(&["gp3", "gp2", "io1", "io2", "standard", "sc1", "GP3"])),
        ),
        (
            field(int(&[0, 99, 100, 3_000, 16_000, 64_000, 256_000, 256_001])),
            field(int(&[0, 124, 125, 1_000, 1_001])),
            field(prop_oneof![any::<bool>().prop_map(Toml::Boolean), s(&["true"])].boxed()),
            field(s(&["alias/x", "arn:aws:kms:eu-west-1:1:key/x", ""])),
            field(any::<bool>().prop_map(Toml::Boolean).boxed()),
            field(int(&[-1, 0, 1, 10, 20, 21, 255, 256])),
        ),
        unknown_key(),
    )
        .prop_map(
            |((d, m, sz, fs, mo, vt), (io, tp, enc, kms, dot, off), extra)| {
                table(
                    vec![
                        ("device", d),
                        ("mount_point", m),
                        ("size", sz),
                        ("file_system", fs),
                        ("mount_options", mo),
                        ("volume_type", vt),
                        ("iops", io),
                        ("throughput", tp),
                        ("encrypted", enc),
                        ("kms_key_id", kms),
                        ("delete_on_termination", dot),
                        ("device_name_offset", off),
                    ],
                    extra,
                )
            },
        )
        .boxed()
}

fn strings(items: BoxedStrategy<Toml>) -> BoxedStrategy<Toml> {
    proptest::collection::vec(items, 0..4)
        .prop_map(Toml::Array)
        .boxed()
}

fn hooks() -> BoxedStrategy<Toml> {
    let argv = strings(s(&["systemctl", "stop", "pg", ""]));
    let hook = prop_oneof![argv.clone(), strings(argv)];
    let name = proptest::sample::select(vec![
        "pre_mounts",
        "post_mount",
        "pre_snapshot",
        "post_snapshots",
        "pre-mount",
        "",
    ])
    .prop_map(str::to_string);
    proptest::collection::vec((name, hook), 0..4)
        .prop_map(|h| Toml::Table(h.into_iter().collect()))
        .boxed()
}

fn profile() -> BoxedStrategy<Toml> {
    (
        field(strings(volume())),
        field(s(&["vols", ""])),
        field(strings(s(&["role", "cluster", "aws:x", "", "role"]))),
        field(s(&[
            "{cluster} snapshot of {mount_point}",
            "{{x}}",
            "{",
            "}",
            "{}",
            "{a b}",
            "{é}",
        ])),
        field(s(&["plain", "0.2.12", "PLAIN"])),
        field(s(&[
            "7d",
            "36h",
            "0s",
            "1ns",
            "18446744073709551615s",
            "99999999999999999999y",
            "7 days",
            "-1d",
        ])),
        field(strings(s(&[
            "self",
            "123456789012",
            "12345678901",
            "1234567890123",
            "amazon",
        ]))),
        field(hooks()),
        unknown_key(),
    )
        .prop_map(|(v, vu, ft, d, ds, r, o, h, extra)| {
            table(
                vec![
                    ("volumes", v),
                    ("volumes_from_userdata", vu),
                    ("filter_tags", ft),
                    ("description", d),
                    ("description_style", ds),
                    ("snapshot_retention", r),
                    ("snapshot_owners", o),
                    ("hooks", h),
                ],
                extra,
            )
        })
        .boxed()
}

fn tablesnap() -> BoxedStrategy<Toml> {
    (
        (
            field(s(&["b", ""])),
            field(strings(path_like())),
            field(int(&[0, 1, 4, 5, i64::MAX])),
            field(int(&[-1, 0, 1, u32::MAX as i64 + 1])),
        ),
        (
            field(strings(s(&["IN_MOVED_TO", "IN_CREATE", "IN_OPEN"]))),
            field(s(&["AES256", "aws:kms", "none"])),
            field(strings(s(&["Data\\.db$", "(", "-tmp"]))),
            field(path_like()),
        ),
        unknown_key(),
    )
        .prop_map(|((b, p, t, r), (e, sse, ex, sd), extra)| {
            table(
                vec![
                    ("bucket", b),
                    ("paths", p),
                    ("threads", t.clone()),
                    ("max_upload_size", t.clone()),
                    ("multipart_chunk_size", t),
                    ("retries", r),
                    ("listen_events", e),
                    ("sse", sse),
                    ("exclude", ex.clone()),
                    ("include", ex),
                    ("state_dir", sd),
                ],
                extra,
            )
        })
        .boxed()
}

/// A whole configuration file's text.
fn document() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        3 => proptest::sample::select(vec!["solr", "pg", "a.b", "x-1"]).prop_map(str::to_string),
        1 => hostile_text(),
    ];
    let profiles = proptest::collection::vec((name, profile()), 0..3)
        .prop_map(|p| Toml::Table(p.into_iter().collect()))
        .boxed();
    (
        field(s(&["eu-west-1", "EU", ""])),
        field(path_like()),
        field(profiles),
        proptest::option::weighted(0.3, tablesnap()),
        unknown_key(),
    )
        .prop_map(|(region, root, profiles, tablesnap, extra)| {
            let doc = table(
                vec![
                    ("region", region),
                    ("device_root", root),
                    ("profiles", profiles),
                    ("tablesnap", tablesnap),
                ],
                extra,
            );
            toml::to_string(&doc).unwrap_or_default()
        })
}

/// What a validated configuration promises the commands.
fn assert_valid(config: &Config) -> Result<(), TestCaseError> {
    for p in config.profiles.values() {
        if let VolumeSource::Listed(vols) = &p.volumes {
            prop_assert!(!vols.is_empty());
            for v in vols {
                assert_valid_volume(v)?;
            }
        }
    }
    Ok(())
}

pub(super) fn assert_valid_volume(v: &Volume) -> Result<(), TestCaseError> {
    prop_assert_eq!(check_device(&v.device), Ok(()));
    prop_assert_eq!(mount_point::check(&v.mount_point), Ok(()));
    prop_assert_eq!(&mount_point::normalize(&v.mount_point), &v.mount_point);
    let (lo, hi) = v.volume_type.size_range();
    prop_assert!((lo..=hi).contains(&v.size_gib));
    Ok(())
}

#[test]
fn any_text_is_a_config_or_an_error() {
    let text = prop_oneof![
        hostile_text(),
        bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    check("config_any_text", text, |t| {
        if let Ok(c) = parse(&t, Path::new("t.toml")) {
            assert_valid(&c)?;
        }
        let _ = Volume::from_toml(&t);
        Ok(())
    });
}

#[test]
fn hostile_documents_are_a_config_or_an_error() {
    check("config_hostile_documents", edited(document()), |t| {
        match parse(&t, Path::new("t.toml")) {
            Ok(c) => assert_valid(&c)?,
            // Every problem is placed at path:line:col inside the text.
            Err(ConfigError::Invalid(lines)) => {
                for l in &lines {
                    prop_assert!(l.starts_with("t.toml"), "{}", l);
                }
            }
            Err(_) => {}
        }
        Ok(())
    });
}

#[test]
fn deep_nesting_is_an_error() {
    let nesting = prop_oneof![1usize..200, 200usize..5_000];
    check("config_nested_deep", nesting, |n| {
        let arrays = format!("region = {}", deep("[", "]", n));
        prop_assert!(parse(&arrays, Path::new("t.toml")).is_err());
        let tables = format!("region = {}0{}", "{a=".repeat(n), "}".repeat(n));
        prop_assert!(parse(&tables, Path::new("t.toml")).is_err());
        let dotted = format!("{} = 1", vec!["a"; n].join("."));
        prop_assert!(parse(&dotted, Path::new("t.toml")).is_err());
        Ok(())
    });
}

#[test]
fn volume_tables_are_a_volume_or_an_error() {
    let text = volume().prop_map(|v| toml::to_string(&v).unwrap_or_default());
    check("volume_from_toml", edited(text), |t| {
        if let Ok(v) = Volume::from_toml(&t) {
            assert_valid_volume(&v)?;
        }
        Ok(())
    });
    let args = (hostile_text(), hostile_text(), any::<u32>());
    check("volume_new", args, |(d, m, size)| {
        if let Ok(v) = Volume::new(&d, &m, size) {
            assert_valid_volume(&v)?;
        }
        Ok(())
    });
}

#[test]
fn mount_points_are_checked_without_panic() {
    check("mount_point_check", hostile_text(), |m| {
        if mount_point::check(&m).is_ok() {
            let n = mount_point::normalize(&m);
            prop_assert!(n.starts_with('/') && n != "/" && !n.split('/').any(|c| c == ".."));
        }
        let _ = check_device(&m);
        let _ = kernel_device_name(&m, 20);
        Ok(())
    });
}

/// The template text that parses to `parts`.
fn template_text(parts: &[TemplatePart]) -> String {
    parts
        .iter()
        .map(|p| match p {
            TemplatePart::Text(t) => t.replace('{', "{{").replace('}', "}}"),
            TemplatePart::Key(k) => format!("{{{k}}}"),
        })
        .collect()
}

#[test]
fn description_templates_parse_and_read_back() {
    check("template_any_text", hostile_text(), |t| {
        if let Ok(parsed) = Template::parse(&t) {
            let again = Template::parse(&template_text(&parsed.parts));
            prop_assert_eq!(again, Ok(parsed.clone()));
            let _ = parsed.render(|k| (k.len() % 2 == 0).then(|| k.to_string()));
        }
        Ok(())
    });
}
