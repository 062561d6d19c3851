//! What makes a restored volume fast, as EC2 reports and sets it: fast
//! snapshot restore (FSR) per snapshot and Availability Zone, and a new
//! volume's initialization progress (DescribeVolumeStatus).

use std::collections::BTreeMap;

use serde::Serialize;

use super::ec2::filter;
use super::{cloud_error, CloudError, Ec2};

/// One snapshot's fast snapshot restore in one Availability Zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FastRestore {
    pub snapshot_id: String,
    pub availability_zone: String,
    /// enabling, optimizing, enabled, disabling or disabled.
    pub state: String,
}

/// A volume's initialization as DescribeVolumeStatus reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Initialization {
    /// default, provisioned-rate or volume-copy.
    #[serde(rename = "type")]
    pub kind: String,
    /// 0-100.
    pub progress: Option<u8>,
    /// Only for a provisioned rate.
    pub eta_seconds: Option<u64>,
}

impl Initialization {
    pub(crate) fn done(&self) -> bool {
        self.progress.is_some_and(|p| p >= 100)
    }
}

/// One snapshot and Availability Zone that EC2 refused to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FastRestoreRefusal {
    pub snapshot_id: String,
    pub availability_zone: String,
    pub reason: String,
}

/// The accepted and refused items of an Enable or Disable reply: the two
/// replies have the same shape under different SDK types.
macro_rules! outcome {
    ($out:expr) => {{
        let ok = $out
            .successful()
            .iter()
            .filter_map(|i| {
                Some(FastRestore {
                    snapshot_id: i.snapshot_id()?.to_string(),
                    availability_zone: i.availability_zone()?.to_string(),
                    state: i.state()?.as_str().to_string(),
                })
            })
            .collect();
        let refused = $out
            .unsuccessful()
            .iter()
            .flat_map(|i| {
                let snap = i.snapshot_id().unwrap_or_default().to_string();
                i.fast_snapshot_restore_state_errors()
                    .iter()
                    .map(move |e| FastRestoreRefusal {
                        snapshot_id: snap.clone(),
                        availability_zone: e.availability_zone().unwrap_or_default().into(),
                        reason: e.error().map_or_else(String::new, |e| {
                            format!(
                                "{}: {}",
                                e.code().unwrap_or_default(),
                                e.message().unwrap_or_default()
                            )
                        }),
                    })
            })
            .collect();
        (ok, refused)
    }};
}

impl Ec2 {
    /// The fast snapshot restores of these snapshots (every state but
    /// `disabled`, which EC2 forgets).
    pub(crate) async fn fast_restores(
        &self,
        snapshot_ids: &[String],
        zone: Option<&str>,
    ) -> Result<Vec<FastRestore>, CloudError> {
        let mut out = Vec::new();
        // A filter takes a bounded number of values.
        for ids in snapshot_ids.chunks(100) {
            let mut req = self.client.describe_fast_snapshot_restores().filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("snapshot-id")
                    .set_values(Some(ids.to_vec()))
                    .build(),
            );
            if let Some(z) = zone {
                req = req.filters(filter("availability-zone", z));
            }
            let mut pages = req.into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| cloud_error("DescribeFastSnapshotRestores", e))?;
                for item in page.fast_snapshot_restores() {
                    if let (Some(s), Some(z), Some(st)) =
                        (item.snapshot_id(), item.availability_zone(), item.state())
                    {
                        out.push(FastRestore {
                            snapshot_id: s.to_string(),
                            availability_zone: z.to_string(),
                            state: st.as_str().to_string(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// EnableFastSnapshotRestores (or Disable, with `enable` false) for
    /// every snapshot in every zone: what EC2 accepted, and what it
    /// refused with its reason (one refusal does not fail the others).
    pub(crate) async fn set_fast_restores(
        &self,
        enable: bool,
        snapshot_ids: &[String],
        zones: &[String],
    ) -> Result<(Vec<FastRestore>, Vec<FastRestoreRefusal>), CloudError> {
        let (ids, zones) = (Some(snapshot_ids.to_vec()), Some(zones.to_vec()));
        if enable {
            let out = self
                .client
                .enable_fast_snapshot_restores()
                .set_source_snapshot_ids(ids)
                .set_availability_zones(zones)
                .send()
                .await
                .map_err(|e| cloud_error("EnableFastSnapshotRestores", e))?;
            Ok(outcome!(out))
        } else {
            let out = self
                .client
                .disable_fast_snapshot_restores()
                .set_source_snapshot_ids(ids)
                .set_availability_zones(zones)
                .send()
                .await
                .map_err(|e| cloud_error("DisableFastSnapshotRestores", e))?;
            Ok(outcome!(out))
        }
    }

    /// Each volume's initialization (volumes EC2 reports no details for,
    /// such as empty ones, are left out).
    pub(crate) async fn initialization(
        &self,
        volume_ids: &[String],
    ) -> Result<BTreeMap<String, Initialization>, CloudError> {
        let mut out = BTreeMap::new();
        if volume_ids.is_empty() {
            return Ok(out);
        }
        let mut pages = self
            .client
            .describe_volume_status()
            .set_volume_ids(Some(volume_ids.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| cloud_error("DescribeVolumeStatus", e))?;
            for item in page.volume_statuses() {
                let (Some(id), Some(d)) = (item.volume_id(), item.initialization_status_details())
                else {
                    continue;
                };
                out.insert(
                    id.to_string(),
                    Initialization {
                        kind: d
                            .initialization_type()
                            .map_or_else(|| "default".into(), |t| t.as_str().to_string()),
                        progress: d
                            .progress()
                            .and_then(|p| u8::try_from(p.clamp(0, 100)).ok()),
                        eta_seconds: d
                            .estimated_time_to_complete_in_seconds()
                            .and_then(|s| u64::try_from(s).ok()),
                    },
                );
            }
        }
        Ok(out)
    }
}
