//! `fast-restore enable|disable|status PROFILE`: fast snapshot restore
//! (FSR) for the snapshots a profile restores from, for a bounded time.
//! A volume created from such a snapshot is fully initialized at once
//! (while the snapshot's credits last), at $0.75 per snapshot per zone
//! per hour. `enable` tags each snapshot with when FSR should end before
//! turning it on, so a snapshot is never left on without a bound that
//! `disable --expired` (a timer) acts on.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use chrono::{DateTime, Utc};

use super::points::{choose_points, RestoreSource};
use super::tags::TAG_FAST_RESTORE_UNTIL;
use crate::cloud::{FastRestore, SnapshotInfo};
use crate::context::VolumeContext;

/// EC2's price of FSR in us-east-1, per snapshot per zone per hour,
/// billed by the hour with a one-hour minimum.
const PRICE_PER_HOUR: f64 = 0.75;

/// What `fast-restore` does.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// On for the snapshots a restore would use now, for this long.
    Enable { hours: Duration },
    /// Off for the profile's snapshots; with `expired_only`, only those
    /// whose time is up.
    Disable { expired_only: bool },
    /// What is on, where, until when, and what it costs.
    Status,
}

#[derive(Debug, Clone)]
pub(crate) struct FastRestoreOptions {
    pub action: Action,
    /// Availability Zones; default: this instance's.
    pub zones: Vec<String>,
}

pub(crate) async fn run(ctx: &VolumeContext, opts: &FastRestoreOptions) -> Result<ExitCode> {
    let name = ctx.snapshotter.name();
    let snapshots = ctx
        .ec2
        .snapshots_tagged(&ctx.filters, &ctx.owners)
        .await
        .with_context(|| format!("looking up snapshots of profile '{name}'"))?;
    match &opts.action {
        Action::Enable { hours } => enable(ctx, opts, &snapshots, *hours).await,
        Action::Disable { expired_only } => disable(ctx, &snapshots, *expired_only).await,
        Action::Status => status(ctx, &snapshots).await,
    }
}

/// The cost of `snapshots` × `zones` for `hours`, as a line.
pub(crate) fn cost_line(snapshots: usize, zones: usize, hours: Duration) -> String {
    let h = hours.as_secs().div_ceil(3600).max(1);
    let per_hour = PRICE_PER_HOUR * (snapshots * zones) as f64;
    format!(
        "{snapshots} snapshot(s) x {zones} zone(s) x ${PRICE_PER_HOUR:.2}/h = ${per_hour:.2}/h; {h} h = ${:.2} (us-east-1 price, 1 h minimum, billed until disabled)",
        per_hour * h as f64
    )
}

/// The bounds a snapshot's tag holds, per zone: `ZONE=TIME ZONE=TIME`
/// (FSR is on per snapshot and zone, each with its own `--for`); a bare
/// time bounds every zone.
fn bounds(s: &SnapshotInfo) -> BTreeMap<String, DateTime<Utc>> {
    let time = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    s.tag(TAG_FAST_RESTORE_UNTIL)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|part| match part.split_once('=') {
            Some((zone, t)) => Some((zone.to_string(), time(t)?)),
            None => Some(("*".to_string(), time(part)?)),
        })
        .collect()
}

/// Until when FSR of `s` in `zone` should stay on.
fn until_of(s: &SnapshotInfo, zone: &str) -> Option<DateTime<Utc>> {
    let b = bounds(s);
    b.get(zone).or_else(|| b.get("*")).copied()
}

/// The tag's value with `zones` bound to `until`, the other zones' kept
/// (a bare time as `*=TIME`, still bounding the zones not named).
fn with_bound(s: &SnapshotInfo, zones: &[String], until: DateTime<Utc>) -> String {
    let mut out = bounds(s);
    for z in zones {
        out.insert(z.clone(), until);
    }
    out.iter()
        .map(|(z, t)| {
            format!(
                "{z}={}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn enable(
    ctx: &VolumeContext,
    opts: &FastRestoreOptions,
    snapshots: &[SnapshotInfo],
    hours: Duration,
) -> Result<ExitCode> {
    let name = ctx.snapshotter.name();
    let zones = match (&opts.zones[..], &ctx.host.identity) {
        ([], Some(id)) => vec![id.availability_zone.clone()],
        ([], None) => bail!(
            "fast-restore enable {name}: no instance metadata here; name the zones with --zones"
        ),
        (z, _) => z.to_vec(),
    };
    let mps: Vec<&str> = ctx.volumes.iter().map(|v| v.mount_point.as_str()).collect();
    let points = choose_points(snapshots, &mps);
    let mut chosen = Vec::new();
    for (mp, c) in mps.iter().zip(points.choices) {
        match c.source {
            RestoreSource::Snapshot { snapshot } => chosen.push(snapshot),
            RestoreSource::WaitFor { pending, .. } => tracing::warn!(
                "{mp}: {} is still pending; run again once it is completed",
                pending.id
            ),
            RestoreSource::Empty => tracing::warn!("{mp}: no snapshot to restore from"),
        }
    }
    if chosen.is_empty() {
        bail!("fast-restore enable {name}: no completed snapshot that mount-snapshots would restore from");
    }
    println!("cost: {}", cost_line(chosen.len(), zones.len(), hours));
    let until = Utc::now() + chrono::Duration::from_std(hours)?;
    let stamp = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // The bound first: a snapshot is never on without it.
    for s in &chosen {
        let tag = vec![(
            TAG_FAST_RESTORE_UNTIL.to_string(),
            with_bound(s, &zones, until),
        )];
        ctx.ec2
            .create_tags(&s.id, &tag)
            .await
            .with_context(|| format!("tagging {} with {TAG_FAST_RESTORE_UNTIL}", s.id))?;
    }
    let ids: Vec<String> = chosen.iter().map(|s| s.id.clone()).collect();
    let (ok, refused) = ctx
        .ec2
        .set_fast_restores(true, &ids, &zones)
        .await
        .with_context(|| format!("enabling fast snapshot restore for {}", ids.join(", ")))?;
    for f in &ok {
        println!(
            "enabled  {} in {}: {} until {stamp}",
            f.snapshot_id, f.availability_zone, f.state
        );
    }
    finish(&refused, "enable")
}

fn finish(refused: &[crate::cloud::FastRestoreRefusal], what: &str) -> Result<ExitCode> {
    for r in refused {
        println!(
            "refused  {} in {}: {}",
            r.snapshot_id, r.availability_zone, r.reason
        );
    }
    match refused.first() {
        None => Ok(ExitCode::SUCCESS),
        Some(r) => {
            tracing::error!(
                "could not {what} fast snapshot restore for {} in {}: {} ({} refused)",
                r.snapshot_id,
                r.availability_zone,
                r.reason,
                refused.len()
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// The profile's snapshots with FSR in any state but `disabled`.
async fn on(ctx: &VolumeContext, snapshots: &[SnapshotInfo]) -> Result<Vec<FastRestore>> {
    let ids: Vec<String> = snapshots.iter().map(|s| s.id.clone()).collect();
    ctx.ec2
        .fast_restores(&ids, None)
        .await
        .context("looking up fast snapshot restores")
}

async fn disable(
    ctx: &VolumeContext,
    snapshots: &[SnapshotInfo],
    expired_only: bool,
) -> Result<ExitCode> {
    let by_id: BTreeMap<&str, &SnapshotInfo> =
        snapshots.iter().map(|s| (s.id.as_str(), s)).collect();
    let now = Utc::now();
    let mut zones: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in on(ctx, snapshots).await? {
        if matches!(f.state.as_str(), "disabling" | "disabled") {
            continue;
        }
        let until = by_id
            .get(f.snapshot_id.as_str())
            .and_then(|s| until_of(s, &f.availability_zone));
        if expired_only {
            match until {
                None => {
                    tracing::info!(
                        "{} in {}: no {TAG_FAST_RESTORE_UNTIL} tag (not turned on by fast-restore enable); left on",
                        f.snapshot_id,
                        f.availability_zone
                    );
                    continue;
                }
                Some(t) if t > now => continue,
                Some(_) => {}
            }
        }
        zones
            .entry(f.snapshot_id)
            .or_default()
            .push(f.availability_zone);
    }
    let mut refused = Vec::new();
    for (snap, zs) in &zones {
        let (ok, no) = ctx
            .ec2
            .set_fast_restores(false, std::slice::from_ref(snap), zs)
            .await
            .with_context(|| format!("disabling fast snapshot restore for {snap}"))?;
        for f in ok {
            println!("disabled {} in {}", f.snapshot_id, f.availability_zone);
        }
        refused.extend(no);
    }
    if zones.is_empty() {
        println!("nothing to disable");
    }
    finish(&refused, "disable")
}

async fn status(ctx: &VolumeContext, snapshots: &[SnapshotInfo]) -> Result<ExitCode> {
    let by_id: BTreeMap<&str, &SnapshotInfo> =
        snapshots.iter().map(|s| (s.id.as_str(), s)).collect();
    let list = on(ctx, snapshots).await?;
    for f in &list {
        let until = by_id
            .get(f.snapshot_id.as_str())
            .and_then(|s| until_of(s, &f.availability_zone))
            .map_or(
                "no bound (not turned on by fast-restore enable)".to_string(),
                |t| {
                    format!(
                        "until {}",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                },
            );
        println!(
            "{} in {}: {}, {until}",
            f.snapshot_id, f.availability_zone, f.state
        );
    }
    println!(
        "{} snapshot/zone pair(s) on: ${:.2}/h (us-east-1 price)",
        list.len(),
        PRICE_PER_HOUR * list.len() as f64
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_zone_keeps_its_own_bound() {
        let mut s =
            crate::volumes::fixtures::snap("s", "/a", 1, crate::cloud::SnapshotState::Completed);
        let t = |x: &str| DateTime::parse_from_rfc3339(x).unwrap().with_timezone(&Utc);
        let v = with_bound(&s, &["a".into()], t("2026-12-07T01:00:00Z"));
        assert_eq!(v, "a=2026-12-07T01:00:00Z");
        s.tags.insert(TAG_FAST_RESTORE_UNTIL.into(), v);
        let v = with_bound(&s, &["b".into()], t("2026-12-14T00:00:00Z"));
        assert_eq!(v, "a=2026-12-07T01:00:00Z b=2026-12-14T00:00:00Z");
        s.tags.insert(TAG_FAST_RESTORE_UNTIL.into(), v);
        assert_eq!(until_of(&s, "a"), Some(t("2026-12-07T01:00:00Z")));
        assert_eq!(until_of(&s, "b"), Some(t("2026-12-14T00:00:00Z")));
        assert_eq!(until_of(&s, "c"), None);
        // A bare time (written by hand) bounds every zone.
        s.tags
            .insert(TAG_FAST_RESTORE_UNTIL.into(), "2026-01-01T00:00:00Z".into());
        assert_eq!(until_of(&s, "c"), Some(t("2026-01-01T00:00:00Z")));
        assert_eq!(
            with_bound(&s, &["a".into()], t("2026-12-07T01:00:00Z")),
            "*=2026-01-01T00:00:00Z a=2026-12-07T01:00:00Z"
        );
    }

    #[test]
    fn cost_is_per_snapshot_zone_and_started_hour() {
        assert_eq!(
            cost_line(2, 3, Duration::from_secs(90 * 60)),
            "2 snapshot(s) x 3 zone(s) x $0.75/h = $4.50/h; 2 h = $9.00 (us-east-1 price, 1 h minimum, billed until disabled)"
        );
        assert!(cost_line(1, 1, Duration::from_secs(60)).contains("; 1 h = $0.75"));
    }
}
