//! The AWS side, in the tool's own words. SDK types stay inside this module:
//! callers see `SnapshotInfo`, `VolumeInfo` and `CloudError`.

mod copies;
mod ec2;
mod restore_speed;
pub(crate) mod s3;
mod stall;
mod tiers;
mod wait;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::meta::region::ProvideRegion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;

pub(crate) use copies::NewCopy;
pub(crate) use ec2::{DryRunAction, DryRunOutcome, Ec2, ProbeTargets};
pub(crate) use restore_speed::{FastRestore, FastRestoreRefusal, Initialization};
pub(crate) use stall::Patience;
pub(crate) use wait::{poll_until, Backoff, WaitError};

/// How hard each AWS call tries (`--call-attempts`, `--call-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallLimits {
    /// Tries of each call, the first included.
    pub attempts: u32,
    /// How long one try of an EC2 call may take.
    pub attempt_timeout: Duration,
}

impl CallLimits {
    /// The SDK retries throttling and 5xx (exponential backoff with
    /// jitter); 5 attempts span a few seconds, enough for a burst of
    /// `RequestLimitExceeded` without hiding a real outage.
    pub(crate) const DEFAULT: CallLimits = CallLimits {
        attempts: 5,
        attempt_timeout: Duration::from_secs(30),
    };
}

impl Default for CallLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
/// Probes (`snaptastic test`) should report an unreachable endpoint
/// quickly rather than ride out a long outage.
pub(crate) const PROBE_ATTEMPTS: u32 = 2;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A transfer that receives nothing for this long is stuck.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);

/// An AWS call that failed, named by operation, with the service's code.
#[derive(Debug, Clone, Error)]
pub(crate) enum CloudError {
    #[error("{op} failed: {code}: {message}{}", request_id.as_ref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Service {
        op: &'static str,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    #[error("{op} failed: {message}")]
    Transport { op: &'static str, message: String },
    /// No progress (no reply, no bytes either way) for `after`, in each
    /// of `attempts` attempts (`cloud::stall`).
    #[error(
        "{op} of {target} stalled: nothing sent or received for {}s, {attempts} attempt(s)",
        after.as_secs_f32()
    )]
    Stalled {
        op: &'static str,
        target: String,
        after: Duration,
        attempts: u32,
    },
}

impl CloudError {
    /// Throttling or a server-side failure: worth another try later.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            CloudError::Transport { .. } | CloudError::Stalled { .. } => true,
            CloudError::Service { code, .. } => {
                self.is_throttle()
                    || matches!(
                        code.as_str(),
                        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable"
                    )
            }
        }
    }

    /// Refused for the caller's request rate: the call was not carried
    /// out (safe to send again even without an idempotency token).
    pub(crate) fn is_throttle(&self) -> bool {
        matches!(
            self.code(),
            Some("RequestLimitExceeded" | "Throttling" | "ThrottlingException")
        )
    }

    /// The caller's policy or credentials do not allow the call.
    pub(crate) fn is_denied(&self) -> bool {
        matches!(
            self.code(),
            Some("UnauthorizedOperation" | "AuthFailure" | "AccessDenied")
        )
    }

    /// A stall, already tried as often as the call allows: a caller that
    /// retries errors itself does not multiply those attempts.
    pub(crate) fn is_stall(&self) -> bool {
        matches!(self, CloudError::Stalled { .. })
    }

    /// The service's error code, if the service answered.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            CloudError::Service { code, .. } => Some(code),
            CloudError::Transport { .. } | CloudError::Stalled { .. } => None,
        }
    }
}

/// Turn an SDK error (EC2's or S3's: they share the type) into ours: the
/// service's code and message when it answered, the whole cause chain when
/// it did not.
pub(crate) fn cloud_error<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(_) => CloudError::Service {
            op,
            code: err.code().unwrap_or("Unknown").to_string(),
            message: err
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| DisplayErrorContext(&err).to_string()),
            request_id: err.request_id().map(str::to_string),
        },
        _ => CloudError::Transport {
            op,
            message: DisplayErrorContext(&err).to_string(),
        },
    }
}

/// Whether the service answered 404 (no such key, bucket, ...).
pub(crate) fn is_not_found<E>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(err, SdkError::ServiceError(se) if se.raw().status().as_u16() == 404)
}

pub(crate) fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Snapshot states as EC2 reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SnapshotState {
    Pending,
    Completed,
    Error,
    #[serde(untagged)]
    Other(String),
}

impl SnapshotState {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "completed" => Self::Completed,
            "error" => Self::Error,
            other => Self::Other(other.to_string()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Other(s) => s,
        }
    }
}

/// What the tool needs to know about a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SnapshotInfo {
    pub id: String,
    pub volume_id: Option<String>,
    pub state: SnapshotState,
    pub start_time: Option<DateTime<Utc>>,
    pub size_gib: Option<u32>,
    /// EC2's progress text, e.g. "42%".
    pub progress: Option<String>,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    /// `standard` or `archive` (EC2's `StorageTier`); none when EC2 did
    /// not say. An archived snapshot takes 24-72 h to restore from: never
    /// chosen as a source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_tier: Option<String>,
    /// Bytes of data the snapshot holds (`FullSnapshotSizeInBytes`): what
    /// a volume created from it loads, the basis of an initialization
    /// rate's time and cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_bytes: Option<u64>,
}

impl SnapshotInfo {
    /// In the archive tier (or still being restored from it).
    pub(crate) fn archived(&self) -> bool {
        self.storage_tier.as_deref() == Some("archive")
    }

    pub(crate) fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// What the tool needs to know about a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct VolumeInfo {
    pub id: String,
    pub state: String,
    pub size_gib: Option<u32>,
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub availability_zone: Option<String>,
    pub attachments: Vec<Attachment>,
    pub tags: BTreeMap<String, String>,
    /// Whether fast snapshot restore applied at creation (EC2's
    /// `FastRestored`): the volume was fully initialized at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_restored: Option<bool>,
    /// The provisioned initialization rate it was created with, MiB/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_rate: Option<u32>,
}

/// What CreateVolume is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewVolume {
    pub availability_zone: String,
    pub size_gib: u32,
    /// gp3, io1, ... as EC2 names them.
    pub volume_type: String,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub snapshot_id: Option<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    /// A provisioned initialization rate, MiB/s (100-300).
    pub init_rate: Option<u32>,
    /// Applied at creation (TagSpecifications): no untagged moment.
    pub tags: Vec<(String, String)>,
    /// Idempotency token: a retried CreateVolume whose first attempt EC2
    /// accepted returns the same volume instead of a second one.
    pub client_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Attachment {
    pub instance_id: String,
    pub device: String,
    pub state: String,
}

/// The SDK's configuration for one region, opaque outside `cloud/`: the
/// standard credential chain (environment, profiles, process credentials,
/// instance role), `AWS_ENDPOINT_URL` honoured, bounded timeouts and
/// retries.
#[derive(Clone)]
pub(crate) struct AwsConfig(SdkConfig);

/// Keys given on the command line (tablesnap's `-k/-s`), used instead of
/// the credential chain.
pub(crate) struct StaticKeys<'a> {
    pub key: &'a str,
    pub secret: &'a str,
    pub token: Option<&'a str>,
}

impl AwsConfig {
    /// For API calls: each attempt bounded in time.
    pub(crate) async fn load(region: &str, limits: CallLimits) -> Self {
        Self(sdk_config_with(region, limits.attempts, Some(limits.attempt_timeout)).await)
    }

    /// For S3 transfers: no limit on a whole attempt (a 5 GiB PUT or a 256
    /// MiB part takes as long as the link needs), only on connecting and
    /// on a stalled read.
    pub(crate) async fn load_for_transfers(region: &str, max_attempts: u32) -> Self {
        Self(sdk_config_with(region, max_attempts, None).await)
    }

    /// The same, with fixed keys instead of the credential chain.
    pub(crate) fn with_keys(self, keys: StaticKeys<'_>) -> Self {
        let creds = aws_sdk_s3::config::Credentials::new(
            keys.key,
            keys.secret,
            keys.token.map(str::to_string),
            None,
            "command line",
        );
        Self(
            self.0
                .into_builder()
                .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(creds))
                .build(),
        )
    }

    /// Check that credentials can be had, without printing them.
    pub(crate) async fn check_credentials(&self) -> Result<String, CredentialsError> {
        use aws_sdk_ec2::config::ProvideCredentials;
        let provider = self
            .0
            .credentials_provider()
            .ok_or(CredentialsError::NoProvider)?;
        match provider.provide_credentials().await {
            Ok(_) => Ok("credentials found".to_string()),
            Err(e) => Err(CredentialsError::Unavailable(
                DisplayErrorContext(&e).to_string(),
            )),
        }
    }

    pub(crate) fn sdk(&self) -> &SdkConfig {
        &self.0
    }
}

/// Why no credentials could be had.
#[derive(Debug, Error)]
pub(crate) enum CredentialsError {
    #[error("no credential provider configured")]
    NoProvider,
    #[error("{0}")]
    Unavailable(String),
}

async fn sdk_config_with(region: &str, max_attempts: u32, attempt: Option<Duration>) -> SdkConfig {
    let mut timeouts = TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT);
    timeouts = match attempt {
        Some(t) => timeouts.operation_attempt_timeout(t),
        None => timeouts.read_timeout(STALL_TIMEOUT),
    };
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
        .timeout_config(timeouts.build())
        .load()
        .await
}

/// The region from the environment (`AWS_REGION`, `AWS_DEFAULT_REGION`) or
/// the shared config profile, without asking instance metadata (which the
/// tool reads itself, with its own timeouts).
pub(crate) async fn region_from_environment() -> Option<String> {
    let env = aws_config::environment::region::EnvironmentVariableRegionProvider::new();
    if let Some(r) = env.region().await {
        return Some(r.to_string());
    }
    let profile = aws_config::profile::ProfileFileRegionProvider::builder().build();
    profile.region().await.map(|r| r.to_string())
}
