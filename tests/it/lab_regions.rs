//! The lab in two Regions: CopySnapshot into another Region carries the
//! source's data to a second lab there (a DR host sharing the image
//! store), plays the copy's life cycle, its limit and its KMS key check
//! as EC2 does; snapshot locks keep a snapshot from deletion until they
//! expire or are removed; an archived snapshot is a volume's source only
//! while temporarily restored.

use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    LockMode, ResourceType, Snapshot, SnapshotState, Tag, TagSpecification, VolumeState,
};

use crate::lab::{sh, wait_for};
use crate::support::{lab_prerequisites, leftovers, Ec2, Lab, LabOpts};

const HOME: &str = "us-east-1";
const DR: &str = "us-west-2";

fn lab(moto: &str, rules: &str) -> Lab {
    Lab::start(
        moto,
        LabOpts {
            rules: Some(rules.into()),
            ..Default::default()
        },
    )
}

/// A snapshot of a new 1 GiB volume, through the lab (so it has an image).
fn snapshot(ec2: &Ec2) -> String {
    let vol = ec2.volume(&format!("{HOME}a"), 1, &[]);
    ec2.rt
        .block_on(ec2.client.create_snapshot().volume_id(&vol).send())
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_string()
}

/// CopySnapshot from the home Region, called in the destination's.
fn copy(dest: &Ec2, source: &str, key: Option<&str>) -> Result<String, (String, String)> {
    let mut req = dest
        .client
        .copy_snapshot()
        .source_region(HOME)
        .source_snapshot_id(source)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .tags(Tag::builder().key("copied_from").value(source).build())
                .build(),
        );
    if let Some(k) = key {
        req = req.encrypted(true).kms_key_id(k);
    }
    dest.rt
        .block_on(req.send())
        .map(|r| r.snapshot_id().unwrap().to_string())
        .map_err(|e| {
            let e = e.into_service_error();
            (
                e.code().unwrap_or("").to_string(),
                e.message().unwrap_or("").to_string(),
            )
        })
}

fn describe(ec2: &Ec2, id: &str) -> Snapshot {
    ec2.rt
        .block_on(ec2.client.describe_snapshots().snapshot_ids(id).send())
        .unwrap()
        .snapshots()[0]
        .clone()
}

/// Wait (bounded) until the snapshot leaves `pending`.
fn settled(ec2: &Ec2, id: &str) -> Snapshot {
    let t = Instant::now();
    loop {
        let s = describe(ec2, id);
        if s.state() != Some(&SnapshotState::Pending) {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{id} still pending");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_copy_in_another_region_restores_its_source_data_on_a_dr_host() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let home = lab(&moto, "copy_pending = \"2s\"\n");
    let ec2 = home.ec2();
    let vol = ec2.volume(&format!("{HOME}a"), 1, &[]);
    ec2.attach(&vol, home.instance(), "/dev/sdf");
    let dev = home.device_root().join("xvdf");
    wait_for(&dev);
    let mnt = home.dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    sh(&format!(
        "mkfs.ext4 -q {0} && mount {0} {1} && echo home-data > {1}/file && umount {1}",
        dev.display(),
        mnt.display()
    ));
    let snap = ec2
        .rt
        .block_on(ec2.client.create_snapshot().volume_id(&vol).send())
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_string();

    let west = home.ec2_in(DR);
    let copy_id = copy(&west, &snap, None).unwrap();
    let pending = describe(&west, &copy_id);
    assert_eq!(pending.state(), Some(&SnapshotState::Pending));
    assert!(pending.progress().is_some_and(|p| p.ends_with('%')));
    assert_eq!(
        pending.volume_id(),
        Some("vol-ffffffff"),
        "EC2's arbitrary id"
    );
    assert!(pending
        .tags()
        .iter()
        .any(|t| t.key() == Some("copied_from") && t.value() == Some(snap.as_str())));
    let early = west.rt.block_on(
        west.client
            .create_volume()
            .availability_zone(format!("{DR}a"))
            .snapshot_id(&copy_id)
            .send(),
    );
    assert_eq!(
        early.unwrap_err().into_service_error().code(),
        Some("IncorrectState"),
        "a volume from a pending copy"
    );
    assert_eq!(
        settled(&west, &copy_id).state(),
        Some(&SnapshotState::Completed)
    );
    // The home Region does not see the copy: it lives in the other one.
    let home_view = ec2.rt.block_on(
        ec2.client
            .describe_snapshots()
            .snapshot_ids(&copy_id)
            .send(),
    );
    assert!(home_view.is_err() || home_view.unwrap().snapshots().is_empty());

    // A DR host in the other Region, sharing the image store.
    let dr = Lab::start(
        &moto,
        LabOpts {
            region: Some(DR.into()),
            images: Some(home.images()),
            ..Default::default()
        },
    );
    let imds = dr.var("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    let zone = sh(&format!(
        "curl -sS {imds}/latest/meta-data/placement/availability-zone"
    ));
    assert_eq!(zone, format!("{DR}a"));
    assert_eq!(
        sh(&format!(
            "curl -sS {imds}/latest/meta-data/placement/region"
        )),
        DR
    );
    let dr_ec2 = dr.ec2();
    let restored = dr_ec2
        .rt
        .block_on(
            dr_ec2
                .client
                .create_volume()
                .availability_zone(&zone)
                .snapshot_id(&copy_id)
                .send(),
        )
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    dr_ec2.attach(&restored, dr.instance(), "/dev/sdf");
    let dr_dev = dr.device_root().join("xvdf");
    wait_for(&dr_dev);
    let dr_mnt = dr.dir.join("mnt");
    std::fs::create_dir_all(&dr_mnt).unwrap();
    sh(&format!(
        "mount -o ro {} {}",
        dr_dev.display(),
        dr_mnt.display()
    ));
    let data = std::fs::read_to_string(dr_mnt.join("file"));
    sh(&format!("umount {}", dr_mnt.display()));
    assert_eq!(data.unwrap(), "home-data\n");

    let (home_dir, dr_dir) = (home.dir.clone(), dr.dir.clone());
    drop(dr);
    assert!(
        home.images().join(format!("{copy_id}.img")).exists(),
        "the DR lab left the owner's images alone"
    );
    drop(home);
    for d in [home_dir, dr_dir] {
        assert_eq!(leftovers(&d), Vec::<String>::new());
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn copies_past_the_limit_in_progress_are_refused() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = lab(&moto, "copy_pending = \"60s\"\ncopy_limit = 2\n");
    let ec2 = lab.ec2();
    let snap = snapshot(&ec2);
    let west = lab.ec2_in(DR);
    let first = copy(&west, &snap, None).unwrap();
    copy(&west, &snap, None).unwrap();
    let (code, message) = copy(&west, &snap, None).unwrap_err();
    assert_eq!(code, "ResourceLimitExceeded");
    assert!(
        message.contains("Too many snapshot copies in progress"),
        "{message}"
    );
    // The limit is the destination Region's: a copy into another is fine.
    copy(&ec2, &snap, None).unwrap();
    // A pending copy deleted gives its place back.
    west.rt
        .block_on(west.client.delete_snapshot().snapshot_id(&first).send())
        .unwrap();
    copy(&west, &snap, None).unwrap();
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_copy_or_volume_under_an_unknown_kms_key_ends_in_error() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = lab(
        &moto,
        "copy_pending = \"1s\"\nkms_keys = [\"alias/dr\", \"arn:aws:kms:us-west-2:123456789012:key/1111aaaa\"]\n",
    );
    let ec2 = lab.ec2();
    let snap = snapshot(&ec2);
    let west = lab.ec2_in(DR);

    // EC2 takes the call and fails the copy later.
    let bad = copy(&west, &snap, Some("alias/nope")).unwrap();
    assert_eq!(describe(&west, &bad).state(), Some(&SnapshotState::Pending));
    let failed = settled(&west, &bad);
    assert_eq!(failed.state(), Some(&SnapshotState::Error));
    assert!(
        failed
            .state_message()
            .is_some_and(|m| m.contains("alias/nope")),
        "{failed:?}"
    );
    // A key of another Region is not usable in this one.
    let elsewhere = copy(
        &west,
        &snap,
        Some("arn:aws:kms:eu-west-1:123456789012:key/1111aaaa"),
    )
    .unwrap();
    assert_eq!(
        settled(&west, &elsewhere).state(),
        Some(&SnapshotState::Error)
    );
    for good in ["alias/dr", "1111aaaa", "alias/aws/ebs"] {
        let id = copy(&west, &snap, Some(good)).unwrap();
        assert_eq!(
            settled(&west, &id).state(),
            Some(&SnapshotState::Completed),
            "{good}"
        );
    }
    // A key without Encrypted is refused at once.
    let r = west.rt.block_on(
        west.client
            .copy_snapshot()
            .source_region(HOME)
            .source_snapshot_id(&snap)
            .kms_key_id("alias/dr")
            .send(),
    );
    assert_eq!(
        r.unwrap_err().into_service_error().code(),
        Some("InvalidParameterDependency")
    );

    let vol = west
        .rt
        .block_on(
            west.client
                .create_volume()
                .availability_zone(format!("{DR}a"))
                .size(1)
                .encrypted(true)
                .kms_key_id("alias/nope")
                .send(),
        )
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    let state = west
        .rt
        .block_on(west.client.describe_volumes().volume_ids(&vol).send())
        .unwrap()
        .volumes()[0]
        .state()
        .cloned();
    assert_eq!(state, Some(VolumeState::Error));
}

fn lock(ec2: &Ec2, snap: &str, mode: LockMode, days: i32) -> Result<String, String> {
    ec2.rt
        .block_on(
            ec2.client
                .lock_snapshot()
                .snapshot_id(snap)
                .lock_mode(mode)
                .lock_duration(days)
                .send(),
        )
        .map(|r| r.lock_state().unwrap().as_str().to_string())
        .map_err(|e| e.into_service_error().code().unwrap_or("").to_string())
}

fn delete(ec2: &Ec2, snap: &str) -> Result<(), String> {
    ec2.rt
        .block_on(ec2.client.delete_snapshot().snapshot_id(snap).send())
        .map(drop)
        .map_err(|e| e.into_service_error().code().unwrap_or("").to_string())
}

fn lock_state(ec2: &Ec2, snap: &str) -> Option<String> {
    let r = ec2
        .rt
        .block_on(
            ec2.client
                .describe_locked_snapshots()
                .snapshot_ids(snap)
                .send(),
        )
        .unwrap();
    r.snapshots()
        .first()
        .and_then(|s| s.lock_state())
        .map(|s| s.as_str().to_string())
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_locked_snapshot_is_not_deleted_until_its_lock_expires_or_is_removed() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = lab(&moto, "lock_day = \"3s\"\n");
    let ec2 = lab.ec2();

    // Governance: refused while locked, deleted once unlocked.
    let governed = snapshot(&ec2);
    let dry = ec2.rt.block_on(
        ec2.client
            .lock_snapshot()
            .snapshot_id(&governed)
            .lock_mode(LockMode::Governance)
            .lock_duration(1)
            .dry_run(true)
            .send(),
    );
    assert_eq!(
        dry.unwrap_err().into_service_error().code(),
        Some("DryRunOperation")
    );
    assert_eq!(delete(&ec2, &governed), Ok(()), "not locked by a dry run");
    let governed = snapshot(&ec2);
    assert_eq!(
        lock(&ec2, &governed, LockMode::Governance, 1).as_deref(),
        Ok("governance")
    );
    assert_eq!(lock_state(&ec2, &governed).as_deref(), Some("governance"));
    assert_eq!(delete(&ec2, &governed).unwrap_err(), "SnapshotLocked");
    ec2.rt
        .block_on(ec2.client.unlock_snapshot().snapshot_id(&governed).send())
        .unwrap();
    assert_eq!(delete(&ec2, &governed), Ok(()));

    // Compliance: neither unlocked nor deleted nor shortened until it
    // expires.
    let kept = snapshot(&ec2);
    assert_eq!(
        lock(&ec2, &kept, LockMode::Compliance, 1).as_deref(),
        Ok("compliance")
    );
    let unlock = ec2
        .rt
        .block_on(ec2.client.unlock_snapshot().snapshot_id(&kept).send());
    assert_eq!(
        unlock.unwrap_err().into_service_error().code(),
        Some("SnapshotLocked")
    );
    assert_eq!(
        lock(&ec2, &kept, LockMode::Governance, 1).unwrap_err(),
        "SnapshotLocked"
    );
    assert_eq!(delete(&ec2, &kept).unwrap_err(), "SnapshotLocked");
    let t = Instant::now();
    while lock_state(&ec2, &kept).as_deref() != Some("expired") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the lock never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(delete(&ec2, &kept), Ok(()));

    // Only a snapshot that exists can be locked.
    assert_eq!(
        lock(&ec2, "snap-00000000000000000", LockMode::Governance, 1).unwrap_err(),
        "InvalidSnapshot.NotFound"
    );
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn an_archived_snapshot_restores_only_while_restored_from_the_archive() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let lab = lab(&moto, "");
    let ec2 = lab.ec2();
    let snap = snapshot(&ec2);
    let volume_from = |snap: &str| {
        ec2.rt
            .block_on(
                ec2.client
                    .create_volume()
                    .availability_zone(format!("{HOME}a"))
                    .snapshot_id(snap)
                    .send(),
            )
            .map(drop)
            .map_err(|e| e.into_service_error().code().unwrap_or("").to_string())
    };
    ec2.rt
        .block_on(
            ec2.client
                .modify_snapshot_tier()
                .snapshot_id(&snap)
                .storage_tier(aws_sdk_ec2::types::TargetStorageTier::Archive)
                .send(),
        )
        .unwrap();
    assert_eq!(volume_from(&snap).unwrap_err(), "IncorrectState");
    // A temporary restore leaves it in the archive tier, usable until
    // the restore expires (as on EC2).
    ec2.rt
        .block_on(
            ec2.client
                .restore_snapshot_tier()
                .snapshot_id(&snap)
                .temporary_restore_days(1)
                .send(),
        )
        .unwrap();
    assert_eq!(
        describe(&ec2, &snap).storage_tier().map(|t| t.as_str()),
        Some("archive")
    );
    assert_eq!(volume_from(&snap), Ok(()));
}
