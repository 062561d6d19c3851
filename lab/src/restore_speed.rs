//! What EC2 does for a restored volume's speed and moto does not: the
//! provisioned initialization rate (checked, refused past the Region's
//! quota, reported), initialization progress (DescribeVolumeStatus),
//! fast snapshot restore per snapshot and zone with its credits, and the
//! snapshot's data size. The lab answers the FSR and status calls
//! itself; for CreateVolume it checks before moto and records after.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::replies::ec2_error;
use crate::replies::Resp;
use crate::state::{Fsr, Init, Lab};
use crate::xml;

const DEFAULT_INITIALIZATION: Duration = Duration::from_secs(60);
const DEFAULT_QUOTA: u32 = 5000;

/// How long a volume takes to initialize: the lab's time at the
/// default rate, shorter at a provisioned one.
fn duration(i: &Init, lab: &Lab) -> Duration {
    let base = lab.rules().initialization.unwrap_or(DEFAULT_INITIALIZATION);
    match i.rate {
        Some(r) => base.mul_f64(100.0 / f64::from(r.max(1))),
        None => base,
    }
}

/// 0-100, and the seconds left.
fn progress(i: &Init, lab: &Lab) -> (u8, u64) {
    if i.fast_restored {
        return (100, 0);
    }
    let total = duration(i, lab);
    let done = i.at.elapsed();
    if done >= total {
        return (100, 0);
    }
    let pct = (done.as_secs_f64() / total.as_secs_f64() * 100.0) as u8;
    (pct.min(99), (total - done).as_secs().max(1))
}

fn fsr_state(lab: &Lab, f: &Fsr) -> &'static str {
    let after = lab.rules().fsr_enabled_after.unwrap_or_default();
    let t = f.since.elapsed();
    if t >= after {
        "enabled"
    } else if t >= after / 2 {
        "optimizing"
    } else {
        "enabling"
    }
}

/// CreateVolume as EC2 checks it: never from an archived snapshot; a
/// rate of 100-300 MiB/s, only with a snapshot, and within the Region's
/// quota summed over the volumes still initializing at a provisioned
/// rate. `Some` is the refusal.
pub(crate) async fn check_create_volume(
    lab: &Lab,
    region: &str,
    params: &BTreeMap<String, String>,
) -> Option<Resp> {
    if let Some(snap) = params.get("SnapshotId") {
        // Asked in the call's Region: a copy lives in another than the lab's.
        if let Some((_, tier)) = lab.moto.in_region(region).snapshot_facts(snap).await {
            if tier == "archive" {
                return Some(ec2_error(
                    400,
                    "IncorrectState",
                    &format!("The snapshot '{snap}' is in the archive tier; restore it to standard first"),
                ));
            }
        }
    }
    let rate = params.get("VolumeInitializationRate")?;
    let Some(r) = rate.parse::<u32>().ok().filter(|r| (100..=300).contains(r)) else {
        return Some(ec2_error(
            400,
            "InvalidParameterValue",
            &format!("VolumeInitializationRate {rate} is out of range (100-300 MiB/s)"),
        ));
    };
    if !params.contains_key("SnapshotId") {
        return Some(ec2_error(
            400,
            "InvalidParameterCombination",
            "VolumeInitializationRate can only be specified with a SnapshotId",
        ));
    }
    let quota = lab.rules().init_rate_quota.unwrap_or(DEFAULT_QUOTA);
    let speed = lab.speed.lock().expect("speed lock");
    let busy: u32 = speed
        .volumes
        .values()
        .filter(|i| progress(i, lab).0 < 100)
        .filter_map(|i| i.rate)
        .sum();
    (busy + r > quota).then(|| {
        eprintln!("lab: CreateVolume at {r} MiB/s refused: {busy} of {quota} MiB/s in use");
        // EC2 documents the refusal (capacity or quota) but not its code.
        ec2_error(
            400,
            "InsufficientVolumeCapacity",
            &format!(
                "There is not enough capacity to fulfill your volume initialization rate request of {r} MiB/s"
            ),
        )
    })
}

/// A volume created from a snapshot: its rate, or a credit of the
/// snapshot's fast snapshot restore in the volume's zone (a rate
/// overrides FSR, as on EC2).
pub(crate) fn created(lab: &Lab, params: &BTreeMap<String, String>, volume_id: &str) {
    let Some(snap) = params.get("SnapshotId") else {
        return;
    };
    let rate = params
        .get("VolumeInitializationRate")
        .and_then(|r| r.parse().ok());
    let zone = params.get("AvailabilityZone").cloned().unwrap_or_default();
    let mut speed = lab.speed.lock().expect("speed lock");
    let mut fast_restored = false;
    if rate.is_none() {
        if let Some(f) = speed.fsr.get_mut(&(snap.clone(), zone)) {
            if fsr_state(lab, f) == "enabled" && f.credits > 0 {
                f.credits -= 1;
                fast_restored = true;
            }
        }
    }
    speed.volumes.insert(
        volume_id.to_string(),
        Init {
            at: Instant::now(),
            rate,
            fast_restored,
        },
    );
}

/// DescribeVolumes with EC2's `fastRestored` and
/// `volumeInitializationRate`.
pub(crate) fn describe_volumes(lab: &Lab, reply: &str) -> String {
    let speed = lab.speed.lock().expect("speed lock");
    xml::add_to_items(reply, &["volumeSet", "item"], "volumeId", |id| {
        let i = speed.volumes.get(id)?;
        let rate = i
            .rate
            .map(|r| format!("<volumeInitializationRate>{r}</volumeInitializationRate>"))
            .unwrap_or_default();
        Some(format!(
            "<fastRestored>{}</fastRestored>{rate}",
            i.fast_restored
        ))
    })
}

/// DescribeSnapshots with `fullSnapshotSizeInBytes`: the bytes its image
/// holds (allocated, as a snapshot stores only written blocks).
pub(crate) fn describe_snapshots(lab: &Lab, reply: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let devices = lab.devices.lock().expect("devices lock");
    xml::add_to_items(reply, &["snapshotSet", "item"], "snapshotId", |id| {
        let m = std::fs::metadata(devices.image(id)).ok()?;
        Some(format!(
            "<fullSnapshotSizeInBytes>{}</fullSnapshotSizeInBytes>",
            m.blocks() * 512
        ))
    })
}

/// The calls the lab answers itself (moto has none of them).
const OWN: [&str; 4] = [
    "DescribeVolumeStatus",
    "EnableFastSnapshotRestores",
    "DisableFastSnapshotRestores",
    "DescribeFastSnapshotRestores",
];

pub(crate) fn answers(action: &str) -> bool {
    OWN.contains(&action)
}

/// The reply to one of the calls the lab answers itself.
pub(crate) async fn answer(
    lab: &Lab,
    action: &str,
    params: &BTreeMap<String, String>,
) -> Option<String> {
    let body = match action {
        "DescribeVolumeStatus" => describe_volume_status(lab, params),
        "EnableFastSnapshotRestores" => set_fsr(lab, params, true).await,
        "DisableFastSnapshotRestores" => set_fsr(lab, params, false).await,
        "DescribeFastSnapshotRestores" => describe_fsr(lab, params),
        _ => return None,
    };
    Some(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>lab</requestId>{body}</{action}Response>"
    ))
}

/// The `.N` values of a list parameter, in order.
fn list(params: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    let prefix = format!("{name}.");
    params
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| v.clone())
        .collect()
}

/// The values of filter `name` (Filter.N.Name / Filter.N.Value.M).
fn filter_values(params: &BTreeMap<String, String>, name: &str) -> Option<Vec<String>> {
    let n = params
        .iter()
        .find(|(k, v)| k.starts_with("Filter.") && k.ends_with(".Name") && v.as_str() == name)?
        .0
        .trim_end_matches(".Name")
        .to_string();
    Some(list(params, &format!("{n}.Value")))
}

fn describe_volume_status(lab: &Lab, params: &BTreeMap<String, String>) -> String {
    let speed = lab.speed.lock().expect("speed lock");
    let items: String = list(params, "VolumeId")
        .iter()
        .map(|id| {
            let details = speed.volumes.get(id).map(|i| {
                let (pct, left) = progress(i, lab);
                let (kind, eta) = match i.rate {
                    Some(_) => (
                        "provisioned-rate",
                        format!("<estimatedTimeToCompleteInSeconds>{left}</estimatedTimeToCompleteInSeconds>"),
                    ),
                    None => ("default", String::new()),
                };
                format!("<initializationStatusDetails><initializationType>{kind}</initializationType><progress>{pct}</progress>{eta}</initializationStatusDetails>")
            });
            format!(
                "<item><volumeId>{id}</volumeId><availabilityZone>{}</availabilityZone><volumeStatus><status>ok</status></volumeStatus>{}</item>",
                lab.zone,
                details.unwrap_or_default()
            )
        })
        .collect();
    format!("<volumeStatusSet>{items}</volumeStatusSet>")
}

fn fsr_item(snap: &str, zone: &str, state: &str) -> String {
    format!("<item><snapshotId>{snap}</snapshotId><availabilityZone>{zone}</availabilityZone><state>{state}</state></item>")
}

async fn set_fsr(lab: &Lab, params: &BTreeMap<String, String>, enable: bool) -> String {
    let (snaps, zones) = (
        list(params, "SourceSnapshotId"),
        list(params, "AvailabilityZone"),
    );
    let (mut ok, mut refused) = (String::new(), String::new());
    for snap in &snaps {
        let size = lab.moto.snapshot_facts(snap).await.map(|(s, _)| s);
        let mut errors = String::new();
        for zone in &zones {
            let mut speed = lab.speed.lock().expect("speed lock");
            let key = (snap.clone(), zone.clone());
            if size.is_none() {
                errors.push_str(&format!("<item><availabilityZone>{zone}</availabilityZone><error><code>InvalidSnapshot.NotFound</code><message>The snapshot '{snap}' does not exist.</message></error></item>"));
            } else if enable {
                let credits = lab
                    .rules()
                    .fsr_credits
                    .unwrap_or_else(|| (1024 / size.unwrap_or(1).max(1)).clamp(1, 10) as u32);
                let f = speed.fsr.entry(key).or_insert(Fsr {
                    since: Instant::now(),
                    credits,
                });
                ok.push_str(&fsr_item(snap, zone, fsr_state(lab, f)));
            } else {
                speed.fsr.remove(&key);
                ok.push_str(&fsr_item(snap, zone, "disabling"));
            }
        }
        if !errors.is_empty() {
            refused.push_str(&format!("<item><snapshotId>{snap}</snapshotId><fastSnapshotRestoreStateErrorSet>{errors}</fastSnapshotRestoreStateErrorSet></item>"));
        }
    }
    format!("<successful>{ok}</successful><unsuccessful>{refused}</unsuccessful>")
}

fn describe_fsr(lab: &Lab, params: &BTreeMap<String, String>) -> String {
    let snaps = filter_values(params, "snapshot-id");
    let zones = filter_values(params, "availability-zone");
    let speed = lab.speed.lock().expect("speed lock");
    let items: String = speed
        .fsr
        .iter()
        .filter(|((s, z), _)| {
            snaps.as_ref().is_none_or(|l| l.contains(s))
                && zones.as_ref().is_none_or(|l| l.contains(z))
        })
        .map(|((s, z), f)| fsr_item(s, z, fsr_state(lab, f)))
        .collect();
    format!("<fastSnapshotRestoreSet>{items}</fastSnapshotRestoreSet>")
}
