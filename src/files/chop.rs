//! `tablechop`: delete old indexes and the files no kept index lists.
//!
//! Unlike tablechop 1.2.1 (whose open bug deleted the files of tables that
//! had not changed for AGE days), the newest index of every directory is
//! always kept, a file listed by any kept index is never deleted, and
//! objects younger than a grace period survive even if no index lists
//! them yet (uploads in flight). The plan is pure; ages are in UTC.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};

use super::keys::{parse_index, KeyNaming, INDEX_SUFFIX};
use super::settings::ChopSettings;
use crate::cloud::s3::{ObjectInfo, S3};

/// Keep or delete one object, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub key: String,
    pub delete: bool,
    pub reason: String,
}

/// Which indexes to keep: per directory the newest, plus every index
/// younger than `age`. Returns the kept index keys.
pub(crate) fn kept_indexes(
    objects: &[ObjectInfo],
    age: Duration,
    now: DateTime<Utc>,
) -> BTreeSet<String> {
    let mut newest: BTreeMap<String, &ObjectInfo> = BTreeMap::new();
    let mut kept = BTreeSet::new();
    for o in objects.iter().filter(|o| o.key.ends_with(INDEX_SUFFIX)) {
        let dir = index_dir(&o.key);
        let replace = newest
            .get(&dir)
            .is_none_or(|n| (o.last_modified, &o.key) > (n.last_modified, &n.key));
        if replace {
            newest.insert(dir, o);
        }
        if o.last_modified.is_some_and(|t| younger(t, age, now)) {
            kept.insert(o.key.clone());
        }
    }
    kept.extend(newest.values().map(|o| o.key.clone()));
    kept
}

/// Directories of tables dropped long ago: indexed, and with no object
/// (index or data) newer than `forget_after`. Only with the operator's
/// explicit `--forget-after`: without it the newest index of every
/// directory, and what it lists, is kept forever.
pub(crate) fn dropped_dirs(
    objects: &[ObjectInfo],
    forget_after: Option<Duration>,
    now: DateTime<Utc>,
) -> BTreeSet<String> {
    let Some(limit) = forget_after else {
        return BTreeSet::new();
    };
    let mut latest: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
    let mut indexed = BTreeSet::new();
    for o in objects {
        let dir = index_dir(&o.key);
        if o.key.ends_with(INDEX_SUFFIX) {
            indexed.insert(dir.clone());
        }
        let slot = latest.entry(dir).or_insert(None);
        if o.last_modified > *slot {
            *slot = o.last_modified;
        }
    }
    latest
        .into_iter()
        .filter(|(dir, t)| indexed.contains(dir) && t.is_some_and(|t| !younger(t, limit, now)))
        .map(|(dir, _)| dir)
        .collect()
}

/// Directories `--forget-after` spares only because their newest index is
/// younger than the limit while all their data is older: a running
/// tablesnap rewrites each watched directory's index daily
/// (files/refresh.rs), so these are live tables that are merely quiet.
/// Each with its newest index's time, so the run can say why a table idle
/// that long was kept.
pub(crate) fn quiet_but_watched(
    objects: &[ObjectInfo],
    forget_after: Option<Duration>,
    now: DateTime<Utc>,
) -> BTreeMap<String, DateTime<Utc>> {
    let Some(limit) = forget_after else {
        return BTreeMap::new();
    };
    // Per directory: (newest index, newest data).
    type Newest = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let mut newest: BTreeMap<String, Newest> = BTreeMap::new();
    for o in objects {
        let slot = newest.entry(index_dir(&o.key)).or_default();
        let t = if o.key.ends_with(INDEX_SUFFIX) {
            &mut slot.0
        } else {
            &mut slot.1
        };
        *t = (*t).max(o.last_modified);
    }
    newest
        .into_iter()
        .filter_map(|(dir, (index, data))| {
            let index = index.filter(|t| younger(*t, limit, now))?;
            data.is_none_or(|t| !younger(t, limit, now))
                .then_some((dir, index))
        })
        .collect()
}

/// The directory part of an index key (everything before the last '/').
fn index_dir(key: &str) -> String {
    key.rsplit_once('/')
        .map_or(String::new(), |(d, _)| d.to_string())
}

fn younger(t: DateTime<Utc>, limit: Duration, now: DateTime<Utc>) -> bool {
    now.signed_duration_since(t)
        .to_std()
        .map_or(true, |a| a < limit)
}

/// Decide for every object. `listed` holds the data keys the kept indexes
/// name (see `listed_keys`).
///
/// Everything in a `dropped` directory goes (see `dropped_dirs`).
pub(crate) fn plan(
    objects: &[ObjectInfo],
    kept: &BTreeSet<String>,
    listed: &BTreeSet<String>,
    dropped: &BTreeSet<String>,
    grace: Duration,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    // When each directory's newest index was written: data uploaded after
    // it (a crash before indexing, a restart without -B) may be the
    // newest data there is, whatever its age.
    let mut newest_index: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
    for o in objects.iter().filter(|o| o.key.ends_with(INDEX_SUFFIX)) {
        let slot = newest_index.entry(index_dir(&o.key)).or_insert(None);
        if o.last_modified > *slot {
            *slot = o.last_modified;
        }
    }
    objects
        .iter()
        .map(|o| {
            let (delete, reason) = if dropped.contains(&index_dir(&o.key)) {
                (
                    true,
                    "a table dropped long ago: nothing in its directory is newer than --forget-after"
                        .to_string(),
                )
            } else if o.key.ends_with(INDEX_SUFFIX) {
                if kept.contains(&o.key) {
                    (
                        false,
                        "index kept (newest of its directory, or younger than the age)".to_string(),
                    )
                } else {
                    (true, "old index".to_string())
                }
            } else if listed.contains(&o.key) {
                (false, "listed by a kept index".to_string())
            } else if !newest_index.contains_key(&index_dir(&o.key)) {
                // No index governs this directory (--without-index, no
                // sstables, commitlog archives): nothing says it is unused.
                (false, "its directory has no index".to_string())
            } else if newest_index
                .get(&index_dir(&o.key))
                .is_some_and(|newest| o.last_modified.is_none() || o.last_modified >= *newest)
            {
                (
                    false,
                    "uploaded after its directory's newest index (not indexed yet)".to_string(),
                )
            } else if o.last_modified.is_none_or(|t| younger(t, grace, now)) {
                (
                    false,
                    "younger than the grace period (may not be indexed yet)".to_string(),
                )
            } else {
                (true, "listed by no kept index".to_string())
            };
            Decision {
                key: o.key.clone(),
                delete,
                reason,
            }
        })
        .collect()
}

/// The data keys an index lists.
pub(crate) fn listed_keys(naming: &KeyNaming, index_body: &str) -> Result<Vec<String>, String> {
    let (dir, names) = parse_index(index_body)?;
    Ok(names
        .iter()
        .map(|n| naming.key(&Path::new(&dir).join(n)))
        .collect())
}

/// The keys the `kept` indexes list, `jobs` indexes read at once. Any
/// index that cannot be read stops the run before anything is deleted.
async fn read_indexes(
    s3: &S3,
    naming: &KeyNaming,
    kept: &BTreeSet<String>,
    jobs: usize,
) -> Result<BTreeSet<String>> {
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut reads = tokio::task::JoinSet::new();
    for key in kept {
        let (s3, key, permits) = (s3.clone(), key.clone(), permits.clone());
        reads.spawn(async move {
            let _p = permits.acquire_owned().await;
            let body = s3.get_bytes(&key).await;
            (key, body)
        });
    }
    let mut listed = BTreeSet::new();
    while let Some(done) = reads.join_next().await {
        let (key, body) = done?;
        let body = body.with_context(|| format!("reading index {key}"))?;
        let keys = listed_keys(naming, &String::from_utf8_lossy(&body))
            .map_err(|e| anyhow::anyhow!("index {key}: {e}"))?;
        listed.extend(keys);
    }
    Ok(listed)
}

pub(crate) async fn run(args: &ChopSettings) -> Result<ExitCode> {
    let s3 = super::connect(args.s3.connection(&args.bucket)).await;
    let naming = args.s3.naming();
    let path = std::path::absolute(&args.path)?;
    // The directory with a trailing '/': `/ks1` must not match `/ks10`.
    let prefix = naming.dir_prefix(&path);
    let (objects, _) = s3
        .list(&prefix, None)
        .await
        .with_context(|| format!("listing s3://{}/{prefix}", args.bucket))?;
    let now = Utc::now();
    let age = Duration::try_from_secs_f64(args.age.max(0.0) * 86_400.0).unwrap_or(Duration::MAX);
    let forget_after = args
        .forget_after
        .map(|d| Duration::try_from_secs_f64(d.max(0.0) * 86_400.0).unwrap_or(Duration::MAX));
    if let Some(w) = args
        .forget_after
        .and_then(super::refresh::forget_after_warning)
    {
        tracing::warn!("{w}");
    }
    let dropped = dropped_dirs(&objects, forget_after, now);
    for (dir, index) in quiet_but_watched(&objects, forget_after, now) {
        tracing::info!(
            "{dir}: no data newer than --forget-after, but its index was rewritten at {index} \
             (a running tablesnap watches it): not forgotten"
        );
    }
    let mut kept = kept_indexes(&objects, age, now);
    kept.retain(|k| !dropped.contains(&index_dir(k)));
    let listed = read_indexes(&s3, &naming, &kept, args.jobs.unwrap_or(10)).await?;
    let decisions = plan(&objects, &kept, &listed, &dropped, args.grace, now);
    // Indexes go first: a failure half way leaves unlisted files (the next
    // run deletes them), never an index naming files that are gone.
    let mut doomed: Vec<String> = decisions
        .iter()
        .filter(|d| d.delete)
        .map(|d| d.key.clone())
        .collect();
    doomed.sort_by_key(|k| !k.ends_with(INDEX_SUFFIX));
    for d in &decisions {
        println!(
            "{}  {}: {}",
            if d.delete { "delete" } else { "keep  " },
            d.key,
            d.reason
        );
    }
    if args.dry_run {
        println!(
            "{} of {} objects to delete (dry run: nothing deleted)",
            doomed.len(),
            decisions.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let failed = s3.delete(&doomed).await.with_context(|| {
        format!(
            "deleting {} object(s) from {} (first {})",
            doomed.len(),
            args.bucket,
            doomed.first().map_or("", String::as_str)
        )
    })?;
    let mut failures = crate::tasks::Failures::default();
    for (k, why) in &failed {
        println!("FAILED  {k}: {why}");
        failures.add(k, format!("DeleteObjects: {why}"));
    }
    println!(
        "deleted {} of {} objects",
        doomed.len() - failed.len(),
        decisions.len()
    );
    failures.finish()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(days_ago: i64) -> Option<DateTime<Utc>> {
        Some(
            Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
                - chrono::Duration::days(days_ago),
        )
    }

    fn obj(key: &str, days_ago: i64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 1,
            last_modified: at(days_ago),
        }
    }

    fn naming() -> KeyNaming {
        KeyNaming {
            prefix: String::new(),
            name: "h".into(),
            separator: ":".into(),
        }
    }

    /// Run the whole plan with index bodies given per index key.
    fn decide(objects: &[ObjectInfo], bodies: &[(&str, &str)], age_days: u64) -> Vec<String> {
        let now = at(0).unwrap();
        let kept = kept_indexes(objects, Duration::from_secs(age_days * 86_400), now);
        let mut listed = BTreeSet::new();
        for k in &kept {
            let body = bodies
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, b)| *b)
                .unwrap_or("{\"/x\": []}");
            listed.extend(listed_keys(&naming(), body).unwrap());
        }
        plan(
            objects,
            &kept,
            &listed,
            &BTreeSet::new(),
            Duration::from_secs(86_400),
            now,
        )
        .into_iter()
        .map(|d| format!("{} {}", if d.delete { "delete" } else { "keep" }, d.key))
        .collect()
    }

    #[test]
    fn a_table_dropped_long_ago_goes_only_when_asked() {
        let objects = vec![
            obj("h:/d/old/o1-Data.db", 400),
            obj("h:/d/old/o1-Data.db-listdir.json", 400),
            obj("h:/d/cold/c1-Data.db", 300),
            obj("h:/d/cold/c1-Data.db-listdir.json", 300),
            obj("h:/d/cold/c2-Data.db", 10),
            obj("h:/d/live/l1-Data.db-listdir.json", 1),
        ];
        let now = at(0).unwrap();
        let year = Some(Duration::from_secs(365 * 86_400));
        // Without the option nothing is dropped.
        assert!(dropped_dirs(&objects, None, now).is_empty());
        // `cold` has a file only ten days old: not dropped.
        let dropped = dropped_dirs(&objects, year, now);
        assert_eq!(dropped, BTreeSet::from(["h:/d/old".to_string()]));
        let kept = BTreeSet::new();
        let decisions = plan(
            &objects,
            &kept,
            &BTreeSet::new(),
            &dropped,
            Duration::ZERO,
            now,
        );
        let deleted: Vec<&str> = decisions
            .iter()
            .filter(|d| d.delete)
            .map(|d| d.key.as_str())
            .collect();
        assert!(deleted.contains(&"h:/d/old/o1-Data.db"), "{deleted:?}");
        assert!(deleted.contains(&"h:/d/old/o1-Data.db-listdir.json"));
        assert!(!deleted
            .iter()
            .any(|k| k.contains("/cold/") && k.contains("c2")));
    }

    #[test]
    fn a_quiet_live_table_keeps_everything_and_a_dropped_one_goes() {
        // Both written once 400 days ago; the live one's daemon rewrote
        // its index (same key) today, the dropped one's directory is gone.
        let mut objects = vec![
            obj("h:/d/live/l1-Data.db", 400),
            obj("h:/d/live/l1-Data.db-listdir.json", 0),
            obj("h:/d/gone/g1-Data.db", 400),
            obj("h:/d/gone/g1-Data.db-listdir.json", 400),
        ];
        let now = at(0).unwrap();
        let month = Some(Duration::from_secs(30 * 86_400));
        let dropped = dropped_dirs(&objects, month, now);
        assert_eq!(dropped, BTreeSet::from(["h:/d/gone".to_string()]));
        assert_eq!(
            quiet_but_watched(&objects, month, now),
            BTreeMap::from([("h:/d/live".to_string(), at(0).unwrap())])
        );
        let mut kept = kept_indexes(&objects, Duration::from_secs(7 * 86_400), now);
        kept.retain(|k| !dropped.contains(&index_dir(k)));
        let listed = listed_keys(&naming(), r#"{"/d/live": ["l1-Data.db"]}"#)
            .unwrap()
            .into_iter()
            .collect();
        let decisions: Vec<String> = plan(&objects, &kept, &listed, &dropped, Duration::ZERO, now)
            .into_iter()
            .map(|d| format!("{} {}", if d.delete { "delete" } else { "keep" }, d.key))
            .collect();
        assert_eq!(
            decisions,
            [
                "keep h:/d/live/l1-Data.db",
                "keep h:/d/live/l1-Data.db-listdir.json",
                "delete h:/d/gone/g1-Data.db",
                "delete h:/d/gone/g1-Data.db-listdir.json",
            ]
        );
        // Without the option, or with data young enough, nothing is said.
        assert!(quiet_but_watched(&objects, None, now).is_empty());
        objects.push(obj("h:/d/live/l2-Data.db", 2));
        assert!(quiet_but_watched(&objects, month, now).is_empty());
    }

    #[test]
    fn a_cold_table_keeps_its_files() {
        // Table A changed 30 days ago and never since; B changes daily.
        let objects = vec![
            obj("h:/d/A/a1-Data.db", 30),
            obj("h:/d/A/a1-Data.db-listdir.json", 30),
            obj("h:/d/B/b1-Data.db", 20),
            obj("h:/d/B/b1-Data.db-listdir.json", 20),
            obj("h:/d/B/b2-Data.db", 2),
            obj("h:/d/B/b2-Data.db-listdir.json", 2),
        ];
        let bodies = [
            (
                "h:/d/A/a1-Data.db-listdir.json",
                r#"{"/d/A": ["a1-Data.db"]}"#,
            ),
            (
                "h:/d/B/b1-Data.db-listdir.json",
                r#"{"/d/B": ["b1-Data.db"]}"#,
            ),
            (
                "h:/d/B/b2-Data.db-listdir.json",
                r#"{"/d/B": ["b2-Data.db"]}"#,
            ),
        ];
        assert_eq!(
            decide(&objects, &bodies, 7),
            [
                "keep h:/d/A/a1-Data.db",
                "keep h:/d/A/a1-Data.db-listdir.json",
                "delete h:/d/B/b1-Data.db",
                "delete h:/d/B/b1-Data.db-listdir.json",
                "keep h:/d/B/b2-Data.db",
                "keep h:/d/B/b2-Data.db-listdir.json",
            ]
        );
    }

    #[test]
    fn table() {
        type Case = (
            &'static str,
            Vec<ObjectInfo>,
            Vec<(&'static str, &'static str)>,
            u64,
            Vec<&'static str>,
        );
        let mut cases: Vec<Case> = vec![
            (
                "a file still listed by a kept index survives however old",
                vec![
                    obj("h:/d/t/old-Data.db", 90),
                    obj("h:/d/t/new-Data.db", 1),
                    obj("h:/d/t/new-Data.db-listdir.json", 1),
                ],
                vec![(
                    "h:/d/t/new-Data.db-listdir.json",
                    r#"{"/d/t": ["old-Data.db", "new-Data.db"]}"#,
                )],
                7,
                vec![
                    "keep h:/d/t/old-Data.db",
                    "keep h:/d/t/new-Data.db",
                    "keep h:/d/t/new-Data.db-listdir.json",
                ],
            ),
            (
                "an in-flight upload (young, unindexed) survives; an old orphan goes",
                vec![
                    obj("h:/d/t/x-Data.db-listdir.json", 1),
                    obj("h:/d/t/inflight-Data.db", 0),
                    obj("h:/d/t/orphan-Data.db", 5),
                ],
                vec![],
                7,
                vec![
                    "keep h:/d/t/x-Data.db-listdir.json",
                    "keep h:/d/t/inflight-Data.db",
                    "delete h:/d/t/orphan-Data.db",
                ],
            ),
            (
                "data uploaded after the newest index survives however old; older orphans go",
                vec![
                    obj("h:/d/t/x-Data.db-listdir.json", 30),
                    obj("h:/d/t/after-Data.db", 10),
                    obj("h:/d/t/orphan-Data.db", 40),
                ],
                vec![],
                7,
                vec![
                    "keep h:/d/t/x-Data.db-listdir.json",
                    "keep h:/d/t/after-Data.db",
                    "delete h:/d/t/orphan-Data.db",
                ],
            ),
            (
                "age 0 (or negative) still keeps the newest index of each directory",
                vec![
                    obj("h:/d/t/a-Data.db", 3),
                    obj("h:/d/t/a-Data.db-listdir.json", 3),
                    obj("h:/d/t/b-Data.db-listdir.json", 2),
                ],
                vec![(
                    "h:/d/t/b-Data.db-listdir.json",
                    r#"{"/d/t": ["a-Data.db"]}"#,
                )],
                0,
                vec![
                    "keep h:/d/t/a-Data.db",
                    "delete h:/d/t/a-Data.db-listdir.json",
                    "keep h:/d/t/b-Data.db-listdir.json",
                ],
            ),
        ];
        cases.push((
            "a directory no index governs keeps everything",
            vec![
                obj("h:/d/commitlogs/CommitLog-1.log", 90),
                obj("h:/d/t/x-Data.db-listdir.json", 1),
            ],
            vec![],
            7,
            vec![
                "keep h:/d/commitlogs/CommitLog-1.log",
                "keep h:/d/t/x-Data.db-listdir.json",
            ],
        ));
        for (name, objects, bodies, age, want) in cases {
            assert_eq!(decide(&objects, &bodies, age), want, "{name}");
        }
    }
}
