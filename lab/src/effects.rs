//! What the lab adds to a successful EC2 call: moto does the bookkeeping,
//! the lab keeps images and device nodes in step, and plays the life
//! cycles moto makes instant (creating volumes, pending snapshots) by
//! rewriting describe replies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::copies;
use crate::locks;
use crate::replies::ec2_error;
use crate::replies::Resp;
use crate::restore_speed;
use crate::state::{Lab, Life};
use crate::xml;

/// Side effects of a successful call, and rewritten replies: moto does
/// the bookkeeping, the lab keeps images and device nodes in step and
/// plays the life cycles moto skips.
pub(crate) async fn after(
    lab: &Arc<Lab>,
    action: &str,
    region: &str,
    params: &BTreeMap<String, String>,
    body: &[u8],
) -> anyhow::Result<Option<String>> {
    let reply = String::from_utf8_lossy(body).into_owned();
    let now = Instant::now();
    match action {
        "CreateVolume" => create_volume(lab, region, params, &reply, now)
            .await
            .map(|()| None),
        "CopySnapshot" => copies::copied(lab, region, params, &reply)
            .await
            .map(|()| None),
        "AttachVolume" => attach_volume(lab, params, now).await.map(|()| None),
        "DetachVolume" => detach_volume(lab, params).await.map(|()| None),
        "DeleteVolume" => {
            remove_image(lab, params.get("VolumeId"));
            Ok(None)
        }
        "CreateSnapshot" => {
            let pairs = created_snapshot(params, &reply);
            record_snapshots(lab, pairs, now).await.map(|()| None)
        }
        "CreateSnapshots" => create_snapshot_set(lab, params, &reply, now).await,
        "DeleteSnapshot" => {
            remove_image(lab, params.get("SnapshotId"));
            if let Some(id) = params.get("SnapshotId") {
                copies::deleted(lab, id);
                locks::deleted(lab, id);
            }
            Ok(None)
        }
        "DescribeVolumes" => Ok(Some(restore_speed::describe_volumes(
            lab,
            &describe_volumes(lab, &reply),
        ))),
        "DescribeInstanceAttribute"
            if params.get("Attribute").map(String::as_str) == Some("blockDeviceMapping") =>
        {
            describe_block_device_mapping(lab, params, &reply).await
        }
        "DescribeSnapshots" => Ok(Some(restore_speed::describe_snapshots(
            lab,
            &copies::describe_snapshots(lab, &describe_snapshots(lab, &reply)),
        ))),
        _ => Ok(None),
    }
}

/// DetachVolume without an InstanceId, which EC2 accepts (the volume has
/// one attachment) and moto answers with HTTP 500: add the instance the
/// volume is attached to, to the form body (or the query, where the
/// parameters came from there). A volume attached nowhere gets EC2's
/// `IncorrectState` (the returned reply); one moto does not know goes on
/// unchanged, for moto's own error.
pub(crate) async fn fill_detach_instance(
    lab: &Lab,
    params: &mut BTreeMap<String, String>,
    uri: &mut hyper::Uri,
    body: &mut Bytes,
) -> anyhow::Result<Option<Resp>> {
    let Some(vol) = params.get("VolumeId").cloned() else {
        return Ok(None);
    };
    let instance = match lab.moto.attached_instance(&vol).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return Ok(Some(ec2_error(
                400,
                "IncorrectState",
                &format!("Volume '{vol}' is in the 'available' state."),
            )))
        }
        Err(_) => return Ok(None),
    };
    let pair = form_urlencoded::Serializer::new(String::new())
        .append_pair("InstanceId", &instance)
        .finish();
    if body.windows(7).any(|w| w == b"Action=") {
        let mut b = body.to_vec();
        if !b.is_empty() && !b.ends_with(b"&") {
            b.push(b'&');
        }
        b.extend_from_slice(pair.as_bytes());
        *body = Bytes::from(b);
    } else {
        let query = match uri.query() {
            Some(q) if !q.is_empty() => format!("{q}&{pair}"),
            _ => pair,
        };
        *uri = format!("{}?{query}", uri.path()).parse()?;
    }
    eprintln!("lab: DetachVolume of {vol} without InstanceId: {instance} filled in");
    params.insert("InstanceId".into(), instance);
    Ok(None)
}

/// DescribeInstanceAttribute(blockDeviceMapping) as EC2 answers it: moto
/// leaves the mapping out; the lab puts in the one DescribeInstances
/// gives (each attachment's device, volume, status and
/// deleteOnTermination), after the `instanceId`.
async fn describe_block_device_mapping(
    lab: &Lab,
    params: &BTreeMap<String, String>,
    reply: &str,
) -> anyhow::Result<Option<String>> {
    if reply.contains("<blockDeviceMapping") {
        return Ok(None);
    }
    let Some(instance) = params.get("InstanceId") else {
        return Ok(None);
    };
    let mapping = lab.moto.block_device_mapping(instance).await?;
    let close = "</instanceId>";
    Ok(reply.find(close).map(|at| {
        let at = at + close.len();
        format!("{}{mapping}{}", &reply[..at], &reply[at..])
    }))
}

/// A new volume: start its life cycle and give it an image, a copy of its
/// snapshot's when it has one, so what the snapshot held comes back.
async fn create_volume(
    lab: &Arc<Lab>,
    region: &str,
    params: &BTreeMap<String, String>,
    reply: &str,
    now: Instant,
) -> anyhow::Result<()> {
    let Some(vol) = xml::first(reply, &["CreateVolumeResponse", "volumeId"]) else {
        return Ok(());
    };
    restore_speed::created(lab, params, &vol);
    // EC2 checks the KMS key after the call: a volume under a key that
    // does not exist goes from `creating` to `error`.
    let bad_key = params
        .get("KmsKeyId")
        .filter(|k| !copies::known_key(lab, k, region));
    if let Some(k) = bad_key {
        eprintln!("lab: {vol} is under KMS key {k}, unknown in {region}: it ends in error");
    }
    lab.volumes.lock().expect("volumes lock").insert(
        vol.clone(),
        Life {
            at: now,
            attached_at: None,
            error: bad_key.is_some(),
        },
    );
    let size: u64 = params.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0);
    let lab2 = lab.clone();
    let snap = params.get("SnapshotId").cloned();
    blocking(move || {
        let image = |id: &str| lab2.devices.lock().expect("devices lock").image(id);
        if let Some(snap) = snap {
            if !crate::devices::copy_image(&image(&snap), &image(&vol))? {
                eprintln!(
                    "lab: {snap} has no image (not made through the lab); {vol} starts empty"
                );
            }
        }
        if size > 0 {
            lab2.devices
                .lock()
                .expect("devices lock")
                .ensure_image(&vol, size)?;
        }
        Ok(())
    })
    .await
}

/// An attach to this instance: start the attachment's life cycle, make
/// sure the volume has an image to plug, then hot-plug it.
async fn attach_volume(
    lab: &Arc<Lab>,
    params: &BTreeMap<String, String>,
    now: Instant,
) -> anyhow::Result<()> {
    let (Some(vol), Some(instance), Some(device)) = (
        params.get("VolumeId"),
        params.get("InstanceId"),
        params.get("Device"),
    ) else {
        return Ok(());
    };
    if instance != &lab.instance_id {
        return Ok(());
    }
    if let Some(l) = lab.volumes.lock().expect("volumes lock").get_mut(vol) {
        l.attached_at = Some(now);
    }
    let has_image = lab
        .devices
        .lock()
        .expect("devices lock")
        .image(vol)
        .exists();
    if !has_image {
        let size = lab.moto.volume_size(vol).await?;
        let (lab2, v) = (lab.clone(), vol.clone());
        blocking(move || {
            lab2.devices
                .lock()
                .expect("devices lock")
                .ensure_image(&v, size)
                .map(drop)
        })
        .await?;
    }
    plug_later(lab, vol.clone(), device.clone());
    Ok(())
}

/// The device appears a moment after the call returns, as on EC2; a
/// failure can only be logged, the reply is long gone.
fn plug_later(lab: &Arc<Lab>, vol: String, device: String) {
    let delay = lab.rules().device_delay.unwrap_or_default();
    let lab2 = lab.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let result = blocking(move || {
            lab2.devices
                .lock()
                .expect("devices lock")
                .plug(&vol, &device)
                .map(drop)
        })
        .await;
        if let Err(e) = result {
            eprintln!("lab: hot-plug failed: {e:#}");
        }
    });
}

/// A detach: end the attachment's life cycle and pull the device node.
async fn detach_volume(lab: &Arc<Lab>, params: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let Some(vol) = params.get("VolumeId").cloned() else {
        return Ok(());
    };
    if let Some(l) = lab.volumes.lock().expect("volumes lock").get_mut(&vol) {
        l.attached_at = None;
    }
    let lab2 = lab.clone();
    blocking(move || lab2.devices.lock().expect("devices lock").unplug(&vol)).await
}

/// A deleted volume or snapshot takes its image with it.
fn remove_image(lab: &Lab, id: Option<&String>) {
    if let Some(id) = id {
        lab.devices.lock().expect("devices lock").remove_image(id);
    }
}

/// The (snapshot, volume) pair a CreateSnapshot made: the volume is only
/// in the request.
fn created_snapshot(params: &BTreeMap<String, String>, reply: &str) -> Vec<(String, String)> {
    match (
        xml::first(reply, &["CreateSnapshotResponse", "snapshotId"]),
        params.get("VolumeId"),
    ) {
        (Some(s), Some(v)) => vec![(s, v.clone())],
        _ => vec![],
    }
}

/// The (snapshot, volume) pairs a CreateSnapshots made, one per reply
/// `item` (keyed by where the item starts, so leaves pair up).
fn created_snapshots(reply: &str) -> Vec<(String, String)> {
    let mut items: BTreeMap<usize, (Option<String>, Option<String>)> = BTreeMap::new();
    for l in xml::leaves(reply) {
        let n = l.path.len();
        if n >= 2 && l.path[n - 2] == "item" {
            let e = items.entry(l.starts[n - 2]).or_default();
            match l.path[n - 1].as_str() {
                "snapshotId" => e.0 = Some(reply[l.text.clone()].to_string()),
                "volumeId" => e.1 = Some(reply[l.text.clone()].to_string()),
                _ => {}
            }
        }
    }
    items
        .into_values()
        .filter_map(|(s, v)| Some((s?, v?)))
        .collect()
}

/// CreateSnapshots as EC2 does it where moto does not: volumes named in
/// `ExcludeDataVolumeIds.N` get no snapshot (moto snapshots them anyway:
/// those are deleted again and left out of the reply).
async fn create_snapshot_set(
    lab: &Arc<Lab>,
    params: &BTreeMap<String, String>,
    reply: &str,
    now: Instant,
) -> anyhow::Result<Option<String>> {
    let excluded: Vec<&String> = params
        .iter()
        .filter(|(k, _)| k.starts_with("InstanceSpecification.ExcludeDataVolumeId"))
        .map(|(_, v)| v)
        .collect();
    let (mut keep, mut drop) = (Vec::new(), Vec::new());
    for (snap, vol) in created_snapshots(reply) {
        if excluded.contains(&&vol) {
            drop.push(snap);
        } else {
            keep.push((snap, vol));
        }
    }
    for snap in &drop {
        lab.moto
            .ec2("DeleteSnapshot", &[("SnapshotId", snap)])
            .await?;
    }
    record_snapshots(lab, keep, now).await?;
    Ok((!drop.is_empty()).then(|| without_items(reply, "snapshotSet", &drop)))
}

/// The reply without the top-level `item`s of `set` that name any of
/// `ids` (nested items, such as tags, stay with their parent).
fn without_items(reply: &str, set: &str, ids: &[String]) -> String {
    let (open, close) = (format!("<{set}>"), format!("</{set}>"));
    let (Some(a), Some(b)) = (reply.find(&open), reply.find(&close)) else {
        return reply.to_string();
    };
    let inner = &reply[a + open.len()..b];
    let mut items = Vec::new();
    let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
    while i < inner.len() {
        if inner[i..].starts_with("<item>") {
            if depth == 0 {
                start = i;
            }
            depth += 1;
            i += "<item>".len();
        } else if inner[i..].starts_with("</item>") {
            depth = depth.saturating_sub(1);
            i += "</item>".len();
            if depth == 0 {
                items.push(&inner[start..i]);
            }
        } else {
            i += inner[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    let kept: String = items
        .into_iter()
        .filter(|item| {
            !ids.iter()
                .any(|id| item.contains(&format!("<snapshotId>{id}</snapshotId>")))
        })
        .collect();
    format!(
        "{}{open}{kept}{close}{}",
        &reply[..a],
        &reply[b + close.len()..]
    )
}

/// New snapshots: copy each volume's image and start each life cycle.
async fn record_snapshots(
    lab: &Arc<Lab>,
    pairs: Vec<(String, String)>,
    now: Instant,
) -> anyhow::Result<()> {
    let error_calls = lab.rules().snapshot_error_calls;
    // The copies are made before the reply returns (point in time), all
    // at once: a set of many volumes costs about one copy, as the
    // separate CreateSnapshot calls of the same volumes do.
    let mut copies = tokio::task::JoinSet::new();
    for (snap, vol) in &pairs {
        let (lab2, s2, v2) = (lab.clone(), snap.clone(), vol.clone());
        copies.spawn(blocking(move || {
            let image = |id: &str| lab2.devices.lock().expect("devices lock").image(id);
            crate::devices::copy_image(&image(&v2), &image(&s2)).map(drop)
        }));
    }
    while let Some(copied) = copies.join_next().await {
        copied??;
    }
    for (snap, _) in pairs {
        // The n-th snapshot made through the lab ends in error if asked.
        let mut map = lab.snapshots.lock().expect("snapshots lock");
        let n = map.len() as u32 + 1;
        map.insert(
            snap,
            Life {
                at: now,
                attached_at: None,
                error: error_calls.contains(&n),
            },
        );
    }
    Ok(())
}

/// DescribeVolumes as EC2 would answer: moto's volumes are available and
/// attached at once, the lab's stay creating/attaching for a while.
fn describe_volumes(lab: &Lab, reply: &str) -> String {
    let rules = lab.rules();
    let vols = lab.volumes.lock().expect("volumes lock").clone();
    xml::rewrite(
        reply,
        &["volumeSet", "item"],
        "volumeId",
        |id, rel, text| {
            let life = vols.get(id)?;
            let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
            match rel.as_slice() {
                ["status"] if text == "available" => {
                    let wait = rules.volume_available_after.unwrap_or_default();
                    if life.at.elapsed() < wait {
                        Some("creating".to_string())
                    } else {
                        life.error.then(|| "error".to_string())
                    }
                }
                ["attachmentSet", "item", "status"] if text == "attached" => {
                    let wait = rules.volume_attached_after?;
                    (life.attached_at?.elapsed() < wait).then(|| "attaching".to_string())
                }
                _ => None,
            }
        },
    )
}

/// DescribeSnapshots as EC2 would answer: moto's snapshots complete at
/// once, the lab's stay pending for a while or end in error if asked.
fn describe_snapshots(lab: &Lab, reply: &str) -> String {
    let rules = lab.rules();
    let snaps = lab.snapshots.lock().expect("snapshots lock").clone();
    xml::rewrite(
        reply,
        &["snapshotSet", "item"],
        "snapshotId",
        |id, rel, _| {
            let life = snaps.get(id)?;
            let pending = rules
                .snapshot_pending
                .is_some_and(|p| life.at.elapsed() < p);
            match rel
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["status"] if pending => Some("pending".into()),
                ["status"] if life.error => Some("error".into()),
                ["progress"] if pending => Some("42%".into()),
                _ => None,
            }
        },
    )
}

async fn blocking(f: impl FnOnce() -> anyhow::Result<()> + Send + 'static) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(f).await?
}
