//! check-backups per host: a host whose snapshot job broke must not be
//! masked by its peers' fresh snapshots of the same cluster.

use crate::support::{moto, unique, write_config, Ec2, Imds, ImdsData, Run};

#[test]
#[ignore = "needs the emulator: scripts/test.sh runs it"]
fn this_host_counts_only_its_own_snapshots() {
    let Some(moto) = moto() else { return };
    let ec2 = Ec2::new(&moto);
    let (me, zone) = ec2.instance();
    let role = unique("fresh");
    let far_future = "2099-01-01 00:00:00";
    let tags = |mp: &'static str| -> Vec<(String, String)> {
        vec![
            ("mount_point".into(), mp.into()),
            ("role".into(), role.clone()),
            ("cluster".into(), "c".into()),
            ("environment".into(), "e".into()),
            ("expires".into(), far_future.into()),
            ("created".into(), far_future.into()),
        ]
    };
    // A peer made fresh snapshots of both mount points; this host made one
    // of /data only (its /logs job broke).
    let peer_volume = ec2.volume(&zone, 1, &[]);
    for mp in ["/data", "/logs"] {
        let mut t = tags(mp);
        t.push(("instance_id".into(), "i-peer".into()));
        let t: Vec<(&str, &str)> = t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ec2.legacy_snapshot(&peer_volume, "d", &t);
    }
    let mine = ec2.volume(&zone, 1, &[]);
    ec2.attach(&mine, &me, "/dev/sdf");
    let mut t = tags("/data");
    // Tagged by instance id, or only by being of an attached volume: both count.
    t.push(("instance_id".into(), "i-somewhere-else".into()));
    let t: Vec<(&str, &str)> = t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ec2.legacy_snapshot(&mine, "d", &t);

    let imds = Imds::start(ImdsData {
        instance_id: me.clone(),
        zone: zone.clone(),
        userdata: Some(format!(
            r#"{{"role": "{role}", "cluster": "c", "environment": "e"}}"#
        )),
        v1_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        "[profiles.db]\n[[profiles.db.volumes]]\ndevice = \"/dev/sdf\"\nmount_point = \"/data\"\n[[profiles.db.volumes]]\ndevice = \"/dev/sdg\"\nmount_point = \"/logs\"\n",
    );
    let run = |args: &[&str]| Run::new(args).config(&cfg).aws(&moto, &imds).run();
    // Cluster-wide (the default): the peer's snapshots make it look fine.
    run(&["check-backups", "26h", "db"]).expect_code(0);
    // Per host: this host's /logs has none.
    let d = run(&["check-backups", "26h", "db", "--this-host"]).expect_code(1);
    let out = d.stdout();
    assert!(out.contains("OK     /data: snap-"), "{out}");
    assert!(out.contains("STALE  /logs: no completed snapshot"), "{out}");
    assert!(
        d.stderr().contains(&format!("of db on {me} lack")),
        "{}",
        d.stderr()
    );
}
