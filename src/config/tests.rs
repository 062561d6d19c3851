//! Config validation: good files parse to the expected profile, and every
//! bad file gets the message (and place) an operator needs.

use std::path::Path;

use super::*;

fn parse_ok(text: &str) -> Config {
    parse(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new("t.toml")) {
        Err(ConfigError::Invalid(lines)) => lines,
        Err(e) => vec![e.to_string()],
        Ok(_) => panic!("accepted:\n{text}"),
    }
}

fn one_error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap()
}

const BASIC: &str = r#"
[profiles.solr]
[[profiles.solr.volumes]]
device = "/dev/sdf"
mount_point = "/mnt/solr"
"#;

#[test]
fn defaults_follow_the_original() {
    let c = parse_ok(BASIC);
    let p = c.profile("solr").unwrap();
    assert_eq!(p.filter_tags, ["role", "cluster", "environment"]);
    assert_eq!(p.retention, DEFAULT_RETENTION);
    assert_eq!(c.device_root, Path::new("/dev"));
    let VolumeSource::Listed(v) = &p.volumes else {
        panic!()
    };
    assert_eq!(
        v[0],
        Volume {
            device: "/dev/sdf".into(),
            mount_point: "/mnt/solr".into(),
            size_gib: 5,
            file_system: FileSystem::Xfs,
            mount_options: "defaults".into(),
            volume_type: VolumeType::Gp3,
            iops: None,
            throughput: None,
            encrypted: false,
            kms_key_id: None,
            delete_on_termination: false,
            device_name_offset: 0,
            init_rate: None,
        }
    );
}

#[test]
fn full_volume_and_hooks() {
    let c = parse_ok(
        r#"
region = "eu-west-1"
device_root = "/tmp/lab/dev"
[profiles.pg]
filter_tags = ["group", "role"]
description = "{group} pg of {mount_point}"
snapshot_retention = "14d"
hooks.pre_mounts = ["systemctl", "stop", "postgresql"]
hooks.post_mounts = [["chmod", "0700", "/var/lib/postgresql"], ["chown", "-R", "postgres:postgres", "/var/lib/postgresql"]]
[[profiles.pg.volumes]]
device = "/dev/sdf1"
mount_point = "/var/lib/postgresql"
size = 200
file_system = "ext4"
mount_options = "noatime"
volume_type = "io2"
iops = 1600
encrypted = true
kms_key_id = "alias/pg"
delete_on_termination = true
device_name_offset = 4
"#,
    );
    assert_eq!(c.region.as_deref(), Some("eu-west-1"));
    assert_eq!(c.device_root, Path::new("/tmp/lab/dev"));
    let p = c.profile("pg").unwrap();
    assert_eq!(p.retention, std::time::Duration::from_secs(14 * 86400));
    assert_eq!(
        p.hooks.commands(HookPoint::PreMounts),
        [vec!["systemctl", "stop", "postgresql"]]
    );
    assert_eq!(p.hooks.commands(HookPoint::PostMounts).len(), 2);
    assert!(p.hooks.commands(HookPoint::PreSnapshot).is_empty());
    let VolumeSource::Listed(v) = &p.volumes else {
        panic!()
    };
    assert_eq!(
        (v[0].volume_type, v[0].iops, v[0].size_gib),
        (VolumeType::Io2, Some(1600), 200)
    );
    assert_eq!(
        kernel_device_name(&v[0].device, v[0].device_name_offset),
        "/dev/xvdj1"
    );
}

#[test]
fn iops_alone_means_io1_as_in_the_original() {
    let c = parse_ok(&format!("{BASIC}iops = 1600\n"));
    let VolumeSource::Listed(v) = &c.profiles["solr"].volumes else {
        panic!()
    };
    assert_eq!(v[0].volume_type, VolumeType::Io1);
}

#[test]
fn each_bad_value_is_named_with_its_place() {
    let cases: &[(&str, &str)] = &[
        ("size = 0", "t.toml:6:8: profile 'solr', volume 1 (/mnt/solr): size must be 1 to 16384 GiB for gp3, got 0"),
        ("file_system = \"btrfs\"", "t.toml:6:15: profile 'solr', volume 1 (/mnt/solr): unknown file_system 'btrfs'; supported: ext4, xfs"),
        ("volume_type = \"sc1\"", "unknown volume_type 'sc1'; supported: gp3, gp2, io1, io2, standard"),
        ("volume_type = \"gp2\"\niops = 3000", "t.toml:7:8: profile 'solr', volume 1 (/mnt/solr): iops cannot be set for gp2 volumes"),
        ("iops = 50", "iops must be 100 to 64000 for io1, got 50"),
        ("throughput = 2000", "throughput must be 125 to 1000 MiB/s, got 2000"),
        ("volume_type = \"io1\"\nthroughput = 200", "throughput can only be set for gp3, not io1"),
        ("kms_key_id = \"alias/x\"", "kms_key_id needs encrypted = true"),
        ("mount_options = \"noatime, nodiratime\"", "mount_options is a comma-separated list without spaces"),
        ("device_name_offset = 30", "device_name_offset must be 0 to 20, got 30"),
        ("volume_type = \"standard\"\nsize = 2000", "size must be 1 to 1024 GiB for standard, got 2000"),
    ];
    for (extra, want) in cases {
        let text = format!("{BASIC}{extra}\n");
        let got = one_error(&text);
        assert!(
            got.contains(want),
            "for {extra:?}\n got: {got}\nwant: {want}"
        );
        assert!(got.starts_with("t.toml:"), "{got}");
    }
}

#[test]
fn bad_device_and_mount_point() {
    let e = one_error(
        "[profiles.a]\n[[profiles.a.volumes]]\ndevice = \"/dev/nvme1n1\"\nmount_point = \"/x\"\n",
    );
    assert_eq!(e, "t.toml:3:10: profile 'a', volume 1 (/x): device '/dev/nvme1n1' is not an EC2 device name like /dev/sdf or /dev/xvdg");
    for (mp, want) in [
        ("data", "must be an absolute path"),
        ("/", "cannot be '/'"),
        (
            "/mnt/../etc",
            "mount_point '/mnt/../etc' must not contain '..'",
        ),
        ("//./", "mount_point cannot be '/'"),
    ] {
        let e = one_error(&format!(
            "[profiles.a]\n[[profiles.a.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"{mp}\"\n"
        ));
        assert!(e.contains(want), "{mp}: {e}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = errors(
        r#"
region = "EU West"
[profiles.a]
filter_tags = []
description = "{cluster"
snapshot_retention = "soon"
hooks.pre_mount = []
hooks.before_everything = ["true"]
[[profiles.a.volumes]]
device = "/dev/sdf"
mount_point = "/data"
size = -1
[[profiles.a.volumes]]
device = "/dev/sdf"
mount_point = "/data"
[[profiles.a.volumes]]
size = 5
[profiles.b]
"#,
    );
    let all = e.join("\n");
    for want in [
        "t.toml:2:10: region 'EU West' is not a region name",
        "t.toml:4:15: profile 'a': filter_tags is empty",
        "t.toml:5:15: profile 'a': description: a '{' is never closed",
        "t.toml:6:22: profile 'a': snapshot_retention 'soon'",
        "t.toml:7:19: profile 'a', hook pre_mount: a command is an argv list like [\"systemctl\", \"stop\", \"postgresql\"]",
        "t.toml:8:7: profile 'a': unknown hook 'before_everything'; hooks are pre_mounts, post_mounts",
        "t.toml:12:8: profile 'a', volume 1 (/data): size must be 1 to 16384 GiB for gp3, got -1",
        "t.toml:14:10: profile 'a', volume 2 (/data): device /dev/sdf is also used by volume 1",
        "t.toml:15:15: profile 'a', volume 2 (/data): mount point /data is also used by volume 1",
        "profile 'a', volume 3: device is missing",
        "profile 'a', volume 3: mount_point is missing",
        "profile 'b': has no volumes",
    ] {
        assert!(all.contains(want), "missing {want:?} in\n{all}");
    }
    assert_eq!(e.len(), 12, "{all}");
}

#[test]
fn syntax_and_unknown_keys_point_at_the_place() {
    let e = one_error("[profiles.a]\nvolumes_from_userdata = \"v\"\nfilter_tag = [\"role\"]\n");
    assert!(
        e.starts_with("t.toml:3:1: unknown field `filter_tag`"),
        "{e}"
    );
    let e = one_error("[profiles.a\n");
    assert!(e.starts_with("t.toml:1:"), "{e}");
    let e = one_error(&format!("{BASIC}size = \"big\"\n"));
    assert!(
        e.starts_with("t.toml:6:8: invalid type: string \"big\", expected i64"),
        "{e}"
    );
}

#[test]
fn both_or_neither_volume_sources() {
    let e = one_error("[profiles.a]\nvolumes_from_userdata = \"v\"\n[[profiles.a.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/x\"\n");
    assert!(
        e.contains("set either volumes or volumes_from_userdata, not both"),
        "{e}"
    );
}

#[test]
fn empty_file_has_no_profiles() {
    assert_eq!(
        one_error(""),
        "t.toml: no profiles defined: add a [profiles.NAME] table"
    );
}

#[test]
fn unknown_profile_lists_the_defined_ones() {
    let c = parse_ok(&format!(
        "{BASIC}[profiles.pg]\nvolumes_from_userdata = \"volumes\"\n"
    ));
    let e = c.profile("solar").unwrap_err().to_string();
    assert_eq!(
        e,
        "no profile 'solar' in t.toml; defined profiles: pg, solr"
    );
}

#[test]
fn volumes_from_userdata_are_validated_like_the_file() {
    let c = parse_ok("[profiles.u]\nvolumes_from_userdata = \"volumes\"\n");
    let p = c.profile("u").unwrap();
    let ud = Userdata::parse(
        r#"{"volumes": [{"device": "/dev/sdf", "mount_point": "/mnt/a", "size": 10, "iops": null},
                        {"device": "/dev/sdg", "mount_point": "/mnt/b", "file_system": "ext4"}]}"#,
        "--userdata",
    )
    .unwrap();
    let v = p.resolve_volumes(&ud).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!((v[0].size_gib, v[1].file_system), (10, FileSystem::Ext4));

    let bad = Userdata::parse(
        r#"{"volumes": [{"device": "/dev/sdf", "mount_point": "/mnt/a", "size": 0}]}"#,
        "x",
    )
    .unwrap();
    let e = p.resolve_volumes(&bad).unwrap_err().to_string();
    assert_eq!(e, "userdata 'volumes': profile 'u', volume 1 (/mnt/a): size must be 1 to 16384 GiB for gp3, got 0");

    let e = p
        .resolve_volumes(&Userdata::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "userdata has no 'volumes' list (volumes_from_userdata of profile 'u')"
    );
    let e = p
        .resolve_volumes(
            &Userdata::parse(
                r#"{"volumes": [{"device": "/dev/sdf", "mountpoint": "/a"}]}"#,
                "x",
            )
            .unwrap(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `mountpoint`"), "{e}");
}

#[test]
fn filter_values_come_from_userdata() {
    let c = parse_ok(BASIC);
    let p = c.profile("solr").unwrap();
    let ud = Userdata::parse(
        r#"{"role": "solr", "cluster": "c1", "environment": "prod", "n": 3}"#,
        "x",
    )
    .unwrap();
    assert_eq!(
        p.filter_values(&ud).unwrap(),
        [
            ("role".into(), "solr".into()),
            ("cluster".into(), "c1".into()),
            ("environment".into(), "prod".into())
        ]
    );
    assert_eq!(ud.get_str("n").as_deref(), Some("3"));
    let e = p
        .filter_values(&Userdata::parse(r#"{"role": "solr"}"#, "x").unwrap())
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "userdata has no value for 'cluster', 'environment' (filter_tags of profile 'solr')"
        ),
        "{e}"
    );
}

#[test]
fn userdata_must_be_a_json_object() {
    assert_eq!(
        Userdata::parse("[1]", "--userdata")
            .unwrap_err()
            .to_string(),
        "--userdata must be a JSON object like '{\"role\": \"db\"}', got a list"
    );
    assert!(Userdata::parse("{role: x}", "--userdata")
        .unwrap_err()
        .to_string()
        .starts_with("--userdata is not valid JSON: key must be a string at line 1 column 2"));
    assert_eq!(
        Userdata::parse("  \n", "instance userdata").unwrap(),
        Userdata::default()
    );
}

#[test]
fn shipped_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![dir.join("snaptastic.example.toml")];
    for e in std::fs::read_dir(dir.join("examples/profiles")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            files.push(p);
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        parse(&text, &f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn tablesnap_section() {
    let c = parse_ok(
        "[tablesnap]\nbucket = \"b\"\npaths = [\"/var/lib/cassandra/data\"]\nrecursive = true\nthreads = 8\nlisten_events = [\"IN_CREATE\"]\n",
    );
    let t = c.tablesnap.unwrap();
    assert_eq!(
        (t.bucket.as_deref(), t.threads, t.recursive),
        (Some("b"), Some(8), true)
    );
    assert!(c.profiles.is_empty());
    let e = errors("[tablesnap]\npaths = [\"data\"]\nthreads = 0\nlisten_events = [\"IN_OPEN\"]\nsse = \"rot13\"\nexclude = [\"a\"]\ninclude = [\"b\"]\n");
    let all = e.join("\n");
    for want in [
        "t.toml:2:10: [tablesnap]: path 'data' must be absolute",
        "t.toml:3:11: [tablesnap]: threads must be at least 1, got 0",
        "t.toml:4:18: [tablesnap]: unknown listen event 'IN_OPEN'",
        "t.toml:5:7: [tablesnap]: sse 'rot13' is not AES256 or aws:kms",
        "[tablesnap]: set exclude or include, not both",
    ] {
        assert!(all.contains(want), "missing {want:?} in\n{all}");
    }
    let e = one_error("[tablesnap]\nbuckett = \"x\"\n");
    assert!(e.starts_with("t.toml:2:1: unknown field `buckett`"), "{e}");
}

#[test]
fn tablesnap_stall_timeout_is_a_duration_above_zero() {
    let c = parse_ok("[tablesnap]\nstall_timeout = \"45s\"\n");
    assert_eq!(
        c.tablesnap.unwrap().stall_timeout,
        Some(std::time::Duration::from_secs(45))
    );
    let e = one_error("[tablesnap]\nstall_timeout = \"0s\"\n");
    assert!(e.contains("stall_timeout must be longer than zero"), "{e}");
    let e = one_error("[tablesnap]\nstall_timeout = \"soon\"\n");
    assert!(e.contains("stall_timeout 'soon'"), "{e}");
}

/// The volumes of one profile `u` reading `volumes` from this userdata.
fn userdata_volumes(json: &str) -> Result<Vec<Volume>, String> {
    let c = parse_ok("[profiles.u]\nvolumes_from_userdata = \"volumes\"\n");
    let ud = Userdata::parse(json, "--userdata").unwrap();
    c.profile("u")
        .unwrap()
        .resolve_volumes(&ud)
        .map_err(|e| e.to_string())
}

#[test]
fn userdata_volumes_as_0_2_12_operators_wrote_them() {
    // Every EBSVolume keyword, 0.2.12's defaults written out.
    let v = userdata_volumes(
        r#"{"volumes": [
            {"device": "/dev/sdf", "mount_point": "/mnt/a", "size": 5, "delete_on_termination": true,
             "file_system": "xfs", "mount_options": "defaults", "check_support": true, "iops": false,
             "device_name_offset": 0},
            {"device": "/dev/sdg", "mount_point": "/mnt/b/", "iops": null, "check_support": false,
             "file_system": "EXT4", "mount_options": "noatime"},
            {"device": "/dev/sdh", "mount_point": "/mnt/c", "size": 200, "iops": 1600,
             "file_system": "FILESYSTEMS.XFS", "device_name_offset": 4},
            {"device": "/dev/sdi", "mount_point": "/mnt/d", "iops": 0, "check_support": "yes"}
        ]}"#,
    )
    .unwrap();
    let got: Vec<_> = v
        .iter()
        .map(|v| {
            (
                v.mount_point.as_str(),
                v.size_gib,
                v.file_system,
                v.volume_type,
                v.iops,
                v.mount_options.as_str(),
                v.delete_on_termination,
                v.device_name_offset,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "/mnt/a",
                5,
                FileSystem::Xfs,
                VolumeType::Gp3,
                None,
                "defaults",
                true,
                0
            ),
            (
                "/mnt/b",
                5,
                FileSystem::Ext4,
                VolumeType::Gp3,
                None,
                "noatime",
                false,
                0
            ),
            (
                "/mnt/c",
                200,
                FileSystem::Xfs,
                VolumeType::Io1,
                Some(1600),
                "defaults",
                false,
                4
            ),
            (
                "/mnt/d",
                5,
                FileSystem::Xfs,
                VolumeType::Gp3,
                None,
                "defaults",
                false,
                0
            ),
        ]
    );
}

#[test]
fn userdata_volumes_still_refuse_what_0_2_12_could_not_mean() {
    let one = |fields: &str| {
        userdata_volumes(&format!(
            r#"{{"volumes": [{{"device": "/dev/sdf", "mount_point": "/mnt/a", {fields}}}]}}"#
        ))
        .unwrap_err()
    };
    assert_eq!(
        one(r#""iops": true"#),
        "userdata 'volumes' item 1 field 'iops': true is not a number of IOPS; write a number like 3000, or false for none"
    );
    assert_eq!(
        one(r#""file_system": "jfs""#),
        "userdata 'volumes': profile 'u', volume 1 (/mnt/a): unknown file_system 'jfs'; supported: ext4, xfs"
    );
    let e = one(r#""check_suport": true"#);
    assert!(
        e.starts_with("userdata 'volumes' (volumes of profile 'u'): unknown field `check_suport`, expected one of `device`, `mount_point`"),
        "{e}"
    );
    let e = one(r#""iops": "none""#);
    assert!(
        e.contains("invalid type: string \"none\", expected i64"),
        "{e}"
    );
}

#[test]
fn the_file_stays_strict_about_iops() {
    let e = one_error(&format!("{BASIC}iops = false\n"));
    assert!(
        e.starts_with("t.toml:6:8: invalid type: boolean `false`, expected i64"),
        "{e}"
    );
    let e = one_error(&format!("{BASIC}check_support = true\n"));
    assert!(
        e.starts_with("t.toml:6:1: unknown field `check_support`"),
        "{e}"
    );
}

#[test]
fn mount_points_are_kept_in_normal_form() {
    let c = parse_ok(
        "[profiles.a]\n[[profiles.a.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/mnt/x/\"\n[[profiles.a.volumes]]\ndevice = \"/dev/sdg\"\nmount_point = \"//srv/./y//\"\n",
    );
    let VolumeSource::Listed(v) = &c.profiles["a"].volumes else {
        panic!()
    };
    assert_eq!(
        v.iter().map(|v| v.mount_point.as_str()).collect::<Vec<_>>(),
        ["/mnt/x", "/srv/y"]
    );
    // One mount point however it is typed: a clash.
    let e = one_error(
        "[profiles.a]\n[[profiles.a.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/mnt/x\"\n[[profiles.a.volumes]]\ndevice = \"/dev/sdg\"\nmount_point = \"/mnt/x/\"\n",
    );
    assert_eq!(
        e,
        "t.toml:7:15: profile 'a', volume 2 (/mnt/x/): mount point /mnt/x/ is also used by volume 1"
    );
    let v = userdata_volumes(r#"{"volumes": [{"device": "/dev/sdf", "mount_point": "/mnt/x//"}]}"#)
        .unwrap();
    assert_eq!(v[0].mount_point, "/mnt/x");
    assert_eq!(
        Volume::new("/dev/sdf", "/mnt/x/", 5).unwrap().mount_point,
        "/mnt/x"
    );
}

#[test]
fn description_style() {
    assert_eq!(
        parse_ok(BASIC).profiles["solr"].description_style,
        profile::DescriptionStyle::Plain
    );
    let c = parse_ok(&BASIC.replace(
        "[profiles.solr]\n",
        "[profiles.solr]\ndescription_style = \"0.2.12\"\n",
    ));
    assert_eq!(
        c.profiles["solr"].description_style,
        profile::DescriptionStyle::V0212
    );
    let e = one_error(&BASIC.replace(
        "[profiles.solr]\n",
        "[profiles.solr]\ndescription_style = \"0.2\"\n",
    ));
    assert_eq!(
        e,
        "t.toml:3:21: profile 'solr': unknown description_style '0.2'; use \"plain\" or \"0.2.12\""
    );
}

#[test]
fn snapshot_owners() {
    assert_eq!(parse_ok(BASIC).profiles["solr"].snapshot_owners, ["self"]);
    let with = |value: &str| {
        BASIC.replace(
            "[profiles.solr]\n",
            &format!("[profiles.solr]\nsnapshot_owners = {value}\n"),
        )
    };
    let c = parse_ok(&with(r#"["self", "123456789012"]"#));
    assert_eq!(c.profiles["solr"].snapshot_owners, ["self", "123456789012"]);
    for (value, want) in [
        (
            r#"["self", "amazon"]"#,
            "t.toml:3:28: profile 'solr': snapshot owner 'amazon' is neither \"self\" nor a 12-digit account id",
        ),
        (
            r#"["12345678901"]"#,
            "t.toml:3:20: profile 'solr': snapshot owner '12345678901' is neither \"self\" nor a 12-digit account id",
        ),
        (
            r#"["self", "self"]"#,
            "t.toml:3:28: profile 'solr': snapshot owner 'self' is listed twice",
        ),
        (
            "[]",
            "t.toml:3:19: profile 'solr': snapshot_owners is empty: list \"self\" and/or 12-digit account ids",
        ),
    ] {
        assert_eq!(one_error(&with(value)), want, "{value}");
    }
    assert!(
        one_error(&with(r#""self""#)).starts_with("t.toml:3:"),
        "a string instead of a list points at its place"
    );
}

#[test]
fn copy_targets_and_their_problems() {
    let with = |tables: &str| {
        format!(
            "[profiles.solr]\nsnapshot_retention = \"7d\"\n{tables}{}",
            &BASIC["\n[profiles.solr]\n".len()..]
        )
    };
    assert!(parse_ok(BASIC).profiles["solr"].copies.is_empty());
    let c = parse_ok(&with(
        "[[profiles.solr.copies]]\nregion = \"us-west-2\"\n[[profiles.solr.copies]]\nregion = \"eu-west-1\"\nkms_key_id = \"alias/dr\"\nretention = \"30d\"\nmax_in_flight = 2\n",
    ));
    let copies = &c.profiles["solr"].copies;
    assert_eq!(copies.len(), 2);
    assert_eq!(
        (
            copies[0].region.as_str(),
            copies[0].retention,
            copies[0].max_in_flight
        ),
        ("us-west-2", std::time::Duration::from_secs(7 * 86400), 5),
        "the profile's retention and EC2's limit by default"
    );
    assert_eq!(copies[1].kms_key_id.as_deref(), Some("alias/dr"));
    assert_eq!(
        copies[1].retention,
        std::time::Duration::from_secs(30 * 86400)
    );
    for (tables, want) in [
        ("[[profiles.solr.copies]]\nkms_key_id = \"k\"\n", "profile 'solr', copies 1: region is missing"),
        ("[[profiles.solr.copies]]\nregion = \"us-west\"\n", "region 'us-west' is not a Region name"),
        ("[[profiles.solr.copies]]\nregion = \"us-west-2\"\n[[profiles.solr.copies]]\nregion = \"us-west-2\"\n", "copies 2: region 'us-west-2' is listed twice"),
        ("[[profiles.solr.copies]]\nregion = \"us-west-2\"\nmax_in_flight = 0\n", "max_in_flight must be 1 to 50, got 0"),
        ("[[profiles.solr.copies]]\nregion = \"us-west-2\"\nretention = \"soon\"\n", "retention 'soon'"),
        ("[[profiles.solr.copies]]\nregion = \"us-west-2\"\nbucket = \"x\"\n", "unknown field `bucket`"),
    ] {
        let e = one_error(&with(tables));
        assert!(e.contains(want) && e.starts_with("t.toml:"), "{e}\nwanted: {want}");
    }
}
