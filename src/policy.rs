//! `snaptastic iam-policy`: the least-privilege IAM policy, printed from
//! the code's own lists of AWS calls: the EC2 actions are
//! [`DryRunAction::ALL`], the list `snaptastic test` probes with DryRun,
//! and the S3 calls are [`S3_CALLS`]. A test reads every SDK call in
//! `src/cloud/` and fails when one is missing from these lists, so the
//! policy cannot drift from the code; another lints the output with
//! parliament. No AWS call is made.
//!
//! The EC2 policy scopes every action EC2 lets a policy scope: the
//! instance side to the instance the request comes from, deleting,
//! detaching, attaching and re-tagging to volumes and snapshots carrying
//! the tags the tool writes (or 0.2.12's tag set), creating to requests
//! that carry those tags, and tagging to creation or to the few keys the
//! tool changes later. Given a profile, the conditions name its tag values
//! instead of any profile's.

use std::process::ExitCode;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::cli::{IamPolicyArgs, PolicyKind};
use crate::cloud::DryRunAction;
use crate::context::{Context, Needs};
use crate::volumes::retention::LEGACY_KEYS;
use crate::volumes::tags::{TAG_FAST_RESTORE_UNTIL, TAG_PROFILE, TAG_STATE};

/// Where an S3 permission applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Bucket,
    Objects,
}

/// Every S3 API call of the file commands, with the IAM action that
/// allows it (S3's names differ: a HEAD needs s3:GetObject, a multipart
/// upload s3:PutObject).
const S3_CALLS: &[(&str, &str, Scope)] = &[
    ("HeadBucket", "s3:ListBucket", Scope::Bucket),
    ("ListObjectsV2", "s3:ListBucket", Scope::Bucket),
    (
        "ListMultipartUploads",
        "s3:ListBucketMultipartUploads",
        Scope::Bucket,
    ),
    ("HeadObject", "s3:GetObject", Scope::Objects),
    ("GetObject", "s3:GetObject", Scope::Objects),
    ("PutObject", "s3:PutObject", Scope::Objects),
    ("CreateMultipartUpload", "s3:PutObject", Scope::Objects),
    ("UploadPart", "s3:PutObject", Scope::Objects),
    ("CompleteMultipartUpload", "s3:PutObject", Scope::Objects),
    // The md5sum stamp copies an object onto itself: s3:PutObject on it,
    // and s3:GetObject (granted above) on it as the source.
    ("CopyObject", "s3:PutObject", Scope::Objects),
    ("UploadPartCopy", "s3:PutObject", Scope::Objects),
    (
        "AbortMultipartUpload",
        "s3:AbortMultipartUpload",
        Scope::Objects,
    ),
    ("DeleteObjects", "s3:DeleteObject", Scope::Objects),
];

/// Whose resources the volume policy's conditions name: any profile's
/// (`iam-policy volumes`), or one profile's as resolved on this host
/// (`iam-policy volumes PROFILE`: its name, filter tag values and the
/// other accounts it restores from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owners {
    Any,
    Profile {
        name: String,
        filters: Vec<(String, String)>,
        /// `snapshot_owners` other than `self`: accounts whose shared
        /// snapshots mount-snapshots may restore from.
        accounts: Vec<String>,
    },
}

/// The instance the request comes from: EC2 sets `ec2:SourceInstanceARN`
/// on requests signed with an instance role's credentials, and IAM
/// substitutes it here (a global condition key used as a policy variable).
/// With other credentials it does not resolve and the statement allows
/// nothing.
const THIS_INSTANCE: &str = "${ec2:SourceInstanceARN}";
const VOLUMES: &str = "arn:aws:ec2:*:*:volume/*";
/// Snapshot ARNs have no account field.
const SNAPSHOTS: &str = "arn:aws:ec2:*::snapshot/*";

/// The keys the tool writes on a volume or snapshot that already exists
/// (every other tag is written at creation): `snaptastic:state` on volumes
/// (mount.rs, unmount.rs), `mount_point` on the snapshots of a set once
/// thawed and `consistency` (with `mount_point`) on snapshots a cut-short
/// freeze started (snapshot.rs). Only on what carries the tool's tags.
const RETAGGED_KEYS: [&str; 4] = [
    "consistency",
    "mount_point",
    TAG_STATE,
    TAG_FAST_RESTORE_UNTIL,
];

/// One statement.
fn statement(sid: &str, actions: &[&str], resource: Value, condition: Option<Value>) -> Value {
    let mut actions: Vec<String> = actions.iter().map(|a| format!("ec2:{a}")).collect();
    actions.sort();
    let mut s = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resource,
    });
    if let Some(c) = condition {
        s["Condition"] = c;
    }
    s
}

/// `{"aws:<prefix>/<key>": value}` for each pair.
fn tag_values<'a>(
    prefix: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> serde_json::Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (format!("aws:{prefix}/{k}"), json!(v)))
        .collect()
}

/// `{"aws:<prefix>/<key>": "false"|"true"}`: the tag is there (or not).
fn tags_present(prefix: &str, keys: &[(&str, bool)]) -> serde_json::Map<String, Value> {
    keys.iter()
        .map(|(k, there)| {
            (
                format!("aws:{prefix}/{k}"),
                json!(if *there { "false" } else { "true" }),
            )
        })
        .collect()
}

impl Owners {
    /// The condition that a resource (`ResourceTag`) or a create request
    /// (`RequestTag`) carries the tags the tool writes on everything it
    /// makes: `snaptastic:profile` (any value, or the profile's name) and,
    /// for one profile, its filter tag values.
    fn ours(&self, prefix: &str) -> Value {
        match self {
            Owners::Any => json!({"Null": tags_present(prefix, &[(TAG_PROFILE, true)])}),
            Owners::Profile { name, filters, .. } => {
                let pairs = std::iter::once((TAG_PROFILE, name.as_str()))
                    .chain(filters.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                json!({"StringEquals": tag_values(prefix, pairs)})
            }
        }
    }

    /// The condition that a resource is snaptastic 0.2.12's: its tag set
    /// (`instance_id`, `mount_point`, `expires`, `created`, the filter
    /// tags) and no `snaptastic:profile`; for one profile, its filter tag
    /// values. `clean snapshots` deletes such snapshots once expired, and
    /// `unmount-snapshots` detaches (and with `--delete` deletes) such
    /// volumes.
    fn legacy(&self) -> Value {
        let mut keys: Vec<(&str, bool)> = vec![(TAG_PROFILE, false)];
        keys.extend(LEGACY_KEYS.iter().map(|k| (*k, true)));
        let mut c = json!({"Null": tags_present("ResourceTag", &keys)});
        if let Owners::Profile { filters, .. } = self {
            let pairs = filters.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            c["StringEquals"] = Value::Object(tag_values("ResourceTag", pairs));
        }
        c
    }
}

/// The EC2 statements. Describe* cannot be limited (EC2 has no resource
/// level permissions for them). Everything else is limited to this
/// instance and to volumes and snapshots carrying the tool's tags; each
/// statement names one resource type, because EC2 authorizes each
/// resource of a request on its own and a tag condition fails for a
/// resource type it does not apply to.
fn volumes_policy(owners: &Owners) -> Value {
    let mut statements = vec![
        statement(
            "SnaptasticDescribe",
            &[
                "DescribeFastSnapshotRestores",
                "DescribeImages",
                "DescribeInstances",
                "DescribeSnapshots",
                "DescribeVolumeStatus",
                "DescribeVolumes",
            ],
            json!("*"),
            None,
        ),
        // The instance side of attaching, detaching, snapshot sets and
        // DeleteOnTermination: this instance only. Every call here names
        // the instance; DetachVolume does not need to (its instance is an
        // optional resource), so a detach without one is checked on the
        // volume alone, by the tag conditions below.
        statement(
            "SnaptasticThisInstance",
            &[
                "AttachVolume",
                "CreateSnapshots",
                "DetachVolume",
                "ModifyInstanceAttribute",
            ],
            json!(THIS_INSTANCE),
            None,
        ),
        // A snapshot set and DeleteOnTermination reach only volumes
        // attached to this instance (the instance, above, is required),
        // whoever made them.
        statement(
            "SnaptasticThisInstanceVolumes",
            &["CreateSnapshots", "ModifyInstanceAttribute"],
            json!(VOLUMES),
            None,
        ),
        // New volumes and snapshots: only with the tool's tags in the
        // request (the code always sends them at creation).
        statement(
            "SnaptasticCreateVolumeTagged",
            &["CreateVolume"],
            json!(VOLUMES),
            Some(owners.ours("RequestTag")),
        ),
        // CopySnapshot (copy-snapshots) is called in the destination
        // Region and names the source too: both with the request's tags.
        statement(
            "SnaptasticCreateSnapshotTagged",
            &["CopySnapshot", "CreateSnapshot", "CreateSnapshots"],
            json!(SNAPSHOTS),
            Some(owners.ours("RequestTag")),
        ),
        // Tags at creation only (TagSpecifications); existing resources
        // are re-tagged by the statement after next.
        statement(
            "SnaptasticTagOnCreate",
            &["CreateTags"],
            json!([SNAPSHOTS, VOLUMES]),
            Some(json!({"StringEquals": {"ec2:CreateAction": [
                "CopySnapshot", "CreateSnapshot", "CreateSnapshots", "CreateVolume"
            ]}})),
        ),
        statement(
            "SnaptasticRetagOwn",
            &["CreateTags"],
            json!([SNAPSHOTS, VOLUMES]),
            Some({
                let mut c = owners.ours("ResourceTag");
                c["ForAllValues:StringEquals"] = json!({ "aws:TagKeys": RETAGGED_KEYS });
                c
            }),
        ),
        // The tool's volumes: attach (to this instance), snapshot,
        // detach, delete.
        statement(
            "SnaptasticOwnVolumes",
            &[
                "AttachVolume",
                "CreateSnapshot",
                "DeleteVolume",
                "DetachVolume",
            ],
            json!(VOLUMES),
            Some(owners.ours("ResourceTag")),
        ),
        // The tool's snapshots: restore (CreateVolume from one), delete,
        // fast snapshot restore on and off (`fast-restore`).
        statement(
            "SnaptasticOwnSnapshots",
            &[
                "CreateVolume",
                "DeleteSnapshot",
                "DisableFastSnapshotRestores",
                "EnableFastSnapshotRestores",
                "ModifySnapshotTier",
            ],
            json!(SNAPSHOTS),
            Some(owners.ours("ResourceTag")),
        ),
        // 0.2.12's volumes and snapshots: what its hosts left behind is
        // snapshotted, unmounted, restored and expired by this tool too.
        statement(
            "SnaptasticLegacyVolumes",
            &["CreateSnapshot", "DeleteVolume", "DetachVolume"],
            json!(VOLUMES),
            Some(owners.legacy()),
        ),
        statement(
            "SnaptasticLegacySnapshots",
            &[
                "CreateVolume",
                "DeleteSnapshot",
                "DisableFastSnapshotRestores",
                "EnableFastSnapshotRestores",
                "ModifySnapshotTier",
            ],
            json!(SNAPSHOTS),
            Some(owners.legacy()),
        ),
    ];
    if let Owners::Profile { accounts, .. } = owners {
        if !accounts.is_empty() {
            // Snapshots other accounts share with this one: their tags
            // are the owner's, so restore only, by owner.
            statements.push(statement(
                "SnaptasticSharedSnapshots",
                &["CreateVolume"],
                json!(SNAPSHOTS),
                Some(json!({"StringEquals": {"ec2:Owner": accounts}})),
            ));
        }
    }
    json!({
        "Version": "2012-10-17",
        "Statement": statements,
    })
}

/// The S3 statements for one bucket and key prefix: object actions only
/// under the prefix; listing the bucket (HeadBucket needs it too, without
/// a prefix, so it cannot be narrowed by `s3:prefix`).
fn files_policy(bucket: &str, prefix: &str) -> Value {
    let actions = |scope: Scope| {
        let mut a: Vec<&str> = S3_CALLS
            .iter()
            .filter(|c| c.2 == scope)
            .map(|c| c.1)
            .collect();
        a.sort_unstable();
        a.dedup();
        a
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SnaptasticFilesBucket",
                "Effect": "Allow",
                "Action": actions(Scope::Bucket),
                "Resource": format!("arn:aws:s3:::{bucket}")
            },
            {
                "Sid": "SnaptasticFilesObjects",
                "Effect": "Allow",
                "Action": actions(Scope::Objects),
                "Resource": format!("arn:aws:s3:::{bucket}/{prefix}*")
            }
        ]
    })
}

/// The owners `iam-policy volumes PROFILE` names: the profile's filter
/// tag values as this host resolves them (its userdata, or `--userdata`),
/// and the other accounts it restores from.
async fn profile_owners(ctx: &Context, name: &str) -> Result<Owners> {
    let config = ctx.config()?;
    let snapshotter = ctx.registry(Some(&config))?.get(name)?;
    let host = ctx.host(Needs::Userdata).await?;
    let filters = snapshotter
        .filter_tags(&host)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    if filters.is_empty() {
        bail!("snapshotter '{name}' gave no filter tags: its snapshots could not be told from any other's");
    }
    Ok(Owners::Profile {
        name: escape(snapshotter.name()),
        filters: filters.into_iter().map(|(k, v)| (k, escape(&v))).collect(),
        accounts: snapshotter
            .snapshot_owners()
            .into_iter()
            .filter(|o| o != "self")
            .collect(),
    })
}

/// A literal value in a policy: IAM reads `${...}` in a value as a policy
/// variable, so a `$` of a tag value is written `${$}`.
fn escape(value: &str) -> String {
    value.replace('$', "${$}")
}

pub(crate) async fn run(ctx: &Context, args: &IamPolicyArgs) -> Result<ExitCode> {
    if args.calls {
        match args.kind {
            PolicyKind::Volumes => {
                for a in DryRunAction::ALL {
                    println!("{}\tec2:{}", a.name(), a.name());
                }
            }
            PolicyKind::Files => {
                for (call, action, _) in S3_CALLS {
                    println!("{call}\t{action}");
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let policy = match args.kind {
        PolicyKind::Volumes => {
            let owners = match &args.profile {
                Some(name) => profile_owners(ctx, name).await?,
                None => Owners::Any,
            };
            volumes_policy(&owners)
        }
        PolicyKind::Files => {
            if args.profile.is_some() {
                bail!("iam-policy files takes no profile (only iam-policy volumes does)");
            }
            let Some(bucket) = args.bucket.as_deref().filter(|b| !b.is_empty()) else {
                bail!("iam-policy files needs --bucket BUCKET (and --prefix, if tablesnap runs with -p)");
            };
            files_policy(bucket, &args.prefix)
        }
    };
    println!("{}", serde_json::to_string_pretty(&policy)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
