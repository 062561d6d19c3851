//! The lab's state: the emulator it fronts, the instance it plays, its
//! devices, rules and counters, and the life cycles it plays for moto.
//! Every part of the proxy works on this one value.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::Response;

use crate::devices::Devices;
use crate::moto::Moto;
use crate::replies::Resp;
use crate::rules::Rules;

/// When a resource was created/attached, for the life cycles moto skips.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Life {
    pub at: Instant,
    pub attached_at: Option<Instant>,
    pub error: bool,
}

/// A volume the lab saw created from a snapshot (`restore_speed.rs`).
#[derive(Debug, Clone)]
pub(crate) struct Init {
    pub at: Instant,
    /// Its provisioned initialization rate, MiB/s.
    pub rate: Option<u32>,
    /// Fully initialized at creation by fast snapshot restore.
    pub fast_restored: bool,
}

/// One snapshot's fast snapshot restore in one zone.
#[derive(Debug, Clone)]
pub(crate) struct Fsr {
    pub since: Instant,
    pub credits: u32,
}

/// What the lab knows of restore speed.
#[derive(Debug, Default)]
pub(crate) struct Speed {
    pub volumes: HashMap<String, Init>,
    /// By (snapshot, zone).
    pub fsr: BTreeMap<(String, String), Fsr>,
}

/// A copy CopySnapshot made through the lab (`copies.rs`): moto's copy
/// is `completed` at once, EC2's is `pending` for a while and may fail.
#[derive(Debug, Clone)]
pub(crate) struct CopyLife {
    pub at: Instant,
    /// How long it stays pending (the rule when it was made).
    pub pending: Duration,
    /// Its destination Region, whose copy limit it counts against.
    pub region: String,
    /// Why it ends in `error` (an unknown KMS key), if it does.
    pub error: Option<String>,
}

/// The copies the lab plays, and the CopySnapshot calls between their
/// limit check and their record (so two at once cannot both pass the
/// limit), by destination Region.
#[derive(Debug, Default)]
pub(crate) struct Copies {
    pub made: HashMap<String, CopyLife>,
    pub starting: BTreeMap<String, u32>,
}

/// A snapshot lock (`locks.rs`); moto has no LockSnapshot.
#[derive(Debug, Clone)]
pub(crate) struct Lock {
    pub region: String,
    pub compliance: bool,
    pub created: SystemTime,
    /// When the latest LockSnapshot call set it (the duration's start).
    pub started: SystemTime,
    pub expires: SystemTime,
    /// LockDuration in days, when the lock was set by one.
    pub days: Option<u32>,
    /// Compliance mode's cooling-off period: hours, and its end.
    pub cool_off: Option<(u32, SystemTime)>,
}

pub(crate) struct Lab {
    pub moto: Moto,
    pub instance_id: String,
    pub zone: String,
    pub region: String,
    pub devices: Mutex<Devices>,
    pub userdata: Mutex<Option<String>>,
    pub rules: Mutex<Rules>,
    pub calls: Mutex<BTreeMap<String, u32>>,
    /// PutObject and UploadPart bodies sent with no checksum, by operation
    /// (`checksums.rs`).
    pub unprotected: Mutex<BTreeMap<String, u32>>,
    /// Calls carried out whose reply a `late` fault is holding (or held),
    /// by action: a test that kills its client "after the call" waits for
    /// this rather than guessing when moto has done the work.
    pub held: Mutex<BTreeMap<String, u32>>,
    /// Replies to calls made with a ClientToken, by action and token: EC2
    /// answers a repeat with the first call's result and does the work
    /// once (moto does it again).
    tokens: Mutex<HashMap<(String, String), Bytes>>,
    pub volumes: Mutex<HashMap<String, Life>>,
    pub snapshots: Mutex<HashMap<String, Life>>,
    /// Initialization rates, fast snapshot restores (`restore_speed.rs`).
    pub speed: Mutex<Speed>,
    /// Copies made by CopySnapshot (`copies.rs`).
    pub copies: Mutex<Copies>,
    /// Snapshot locks by snapshot id (`locks.rs`).
    pub locks: Mutex<HashMap<String, Lock>>,
    seed: Mutex<u64>,
}

impl Lab {
    pub(crate) fn new(
        moto: Moto,
        instance_id: String,
        zone: String,
        region: String,
        devices: Devices,
        rules: Rules,
        userdata: Option<String>,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Self {
            moto,
            instance_id,
            zone,
            region,
            devices: Mutex::new(devices),
            userdata: Mutex::new(userdata),
            rules: Mutex::new(rules),
            calls: Mutex::new(BTreeMap::new()),
            unprotected: Mutex::new(BTreeMap::new()),
            held: Mutex::new(BTreeMap::new()),
            tokens: Mutex::new(HashMap::new()),
            volumes: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(HashMap::new()),
            speed: Mutex::new(Default::default()),
            copies: Mutex::new(Default::default()),
            locks: Mutex::new(HashMap::new()),
            seed: Mutex::new(seed),
        }
    }

    /// A uniform number in [0, 1) (xorshift; faults need no better).
    pub(crate) fn roll(&self) -> f64 {
        let mut s = self.seed.lock().expect("seed lock");
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn rules(&self) -> Rules {
        self.rules.lock().expect("rules lock").clone()
    }

    /// Count a call of `action`: which call (1-based) this one is.
    pub(crate) fn count_call(&self, action: &str) -> u32 {
        let mut calls = self.calls.lock().expect("calls lock");
        let n = calls.entry(action.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    /// The reply EC2 gives a call repeated with the same ClientToken: the
    /// first call's (a retry after a lost reply finds the volume it made).
    pub(crate) fn replay(
        &self,
        action: Option<&str>,
        params: &BTreeMap<String, String>,
    ) -> Option<Resp> {
        let key = (action?.to_string(), params.get("ClientToken")?.clone());
        let body = self.tokens.lock().expect("tokens lock").get(&key)?.clone();
        eprintln!(
            "lab: {} with ClientToken {} again: the first reply",
            key.0, key.1
        );
        let mut r = Response::new(crate::replies::whole(body));
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("text/xml"),
        );
        Some(r)
    }

    /// Keep a successful reply to a call made with a ClientToken.
    pub(crate) fn remember(
        &self,
        action: Option<&str>,
        params: &BTreeMap<String, String>,
        body: &Bytes,
    ) {
        if let (Some(action), Some(token)) = (action, params.get("ClientToken")) {
            self.tokens
                .lock()
                .expect("tokens lock")
                .insert((action.to_string(), token.clone()), body.clone());
        }
    }

    /// Count a PutObject or UploadPart body sent without a checksum.
    pub(crate) fn count_unprotected(&self, op: &str) {
        *self
            .unprotected
            .lock()
            .expect("unprotected lock")
            .entry(op.to_string())
            .or_insert(0) += 1;
    }
}
