use std::collections::BTreeMap;

use super::*;

#[test]
fn objects_are_limited_to_the_prefix_and_listing_to_the_bucket() {
    let p = files_policy("backups", "cassandra/");
    let s = &p["Statement"];
    assert_eq!(s[0]["Resource"], "arn:aws:s3:::backups");
    assert_eq!(s[1]["Resource"], "arn:aws:s3:::backups/cassandra/*");
    let objects: Vec<&str> = s[1]["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        objects,
        [
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:PutObject"
        ]
    );
}

// A model of how IAM and EC2 evaluate the volume policy, to check its
// conditions against the calls the code makes (moto enforces no IAM).
// EC2 authorizes each resource of a request on its own, the resource
// types of each action being those of the Service Authorization
// Reference; a resource is allowed when one statement matches the
// action, its ARN (with `${ec2:SourceInstanceARN}` the caller's
// instance, nothing without one) and every condition, in the context
// EC2 gives that resource: its tags (`aws:ResourceTag/*`), the request
// tags of a resource being created (`aws:RequestTag/*`), for CreateTags
// the tags written (`aws:RequestTag/*`, `aws:TagKeys`) and at creation
// `ec2:CreateAction`, for a snapshot its owner (`ec2:Owner`).

const ME: &str = "arn:aws:ec2:us-east-1:111122223333:instance/i-me";
const OTHER: &str = "arn:aws:ec2:us-east-1:111122223333:instance/i-other";
const ACCOUNT: &str = "111122223333";
const SHARING: &str = "444455556666";

#[derive(Clone, Debug)]
struct Res {
    arn: String,
    context: BTreeMap<String, Vec<String>>,
}

impl Res {
    fn new(arn: &str) -> Self {
        Res {
            arn: arn.to_string(),
            context: BTreeMap::new(),
        }
    }
    fn key(mut self, key: &str, values: &[&str]) -> Self {
        self.context.insert(
            key.to_string(),
            values.iter().map(|v| v.to_string()).collect(),
        );
        self
    }
    fn tagged(mut self, prefix: &str, tags: &[(String, String)]) -> Self {
        for (k, v) in tags {
            self = self.key(&format!("aws:{prefix}/{k}"), &[v]);
        }
        self
    }
    /// An existing resource with these tags.
    fn with_tags(self, tags: &[(String, String)]) -> Self {
        self.tagged("ResourceTag", tags)
    }
    /// The resource a request creates, with these tags in the request.
    fn requesting(self, tags: &[(String, String)]) -> Self {
        let keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
        self.tagged("RequestTag", tags).key("aws:TagKeys", &keys)
    }
}

fn star() -> Res {
    Res::new("*")
}
fn instance(arn: &str) -> Res {
    Res::new(arn)
}
fn volume(tags: &[(String, String)]) -> Res {
    Res::new(&format!("arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-1")).with_tags(tags)
}
fn snapshot(tags: &[(String, String)]) -> Res {
    Res::new("arn:aws:ec2:us-east-1::snapshot/snap-1")
        .with_tags(tags)
        .key("ec2:Owner", &[ACCOUNT])
}
fn new_volume(tags: &[(String, String)]) -> Res {
    Res::new(&format!("arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-new")).requesting(tags)
}
fn new_snapshot(tags: &[(String, String)]) -> Res {
    Res::new("arn:aws:ec2:us-east-1::snapshot/snap-new").requesting(tags)
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|i| glob(rest, &text[head.len() + i..]))
        }
    }
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        Value::String(s) => vec![s.clone()],
        other => panic!("not a string or list: {other}"),
    }
}

fn condition_holds(op: &str, key: &str, want: &Value, r: &Res) -> bool {
    // A literal `$` is written `${$}` (see `escape`).
    let want: Vec<String> = list(want).iter().map(|w| w.replace("${$}", "$")).collect();
    let have = r.context.get(key);
    match op {
        "StringEquals" => have.is_some_and(|h| h.len() == 1 && want.contains(&h[0])),
        "Null" => match want[0].as_str() {
            "true" => have.is_none(),
            "false" => have.is_some(),
            other => panic!("Null takes true or false, not {other}"),
        },
        "ForAllValues:StringEquals" => have.is_none_or(|h| h.iter().all(|v| want.contains(v))),
        other => panic!("the model does not know {other}"),
    }
}

fn statement_allows(s: &Value, source: Option<&str>, action: &str, r: &Res) -> bool {
    assert_eq!(s["Effect"], "Allow");
    if !list(&s["Action"])
        .iter()
        .any(|a| a == &format!("ec2:{action}"))
    {
        return false;
    }
    let arn_matches = list(&s["Resource"]).iter().any(|p| {
        let p = match (p.as_str(), source) {
            (THIS_INSTANCE, Some(me)) => me,
            (THIS_INSTANCE, None) => return false,
            (p, _) => p,
        };
        glob(p, &r.arn)
    });
    arn_matches
        && s.get("Condition").is_none_or(|c| {
            c.as_object().unwrap().iter().all(|(op, block)| {
                block
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(key, want)| condition_holds(op, key, want, r))
            })
        })
}

/// Every resource of the request allowed by some statement.
fn allows(policy: &Value, source: Option<&str>, action: &str, resources: &[Res]) -> bool {
    let statements = policy["Statement"].as_array().unwrap();
    resources.iter().all(|r| {
        statements
            .iter()
            .any(|s| statement_allows(s, source, action, r))
    })
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What make-snapshots writes on a snapshot of `profile`
/// (`resource_tags` and the profile, the set's run and consistency).
fn snapshot_tags(profile: &str, cluster: &str) -> Vec<(String, String)> {
    tags(&[
        ("instance_id", "i-me"),
        ("mount_point", "/mnt/solr"),
        ("role", "solr"),
        ("cluster", cluster),
        ("environment", "prod"),
        ("expires", "2026-11-30 10:00:00"),
        ("created", "2026-11-23 10:00:00"),
        (TAG_PROFILE, profile),
        ("snaptastic:run", "123-456"),
        ("consistency", "frozen"),
    ])
}

/// What mount-snapshots writes on a volume it creates.
fn volume_tags(profile: &str, cluster: &str, state: &str) -> Vec<(String, String)> {
    let mut t = snapshot_tags(profile, cluster);
    t.retain(|(k, _)| k != "snaptastic:run" && k != "consistency");
    t.extend(tags(&[
        ("snaptastic:source", "snap-1"),
        ("snaptastic:device", "/dev/sdf"),
        (TAG_STATE, state),
    ]));
    t
}

/// 0.2.12's tag set (with boto's copied `Name`).
fn legacy_tags(cluster: &str) -> Vec<(String, String)> {
    tags(&[
        ("instance_id", "i-old"),
        ("mount_point", "/mnt/solr"),
        ("role", "solr"),
        ("cluster", cluster),
        ("environment", "prod"),
        ("expires", "2013-09-02 14:22:02.361688"),
        ("created", "2013-08-26 14:22:02.361688"),
        ("Name", "solr data"),
    ])
}

fn solr() -> Owners {
    Owners::Profile {
        name: "solr".into(),
        filters: tags(&[("role", "solr"), ("cluster", "c1"), ("environment", "prod")]),
        accounts: vec![SHARING.into()],
    }
}

/// CreateTags at creation of a resource with `tags` by `action`.
fn tag_on_create(created: Res, action: &str) -> Res {
    created.key("ec2:CreateAction", &[action])
}

/// CreateTags of `written` on an existing resource.
fn retag(existing: Res, written: &[(String, String)]) -> Res {
    existing.requesting(written)
}

/// (what, action, resources) of every call the volume commands make,
/// with the resources and tags the code gives it.
fn code_calls() -> Vec<(&'static str, &'static str, Vec<Res>)> {
    let ours_vol = volume(&volume_tags("solr", "c1", "mounted"));
    let ours_snap = snapshot(&snapshot_tags("solr", "c1"));
    let mut set_snap = snapshot_tags("solr", "c1");
    set_snap.retain(|(k, _)| k != "mount_point");
    let hand_made = volume(&[]);
    let state = |s: &str| tags(&[(TAG_STATE, s)]);
    vec![
        ("list", "DescribeSnapshots", vec![star()]),
        ("list", "DescribeVolumes", vec![star()]),
        ("make, set", "DescribeInstances", vec![star()]),
        ("clean", "DescribeImages", vec![star()]),
        (
            "mount: restore",
            "CreateVolume",
            vec![
                new_volume(&volume_tags("solr", "c1", "restoring")),
                ours_snap.clone(),
            ],
        ),
        (
            "mount: restore 0.2.12's",
            "CreateVolume",
            vec![
                new_volume(&volume_tags("solr", "c1", "restoring")),
                snapshot(&legacy_tags("c1")),
            ],
        ),
        (
            "mount: create empty",
            "CreateVolume",
            vec![new_volume(&volume_tags("solr", "c1", "restoring"))],
        ),
        (
            "mount: its tags",
            "CreateTags",
            vec![tag_on_create(
                new_volume(&volume_tags("solr", "c1", "restoring")),
                "CreateVolume",
            )],
        ),
        (
            "mount: attach",
            "AttachVolume",
            vec![
                instance(ME),
                volume(&volume_tags("solr", "c1", "restoring")),
            ],
        ),
        (
            "mount: re-attach a detached one",
            "AttachVolume",
            vec![instance(ME), volume(&volume_tags("solr", "c1", "detached"))],
        ),
        (
            "mount: DeleteOnTermination",
            "ModifyInstanceAttribute",
            vec![instance(ME), ours_vol.clone()],
        ),
        (
            "mount: DeleteOnTermination of an adopted 0.2.12 volume",
            "ModifyInstanceAttribute",
            vec![instance(ME), volume(&legacy_tags("c1"))],
        ),
        (
            "mount: attached",
            "CreateTags",
            vec![retag(
                volume(&volume_tags("solr", "c1", "restoring")),
                &state("attached"),
            )],
        ),
        (
            "mount: mounted",
            "CreateTags",
            vec![retag(
                volume(&volume_tags("solr", "c1", "attached")),
                &state("mounted"),
            )],
        ),
        (
            "mount: rollback",
            "CreateTags",
            vec![retag(
                volume(&volume_tags("solr", "c1", "attached")),
                &state("restoring"),
            )],
        ),
        (
            "mount: rollback",
            "DetachVolume",
            vec![
                instance(ME),
                volume(&volume_tags("solr", "c1", "restoring")),
            ],
        ),
        (
            "mount: rollback",
            "DeleteVolume",
            vec![volume(&volume_tags("solr", "c1", "restoring"))],
        ),
        (
            "make: a set, a hand-made volume too",
            "CreateSnapshots",
            vec![
                instance(ME),
                ours_vol.clone(),
                hand_made.clone(),
                new_snapshot(&set_snap),
            ],
        ),
        (
            "make: the set's tags",
            "CreateTags",
            vec![tag_on_create(new_snapshot(&set_snap), "CreateSnapshots")],
        ),
        (
            "make: each snapshot of the set its mount point",
            "CreateTags",
            vec![retag(
                snapshot(&set_snap),
                &tags(&[("mount_point", "/mnt/solr")]),
            )],
        ),
        (
            "make: per volume",
            "CreateSnapshot",
            vec![ours_vol.clone(), new_snapshot(&snapshot_tags("solr", "c1"))],
        ),
        (
            "make: per volume, a 0.2.12 volume",
            "CreateSnapshot",
            vec![
                volume(&legacy_tags("c1")),
                new_snapshot(&snapshot_tags("solr", "c1")),
            ],
        ),
        (
            "make: per volume, its tags",
            "CreateTags",
            vec![tag_on_create(
                new_snapshot(&snapshot_tags("solr", "c1")),
                "CreateSnapshot",
            )],
        ),
        (
            "make: cut short",
            "CreateTags",
            vec![retag(
                ours_snap.clone(),
                &tags(&[("mount_point", "/mnt/solr"), ("consistency", "crash")]),
            )],
        ),
        (
            "make: a stray of the set",
            "DeleteSnapshot",
            vec![ours_snap.clone()],
        ),
        (
            "unmount",
            "DetachVolume",
            vec![instance(ME), ours_vol.clone()],
        ),
        (
            "unmount: detached",
            "CreateTags",
            vec![retag(ours_vol.clone(), &state("detached"))],
        ),
        ("unmount --delete", "DeleteVolume", vec![ours_vol.clone()]),
        (
            "unmount a 0.2.12 volume",
            "DetachVolume",
            vec![instance(ME), volume(&legacy_tags("c1"))],
        ),
        (
            "unmount --delete a 0.2.12 volume",
            "DeleteVolume",
            vec![volume(&legacy_tags("c1"))],
        ),
        ("clean snapshots", "DeleteSnapshot", vec![ours_snap.clone()]),
        (
            "clean snapshots: 0.2.12's",
            "DeleteSnapshot",
            vec![snapshot(&legacy_tags("c1"))],
        ),
        (
            "clean volumes",
            "DeleteVolume",
            vec![volume(&volume_tags("solr", "c1", "restoring"))],
        ),
    ]
}

/// (what, action, resources, refused for any profile too) of calls a
/// host taken over might make.
fn attacks() -> Vec<(&'static str, &'static str, Vec<Res>, bool)> {
    let ours_vol = volume(&volume_tags("solr", "c1", "mounted"));
    let ours_snap = snapshot(&snapshot_tags("solr", "c1"));
    let untagged_vol = volume(&tags(&[("Name", "db")]));
    let untagged_snap = snapshot(&tags(&[("Name", "db")]));
    let pg_snap = snapshot(&snapshot_tags("pg", "c1"));
    let c2_snap = snapshot(&snapshot_tags("solr", "c2"));
    let c2_vol = volume(&volume_tags("solr", "c2", "mounted"));
    vec![
        (
            "delete another tool's snapshot",
            "DeleteSnapshot",
            vec![untagged_snap.clone()],
            true,
        ),
        (
            "delete another tool's volume",
            "DeleteVolume",
            vec![untagged_vol.clone()],
            true,
        ),
        (
            "detach another tool's volume",
            "DetachVolume",
            vec![instance(ME), untagged_vol.clone()],
            true,
        ),
        (
            "detach from another instance",
            "DetachVolume",
            vec![instance(OTHER), ours_vol.clone()],
            true,
        ),
        (
            "attach to another instance",
            "AttachVolume",
            vec![instance(OTHER), ours_vol.clone()],
            true,
        ),
        (
            "attach another tool's volume",
            "AttachVolume",
            vec![instance(ME), untagged_vol.clone()],
            true,
        ),
        (
            "snapshot another tool's volume (to restore it here)",
            "CreateSnapshot",
            vec![
                untagged_vol.clone(),
                new_snapshot(&snapshot_tags("solr", "c1")),
            ],
            true,
        ),
        (
            "restore another tool's snapshot",
            "CreateVolume",
            vec![
                new_volume(&volume_tags("solr", "c1", "restoring")),
                untagged_snap.clone(),
            ],
            true,
        ),
        (
            "create an untagged volume",
            "CreateVolume",
            vec![new_volume(&tags(&[("Name", "x")]))],
            true,
        ),
        (
            "create an untagged snapshot",
            "CreateSnapshot",
            vec![ours_vol.clone(), new_snapshot(&[])],
            true,
        ),
        (
            "snapshot another instance's volumes",
            "CreateSnapshots",
            vec![
                instance(OTHER),
                untagged_vol.clone(),
                new_snapshot(&snapshot_tags("solr", "c1")),
            ],
            true,
        ),
        (
            "tag another tool's volume as ours",
            "CreateTags",
            vec![retag(untagged_vol.clone(), &tags(&[(TAG_PROFILE, "solr")]))],
            true,
        ),
        (
            "tag another tool's snapshot",
            "CreateTags",
            vec![retag(
                untagged_snap.clone(),
                &tags(&[("mount_point", "/x")]),
            )],
            true,
        ),
        (
            "move our snapshot to another profile",
            "CreateTags",
            vec![retag(ours_snap.clone(), &tags(&[(TAG_PROFILE, "pg")]))],
            true,
        ),
        (
            "extend our snapshot's expiry",
            "CreateTags",
            vec![retag(
                ours_snap.clone(),
                &tags(&[("expires", "2099-01-01 00:00:00")]),
            )],
            true,
        ),
        (
            "change another instance",
            "ModifyInstanceAttribute",
            vec![instance(OTHER)],
            true,
        ),
        (
            "change this instance's security groups",
            "ModifyInstanceAttribute",
            vec![
                instance(ME),
                Res::new("arn:aws:ec2:us-east-1:111122223333:security-group/sg-1"),
            ],
            true,
        ),
        (
            "delete another profile's snapshot",
            "DeleteSnapshot",
            vec![pg_snap],
            false,
        ),
        (
            "delete another cluster's snapshot",
            "DeleteSnapshot",
            vec![c2_snap],
            false,
        ),
        (
            "delete another cluster's 0.2.12 snapshot",
            "DeleteSnapshot",
            vec![snapshot(&legacy_tags("c2"))],
            false,
        ),
        (
            "detach another cluster's volume",
            "DetachVolume",
            vec![instance(ME), c2_vol.clone()],
            false,
        ),
        (
            "attach another cluster's volume",
            "AttachVolume",
            vec![instance(ME), c2_vol],
            false,
        ),
        (
            "create a volume as another profile",
            "CreateVolume",
            vec![new_volume(&volume_tags("pg", "c1", "restoring"))],
            false,
        ),
    ]
}

#[test]
fn every_call_of_the_code_is_allowed_for_any_profile_and_for_its_own() {
    for owners in [Owners::Any, solr()] {
        let p = volumes_policy(&owners);
        for (what, action, resources) in code_calls() {
            assert!(
                allows(&p, Some(ME), action, &resources),
                "{owners:?}: {what}: {action} refused: {resources:?}"
            );
        }
    }
}

#[test]
fn a_host_taken_over_is_refused_what_the_code_never_does() {
    for (owners, for_any) in [(Owners::Any, true), (solr(), false)] {
        let p = volumes_policy(&owners);
        for (what, action, resources, refused_for_any) in attacks() {
            if for_any && !refused_for_any {
                // The generic policy knows no profile or cluster.
                assert!(allows(&p, Some(ME), action, &resources), "{what}");
                continue;
            }
            assert!(
                !allows(&p, Some(ME), action, &resources),
                "{owners:?}: {what}: {action} allowed: {resources:?}"
            );
        }
        // Credentials that are not this instance's role act on no
        // instance.
        let ours_vol = volume(&volume_tags("solr", "c1", "mounted"));
        assert!(!allows(&p, None, "AttachVolume", &[instance(ME), ours_vol]));
    }
}

#[test]
fn snapshots_shared_by_other_accounts_are_restored_only_with_a_profile() {
    let shared = Res::new("arn:aws:ec2:us-east-1::snapshot/snap-dr").key("ec2:Owner", &[SHARING]);
    let new = new_volume(&volume_tags("solr", "c1", "restoring"));
    let call = [new, shared];
    assert!(allows(
        &volumes_policy(&solr()),
        Some(ME),
        "CreateVolume",
        &call
    ));
    assert!(!allows(
        &volumes_policy(&Owners::Any),
        Some(ME),
        "CreateVolume",
        &call
    ));
}

#[test]
fn only_describe_is_on_every_resource() {
    for owners in [Owners::Any, solr()] {
        let p = volumes_policy(&owners);
        for s in p["Statement"].as_array().unwrap() {
            let star = s["Resource"] == "*";
            assert_eq!(star, s["Sid"] == "SnaptasticDescribe", "{s}");
            if star {
                assert!(list(&s["Action"])
                    .iter()
                    .all(|a| a.starts_with("ec2:Describe")));
            }
        }
    }
}

#[test]
fn a_profile_is_rendered_with_its_values_escaped() {
    let owners = Owners::Profile {
        name: escape("solr"),
        filters: vec![("cluster".into(), escape("c${1}"))],
        accounts: vec![],
    };
    let p = volumes_policy(&owners).to_string();
    assert!(p.contains(r#""aws:ResourceTag/cluster":"c${$}{1}""#), "{p}");
    assert!(
        p.contains(r#""aws:RequestTag/snaptastic:profile":"solr""#),
        "{p}"
    );
    assert!(!p.contains("SnaptasticSharedSnapshots"), "{p}");
    let weird = [new_volume(&volume_tags("solr", "c${1}", "restoring"))];
    assert!(allows(
        &volumes_policy(&owners),
        Some(ME),
        "CreateVolume",
        &weird
    ));
}

#[test]
fn every_dry_run_action_is_in_the_volume_policy() {
    let p = volumes_policy(&Owners::Any).to_string();
    for a in DryRunAction::ALL {
        assert!(p.contains(&format!("\"ec2:{}\"", a.name())), "{}", a.name());
    }
}
