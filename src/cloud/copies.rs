//! Snapshots in another Region: a client for it with the same
//! credentials and limits, and CopySnapshot, called in the destination.

use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use super::{cloud_error, CloudError, Ec2};

/// One copy to start.
#[derive(Debug, Clone)]
pub(crate) struct NewCopy {
    pub source_region: String,
    pub source_snapshot_id: String,
    pub description: String,
    /// Re-encrypt with this key of the destination Region.
    pub kms_key_id: Option<String>,
    /// Applied at creation (a copy carries no tags otherwise): no moment
    /// when a copy exists that a re-run would not recognise.
    pub tags: Vec<(String, String)>,
}

impl Ec2 {
    /// The same client for another Region.
    pub(crate) fn in_region(&self, region: &str) -> Ec2 {
        let conf = self
            .client
            .config()
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        Ec2 {
            client: aws_sdk_ec2::Client::from_conf(conf),
        }
    }

    /// CopySnapshot, called on the destination Region's client, once:
    /// EC2 takes no idempotency token for it, so a retry after a lost
    /// reply would start a second copy. The caller looks for the copy by
    /// its tags before trying again.
    pub(crate) async fn copy_snapshot(&self, copy: &NewCopy) -> Result<String, CloudError> {
        let mut tags = TagSpecification::builder().resource_type(ResourceType::Snapshot);
        for (k, v) in &copy.tags {
            tags = tags.tags(Tag::builder().key(k).value(v).build());
        }
        let once = aws_sdk_ec2::config::Builder::default()
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::standard().with_max_attempts(1));
        let resp = self
            .client
            .copy_snapshot()
            .source_region(&copy.source_region)
            .source_snapshot_id(&copy.source_snapshot_id)
            .description(&copy.description)
            .set_encrypted(copy.kms_key_id.is_some().then_some(true))
            .set_kms_key_id(copy.kms_key_id.clone())
            .tag_specifications(tags.build())
            .customize()
            .config_override(once)
            .send()
            .await
            .map_err(|e| cloud_error("CopySnapshot", e))?;
        resp.snapshot_id()
            .map(str::to_string)
            .ok_or_else(|| CloudError::Transport {
                op: "CopySnapshot",
                message: "the reply has no snapshot id".into(),
            })
    }
}
