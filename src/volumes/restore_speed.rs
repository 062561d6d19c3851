//! Bringing a volume restored from a snapshot to full speed: its blocks
//! load from S3 on first read unless a provisioned initialization rate
//! or fast snapshot restore (FSR) loads them first. The choice is pure
//! (`decide`); asking EC2 and creating the volume are around it. Neither
//! lever ever makes a restore fail: a refused rate is dropped with a
//! warning, an unknown FSR state counts as not enabled.

use std::time::Duration;

use crate::cloud::{CloudError, Ec2, NewVolume, SnapshotInfo, VolumeInfo};

/// What the run learnt of fast snapshot restore for the source snapshot
/// in this Availability Zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fsr {
    /// `enabled`: a new volume is fully initialized at creation while a
    /// credit is left.
    Enabled,
    /// Any other state (enabling, optimizing, ...), or none.
    NotEnabled,
    /// EC2 could not be asked; the reason.
    Unknown(String),
}

/// The rate to send with CreateVolume and the line that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decision {
    pub rate: Option<u32>,
    pub line: Option<String>,
}

/// Pure: with FSR enabled no rate is paid for; otherwise the wanted rate,
/// with how long the snapshot's data takes at it and what it is billed on.
pub(super) fn decide(
    snapshot: &SnapshotInfo,
    wanted: Option<u32>,
    fsr: &Fsr,
    zone: &str,
) -> Decision {
    let Some(rate) = wanted else {
        return Decision {
            rate: None,
            line: None,
        };
    };
    if *fsr == Fsr::Enabled {
        return Decision {
            rate: None,
            line: Some(format!(
                "fast snapshot restore is enabled for {} in {zone}: no initialization rate requested (not paid for twice)",
                snapshot.id
            )),
        };
    }
    let (bytes, basis) = match (snapshot.data_bytes, snapshot.size_gib) {
        (Some(b), _) => (b, "of snapshot data"),
        (None, Some(g)) => (
            u64::from(g) << 30,
            "at most (EC2 did not report the data size; the volume size)",
        ),
        (None, None) => (0, "of unknown size"),
    };
    let secs = bytes / (u64::from(rate) << 20).max(1);
    Decision {
        rate: Some(rate),
        line: Some(format!(
            "initialization at {rate} MiB/s: {} {basis} in about {}; billed once at creation, per GiB of snapshot data at the {rate} MiB/s price",
            human_bytes(bytes),
            humantime::format_duration(Duration::from_secs(secs.max(1)))
        )),
    }
}

fn human_bytes(b: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let f = b as f64;
    if f >= GIB {
        format!("{:.1} GiB", f / GIB)
    } else {
        format!("{:.1} MiB", f / MIB)
    }
}

/// The rate to create this volume with: asks EC2 about FSR only when a
/// rate is wanted (a rate overrides FSR, so with FSR on it is not sent).
pub(super) async fn rate_for(
    ec2: &Ec2,
    zone: &str,
    mount_point: &str,
    wanted: Option<u32>,
    snapshot: &SnapshotInfo,
) -> Option<u32> {
    wanted?;
    let fsr = match ec2
        .fast_restores(std::slice::from_ref(&snapshot.id), Some(zone))
        .await
    {
        Ok(list) if list.iter().any(|f| f.state == "enabled") => Fsr::Enabled,
        Ok(_) => Fsr::NotEnabled,
        Err(e) => Fsr::Unknown(e.to_string()),
    };
    if let Fsr::Unknown(e) = &fsr {
        tracing::warn!(
            "{mount_point}: could not learn whether fast snapshot restore is enabled for {}: {e}; going on as if not",
            snapshot.id
        );
    }
    let d = decide(snapshot, wanted, &fsr, zone);
    if let Some(line) = &d.line {
        tracing::info!("{mount_point}: {line}");
    }
    d.rate
}

/// CreateVolume; when EC2 refuses the request with an initialization
/// rate (capacity, the Regional quota), once more without it, with a
/// warning: a speed option never makes a restore fail.
pub(super) async fn create_volume(
    ec2: &Ec2,
    mount_point: &str,
    spec: &mut NewVolume,
) -> Result<String, CloudError> {
    match ec2.create_volume(spec).await {
        Err(e) if spec.init_rate.is_some() && refused(&e) => {
            tracing::warn!(
                "{mount_point}: EC2 refused the initialization rate of {} MiB/s ({e}); creating the volume without it (its blocks load on first read; a refusal for another reason shows again)",
                spec.init_rate.unwrap_or_default()
            );
            spec.init_rate = None;
            // Another request: EC2 refuses a token reused with other
            // parameters.
            spec.client_token.push_str("-norate");
            ec2.create_volume(spec).await
        }
        r => r,
    }
}

/// EC2 answered and said no to the request (not a throttle or a failure
/// on its side, after which the call may yet have happened; not a denial
/// of CreateVolume itself, which no rate changes). EC2 documents that a
/// rate can be refused for capacity or the Region's quota, not the code.
fn refused(e: &CloudError) -> bool {
    matches!(e, CloudError::Service { .. }) && !e.is_transient() && !e.is_denied()
}

/// `prewarm = "block"`: read every block of the mounted volume once in
/// the background (a detached `snaptastic prewarm`, resuming from its
/// checkpoint), unless its warm-up finished already. A warm-up that
/// cannot start is a warning: the volume is mounted and usable.
pub(super) async fn warm_up(
    prewarm: crate::config::Prewarm,
    mount_point: &str,
    block: &std::path::Path,
    volume_id: &str,
) {
    if prewarm != crate::config::Prewarm::Block {
        return;
    }
    if crate::prewarm::progress(volume_id).is_some_and(|p| p.finished) {
        tracing::info!("{mount_point}: {volume_id} is warmed up already");
        return;
    }
    let (b, id) = (block.to_path_buf(), volume_id.to_string());
    let started = tokio::task::spawn_blocking(move || {
        crate::prewarm::start_detached(&b, &id, &crate::prewarm::WarmOptions::default())
    })
    .await;
    match started {
        Ok(Ok(how)) => tracing::info!(
            "{mount_point}: warming {volume_id} up in the background ({how}); `snaptastic list-volumes` shows how far"
        ),
        Ok(Err(e)) => tracing::warn!(
            "{mount_point}: could not start the warm-up of {volume_id}: {e:#}; its blocks load on first read"
        ),
        Err(e) => tracing::warn!("{mount_point}: the warm-up of {volume_id} did not start: {e}"),
    }
}

/// Say how the new volume initializes, once EC2 reports it available.
/// `rate_skipped`: a rate was wanted and not sent because FSR is on.
pub(super) fn report_created(mount_point: &str, v: &VolumeInfo, rate_skipped: bool) {
    if v.fast_restored == Some(true) {
        tracing::info!(
            "{mount_point}: {} was fast restored: fully initialized at creation",
            v.id
        );
    } else if rate_skipped {
        tracing::warn!(
            "{mount_point}: {} was not fast restored (the snapshot's fast snapshot restore credits in this zone may be spent): its blocks load on first read",
            v.id
        );
    } else if let Some(r) = v.init_rate {
        tracing::info!("{mount_point}: {} initializes at {r} MiB/s", v.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::SnapshotState;

    fn snap(data: Option<u64>, size: Option<u32>) -> SnapshotInfo {
        SnapshotInfo {
            id: "snap-1".into(),
            volume_id: None,
            state: SnapshotState::Completed,
            start_time: None,
            size_gib: size,
            progress: None,
            description: String::new(),
            tags: Default::default(),
            storage_tier: None,
            data_bytes: data,
        }
    }

    #[test]
    fn no_rate_wanted_sends_none_and_says_nothing() {
        let d = decide(&snap(Some(1 << 30), None), None, &Fsr::NotEnabled, "z");
        assert_eq!(
            d,
            Decision {
                rate: None,
                line: None
            }
        );
    }

    #[test]
    fn fsr_enabled_sends_no_rate() {
        let d = decide(
            &snap(Some(1 << 30), None),
            Some(300),
            &Fsr::Enabled,
            "us-east-1a",
        );
        assert_eq!(d.rate, None);
        assert!(d
            .line
            .unwrap()
            .contains("fast snapshot restore is enabled for snap-1 in us-east-1a"));
    }

    #[test]
    fn estimate_is_data_size_over_rate() {
        // 30 GiB at 300 MiB/s: 102.4 s.
        let d = decide(
            &snap(Some(30 << 30), Some(100)),
            Some(300),
            &Fsr::NotEnabled,
            "z",
        );
        assert_eq!(d.rate, Some(300));
        let line = d.line.unwrap();
        assert!(
            line.contains("30.0 GiB of snapshot data in about 1m 42s"),
            "{line}"
        );
        assert!(line.contains("billed once"), "{line}");
    }

    #[test]
    fn unknown_fsr_or_data_size_still_sends_the_rate() {
        let d = decide(
            &snap(None, Some(8)),
            Some(100),
            &Fsr::Unknown("denied".into()),
            "z",
        );
        assert_eq!(d.rate, Some(100));
        assert!(d.line.unwrap().contains("8.0 GiB at most"));
    }

    #[test]
    fn only_a_refusal_drops_the_rate() {
        let service = |code: &str| CloudError::Service {
            op: "CreateVolume",
            code: code.into(),
            message: String::new(),
            request_id: None,
        };
        assert!(refused(&service("InsufficientVolumeCapacity")));
        assert!(!refused(&service("RequestLimitExceeded")));
        assert!(!refused(&service("UnauthorizedOperation")));
        assert!(!refused(&CloudError::Transport {
            op: "CreateVolume",
            message: "reset".into()
        }));
    }
}
