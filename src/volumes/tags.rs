//! The tags snaptastic writes on volumes and snapshots, identical in keys
//! and format to 0.2.12 so either tool finds the other's:
//! `instance_id`, `mount_point`, the filter tags (`role`, `cluster`,
//! `environment` by default), `expires` and `created`.

use std::time::Duration;

use chrono::{DateTime, Local, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};

/// Tag keys of our own, beside snaptastic 0.2.12's, on volumes we create:
/// enough for a later run to recognise and adopt a volume a crashed run
/// left behind.
pub(crate) const TAG_PROFILE: &str = "snaptastic:profile";
pub(crate) const TAG_SOURCE: &str = "snaptastic:source";
pub(crate) const TAG_DEVICE: &str = "snaptastic:device";
pub(crate) const TAG_STATE: &str = "snaptastic:state";
/// On snapshots: the make-snapshots run that started them. Every snapshot
/// of one run shares it (one point in time); 0.2.12's carry none.
pub(crate) const TAG_RUN: &str = "snaptastic:run";
/// On snapshots: how make-snapshots started them, `CreateSnapshots` (one
/// request for the set) or `CreateSnapshot` (one per volume).
pub(crate) const TAG_CALL: &str = "snaptastic:call";
/// On a snapshot `fast-restore enable` turned fast snapshot restore on
/// for: until when (RFC 3339, UTC); `fast-restore disable --expired`
/// turns it off after that.
pub(crate) const TAG_FAST_RESTORE_UNTIL: &str = "snaptastic:fast-restore-until";
/// `snaptastic:source` of a volume created empty.
pub(crate) const SOURCE_EMPTY: &str = "empty";
/// `snaptastic:state`: created, not yet mounted (a crash here leaves a
/// volume the next run adopts).
pub(crate) const STATE_RESTORING: &str = "restoring";
/// `snaptastic:state`: attached and about to be mounted. Written before
/// mount(2), and the volume is not mounted if it cannot be: whatever
/// happens to the later `mounted` tag, a volume that may have held live
/// data never still says `restoring` (which `clean volumes` deletes).
pub(crate) const STATE_ATTACHED: &str = "attached";
pub(crate) const STATE_MOUNTED: &str = "mounted";
/// Detached on purpose by unmount-snapshots.
pub(crate) const STATE_DETACHED: &str = "detached";
/// Detached by unmount-snapshots --delete, about to be deleted: a run whose
/// DeleteVolume failed (or was cut short) leaves one that the next
/// `unmount-snapshots --delete` deletes, and a restore never adopts.
pub(crate) const STATE_DELETING: &str = "deleting";

/// Python's `str(datetime)`: `YYYY-MM-DD HH:MM:SS.ffffff`, the fraction
/// left out when it is zero, in the host's local time and without a zone,
/// as 0.2.12 wrote `created` and `expires`. Both tools on a host then
/// mean the same instant by the same text, and 0.2.12's own cleaner
/// (which compares with its local `now`) expires our snapshots on time.
/// The zone is the host's (`TZ`, else /etc/localtime); fleets that mix
/// zones should run in UTC, as EC2 instances do by default.
pub(crate) fn python_timestamp(t: DateTime<Utc>) -> String {
    python_timestamp_in(t, &Local)
}

/// `python_timestamp` in a given zone.
pub(crate) fn python_timestamp_in<Tz: TimeZone>(t: DateTime<Utc>, tz: &Tz) -> String {
    let local = t.with_timezone(tz).naive_local();
    if local.nanosecond() / 1000 == 0 {
        local.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

/// Read a timestamp written by either tool (with or without fraction), as
/// the host's local time. A time that a DST change makes ambiguous reads
/// as the earlier instant; one that it skips, as the instant an hour
/// later (within a DST hour either way).
pub(crate) fn parse_python_timestamp(s: &str) -> Option<DateTime<Utc>> {
    parse_python_timestamp_in(s, &Local)
}

/// `parse_python_timestamp` in a given zone.
pub(crate) fn parse_python_timestamp_in<Tz: TimeZone>(s: &str, tz: &Tz) -> Option<DateTime<Utc>> {
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s.trim(), f).ok())?;
    let local = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(early, _) => early,
        LocalResult::None => tz
            .from_local_datetime(&naive.checked_add_signed(chrono::Duration::hours(1))?)
            .earliest()?,
    };
    Some(local.with_timezone(&Utc))
}

/// The tag set for a new volume or snapshot, in 0.2.12's order of
/// precedence: `instance_id` and `mount_point`, overridden by filter tags,
/// overridden by the expiration tags.
/// When a snapshot was made: its `created` tag (either tool's,
/// sub-second), else EC2's start time.
pub(crate) fn created_at(s: &crate::cloud::SnapshotInfo) -> Option<DateTime<Utc>> {
    s.tag("created")
        .and_then(parse_python_timestamp)
        .or(s.start_time)
}

pub(crate) fn resource_tags(
    instance_id: &str,
    mount_point: &str,
    filter_values: &[(String, String)],
    now: DateTime<Utc>,
    retention: Duration,
) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| match tags.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v,
        None => tags.push((k.to_string(), v)),
    };
    set("instance_id", instance_id.to_string());
    set("mount_point", mount_point.to_string());
    for (k, v) in filter_values {
        set(k, v.clone());
    }
    let expires = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now);
    set("expires", python_timestamp(expires));
    set("created", python_timestamp(now));
    tags
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn timestamps_match_python_str_datetime() {
        let t = Utc.with_ymd_and_hms(2013, 8, 26, 14, 22, 2).unwrap();
        assert_eq!(python_timestamp(t), "2013-08-26 14:22:02");
        let t = t + chrono::Duration::microseconds(361_688);
        assert_eq!(python_timestamp(t), "2013-08-26 14:22:02.361688");
        assert_eq!(
            parse_python_timestamp("2013-08-26 14:22:02.361688"),
            Some(t)
        );
        assert_eq!(
            parse_python_timestamp("2013-08-26 14:22:02"),
            Some(Utc.with_ymd_and_hms(2013, 8, 26, 14, 22, 2).unwrap())
        );
        assert_eq!(parse_python_timestamp("yesterday"), None);
    }

    #[test]
    fn timestamps_are_local_time_without_a_zone() {
        let ny = chrono::FixedOffset::west_opt(5 * 3600).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 17, 0, 0).unwrap();
        assert_eq!(python_timestamp_in(t, &ny), "2026-11-25 12:00:00");
        assert_eq!(
            parse_python_timestamp_in("2026-11-25 12:00:00", &ny),
            Some(t)
        );
        // Read as UTC it would be five hours early: what mixing used to do.
        assert_ne!(
            parse_python_timestamp_in("2026-11-25 12:00:00", &Utc),
            Some(t)
        );
    }

    #[test]
    fn tag_set_and_precedence() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
        let filters = vec![
            ("role".to_string(), "solr".to_string()),
            ("cluster".to_string(), "c1".to_string()),
            ("environment".to_string(), "prod".to_string()),
        ];
        let tags = resource_tags(
            "i-1",
            "/mnt/solr",
            &filters,
            now,
            Duration::from_secs(7 * 86400),
        );
        let want: Vec<(String, String)> = [
            ("instance_id", "i-1"),
            ("mount_point", "/mnt/solr"),
            ("role", "solr"),
            ("cluster", "c1"),
            ("environment", "prod"),
            ("expires", "2026-11-30 10:00:00"),
            ("created", "2026-11-23 10:00:00"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(tags, want);

        // A filter tag named like a built-in key overrides it, as in 0.2.12.
        let odd = vec![("mount_point".to_string(), "/shared".to_string())];
        let tags = resource_tags("i-1", "/mnt/solr", &odd, now, Duration::from_secs(60));
        assert_eq!(tags[1], ("mount_point".into(), "/shared".into()));
        assert_eq!(tags.len(), 4);
    }
}

#[cfg(test)]
#[path = "../proptests/tags.rs"]
mod proptests;
