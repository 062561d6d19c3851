//! Snapshot locks, which moto does not have: the lab answers
//! LockSnapshot, UnlockSnapshot and DescribeLockedSnapshots itself and
//! refuses DeleteSnapshot of a locked snapshot, as EC2 does.
//!
//! Governance mode: unlockable and changeable at any time. Compliance
//! mode: unlockable and changeable during its cooling-off period
//! (`CoolOffPeriod` hours), after it only extended. A lock expires after
//! `LockDuration` days or at `ExpirationDate`, and an expired lock no
//! longer protects. A lock day lasts the rules' `lock_day` (default a
//! real day) so a test can watch a lock expire.
//!
//! EC2 does not document the code it refuses a locked snapshot's
//! deletion with; the lab says `SnapshotLocked` (for an unlock or a
//! shortening a compliance lock forbids, too), with a message that
//! names the lock.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::replies::{ec2_error, Refusal, Resp};
use crate::state::{Lab, Lock};

const DAY: Duration = Duration::from_secs(86_400);

/// moto's account, which owns every snapshot made through it.
const OWNER: &str = "123456789012";

const OWN: [&str; 3] = ["LockSnapshot", "UnlockSnapshot", "DescribeLockedSnapshots"];

pub(crate) fn answers(action: &str) -> bool {
    OWN.contains(&action)
}

fn day(lab: &Lab) -> Duration {
    lab.rules().lock_day.unwrap_or(DAY)
}

/// `compliance-cooloff`, `governance`, `compliance` or `expired`.
fn state(lock: &Lock, now: SystemTime) -> &'static str {
    if now >= lock.expires {
        "expired"
    } else if !lock.compliance {
        "governance"
    } else if lock.cool_off.is_some_and(|(_, end)| now < end) {
        "compliance-cooloff"
    } else {
        "compliance"
    }
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A lock as EC2 describes it (LockSnapshot's reply, and each item of
/// DescribeLockedSnapshots).
fn fields(snap: &str, lock: &Lock, now: SystemTime) -> String {
    let mut out = format!(
        "<snapshotId>{snap}</snapshotId><lockState>{}</lockState>",
        state(lock, now)
    );
    if let Some(d) = lock.days {
        out.push_str(&format!("<lockDuration>{d}</lockDuration>"));
    }
    if let Some((h, end)) = lock.cool_off {
        out.push_str(&format!(
            "<coolOffPeriod>{h}</coolOffPeriod><coolOffPeriodExpiresOn>{}</coolOffPeriodExpiresOn>",
            time(end)
        ));
    }
    out.push_str(&format!(
        "<lockCreatedOn>{}</lockCreatedOn><lockDurationStartTime>{}</lockDurationStartTime><lockExpiresOn>{}</lockExpiresOn>",
        time(lock.created),
        time(lock.started),
        time(lock.expires)
    ));
    out
}

/// DeleteSnapshot of a snapshot under a lock that has not expired,
/// refused.
pub(crate) fn check_delete(lab: &Lab, params: &BTreeMap<String, String>) -> Option<Resp> {
    let snap = params.get("SnapshotId")?;
    let locks = lab.locks.lock().expect("locks lock");
    let lock = locks.get(snap)?;
    let s = state(lock, SystemTime::now());
    (s != "expired").then(|| {
        eprintln!("lab: DeleteSnapshot {snap} refused: locked ({s})");
        ec2_error(
            400,
            "SnapshotLocked",
            &format!(
                "The snapshot '{snap}' is locked ({s}) until {} and cannot be deleted.",
                time(lock.expires)
            ),
        )
    })
}

/// A deleted snapshot takes its (expired) lock with it.
pub(crate) fn deleted(lab: &Lab, id: &str) {
    lab.locks.lock().expect("locks lock").remove(id);
}

/// The reply body to one of the lock calls, or its refusal.
pub(crate) async fn answer(
    lab: &Lab,
    region: &str,
    action: &str,
    params: &BTreeMap<String, String>,
) -> Result<String, Refusal> {
    match action {
        "LockSnapshot" => lock(lab, region, params).await,
        "UnlockSnapshot" => unlock(lab, params),
        _ => Ok(describe(lab, region, params)),
    }
}

fn bad(code: &'static str, message: &str) -> Refusal {
    Refusal::new(code, message)
}

/// A whole number parameter within `range`; `Ok(None)` when absent.
fn number(
    params: &BTreeMap<String, String>,
    name: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Option<u32>, Refusal> {
    let Some(v) = params.get(name) else {
        return Ok(None);
    };
    v.parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| {
            bad(
                "InvalidParameterValue",
                &format!("{name} {v} is not in {}-{}", range.start(), range.end()),
            )
        })
}

async fn lock(
    lab: &Lab,
    region: &str,
    params: &BTreeMap<String, String>,
) -> Result<String, Refusal> {
    let snap = params.get("SnapshotId").ok_or_else(|| {
        bad(
            "MissingParameter",
            "The request must contain the parameter SnapshotId",
        )
    })?;
    if lab
        .moto
        .in_region(region)
        .snapshot_facts(snap)
        .await
        .is_none()
    {
        return Err(bad(
            "InvalidSnapshot.NotFound",
            &format!("The snapshot '{snap}' does not exist."),
        ));
    }
    let compliance = match params.get("LockMode").map(String::as_str) {
        Some("compliance") => true,
        Some("governance") => false,
        other => {
            return Err(bad(
                "InvalidParameterValue",
                &format!("LockMode {other:?} is not governance or compliance"),
            ))
        }
    };
    let days = number(params, "LockDuration", 1..=36_500)?;
    let cool_off = number(params, "CoolOffPeriod", 1..=72)?;
    if cool_off.is_some() && !compliance {
        return Err(bad(
            "InvalidParameterCombination",
            "CoolOffPeriod applies to compliance mode only",
        ));
    }
    let now = SystemTime::now();
    let day = day(lab);
    let expires = match (days, params.get("ExpirationDate")) {
        (Some(d), None) => now + day * d,
        (None, Some(date)) => {
            let at = humantime::parse_rfc3339_weak(date.trim_end_matches('Z')).map_err(|e| {
                bad(
                    "InvalidParameterValue",
                    &format!("ExpirationDate {date}: {e}"),
                )
            })?;
            if at < now + day {
                return Err(bad(
                    "InvalidParameterValue",
                    &format!("ExpirationDate {date} is less than a day away"),
                ));
            }
            at
        }
        _ => {
            return Err(bad(
                "InvalidParameterCombination",
                "Specify either LockDuration or ExpirationDate",
            ))
        }
    };
    let mut locks = lab.locks.lock().expect("locks lock");
    let earlier = locks.get(snap).filter(|l| state(l, now) != "expired");
    if let Some(old) = earlier.filter(|l| state(l, now) == "compliance") {
        // Past its cooling-off, a compliance lock can only be extended.
        if !compliance || cool_off.is_some() || expires < old.expires {
            return Err(bad(
                "SnapshotLocked",
                &format!(
                    "The snapshot '{snap}' is locked in compliance mode until {}: its lock can only be extended",
                    time(old.expires)
                ),
            ));
        }
    }
    let lock = Lock {
        region: region.to_string(),
        compliance,
        created: earlier.map_or(now, |l| l.created),
        started: now,
        expires,
        days,
        cool_off: cool_off
            .map(|h| (h, now + day / 24 * h))
            .or_else(|| earlier.and_then(|l| l.cool_off).filter(|_| compliance)),
    };
    let body = fields(snap, &lock, now);
    eprintln!(
        "lab: {snap} locked ({}) until {}",
        state(&lock, now),
        time(expires)
    );
    locks.insert(snap.clone(), lock);
    Ok(body)
}

fn unlock(lab: &Lab, params: &BTreeMap<String, String>) -> Result<String, Refusal> {
    let snap = params.get("SnapshotId").ok_or_else(|| {
        bad(
            "MissingParameter",
            "The request must contain the parameter SnapshotId",
        )
    })?;
    let now = SystemTime::now();
    let mut locks = lab.locks.lock().expect("locks lock");
    match locks.get(snap).map(|l| (state(l, now), l.expires)) {
        None | Some(("expired", _)) => Err(bad(
            "IncorrectState",
            &format!("The snapshot '{snap}' is not locked."),
        )),
        Some(("compliance", until)) => Err(bad(
            "SnapshotLocked",
            &format!(
                "The snapshot '{snap}' is locked in compliance mode until {} and cannot be unlocked",
                time(until)
            ),
        )),
        Some(_) => {
            locks.remove(snap);
            eprintln!("lab: {snap} unlocked");
            Ok(format!("<snapshotId>{snap}</snapshotId>"))
        }
    }
}

/// DescribeLockedSnapshots: the locks in the call's Region, filtered by
/// `SnapshotId.N` and the `lock-state` filter (expired locks included,
/// as EC2 lists them).
fn describe(lab: &Lab, region: &str, params: &BTreeMap<String, String>) -> String {
    let ids: Vec<&String> = params
        .iter()
        .filter(|(k, _)| k.starts_with("SnapshotId."))
        .map(|(_, v)| v)
        .collect();
    let states: Option<Vec<&String>> = params
        .iter()
        .find(|(k, v)| k.starts_with("Filter.") && k.ends_with(".Name") && *v == "lock-state")
        .map(|(k, _)| {
            let prefix = format!("{}.Value.", k.trim_end_matches(".Name"));
            params
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v)
                .collect()
        });
    let now = SystemTime::now();
    let locks = lab.locks.lock().expect("locks lock");
    let mut sorted: Vec<_> = locks.iter().filter(|(_, l)| l.region == region).collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let items: String = sorted
        .into_iter()
        .filter(|(id, _)| ids.is_empty() || ids.contains(id))
        .filter(|(_, l)| {
            states
                .as_ref()
                .is_none_or(|s| s.iter().any(|s| s.as_str() == state(l, now)))
        })
        .map(|(id, l)| {
            format!(
                "<item><ownerId>{OWNER}</ownerId>{}</item>",
                fields(id, l, now)
            )
        })
        .collect();
    format!("<snapshotSet>{items}</snapshotSet>")
}
