//! `config::userdata`: the instance's userdata (JSON anyone who may
//! launch or modify the instance writes), and the volumes a profile with
//! `volumes_from_userdata` reads from it as 0.2.12's `EBSVolume` keywords.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::*;
use crate::config::parse;
use crate::config::proptests::assert_valid_volume;
use crate::proptests::{bytes, check, deep, hostile_text, json_value};

#[test]
fn any_userdata_text_is_an_object_or_an_error() {
    let text = prop_oneof![
        hostile_text(),
        bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        json_value().prop_map(|v| v.to_string()),
        (0usize..1_000).prop_map(|n| deep("[", "]", n)),
    ];
    check("userdata_any_text", text, |t| {
        let parsed = Userdata::parse(&t, "--userdata");
        let object =
            t.trim().is_empty() || matches!(serde_json::from_str::<Json>(&t), Ok(Json::Object(_)));
        prop_assert_eq!(parsed.is_ok(), object, "{:?}", parsed);
        if let Ok(u) = parsed {
            let _ = u.get_str("role");
        }
        Ok(())
    });
}

/// A userdata volume as 0.2.12's `EBSVolume(**volume)` took them: the
/// keys, Python's falsy values, numbers of every kind, anything else.
fn userdata_volume() -> impl Strategy<Value = Json> {
    let v = |edges: Vec<Json>| {
        prop_oneof![
            3 => proptest::sample::select(edges),
            1 => json_value(),
        ]
    };
    let fields = (
        v(vec![
            json!("/dev/sdf"),
            json!("/dev/xvdg1"),
            json!("/dev/sda"),
            json!(null),
        ]),
        v(vec![
            json!("/mnt/a"),
            json!("/mnt/a/"),
            json!("/"),
            json!("mnt"),
            json!(null),
        ]),
        v(vec![
            json!(50),
            json!(0),
            json!(1.5),
            json!(u64::MAX),
            json!(-1),
            json!("50"),
        ]),
        v(vec![
            json!("xfs"),
            json!("EXT4"),
            json!("FILESYSTEMS.XFS"),
            json!("jfs"),
            json!(1),
        ]),
        v(vec![
            json!(false),
            json!(0),
            json!(true),
            json!(3000),
            json!(0.0),
            json!(null),
        ]),
        v(vec![json!(true), json!("yes"), json!(null)]),
        v(vec![json!(0), json!(20), json!(21), json!(i64::MIN)]),
        proptest::option::weighted(0.2, (hostile_text(), json_value())),
    );
    fields.prop_map(|(d, m, size, fs, iops, check, off, extra)| {
        let mut o = serde_json::Map::new();
        for (k, v) in [
            ("device", d),
            ("mount_point", m),
            ("size", size),
            ("file_system", fs),
            ("iops", iops),
            ("check_support", check),
            ("device_name_offset", off),
        ] {
            o.insert(k.to_string(), v);
        }
        if let Some((k, v)) = extra {
            o.insert(k, v);
        }
        Json::Object(o)
    })
}

const PROFILE: &str = r#"
[profiles.u]
volumes_from_userdata = "vols"
"#;

#[test]
fn userdata_volumes_are_volumes_or_an_error() {
    let config = parse(PROFILE, Path::new("t.toml")).expect("the test profile");
    let profile = config.profiles["u"].clone();
    let vols = prop_oneof![
        4 => proptest::collection::vec(userdata_volume(), 0..4).prop_map(Json::Array),
        1 => json_value(),
        // As deep as a JSON text gets here (serde_json stops at 128).
        1 => (1usize..127).prop_map(|n| serde_json::from_str(&deep("[", "]", n)).unwrap_or(Json::Null)),
    ];
    let input = (vols, json_value(), json_value());
    check("userdata_volumes", input, |(vols, role, cluster)| {
        let text = json!({"vols": vols, "role": role, "cluster": cluster}).to_string();
        let Ok(userdata) = Userdata::parse(&text, "userdata") else {
            return Ok(()); // too deep for serde_json: an error, as it should be
        };
        if let Ok(list) = profile.resolve_volumes(&userdata) {
            prop_assert!(!list.is_empty());
            for v in &list {
                assert_valid_volume(v)?;
            }
        }
        let _ = profile.filter_values(&userdata);
        Ok(())
    });
}
