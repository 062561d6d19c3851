//! `mount-snapshots --dry-run` and `list-volumes` say, one line per mount
//! point, which snapshot comes back and why, and name every newer
//! snapshot passed over with its reason: a cut-short per-volume run newer
//! than a frozen set, then 0.2.12 snapshots newer than the set (of one
//! volume: refused, `--set`, `--allow-mixed`; of both: that generation).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::lab_prerequisites;
use crate::support::{mounted_volume, Setup};

/// Snapshot id -> tags, of every snapshot of `volume`.
fn snapshots_of(s: &Setup, volume: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    s.lab.ec2().snapshots_where("volume-id", volume)
}

/// The one snapshot of `volume` whose `snaptastic:run` is `run`.
fn of_run(s: &Setup, volume: &str, run: &str) -> String {
    let found: Vec<String> = snapshots_of(s, volume)
        .into_iter()
        .filter(|(_, t)| t.get("snaptastic:run").map(String::as_str) == Some(run))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(found.len(), 1, "{volume} in run {run}: {found:?}");
    found[0].clone()
}

/// The dry-run's line for mount point `i`.
fn plan_line(s: &Setup, out: &str, i: usize) -> String {
    let mp = s.mp(i);
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("{} on ", mp.display())))
        .unwrap_or_else(|| panic!("no line for {}:\n{out}", mp.display()))
        .to_string()
}

/// The list-volumes table's row for mount point `i`.
fn table_row(s: &Setup, out: &str, i: usize) -> String {
    let mp = s.mp(i);
    out.lines()
        .find(|l| l.starts_with(&format!("{} ", mp.display())))
        .unwrap_or_else(|| panic!("no row for {}:\n{out}", mp.display()))
        .to_string()
}

fn dry_run(s: &Setup, flags: &[&str]) -> String {
    let mut args = vec!["mount-snapshots", "db", "--dry-run"];
    args.extend(flags);
    let d = s.snaptastic(&args).expect_code(0);
    println!("$ snaptastic {}\n{}", args.join(" "), d.stdout());
    d.stdout()
}

fn list(s: &Setup) -> (String, serde_json::Value) {
    let table = s
        .snaptastic(&["list-volumes", "db"])
        .expect_code(0)
        .stdout();
    println!("$ snaptastic list-volumes db\n{table}");
    let json = s
        .snaptastic(&["list-volumes", "db", "--json"])
        .expect_code(0)
        .stdout();
    (table, serde_json::from_str(&json).unwrap())
}

fn has(hay: &str, needles: &[&str]) {
    for n in needles {
        assert!(hay.contains(n), "{n:?} not in:\n{hay}");
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn dry_run_and_list_volumes_say_why_and_what_newer_was_passed_over() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let s = Setup::new(
        &moto,
        false,
        None,
        &[("/dev/sdf", "ext4", 1), ("/dev/sdg", "ext4", 1)],
    );
    let out = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let (v0, v1) = (
        mounted_volume(&out.stdout(), &s.mp(0)),
        mounted_volume(&out.stdout(), &s.mp(1)),
    );
    // A frozen set, then a per-volume run cut short: EC2 accepts the
    // second volume's snapshot after the deadline.
    s.snaptastic(&["make-snapshots", "db"]).expect_code(0);
    let set = snapshots_of(&s, &v0)
        .into_values()
        .find_map(|t| t.get("snaptastic:run").cloned())
        .expect("the set's run");
    let (a1, b1) = (of_run(&s, &v0, &set), of_run(&s, &v1, &set));
    std::thread::sleep(Duration::from_millis(1100));
    s.lab.control(
        "rules",
        &format!(
            "[[faults]]\naction = \"CreateSnapshot\"\nparams = {{ VolumeId = \"{v1}\" }}\nreply = \"late\"\nlatency = \"2s\"\n"
        ),
    );
    s.snaptastic(&[
        "make-snapshots",
        "db",
        "--per-volume",
        "--freeze-timeout",
        "500ms",
    ])
    .expect_code(1);
    s.lab.control("rules", "");
    let cut = snapshots_of(&s, &v1)
        .into_values()
        .find_map(|t| t.get("snaptastic:run").filter(|r| **r != set).cloned())
        .expect("the cut-short run");
    let (a2, b2) = (of_run(&s, &v0, &cut), of_run(&s, &v1, &cut));
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);

    // (a) The frozen set, each newer snapshot of the cut-short run named
    // with why it is no point in time.
    let plan = dry_run(&s, &[]);
    let chosen = format!("newest complete set snaptastic:run={set}, frozen: one point in time");
    let cut_short = format!("(run {cut} cut short or unfrozen: ");
    let (p0, p1) = (plan_line(&s, &plan, 0), plan_line(&s, &plan, 1));
    has(
        &p0,
        &[
            &format!("restore {a1} ("),
            "1 GiB gp3 ext4; why: ",
            &chosen,
            &format!("newer passed over: {a2} {cut_short}"),
            "consistency=crash, one call per volume, not one point in time)",
        ],
    );
    has(
        &p1,
        &[
            &format!("restore {b1} ("),
            &chosen,
            &format!("newer passed over: {b2} {cut_short}"),
            "consistency=crash, one call per volume, not one point in time)",
        ],
    );
    let (table, rows) = list(&s);
    has(
        &table_row(&s, &table, 0),
        &[&set, &a1, &chosen, &format!("{a2} {cut_short}")],
    );
    let why0 = rows[0]["explanation"].as_str().unwrap();
    assert!(p0.ends_with(&format!("why: {why0}")), "{p0}\n{why0}");
    assert_eq!(rows[1]["passed_over"][0]["id"], b2.as_str(), "{rows}");
    has(
        rows[1]["passed_over"][0]["reason"].as_str().unwrap(),
        &[&cut_short[1..]],
    );
    assert_eq!(rows[0]["set"], set.as_str(), "{rows}");

    // (b) 0.2.12 snapshots newer than the set: of one volume first.
    let out = s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let v0 = mounted_volume(&out.stdout(), &s.mp(0));
    std::thread::sleep(Duration::from_millis(1100));
    let l0 = s.legacy_snapshot(&v0, &s.mp(0));
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let newer_on_0 = format!(
        "0.2.12 snapshots newer than set snaptastic:run={set} on {} only",
        s.mp(0).display()
    );
    let (table, rows) = list(&s);
    has(
        &table_row(&s, &table, 0),
        &[
            "mixed",
            &format!("refused without a flag: {newer_on_0}, so --set {set} restores the set"),
        ],
    );
    has(rows[1]["explanation"].as_str().unwrap(), &[&newer_on_0]);
    let plan = dry_run(&s, &["--set", &set]);
    has(
        &plan_line(&s, &plan, 0),
        &[
            &format!("restore {a1} ("),
            &format!("set snaptastic:run={set}, frozen, asked for (--set {set})"),
            &format!("newer passed over: {l0} (0.2.12's, no snaptastic:run: outside set {set})"),
        ],
    );
    let plan = dry_run(&s, &["--allow-mixed"]);
    has(
        &plan_line(&s, &plan, 0),
        &[
            &format!("restore {l0} ("),
            &format!("each volume's own newest (--allow-mixed): {newer_on_0}"),
        ],
    );
    // Each volume's own newest on the other is the cut-short run's: said.
    has(
        &plan_line(&s, &plan, 1),
        &[
            &format!("restore {b2} ("),
            &format!("itself of run {cut}, cut short or unfrozen (consistency=crash)"),
        ],
    );

    // Then of both: that generation, the set passed over.
    s.snaptastic(&["mount-snapshots", "db", "--set", &set])
        .expect_code(0);
    let out = s.snaptastic(&["list-volumes", "db", "--json"]).stdout();
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (v0, v1) = (
        rows[0]["attached_volume"].as_str().unwrap().to_string(),
        rows[1]["attached_volume"].as_str().unwrap().to_string(),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let g0 = s.legacy_snapshot(&v0, &s.mp(0));
    let g1 = s.legacy_snapshot(&v1, &s.mp(1));
    s.snaptastic(&["unmount-snapshots", "db", "--yes", "--delete"])
        .expect_code(0);
    let generation = format!(
        "newest 0.2.12 snapshot (no snaptastic:run): every volume has one newer than set snaptastic:run={set}, which is passed over"
    );
    let plan = dry_run(&s, &[]);
    has(
        &plan_line(&s, &plan, 0),
        &[&format!("restore {g0} ("), &generation],
    );
    has(
        &plan_line(&s, &plan, 1),
        &[&format!("restore {g1} ("), &generation],
    );
    let (table, rows) = list(&s);
    has(&table_row(&s, &table, 1), &[&g1, &generation]);
    assert_eq!(rows[0]["explanation"], generation.as_str(), "{rows}");
}
