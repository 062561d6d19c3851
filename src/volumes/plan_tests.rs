use std::collections::BTreeMap;

use super::*;
use crate::cloud::Attachment;
use crate::cloud::SnapshotState::*;
use crate::volumes::fixtures::{in_run, snap};
use crate::volumes::tags::{STATE_ATTACHED, STATE_MOUNTED};

fn vol(device: &str, mp: &str, size: u32) -> Volume {
    Volume::with_defaults(device, mp, size)
}

fn ebs(
    id: &str,
    state: &str,
    attached: Option<(&str, &str)>,
    mp: &str,
    source: &str,
) -> VolumeInfo {
    VolumeInfo {
        id: id.into(),
        state: state.into(),
        size_gib: Some(5),
        volume_type: None,
        iops: None,
        availability_zone: Some("az-1".into()),
        attachments: attached
            .map(|(i, d)| Attachment {
                instance_id: i.into(),
                device: d.into(),
                state: "attached".into(),
            })
            .into_iter()
            .collect(),
        tags: BTreeMap::from([
            ("mount_point".to_string(), mp.to_string()),
            ("instance_id".to_string(), "i-1".to_string()),
            (TAG_SOURCE.to_string(), source.to_string()),
        ]),
        fast_restored: None,
        init_rate: None,
    }
}

fn seen<'a>(
    mounts: &'a [MountEntry],
    attached: &'a [VolumeInfo],
    ours: &'a [VolumeInfo],
    snapshots: &'a [SnapshotInfo],
) -> Observed<'a> {
    Observed {
        instance_id: "i-1",
        availability_zone: "az-1",
        mounts,
        attached,
        ours,
        snapshots,
    }
}

fn ignoring(ignore_mounted: bool) -> PlanOptions<'static> {
    PlanOptions {
        ignore_mounted,
        ..PlanOptions::default()
    }
}

fn action(p: &Result<MountPlan, Vec<String>>) -> String {
    match p {
        Ok(p) => match &p.volumes[0].action {
            MountAction::Skip { mounted_from } => format!("skip {mounted_from}"),
            MountAction::Finish {
                volume,
                mounted_from,
                ..
            } => format!("finish {} from {mounted_from}", volume.id),
            MountAction::Adopt { volume, attached } => {
                format!("adopt {} attached={attached}", volume.id)
            }
            MountAction::Create {
                source: RestoreSource::Empty,
            } => "create empty".into(),
            MountAction::Create {
                source: RestoreSource::Snapshot { snapshot },
            } => format!("create from {}", snapshot.id),
            MountAction::Create {
                source: RestoreSource::WaitFor { pending, .. },
            } => format!("wait {}", pending.id),
        },
        Err(e) => format!("error: {}", e.join("; ")),
    }
}

#[test]
fn table() {
    let mounted = mountinfo::parse("1 1 7:0 / /data rw - xfs /dev/xvdf rw\n");
    let snaps = vec![snap("s1", "/data", 3, Completed)];
    let mut big = snap("s2", "/data", 4, Completed);
    big.size_gib = Some(50);
    let big = vec![big];
    let at_f = vec![ebs(
        "vol-a",
        "in-use",
        Some(("i-1", "/dev/sdf")),
        "/data",
        "empty",
    )];
    let at_xvdf = vec![ebs(
        "vol-x",
        "in-use",
        Some(("i-1", "/dev/xvdf")),
        "/data",
        "s1",
    )];
    let foreign = vec![ebs(
        "vol-f",
        "in-use",
        Some(("i-1", "/dev/sdf")),
        "/other",
        "empty",
    )];
    let elsewhere = vec![ebs(
        "vol-e",
        "in-use",
        Some(("i-2", "/dev/sdf")),
        "/data",
        "empty",
    )];
    let mut leftover = vec![ebs("vol-l", "available", None, "/data", "s1")];
    leftover[0]
        .tags
        .insert(TAG_STATE.into(), STATE_RESTORING.into());
    let mut attached_here = at_f.clone();
    attached_here[0]
        .tags
        .insert(TAG_STATE.into(), STATE_ATTACHED.into());
    let mut mounted_here = at_f.clone();
    mounted_here[0]
        .tags
        .insert(TAG_STATE.into(), STATE_MOUNTED.into());
    let mut attached_gone = vec![ebs("vol-g", "available", None, "/data", "s1")];
    attached_gone[0]
        .tags
        .insert(TAG_STATE.into(), STATE_ATTACHED.into());
    let mut detached = vec![ebs("vol-d", "available", None, "/data", "empty")];
    detached[0]
        .tags
        .insert(TAG_STATE.into(), STATE_DETACHED.into());
    let v = [vol("/dev/sdf", "/data", 5)];
    let cases: Vec<(&str, Observed<'_>, bool, &str)> = vec![
        ("first boot, nothing anywhere", seen(&[], &[], &[], &[]), false, "create empty"),
        ("restore newest completed", seen(&[], &[], &[], &snaps), false, "create from s1"),
        ("mounted, --ignore-mounted", seen(&mounted, &[], &[], &snaps), true, "skip /dev/xvdf"),
        ("mounted without the flag", seen(&mounted, &[], &[], &snaps), false, "error: /data (/dev/sdf): already mounted (from /dev/xvdf); run with --ignore-mounted to leave it alone"),
        ("crashed run left it attached", seen(&[], &at_f, &[], &snaps), false, "adopt vol-a attached=true"),
        ("attached under the kernel name", seen(&[], &at_xvdf, &[], &snaps), false, "adopt vol-x attached=true"),
        ("device used by another volume", seen(&[], &foreign, &[], &snaps), false, "error: /data (/dev/sdf): device /dev/sdf is already in use by vol-f (tagged for /other)"),
        ("attached to another instance is not ours", seen(&[], &elsewhere, &[], &snaps), false, "create from s1"),
        ("crashed run left it available", seen(&[], &[], &leftover, &snaps), false, "adopt vol-l attached=false"),
        ("crash leftover from an older source is not adopted", seen(&[], &[], &leftover, &[]), false, "create empty"),
        ("never confirmed mounted, still attached here", seen(&[], &attached_here, &[], &snaps), false, "adopt vol-a attached=true"),
        ("never confirmed mounted, since detached", seen(&[], &[], &attached_gone, &snaps), false, "create from s1"),
        ("mounted from ours, never confirmed: finished", seen(&mounted, &attached_here, &[], &snaps), false, "finish vol-a from /dev/xvdf"),
        ("mounted from ours, never confirmed, --ignore-mounted: finished", seen(&mounted, &attached_here, &[], &snaps), true, "finish vol-a from /dev/xvdf"),
        ("mounted from ours, confirmed: done, a re-run goes on with the rest", seen(&mounted, &mounted_here, &[], &snaps), false, "finish vol-a from /dev/xvdf"),
        ("mounted from a volume with no state (0.2.12's): refused", seen(&mounted, &at_f, &[], &snaps), false, "error: /data (/dev/sdf): already mounted (from /dev/xvdf); run with --ignore-mounted to leave it alone"),
        ("never confirmed mounted, since detached, no snapshot", seen(&[], &[], &attached_gone, &[]), false, "create empty"),
        ("detached on purpose, a snapshot exists: newer data, re-attached", seen(&[], &[], &detached, &snaps), false, "adopt vol-d attached=false"),
        ("detached on purpose, no snapshot", seen(&[], &[], &detached, &[]), false, "adopt vol-d attached=false"),
        ("size smaller than the snapshot", seen(&[], &[], &[], &big), false, "error: /data (/dev/sdf): size 5 GiB is smaller than snapshot s2 (50 GiB); set size = 50 or more"),
    ];
    for (name, seen, ignore, want) in cases {
        assert_eq!(
            action(&plan_mount(&v, &seen, ignoring(ignore))),
            want,
            "{name}"
        );
    }
}

#[test]
fn near_identical_tags_warn_in_the_plan() {
    let v = [vol("/dev/sdf", "/data", 5)];
    let snaps = vec![snap("s1", "/Data", 3, Completed)];
    let p = plan_mount(&v, &seen(&[], &[], &[], &snaps), ignoring(false))
        .unwrap()
        .volumes;
    assert_eq!(
        p[0].action,
        MountAction::Create {
            source: RestoreSource::Empty
        }
    );
    assert_eq!(p[0].warnings.len(), 1, "{:?}", p[0].warnings);
    assert!(
        p[0].warnings[0].contains("near-identical mount_point tag (not used): \"/Data\" (s1)"),
        "{:?}",
        p[0].warnings
    );
    // A volume tagged with the slashed form is still ours.
    let at = vec![ebs(
        "vol-a",
        "in-use",
        Some(("i-1", "/dev/sdf")),
        "/data/",
        "s1",
    )];
    let p = plan_mount(&v, &seen(&[], &at, &[], &snaps), ignoring(false));
    assert_eq!(action(&p), "adopt vol-a attached=true");
}

#[test]
fn every_bad_volume_is_reported() {
    let mounted = mountinfo::parse(
        "1 1 7:0 / /a rw - xfs /dev/xvdf rw\n1 1 7:1 / /b rw - xfs /dev/xvdg rw\n",
    );
    let e = plan_mount(
        &[vol("/dev/sdf", "/a", 5), vol("/dev/sdg", "/b", 5)],
        &seen(&mounted, &[], &[], &[]),
        ignoring(false),
    )
    .unwrap_err();
    assert_eq!(e.len(), 2);
}

fn detached_vol(id: &str, az: &str, created: &str, instance: &str) -> VolumeInfo {
    let mut d = ebs(id, "available", None, "/a", "s1");
    d.availability_zone = Some(az.into());
    d.tags.insert(TAG_STATE.into(), STATE_DETACHED.into());
    d.tags.insert("created".into(), created.into());
    d.tags.insert("instance_id".into(), instance.into());
    d
}

fn actions(p: &Result<MountPlan, Vec<String>>) -> Vec<String> {
    match p {
        Ok(p) => p
            .volumes
            .iter()
            .map(|v| {
                action(&Ok(MountPlan {
                    point: p.point.clone(),
                    volumes: vec![v.clone()],
                }))
            })
            .collect(),
        Err(e) => e.iter().map(|l| format!("error: {l}")).collect(),
    }
}

#[test]
fn a_failed_run_restores_the_earlier_complete_set_or_is_refused() {
    let v = [vol("/dev/sdf", "/a", 5), vol("/dev/sdg", "/b", 5)];
    let run = |id: &str, mp: &str, hour: u32, state, r: &str| in_run(id, mp, hour, state, Some(r));
    // r2 failed on /b; r1 is complete.
    let snaps = vec![
        run("a1", "/a", 1, Completed, "r1"),
        run("b1", "/b", 1, Completed, "r1"),
        run("a2", "/a", 2, Completed, "r2"),
    ];
    let p = plan_mount(&v, &seen(&[], &[], &[], &snaps), ignoring(false));
    assert_eq!(actions(&p), ["create from a1", "create from b1"]);
    let p = p.unwrap();
    assert_eq!(p.point, PointInTime::Set { run: "r1".into() });
    assert!(
        p.volumes[0].warnings.iter().any(|w| w.contains(
            "newer snapshot(s) a2 (snaptastic:run=r2) not used: not part of a snapshot set complete for every mount point"
        )),
        "{:?}",
        p.volumes[0].warnings
    );
    assert!(
        p.volumes[1].warnings.is_empty(),
        "{:?}",
        p.volumes[1].warnings
    );

    // No complete set (the only run lacks /b, which has 0.2.12's).
    let mixed = vec![
        in_run("b0", "/b", 0, Completed, None),
        run("a2", "/a", 2, Completed, "r2"),
        run("b2", "/b", 2, Error, "r2"),
    ];
    let p = plan_mount(&v, &seen(&[], &[], &[], &mixed), ignoring(false));
    assert_eq!(
        actions(&p),
        ["error: /b (/dev/sdg): not in the newest snapshot set (snaptastic:run=r2), which has only b2 in state error, and no older set is complete; not restoring volumes from different points in time: pass --allow-mixed to restore each volume from its own newest snapshot"]
    );
    let allow = PlanOptions {
        allow_mixed: true,
        ..PlanOptions::default()
    };
    let p = plan_mount(&v, &seen(&[], &[], &[], &mixed), allow);
    assert_eq!(actions(&p), ["create from a2", "create from b0"]);
    assert_eq!(p.unwrap().point.label(), "mixed");

    // Mixed history, but nothing is restored from snapshots (both
    // mounted and left alone): no flag needed.
    let mounted = mountinfo::parse(
        "1 1 7:0 / /a rw - xfs /dev/xvdf rw\n1 1 7:1 / /b rw - xfs /dev/xvdg rw\n",
    );
    let p = plan_mount(&v, &seen(&mounted, &[], &[], &mixed), ignoring(true));
    assert_eq!(actions(&p), ["skip /dev/xvdf", "skip /dev/xvdg"]);

    // Pure 0.2.12 history: per volume, no flag.
    let legacy = vec![
        in_run("a0", "/a", 0, Completed, None),
        in_run("b0", "/b", 3, Completed, None),
    ];
    let p = plan_mount(&v, &seen(&[], &[], &[], &legacy), ignoring(false));
    assert_eq!(actions(&p), ["create from a0", "create from b0"]);
    assert_eq!(p.unwrap().point, PointInTime::NoSets);
}

#[test]
fn a_detached_volume_is_never_silently_replaced_by_an_older_snapshot() {
    let v = [vol("/dev/sdf", "/a", 5)];
    let snaps = vec![snap("s1", "/a", 3, Completed)];
    let older = detached_vol("vol-old", "az-1", "2026-11-01 01:00:00", "i-9");
    let newer = detached_vol("vol-new", "az-1", "2026-11-02 01:00:00", "i-9");
    let far = detached_vol("vol-far", "az-2", "2026-11-03 01:00:00", "i-8");
    let mut other_mp = detached_vol("vol-b", "az-1", "2026-11-04 01:00:00", "i-1");
    other_mp.tags.insert("mount_point".into(), "/b".into());
    let mut attached_elsewhere = newer.clone();
    attached_elsewhere.id = "vol-used".into();
    attached_elsewhere.state = "in-use".into();
    let from_snapshot = PlanOptions {
        from_snapshot: true,
        ..PlanOptions::default()
    };
    let cases: Vec<(&str, Vec<VolumeInfo>, PlanOptions, &str)> = vec![
        ("detached on another instance, this AZ", vec![older.clone()], ignoring(false), "adopt vol-old attached=false"),
        ("several here: the newest by created", vec![older.clone(), newer.clone()], ignoring(false), "adopt vol-new attached=false"),
        ("one here beats a newer one elsewhere", vec![far.clone(), older.clone()], ignoring(false), "adopt vol-old attached=false"),
        ("only in another AZ: stop", vec![far.clone()], ignoring(false), "error: /a (/dev/sdf): vol-far (created 2026-11-03 01:00:00, last on i-8) (detached by unmount-snapshots, so newer than any snapshot) is in az-2, not in this instance's az-1: it cannot be attached here; move its data here (snapshot it, or run mount-snapshots on an instance in its AZ), or pass --from-snapshot to restore from the snapshot anyway"),
        ("another AZ with --from-snapshot", vec![far.clone()], from_snapshot, "create from s1"),
        ("this AZ with --from-snapshot", vec![newer.clone()], from_snapshot, "create from s1"),
        ("another mount point's is not ours", vec![other_mp], ignoring(false), "create from s1"),
        ("in use again is not adopted", vec![attached_elsewhere], ignoring(false), "create from s1"),
    ];
    for (name, ours, opts, want) in cases {
        let p = plan_mount(&v, &seen(&[], &[], &ours, &snaps), opts);
        assert_eq!(action(&p), want, "{name}");
    }
    let p = plan_mount(
        &v,
        &seen(&[], &[], &[newer.clone(), older], &snaps),
        ignoring(false),
    )
    .unwrap();
    assert!(
        p.volumes[0]
            .warnings
            .iter()
            .any(|w| w.contains("re-attaching vol-new detached by an earlier unmount-snapshots"))
            && p.volumes[0]
                .warnings
                .iter()
                .any(|w| w.contains("left alone: vol-old")),
        "{:?}",
        p.volumes[0].warnings
    );

    // Re-attached beside a volume restored from a snapshot: said.
    let two = [vol("/dev/sdf", "/a", 5), vol("/dev/sdg", "/b", 5)];
    let snaps = vec![
        snap("s1", "/a", 3, Completed),
        snap("sb", "/b", 3, Completed),
    ];
    let p = plan_mount(&two, &seen(&[], &[], &[newer], &snaps), ignoring(false)).unwrap();
    assert!(
        p.volumes[0]
            .warnings
            .iter()
            .any(|w| w.contains("while /b come(s) from snapshots")),
        "{:?}",
        p.volumes[0].warnings
    );
}

#[test]
fn a_leftover_still_creating_is_adopted_not_duplicated() {
    let v = [vol("/dev/sdf", "/data", 5)];
    let snaps = vec![snap("s1", "/data", 3, Completed)];
    let creating = |source: &str, instance: &str| {
        let mut l = ebs("vol-c", "creating", None, "/data", source);
        l.tags.insert(TAG_STATE.into(), STATE_RESTORING.into());
        l.tags.insert("instance_id".into(), instance.into());
        l
    };
    let cases: Vec<(&str, VolumeInfo, &str)> = vec![
        (
            "ours, creating, same source",
            creating("s1", "i-1"),
            "adopt vol-c attached=false",
        ),
        ("another source", creating("s0", "i-1"), "create from s1"),
        (
            "another instance's",
            creating("s1", "i-2"),
            "create from s1",
        ),
        (
            "in error",
            {
                let mut e = creating("s1", "i-1");
                e.state = "error".into();
                e
            },
            "create from s1",
        ),
    ];
    for (name, left, want) in cases {
        let ours = [left];
        let p = plan_mount(&v, &seen(&[], &[], &ours, &snaps), ignoring(false));
        assert_eq!(action(&p), want, "{name}");
    }
    // Empty volumes too (first boot killed during creation).
    let ours = [creating(SOURCE_EMPTY, "i-1")];
    let p = plan_mount(&v, &seen(&[], &[], &ours, &[]), ignoring(false));
    assert_eq!(action(&p), "adopt vol-c attached=false");
}

#[test]
fn formatting_only_for_empty_sources() {
    let v = [vol("/dev/sdf", "/data", 5)];
    let snaps = vec![snap("s1", "/data", 3, Completed)];
    let p = plan_mount(&v, &seen(&[], &[], &[], &snaps), ignoring(false))
        .unwrap()
        .volumes;
    assert!(!p[0].may_format());
    let p = plan_mount(&v, &seen(&[], &[], &[], &[]), ignoring(false))
        .unwrap()
        .volumes;
    assert!(p[0].may_format());
    let at = vec![ebs(
        "vol-a",
        "in-use",
        Some(("i-1", "/dev/sdf")),
        "/data",
        "snap-1",
    )];
    let p = plan_mount(&v, &seen(&[], &at, &[], &[]), ignoring(false))
        .unwrap()
        .volumes;
    assert!(!p[0].may_format());
}
