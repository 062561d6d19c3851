//! What the lab does beyond moto, set by a file (`--rules FILE`) or the
//! control endpoint (`PUT /_lab/rules`): faults per EC2 or S3 action and
//! the life cycles moto makes instant.
//!
//! ```toml
//! snapshot_pending = "2s"        # new snapshots stay pending this long
//! snapshot_error_calls = [2]     # the 2nd CreateSnapshot ends in error
//! volume_available_after = "1s"  # CreateVolume -> creating for 1s
//! volume_attached_after = "500ms"
//! device_delay = "200ms"         # the block device appears after attach
//! initialization = "60s"         # a restored volume initializes (default rate)
//! init_rate_quota = 5000         # MiB/s of provisioned rates at once
//! fsr_enabled_after = "2s"       # EnableFastSnapshotRestores -> enabled
//! fsr_credits = 1                # volume creations per snapshot and zone
//! copy_pending = "2s"            # a CopySnapshot copy stays pending this long
//! copy_limit = 5                 # copies pending at once per destination Region
//! kms_keys = ["alias/dr"]        # known KMS keys (ids, ARNs, aliases); empty: any
//! lock_day = "2s"                # how long one day of a snapshot lock lasts
//!
//! [[faults]]
//! action = "CreateVolume"
//! calls = [1, 2]                 # which calls of that action (1-based); empty = all
//! reply = "throttle"             # throttle | 500 | 503 | denied | unsupported | hang | reset | lost | latency | late | rtt
//! # mib_per_s = 50               # with latency | late | rtt: an S3 reply's body at 50 MiB/s
//!
//! [[faults]]
//! action = "AttachVolume"
//! params = { Device = "/dev/sdg" }   # only calls with these parameters
//! reply = "500"
//!
//! [[faults]]
//! action = "CreateSnapshot"
//! probability = 0.5
//! reply = "latency"
//! latency = "50ms"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rules {
    #[serde(default)]
    pub faults: Vec<Fault>,
    #[serde(default, with = "opt_duration")]
    pub snapshot_pending: Option<Duration>,
    #[serde(default)]
    pub snapshot_error_calls: Vec<u32>,
    #[serde(default, with = "opt_duration")]
    pub volume_available_after: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub volume_attached_after: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub device_delay: Option<Duration>,
    /// How long a volume created from a snapshot takes to initialize at
    /// EC2's default rate (default 60s); at a provisioned rate R MiB/s it
    /// takes this × 100 / R.
    #[serde(default, with = "opt_duration")]
    pub initialization: Option<Duration>,
    /// The Region's quota of provisioned initialization rates, MiB/s
    /// summed over volumes initializing at once (EC2's default: 5000): a
    /// CreateVolume past it is refused.
    pub init_rate_quota: Option<u32>,
    /// How long EnableFastSnapshotRestores takes to reach `enabled`
    /// (half enabling, half optimizing; default at once).
    #[serde(default, with = "opt_duration")]
    pub fsr_enabled_after: Option<Duration>,
    /// Credits per snapshot and zone instead of EC2's MIN(10, 1024 ÷ GiB).
    pub fsr_credits: Option<u32>,
    /// How long a CopySnapshot copy stays `pending` before it completes
    /// (or fails, with an unknown KMS key). Default: at once, as moto.
    #[serde(default, with = "opt_duration")]
    pub copy_pending: Option<Duration>,
    /// How many copies may be pending at once in one destination Region
    /// (EC2's default account limit: 5); the next CopySnapshot is refused.
    pub copy_limit: Option<u32>,
    /// The KMS keys that exist: key ids, key ARNs, alias names
    /// (`alias/x`) or alias ARNs. Empty: every key exists (moto checks
    /// none). A copy or volume under a key not listed fails as on EC2.
    #[serde(default)]
    pub kms_keys: Vec<String>,
    /// How long one day of a snapshot lock (LockDuration, and 1/24 of it
    /// an hour of cooling-off) lasts in the lab, so a test can see a lock
    /// expire. Default: a real day.
    #[serde(default, with = "opt_duration")]
    pub lock_day: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fault {
    /// An EC2 or S3 action name (S3's as the SDK names them: HeadObject,
    /// ListObjectsV2, ListMultipartUploads, UploadPartCopy, ...), `*` for
    /// every action, or a prefix ending in `*` (`CreateSnapshot*`:
    /// CreateSnapshot and CreateSnapshots).
    pub action: String,
    /// Which calls of the action (1-based count since the lab started or
    /// the rules were last set); empty means every call.
    #[serde(default)]
    pub calls: Vec<u32>,
    /// Fire with this probability instead of (or on top of) `calls`.
    pub probability: Option<f64>,
    /// Only calls whose query parameters have these values.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    pub reply: Reply,
    /// For `latency` (added before forwarding), `late` (added after the
    /// call was carried out) and `hang` (how long to hold the request;
    /// default 10 minutes).
    #[serde(default, with = "opt_duration")]
    pub latency: Option<Duration>,
    /// With a reply that forwards the call (`latency`, `late`, `rtt`):
    /// an S3 reply's body goes out at this many MiB/s, as one connection
    /// to S3 carries only so much however fast the link.
    pub mib_per_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum Reply {
    #[serde(rename = "throttle")]
    Throttle,
    #[serde(rename = "500")]
    Internal,
    #[serde(rename = "503")]
    Unavailable,
    /// EC2's 400 `UnsupportedOperation` (an action a Region, partition or
    /// account does not offer; CreateSnapshots where it is not available).
    #[serde(rename = "unsupported")]
    Unsupported,
    /// The caller's policy does not allow the action: S3's 403
    /// `AccessDenied`, EC2's 403 `UnauthorizedOperation`.
    #[serde(rename = "denied")]
    Denied,
    #[serde(rename = "hang")]
    Hang,
    /// Close the connection without a reply and without carrying the call
    /// out, as a reset on the way in does.
    #[serde(rename = "reset")]
    Reset,
    /// Carry the call out, then close the connection without a reply: a
    /// reset on the way back, after which the client cannot know whether
    /// its call happened.
    #[serde(rename = "lost")]
    Lost,
    #[serde(rename = "latency")]
    Latency,
    /// Carry the call out at once (moto and the lab's side effects), then
    /// hold the reply for `latency`: as EC2 does when a client gives up on
    /// a slow reply, the snapshot (or volume) exists anyway.
    #[serde(rename = "late")]
    Late,
    /// A round trip: the call is carried out when it arrives and the reply
    /// leaves no sooner than `latency` after the request came in, so the
    /// lab's own work (image copies) overlaps the wait, as EC2's does.
    #[serde(rename = "rtt")]
    RoundTrip,
}

/// Why a rules text was refused.
#[derive(Debug)]
pub(crate) enum RuleError {
    /// Not valid JSON rules (the text starts with `{`).
    Json(serde_json::Error),
    /// Not valid TOML rules.
    Toml(toml::de::Error),
    /// A fault's probability outside 0..1.
    Probability { action: String, probability: f64 },
    /// A fault's rate that is not a positive number.
    Rate { action: String, rate: f64 },
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::Json(e) => fmt::Display::fmt(e, f),
            RuleError::Toml(e) => fmt::Display::fmt(e, f),
            RuleError::Probability {
                action,
                probability,
            } => write!(
                f,
                "fault on {action}: probability {probability} is not in 0..1"
            ),
            RuleError::Rate { action, rate } => write!(
                f,
                "fault on {action}: mib_per_s {rate} is not a positive number"
            ),
        }
    }
}

impl std::error::Error for RuleError {
    /// The parser's message is this error's own (as if transparent), so
    /// the chain continues below it rather than repeating it.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuleError::Json(e) => e.source(),
            RuleError::Toml(e) => e.source(),
            RuleError::Probability { .. } | RuleError::Rate { .. } => None,
        }
    }
}

impl Rules {
    /// Parse rules as TOML, or JSON when the text starts with `{`.
    pub(crate) fn parse(text: &str) -> Result<Self, RuleError> {
        let rules: Rules = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(RuleError::Json)?
        } else {
            toml::from_str(text).map_err(RuleError::Toml)?
        };
        for f in &rules.faults {
            if let Some(rate) = f.mib_per_s.filter(|r| !(r.is_finite() && *r > 0.0)) {
                return Err(RuleError::Rate {
                    action: f.action.clone(),
                    rate,
                });
            }
            if let Some(p) = f.probability {
                if !(0.0..=1.0).contains(&p) {
                    return Err(RuleError::Probability {
                        action: f.action.clone(),
                        probability: p,
                    });
                }
            }
        }
        Ok(rules)
    }

    /// The fault for the `call`-th call of `action` with these parameters.
    /// `roll` is a uniform number in [0, 1) for probabilistic faults.
    pub(crate) fn fault_for(
        &self,
        action: &str,
        call: u32,
        params: &BTreeMap<String, String>,
        roll: f64,
    ) -> Option<&Fault> {
        self.faults.iter().find(|f| {
            (f.action == action
                || f.action == "*"
                || f.action
                    .strip_suffix('*')
                    .is_some_and(|prefix| action.starts_with(prefix)))
                && (f.calls.is_empty() || f.calls.contains(&call))
                && f.params.iter().all(|(k, v)| params.get(k) == Some(v))
                && f.probability.is_none_or(|p| roll < p)
        })
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let r = Rules::parse(
            r#"
snapshot_pending = "2s"
[[faults]]
action = "CreateVolume"
calls = [1, 2]
reply = "throttle"
[[faults]]
action = "AttachVolume"
params = { Device = "/dev/sdg" }
reply = "500"
[[faults]]
action = "CreateSnapshot"
probability = 0.5
reply = "latency"
latency = "50ms"
"#,
        )
        .unwrap();
        assert_eq!(r.snapshot_pending, Some(Duration::from_secs(2)));
        let none = BTreeMap::new();
        assert_eq!(
            r.fault_for("CreateVolume", 1, &none, 0.9).unwrap().reply,
            Reply::Throttle
        );
        assert!(r.fault_for("CreateVolume", 3, &none, 0.0).is_none());
        let sdg = BTreeMap::from([("Device".to_string(), "/dev/sdg".to_string())]);
        let sdf = BTreeMap::from([("Device".to_string(), "/dev/sdf".to_string())]);
        assert!(r.fault_for("AttachVolume", 7, &sdg, 0.0).is_some());
        assert!(r.fault_for("AttachVolume", 7, &sdf, 0.0).is_none());
        assert!(r.fault_for("CreateSnapshot", 1, &none, 0.4).is_some());
        assert!(r.fault_for("CreateSnapshot", 1, &none, 0.6).is_none());
        let all = Rules::parse("[[faults]]\naction = \"*\"\nreply = \"latency\"\n").unwrap();
        assert!(all.fault_for("DescribeVolumes", 9, &none, 0.0).is_some());
    }

    #[test]
    fn copies_keys_and_locks() {
        let r = Rules::parse(
            "copy_pending = \"2s\"\ncopy_limit = 3\nkms_keys = [\"alias/dr\"]\nlock_day = \"1s\"\n",
        )
        .unwrap();
        assert_eq!(r.copy_pending, Some(Duration::from_secs(2)));
        assert_eq!(r.copy_limit, Some(3));
        assert_eq!(r.kms_keys, ["alias/dr"]);
        assert_eq!(r.lock_day, Some(Duration::from_secs(1)));
        let none = Rules::default();
        assert!(none.copy_pending.is_none() && none.copy_limit.is_none());
        assert!(none.kms_keys.is_empty() && none.lock_day.is_none());
    }

    #[test]
    fn json_and_errors() {
        let r =
            Rules::parse(r#"{"faults": [{"action": "DetachVolume", "reply": "hang"}]}"#).unwrap();
        assert_eq!(r.faults[0].reply, Reply::Hang);
        assert!(Rules::parse("[[faults]]\naction = \"X\"\nreply = \"boom\"\n").is_err());
        assert!(
            Rules::parse("[[faults]]\naction = \"X\"\nreply = \"500\"\nprobability = 2.0\n")
                .is_err()
        );
    }
}
