//! CopySnapshot as EC2 plays it where moto does not. moto copies across
//! Regions (one backend per Region) with tags, but the copy is
//! `completed` at once, keeps the source's volume id, checks no KMS key
//! and knows no limit. The lab gives the copy the source's image (so a
//! volume made from it in the other Region holds the data), keeps it
//! `pending` for `copy_pending`, refuses a copy past `copy_limit`
//! pending in its destination Region, and fails a copy under a KMS key
//! not in `kms_keys` as EC2 does: asynchronously, the copy ends in
//! `error`.
//!
//! The Region of a call is the one its signature names (as moto picks
//! its backend): a host in us-east-1 copies into us-west-2 by calling
//! the same endpoint with a client for us-west-2.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use hyper::HeaderMap;

use crate::replies::{ec2_error, Refusal, Resp};
use crate::state::{CopyLife, Lab};
use crate::xml;

/// EC2's default limit of copies in progress per destination Region.
const DEFAULT_LIMIT: u32 = 5;

/// EC2 gives a copy an arbitrary volume id, this one in practice (the
/// source's is not kept: only tags carry a copy's identity).
const COPY_VOLUME_ID: &str = "vol-ffffffff";

/// The Region a request is signed for (SigV4's credential scope:
/// `Credential=AKID/DATE/REGION/SERVICE/aws4_request`), else `home`.
pub(crate) fn region_of(headers: &HeaderMap, home: &str) -> String {
    headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .filter(|r| !r.is_empty())
        .unwrap_or(home)
        .to_string()
}

/// Whether a KMS key exists in `region`, by the rules' `kms_keys` (all
/// do when the list is empty, as in moto). A key is named by id, key
/// ARN, alias (`alias/x`) or alias ARN; an ARN of another Region is not
/// usable there (KMS keys are regional). EC2's default key
/// (`alias/aws/ebs`) always exists.
pub(crate) fn known_key(lab: &Lab, key: &str, region: &str) -> bool {
    let keys = lab.rules().kms_keys;
    if keys.is_empty() {
        return true;
    }
    let (key_region, name) = key_name(key);
    if key_region.is_some_and(|r| r != region) {
        return false;
    }
    name == "alias/aws/ebs"
        || keys.iter().any(|k| {
            let (r, n) = key_name(k);
            n == name && r.is_none_or(|r| r == region)
        })
}

/// A key's Region (ARNs name one) and its name: `key/ID` or `alias/NAME`.
fn key_name(key: &str) -> (Option<&str>, String) {
    if let Some(rest) = key.strip_prefix("arn:") {
        // arn:PARTITION:kms:REGION:ACCOUNT:key/ID (or alias/NAME)
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if let [_, "kms", region, _, resource] = parts.as_slice() {
            return (Some(region), resource.to_string());
        }
        return (None, key.to_string());
    }
    if key.starts_with("alias/") {
        (None, key.to_string())
    } else {
        (None, format!("key/{key}"))
    }
}

/// A place among the copies starting in a Region, held from the limit
/// check until the copy is recorded (or the call failed): two calls at
/// once cannot both take the last place.
pub(crate) struct Slot {
    lab: Arc<Lab>,
    region: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut copies = self.lab.copies.lock().expect("copies lock");
        if let Some(n) = copies.starting.get_mut(&self.region) {
            *n = n.saturating_sub(1);
        }
    }
}

fn pending(c: &CopyLife) -> bool {
    c.at.elapsed() < c.pending
}

/// CopySnapshot checked as EC2 checks it before it starts: a KMS key
/// only with `Encrypted` (moto does not check), and no more copies
/// pending in the destination Region than the limit. `Err` is the
/// refusal; `Ok` holds the copy's place until it is recorded.
pub(crate) fn check(
    lab: &Arc<Lab>,
    region: &str,
    params: &BTreeMap<String, String>,
) -> Result<Slot, Refusal> {
    if params.contains_key("KmsKeyId")
        && params.get("Encrypted").map(String::as_str) != Some("true")
    {
        return Err(Refusal::new(
            "InvalidParameterDependency",
            "The parameter KmsKeyId requires the parameter Encrypted to be set.",
        ));
    }
    let limit = lab.rules().copy_limit.unwrap_or(DEFAULT_LIMIT);
    let mut copies = lab.copies.lock().expect("copies lock");
    let in_flight = copies
        .made
        .values()
        .filter(|c| c.region == region && pending(c))
        .count() as u32
        + copies.starting.get(region).copied().unwrap_or(0);
    if in_flight >= limit {
        eprintln!(
            "lab: CopySnapshot into {region} refused: {in_flight} of {limit} copies in progress"
        );
        return Err(Refusal::new(
            "ResourceLimitExceeded",
            format!(
                "Too many snapshot copies in progress. The limit is {limit} for this destination region."
            ),
        ));
    }
    *copies.starting.entry(region.to_string()).or_insert(0) += 1;
    Ok(Slot {
        lab: lab.clone(),
        region: region.to_string(),
    })
}

/// A copy moto made: give it the source's image (unless its key does not
/// exist: that copy will fail and hold nothing) and start its life
/// cycle. The image is copied before the reply returns, as a snapshot's
/// is: the source may be deleted the moment the copy has started.
pub(crate) async fn copied(
    lab: &Arc<Lab>,
    region: &str,
    params: &BTreeMap<String, String>,
    reply: &str,
) -> anyhow::Result<()> {
    let (Some(copy), Some(source)) = (
        xml::first(reply, &["CopySnapshotResponse", "snapshotId"]),
        params.get("SourceSnapshotId").cloned(),
    ) else {
        return Ok(());
    };
    let error = params
        .get("KmsKeyId")
        .filter(|k| !known_key(lab, k, region))
        .map(|k| format!("The KMS key '{k}' does not exist or is not usable in {region}."));
    if error.is_none() {
        let (lab2, c2) = (lab.clone(), copy.clone());
        tokio::task::spawn_blocking(move || {
            let image = |id: &str| lab2.devices.lock().expect("devices lock").image(id);
            if !crate::devices::copy_image(&image(&source), &image(&c2))? {
                eprintln!("lab: {source} has no image (not made through the lab); its copy {c2} holds nothing");
            }
            anyhow::Ok(())
        })
        .await??;
    }
    let life = CopyLife {
        at: Instant::now(),
        pending: lab.rules().copy_pending.unwrap_or_default(),
        region: region.to_string(),
        error,
    };
    lab.copies
        .lock()
        .expect("copies lock")
        .made
        .insert(copy, life);
    Ok(())
}

/// CreateVolume from a copy still pending or failed, refused as EC2
/// refuses a snapshot that is not `completed`.
pub(crate) fn check_create_volume(lab: &Lab, params: &BTreeMap<String, String>) -> Option<Resp> {
    let snap = params.get("SnapshotId")?;
    let copies = lab.copies.lock().expect("copies lock");
    let c = copies.made.get(snap)?;
    let state = if pending(c) {
        "pending"
    } else if c.error.is_some() {
        "error"
    } else {
        return None;
    };
    Some(ec2_error(
        400,
        "IncorrectState",
        &format!("Snapshot '{snap}' is in invalid state - {state}"),
    ))
}

/// DescribeSnapshots as EC2 shows copies: `pending` with a progress for
/// `copy_pending`, then `completed` (or `error` with its reason), and
/// the arbitrary volume id EC2 gives a copy.
pub(crate) fn describe_snapshots(lab: &Lab, reply: &str) -> String {
    let made = lab.copies.lock().expect("copies lock").made.clone();
    if made.is_empty() {
        return reply.to_string();
    }
    let out = xml::rewrite(
        reply,
        &["snapshotSet", "item"],
        "snapshotId",
        |id, rel, _| {
            let c = made.get(id)?;
            let done = c.at.elapsed().as_secs_f64() / c.pending.as_secs_f64().max(1e-9);
            match rel
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["status"] if pending(c) => Some("pending".into()),
                ["status"] if c.error.is_some() => Some("error".into()),
                ["progress"] if pending(c) => Some(format!("{}%", (done * 100.0).min(99.0) as u32)),
                ["volumeId"] => Some(COPY_VOLUME_ID.into()),
                _ => None,
            }
        },
    );
    xml::add_to_items(&out, &["snapshotSet", "item"], "snapshotId", |id| {
        let c = made.get(id)?;
        let why = c.error.as_ref().filter(|_| !pending(c))?;
        Some(format!(
            "<statusMessage>{}</statusMessage>",
            why.replace('&', "&amp;").replace('<', "&lt;")
        ))
    })
}

/// A deleted snapshot is no copy in progress any more.
pub(crate) fn deleted(lab: &Lab, id: &str) {
    lab.copies.lock().expect("copies lock").made.remove(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_the_signature() {
        let mut h = HeaderMap::new();
        assert_eq!(region_of(&h, "us-east-1"), "us-east-1");
        h.insert(
            hyper::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-west-2/ec2/aws4_request, SignedHeaders=host, Signature=0"
                .parse()
                .unwrap(),
        );
        assert_eq!(region_of(&h, "us-east-1"), "us-west-2");
    }

    #[test]
    fn key_names() {
        assert_eq!(key_name("1234").1, "key/1234");
        assert_eq!(key_name("alias/dr"), (None, "alias/dr".to_string()));
        assert_eq!(
            key_name("arn:aws:kms:us-west-2:111122223333:key/1234"),
            (Some("us-west-2"), "key/1234".to_string())
        );
        assert_eq!(
            key_name("arn:aws:kms:us-west-2:111122223333:alias/dr"),
            (Some("us-west-2"), "alias/dr".to_string())
        );
    }
}
