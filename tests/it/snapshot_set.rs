//! make-snapshots' default: one CreateSnapshots for the profile's volumes
//! (one request, one point in time), leaving out the instance's other data
//! volumes, each snapshot with its own mount point; restored as usual.

use std::collections::BTreeMap;

use crate::support::lab_prerequisites;
use crate::support::mounted_lab;
use crate::support::Setup;

/// Every snapshot of `volume`, with its tags.
fn snapshots_of(s: &Setup, volume: &str) -> Vec<BTreeMap<String, String>> {
    s.lab
        .ec2()
        .snapshots_where("volume-id", volume)
        .into_values()
        .collect()
}

/// The EBS volume attached at `device` to the lab's instance.
fn attached_at(s: &Setup, device: &str) -> String {
    let ec2 = s.lab.ec2();
    let r = ec2
        .rt
        .block_on(
            ec2.client
                .describe_volumes()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("attachment.instance-id")
                        .values(s.lab.instance())
                        .build(),
                )
                .send(),
        )
        .unwrap();
    r.volumes()
        .iter()
        .find(|v| v.attachments().iter().any(|a| a.device() == Some(device)))
        .and_then(|v| v.volume_id())
        .unwrap()
        .to_string()
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn one_request_snapshots_the_profile_and_nothing_else() {
    let Some(s) = mounted_lab(&[("/dev/sdf", "ext4", 1), ("/dev/sdg", "xfs", 1)]) else {
        return;
    };
    // A data volume of the instance that the profile does not name.
    let ec2 = s.lab.ec2();
    let other = ec2.volume("us-east-1a", 1, &[("mount_point", "/srv/other")]);
    ec2.attach(&other, s.lab.instance(), "/dev/sdk");
    for (i, text) in ["first", "second"].iter().enumerate() {
        std::fs::write(s.mp(i).join("data"), text).unwrap();
    }

    let d = s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    assert_eq!(s.calls("CreateSnapshots"), 1, "{}", d.stderr());
    assert_eq!(s.calls("CreateSnapshot"), 0, "{}", d.stderr());
    assert!(
        snapshots_of(&s, &other).is_empty(),
        "the other volume was snapshotted"
    );
    let mut runs = Vec::new();
    for (i, device) in ["/dev/sdf", "/dev/sdg"].iter().enumerate() {
        let snaps = snapshots_of(&s, &attached_at(&s, device));
        assert_eq!(snaps.len(), 1, "{device}: {snaps:?}");
        let tags = &snaps[0];
        assert_eq!(
            tags["mount_point"],
            s.mp(i).display().to_string(),
            "{tags:?}"
        );
        for k in [
            "instance_id",
            "role",
            "cluster",
            "environment",
            "expires",
            "created",
        ] {
            assert!(tags.contains_key(k), "{k} missing: {tags:?}");
        }
        assert_eq!(tags["consistency"], "frozen");
        assert_eq!(tags["snaptastic:profile"], "db");
        runs.push(tags["snaptastic:run"].clone());
    }
    assert_eq!(runs[0], runs[1], "one set, one run");
    // Unique across hosts that share filter tags: the instance id first.
    assert!(
        runs[0].starts_with(&format!("{}-", s.lab.instance())),
        "{}",
        runs[0]
    );

    // The set restores like any snapshots.
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    for (i, text) in ["first", "second"].iter().enumerate() {
        assert_eq!(
            std::fs::read_to_string(s.mp(i).join("data")).unwrap(),
            *text
        );
    }
}

/// Where CreateSnapshots is not offered, the run falls back to one
/// CreateSnapshot per volume, and its snapshots say so (`snaptastic:call`),
/// so a run that was not frozen is never taken for one point in time.
#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_set_that_falls_back_to_one_call_per_volume_is_tagged_so() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let rules = "[[faults]]\naction = \"CreateSnapshots\"\nreply = \"unsupported\"\n";
    let s = Setup::new(
        &moto,
        false,
        Some(rules),
        &[("/dev/sdf", "ext4", 1), ("/dev/sdg", "ext4", 1)],
    );
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let d = s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    assert!(
        d.stderr()
            .contains("starting one snapshot per volume instead"),
        "{}",
        d.stderr()
    );
    assert_eq!(s.calls("CreateSnapshot"), 2, "{}", d.stderr());
    for device in ["/dev/sdf", "/dev/sdg"] {
        let snaps = snapshots_of(&s, &attached_at(&s, device));
        assert_eq!(snaps.len(), 1, "{device}: {snaps:?}");
        assert_eq!(snaps[0]["snaptastic:call"], "CreateSnapshot", "{snaps:?}");
        assert_eq!(snaps[0]["consistency"], "frozen", "{snaps:?}");
    }
}
