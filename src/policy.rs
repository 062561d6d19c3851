//! `snaptastic iam-policy`: the least-privilege IAM policy, printed from
//! the code's own lists of AWS calls: the EC2 actions are
//! [`DryRunAction::ALL`], the list `snaptastic test` probes with DryRun,
//! and the S3 calls are [`S3_CALLS`]. A test reads every SDK call in
//! `src/cloud/` and fails when one is missing from these lists, so the
//! policy cannot drift from the code. Pure: no AWS call is made.

use std::process::ExitCode;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::cli::{IamPolicyArgs, PolicyKind};
use crate::cloud::DryRunAction;

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

/// The EC2 statement: the volume commands act on volumes and snapshots
/// they find by tag, so resources are `*` (narrow them with tag
/// conditions in your own policy if you like).
fn volumes_policy() -> Value {
    let mut actions: Vec<String> = DryRunAction::ALL
        .iter()
        .map(|a| format!("ec2:{}", a.name()))
        .collect();
    actions.sort();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "SnaptasticVolumes",
            "Effect": "Allow",
            "Action": actions,
            "Resource": "*"
        }]
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

pub(crate) fn run(args: &IamPolicyArgs) -> Result<ExitCode> {
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
        PolicyKind::Volumes => volumes_policy(),
        PolicyKind::Files => {
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
mod tests {
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

    #[test]
    fn every_dry_run_action_is_in_the_volume_policy() {
        let p = volumes_policy().to_string();
        for a in DryRunAction::ALL {
            assert!(p.contains(&format!("\"ec2:{}\"", a.name())), "{}", a.name());
        }
    }
}
