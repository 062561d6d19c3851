//! A snapshot's storage tier: ModifySnapshotTier moves it to the archive
//! (`archive_after`).

use aws_sdk_ec2::types::TargetStorageTier;

use super::{cloud_error, CloudError, Ec2};

impl Ec2 {
    /// Move a snapshot to the archive tier (EC2 does it in the
    /// background; the snapshot reads `archive` once done).
    pub(crate) async fn archive_snapshot(&self, snapshot_id: &str) -> Result<(), CloudError> {
        self.client
            .modify_snapshot_tier()
            .snapshot_id(snapshot_id)
            .storage_tier(TargetStorageTier::Archive)
            .send()
            .await
            .map(drop)
            .map_err(|e| cloud_error("ModifySnapshotTier", e))
    }
}
