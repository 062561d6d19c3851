//! The lab itself: real block devices behind moto's API, data that
//! survives snapshot and restore, faults as configured, nothing left behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{lab_prerequisites, leftovers, Lab, LabOpts};

pub(crate) fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait for a path to appear (the lab hot-plugs after a delay).
pub(crate) fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn round_trip(nvme: bool) {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(
        &moto,
        LabOpts {
            nvme,
            ..Default::default()
        },
    );
    let ec2 = lab.ec2();
    let c = &ec2.client;
    let zone = "us-east-1a";
    let vol = ec2
        .rt
        .block_on(c.create_volume().availability_zone(zone).size(1).send())
        .unwrap();
    let vol = vol.volume_id().unwrap().to_string();
    ec2.attach(&vol, lab.instance(), "/dev/sdf");

    let by_id = |v: &str| {
        lab.device_root().join(format!(
            "disk/by-id/nvme-Amazon_Elastic_Block_Store_{}",
            v.replace('-', "")
        ))
    };
    let dev = if nvme {
        by_id(&vol)
    } else {
        lab.device_root().join("xvdf")
    };
    wait_for(&dev);
    let real = std::fs::canonicalize(&dev).unwrap();
    assert!(
        real.to_str().unwrap().starts_with("/dev/loop"),
        "{}",
        real.display()
    );
    if nvme {
        assert_eq!(
            std::fs::canonicalize(lab.device_root().join("nvme1n1")).unwrap(),
            real
        );
    }

    let mnt = lab.dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    sh(&format!(
        "mkfs.ext4 -q {0} && mount {0} {1} && echo lab-data > {1}/file && sync -f {1}/file",
        dev.display(),
        mnt.display()
    ));
    let snap = ec2
        .rt
        .block_on(c.create_snapshot().volume_id(&vol).send())
        .unwrap();
    let snap = snap.snapshot_id().unwrap().to_string();
    // Written after the snapshot: must not be in the restore.
    sh(&format!("echo later > {}/later && sync", mnt.display()));

    let restored = ec2
        .rt
        .block_on(
            c.create_volume()
                .availability_zone(zone)
                .snapshot_id(&snap)
                .size(2)
                .send(),
        )
        .unwrap();
    let restored = restored.volume_id().unwrap().to_string();
    ec2.attach(&restored, lab.instance(), "/dev/sdg");
    let dev2 = if nvme {
        by_id(&restored)
    } else {
        lab.device_root().join("xvdg")
    };
    wait_for(&dev2);
    let mnt2 = lab.dir.join("mnt2");
    std::fs::create_dir_all(&mnt2).unwrap();
    sh(&format!(
        "mount -o ro {} {}",
        dev2.display(),
        mnt2.display()
    ));
    assert_eq!(
        std::fs::read_to_string(mnt2.join("file")).unwrap(),
        "lab-data\n"
    );
    assert!(
        !mnt2.join("later").exists(),
        "the snapshot is not point-in-time"
    );

    // Detach unplugs.
    sh(&format!("umount {}", mnt2.display()));
    // With InstanceId, as snaptastic sends it (without, the lab fills it
    // in: see detach_volume_without_instance_id_works_as_on_ec2).
    ec2.rt
        .block_on(
            c.detach_volume()
                .volume_id(&restored)
                .instance_id(lab.instance())
                .send(),
        )
        .unwrap();
    assert!(
        !dev2.exists(),
        "{} still there after detach",
        dev2.display()
    );
    let state = lab.state();
    assert!(state["plugged"].get(&restored).is_none(), "{state}");
    assert!(state["plugged"].get(&vol).is_some(), "{state}");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn xen_devices_round_trip_data_through_a_snapshot() {
    round_trip(false);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn nvme_devices_round_trip_data_through_a_snapshot() {
    round_trip(true);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn faults_hit_exactly_the_configured_calls() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(&moto, LabOpts::default());
    let ec2 = lab.ec2();
    let create = || {
        ec2.rt
            .block_on(
                ec2.client
                    .create_volume()
                    .availability_zone("us-east-1a")
                    .size(1)
                    .send(),
            )
            .map_err(|e| {
                aws_sdk_ec2::error::ProvideErrorMetadata::code(&e)
                    .unwrap_or("none")
                    .to_string()
            })
            .map(|_| ())
    };
    let reply = lab.control(
        "rules",
        "[[faults]]\naction = \"CreateVolume\"\ncalls = [2]\nreply = \"throttle\"\n\
         [[faults]]\naction = \"CreateVolume\"\ncalls = [3]\nreply = \"500\"\n\
         [[faults]]\naction = \"CreateVolume\"\ncalls = [4]\nreply = \"503\"\n",
    );
    assert!(reply.starts_with("rules set"), "{reply}");
    assert_eq!(create(), Ok(()));
    assert_eq!(create(), Err("RequestLimitExceeded".to_string()));
    assert_eq!(create(), Err("InternalError".to_string()));
    assert_eq!(create(), Err("Unavailable".to_string()));
    assert_eq!(create(), Ok(()));
    assert_eq!(lab.state()["calls"]["CreateVolume"], 5);

    // Parameter-matched faults leave other calls alone.
    lab.control("rules", "[[faults]]\naction = \"AttachVolume\"\nparams = { Device = \"/dev/sdg\" }\nreply = \"500\"\n");
    let v1 = ec2.volume("us-east-1a", 1, &[]);
    let v2 = ec2.volume("us-east-1a", 1, &[]);
    let attach = |v: &str, d: &str| {
        ec2.rt
            .block_on(
                ec2.client
                    .attach_volume()
                    .volume_id(v)
                    .instance_id(lab.instance())
                    .device(d)
                    .send(),
            )
            .is_ok()
    };
    assert!(!attach(&v2, "/dev/sdg"));
    assert!(attach(&v1, "/dev/sdf"));

    // A bad rules document is refused and the old rules stay.
    let reply = lab.control("rules", "[[faults]]\naction = \"X\"\nreply = \"explode\"\n");
    assert!(reply.starts_with("bad rules:"), "{reply}");
    assert!(!attach(&v2, "/dev/sdg"));
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn life_cycles_moto_skips() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(
        &moto,
        LabOpts {
            rules: Some("snapshot_pending = \"1h\"\nvolume_available_after = \"1h\"\n".into()),
            ..Default::default()
        },
    );
    let ec2 = lab.ec2();
    let c = &ec2.client;
    let vol = ec2.volume("us-east-1a", 1, &[]);
    let state = |v: &str| {
        let r = ec2
            .rt
            .block_on(c.describe_volumes().volume_ids(v).send())
            .unwrap();
        r.volumes()[0].state().unwrap().as_str().to_string()
    };
    assert_eq!(state(&vol), "creating");
    let snap = ec2
        .rt
        .block_on(c.create_snapshot().volume_id(&vol).send())
        .unwrap();
    let snap = snap.snapshot_id().unwrap().to_string();
    let r = ec2
        .rt
        .block_on(c.describe_snapshots().snapshot_ids(&snap).send())
        .unwrap();
    assert_eq!(r.snapshots()[0].state().unwrap().as_str(), "pending");

    // Rules change at run time: the second snapshot ends in error.
    lab.control("rules", "snapshot_error_calls = [2]\n");
    let r = ec2
        .rt
        .block_on(c.describe_snapshots().snapshot_ids(&snap).send())
        .unwrap();
    assert_eq!(r.snapshots()[0].state().unwrap().as_str(), "completed");
    assert_eq!(state(&vol), "available");
    let bad = ec2
        .rt
        .block_on(c.create_snapshot().volume_id(&vol).send())
        .unwrap();
    let r = ec2
        .rt
        .block_on(
            c.describe_snapshots()
                .snapshot_ids(bad.snapshot_id().unwrap())
                .send(),
        )
        .unwrap();
    assert_eq!(r.snapshots()[0].state().unwrap().as_str(), "error");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn serves_instance_metadata_for_its_instance() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(
        &moto,
        LabOpts {
            userdata: Some("{\"role\": \"x\"}".into()),
            ..Default::default()
        },
    );
    let imds = lab.var("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    let token = sh(&format!("curl -sS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' -D - {imds}/latest/api/token"));
    assert!(
        token
            .to_ascii_lowercase()
            .contains("x-aws-ec2-metadata-token-ttl-seconds: 60"),
        "{token}"
    );
    let id = sh(&format!("curl -sS {imds}/latest/meta-data/instance-id"));
    assert_eq!(id, lab.instance());
    assert_eq!(
        sh(&format!("curl -sS {imds}/latest/user-data")),
        "{\"role\": \"x\"}"
    );
    lab.control("userdata", "{\"role\": \"y\"}");
    assert_eq!(
        sh(&format!("curl -sS {imds}/latest/user-data")),
        "{\"role\": \"y\"}"
    );
    // The instance exists in moto.
    let ec2 = lab.ec2();
    let r = ec2
        .rt
        .block_on(
            ec2.client
                .describe_instances()
                .instance_ids(lab.instance())
                .send(),
        )
        .unwrap();
    assert_eq!(r.reservations().len(), 1);
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn refuses_the_real_dev() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(crate::support::lab_bin())
        .arg("--dir")
        .arg(dir.path())
        .args(["--moto-url", &moto, "--device-root", "/dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to use the real /dev"));
}

/// Run by `nothing_is_left_behind_when_a_test_panics` in a child process:
/// attaches, mounts, then panics with the lab running.
#[test]
#[ignore = "helper: run by nothing_is_left_behind_when_a_test_panics"]
fn panicking_child() {
    let dir = std::env::var_os("SNAPTASTIC_TEST_LAB_DIR").expect("run by the parent test");
    let moto = std::env::var("SNAPTASTIC_TEST_MOTO_URL").unwrap();
    let lab = Lab::start(
        &moto,
        LabOpts {
            dir: Some(dir.into()),
            ..Default::default()
        },
    );
    let ec2 = lab.ec2();
    let vol = ec2.volume("us-east-1a", 1, &[]);
    ec2.attach(&vol, lab.instance(), "/dev/sdf");
    let dev = lab.device_root().join("xvdf");
    wait_for(&dev);
    let mnt = lab.dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    sh(&format!(
        "mkfs.ext4 -q {0} && mount {0} {1} && fsfreeze -f {1}",
        dev.display(),
        mnt.display()
    ));
    panic!("midway, with a frozen filesystem mounted on a lab device");
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn nothing_is_left_behind_when_a_test_panics() {
    let Some(_moto) = lab_prerequisites() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lab::panicking_child",
            "--ignored",
            "--nocapture",
        ])
        .env("SNAPTASTIC_TEST_LAB_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the child should have failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("midway"),
        "child did not get that far:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("lab: unmounted"),
        "lab did not clean up:\n{stderr}"
    );
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn snaptastic_sees_the_lab_as_an_ec2_host() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let role = crate::support::unique("lab");
    let lab = Lab::start(
        &moto,
        LabOpts {
            userdata: Some(format!(
                r#"{{"role": "{role}", "cluster": "c", "environment": "e"}}"#
            )),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::write_config(
        &dir,
        "[profiles.solr]\n[[profiles.solr.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/mnt/solr\"\n",
    );
    let ec2 = lab.ec2();
    let vol = ec2.volume("us-east-1a", 5, &[]);
    ec2.attach(&vol, lab.instance(), "/dev/sdf");
    let out = lab
        .run(&["test"])
        .config(&cfg)
        .run()
        .expect_code(0)
        .stdout();
    assert!(
        out.contains(&format!(
            "OK   metadata: instance {} in us-east-1a",
            lab.instance()
        )),
        "{out}"
    );
    let out = lab
        .run(&["list-volumes", "solr"])
        .config(&cfg)
        .run()
        .expect_code(0)
        .stdout();
    assert!(out.lines().nth(1).unwrap().contains(&vol), "{out}");
}

/// One metadata GET with curl: `(HTTP status, body)`; with a token when
/// given one (IMDSv2), without (IMDSv1) otherwise.
fn imds_get(imds: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "\n%{http_code}"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("X-aws-ec2-metadata-token: {t}")]);
    }
    let out = cmd.arg(format!("{imds}{path}")).output().unwrap();
    assert!(out.status.success(), "{path}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn metadata_directories_list_their_keys() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(&moto, LabOpts::default());
    let imds = lab.var("AWS_EC2_METADATA_SERVICE_ENDPOINT").to_string();
    let token = sh(&format!(
        "curl -sS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' {imds}/latest/api/token"
    ));
    let ec2 = lab.ec2();
    // Attached out of device order: ebsN follows the device names.
    let g = ec2.volume("us-east-1a", 1, &[]);
    ec2.attach(&g, lab.instance(), "/dev/sdg");
    let f = ec2.volume("us-east-1a", 1, &[]);
    ec2.attach(&f, lab.instance(), "/dev/sdf");

    for token in [Some(token.as_str()), None] {
        let get = |path: &str| imds_get(&imds, path, token);
        let (code, top) = get("/latest/meta-data/");
        assert_eq!(code, 200, "{top}");
        let keys: Vec<&str> = top.lines().collect();
        for want in [
            "instance-id",
            "instance-type",
            "placement/",
            "block-device-mapping/",
        ] {
            assert!(keys.contains(&want), "{want} not in {keys:?}");
        }
        assert_eq!(
            get("/latest/meta-data/placement/"),
            (200, "availability-zone\nregion".to_string())
        );
        // Without the slash too, as EC2 answers.
        assert_eq!(
            get("/latest/meta-data/placement"),
            (200, "availability-zone\nregion".to_string())
        );
        assert_eq!(
            get("/latest/meta-data/block-device-mapping/"),
            (200, "ami\nebs1\nebs2\nroot".to_string())
        );
        assert_eq!(
            get("/latest/meta-data/block-device-mapping/ebs1"),
            (200, "sdf".to_string())
        );
        assert_eq!(
            get("/latest/meta-data/block-device-mapping/ebs2"),
            (200, "sdg".to_string())
        );
        assert_eq!(
            get("/latest/meta-data/block-device-mapping/root"),
            (200, "/dev/sda1".to_string())
        );
        assert_eq!(get("/latest/meta-data/block-device-mapping/ebs3").0, 404);
        // The leaves a listing names answer (the walk boto made).
        for key in keys {
            if !key.ends_with('/') {
                let (code, body) = get(&format!("/latest/meta-data/{key}"));
                assert_eq!(code, 200, "{key}: {body}");
            }
        }
    }
    // A wrong token is still refused, listings included.
    assert_eq!(imds_get(&imds, "/latest/meta-data/", Some("nope")).0, 401);

    // A detached volume leaves the mapping.
    ec2.rt
        .block_on(
            ec2.client
                .detach_volume()
                .volume_id(&f)
                .instance_id(lab.instance())
                .send(),
        )
        .unwrap();
    assert_eq!(
        imds_get(&imds, "/latest/meta-data/block-device-mapping/", None),
        (200, "ami\nebs1\nroot".to_string())
    );
    assert_eq!(
        imds_get(&imds, "/latest/meta-data/block-device-mapping/ebs1", None),
        (200, "sdg".to_string())
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn describe_instance_attribute_lists_the_block_device_mapping() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(&moto, LabOpts::default());
    let ec2 = lab.ec2();
    let c = &ec2.client;
    let vol = ec2.volume("us-east-1a", 1, &[]);
    ec2.attach(&vol, lab.instance(), "/dev/sdf");
    let mapping = || {
        let r = ec2
            .rt
            .block_on(
                c.describe_instance_attribute()
                    .instance_id(lab.instance())
                    .attribute(aws_sdk_ec2::types::InstanceAttributeName::BlockDeviceMapping)
                    .send(),
            )
            .unwrap();
        assert_eq!(r.instance_id(), Some(lab.instance()));
        let mut m: Vec<(String, String, String, bool)> = r
            .block_device_mappings()
            .iter()
            .map(|b| {
                let ebs = b.ebs().expect("an EBS mapping");
                (
                    b.device_name().unwrap().to_string(),
                    ebs.volume_id().unwrap().to_string(),
                    ebs.status().unwrap().as_str().to_string(),
                    ebs.delete_on_termination().unwrap(),
                )
            })
            .collect();
        m.sort();
        m
    };
    let m = mapping();
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0].0, "/dev/sda1", "the root volume: {m:?}");
    assert_eq!((m[0].2.as_str(), m[0].3), ("attached", true), "{m:?}");
    assert_eq!(
        m[1],
        (
            "/dev/sdf".to_string(),
            vol.clone(),
            "attached".to_string(),
            false
        )
    );

    // DeleteOnTermination changed afterwards shows.
    ec2.rt
        .block_on(
            c.modify_instance_attribute()
                .instance_id(lab.instance())
                .block_device_mappings(
                    aws_sdk_ec2::types::InstanceBlockDeviceMappingSpecification::builder()
                        .device_name("/dev/sdf")
                        .ebs(
                            aws_sdk_ec2::types::EbsInstanceBlockDeviceSpecification::builder()
                                .delete_on_termination(true)
                                .build(),
                        )
                        .build(),
                )
                .send(),
        )
        .unwrap();
    assert!(mapping()[1].3, "{:?}", mapping());

    // Other attributes pass through untouched.
    let r = ec2
        .rt
        .block_on(
            c.describe_instance_attribute()
                .instance_id(lab.instance())
                .attribute(aws_sdk_ec2::types::InstanceAttributeName::InstanceType)
                .send(),
        )
        .unwrap();
    assert!(r.block_device_mappings().is_empty());
    assert!(r.instance_type().is_some());
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn detach_volume_without_instance_id_works_as_on_ec2() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = Lab::start(&moto, LabOpts::default());
    let ec2 = lab.ec2();
    let c = &ec2.client;
    let vol = ec2.volume("us-east-1a", 1, &[]);
    ec2.attach(&vol, lab.instance(), "/dev/sdf");
    let dev = lab.device_root().join("xvdf");
    wait_for(&dev);

    let detach = || {
        ec2.rt
            .block_on(c.detach_volume().volume_id(&vol).send())
            .map_err(|e| {
                aws_sdk_ec2::error::ProvideErrorMetadata::code(&e)
                    .unwrap_or("none")
                    .to_string()
            })
    };
    let r = detach().unwrap();
    assert_eq!(r.instance_id(), Some(lab.instance()));
    assert_eq!(r.volume_id(), Some(vol.as_str()));
    // The lab's own side effects saw the instance too: unplugged.
    assert!(!dev.exists(), "{} still there after detach", dev.display());
    assert!(lab.state()["plugged"].get(&vol).is_none());
    let r = ec2
        .rt
        .block_on(c.describe_volumes().volume_ids(&vol).send())
        .unwrap();
    assert_eq!(r.volumes()[0].state().unwrap().as_str(), "available");

    // A volume attached nowhere: EC2's error, not moto's HTTP 500.
    assert_eq!(detach().unwrap_err(), "IncorrectState");
}
