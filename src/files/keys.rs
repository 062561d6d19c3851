//! tablesnap 1.2.1's S3 layout, pure: object keys, the include/exclude
//! rule, and the `-listdir.json` index. Either tool restores the other's
//! backups because these match byte for byte.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;

/// `<prefix><name><separator><absolute path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyNaming {
    pub prefix: String,
    pub name: String,
    pub separator: String,
}

impl KeyNaming {
    pub(crate) fn key(&self, absolute: &Path) -> String {
        format!(
            "{}{}{}{}",
            self.prefix,
            self.name,
            self.separator,
            absolute.display()
        )
    }

    /// The index key written beside a data file's key.
    pub(crate) fn index_key(&self, data_file: &Path) -> String {
        format!("{}{INDEX_SUFFIX}", self.key(data_file))
    }

    /// A short file-name-safe id of this key space in `bucket` (bucket,
    /// prefix, name and separator hashed): the daemon's lock file and its
    /// digest record are one per key space.
    pub(crate) fn space_id(&self, bucket: &str) -> String {
        use crate::digest::Md5;
        let digest = Md5::digest(
            format!(
                "{bucket}\n{}\n{}\n{}",
                self.prefix, self.name, self.separator
            )
            .as_bytes(),
        );
        crate::cloud::s3::hex(&digest[..8])
    }

    /// The key prefix of everything under a directory.
    pub(crate) fn dir_prefix(&self, dir: &Path) -> String {
        let mut k = self.key(dir);
        if !k.ends_with('/') {
            k.push('/');
        }
        k
    }
}

pub(crate) const INDEX_SUFFIX: &str = "-listdir.json";

/// User metadata (`x-amz-meta-snaptastic-index: 1`) on every index our
/// tablesnap writes. Our indexes list only files already in S3, so a
/// listed name missing there is lost data; tablesnap 1.2.1's list the
/// directory before uploading (subdirectories, files never uploaded), so
/// there it is not. The mark lives in metadata, not in the JSON, because
/// 1.2.1's tools read the body as `{dir: [names]}` and would take any
/// extra member for another directory.
pub(crate) const INDEX_MARK_KEY: &str = "snaptastic-index";
pub(crate) const INDEX_MARK_VALUE: &str = "1";

/// The metadata to PUT an index with.
pub(crate) fn index_mark() -> std::collections::HashMap<String, String> {
    [(INDEX_MARK_KEY.to_string(), INDEX_MARK_VALUE.to_string())].into()
}

/// Whether an index's metadata says our tablesnap wrote it.
pub(crate) fn is_marked_index(metadata: &std::collections::HashMap<String, String>) -> bool {
    metadata.get(INDEX_MARK_KEY).map(String::as_str) == Some(INDEX_MARK_VALUE)
}

/// Which files are backed up. One rule, applied to the full path
/// everywhere (1.2.1 used the full path for uploads but the bare name for
/// the index, so the two disagreed).
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    /// 1.2.1's default: skip paths containing `-tmp` (Cassandra temp files).
    Default,
    /// Skip paths matching any of these.
    Exclude(Vec<Regex>),
    /// Take only paths matching one of these.
    Include(Vec<Regex>),
}

/// Why the `--exclude`/`--include` patterns make no [`Filter`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilterError {
    /// A pattern that is not a regular expression.
    #[error("bad pattern '{pattern}': {source}")]
    BadPattern {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("--exclude and --include cannot be used together")]
    Both,
}

impl Filter {
    pub(crate) fn new(exclude: &[String], include: &[String]) -> Result<Self, FilterError> {
        let compile = |pats: &[String]| -> Result<Vec<Regex>, FilterError> {
            pats.iter()
                .map(|p| {
                    Regex::new(p).map_err(|source| FilterError::BadPattern {
                        pattern: p.clone(),
                        source,
                    })
                })
                .collect()
        };
        match (exclude.is_empty(), include.is_empty()) {
            (true, true) => Ok(Filter::Default),
            (false, true) => Ok(Filter::Exclude(compile(exclude)?)),
            (true, false) => Ok(Filter::Include(compile(include)?)),
            (false, false) => Err(FilterError::Both),
        }
    }

    pub(crate) fn accepts(&self, path: &Path) -> bool {
        let s = path.to_string_lossy();
        match self {
            Filter::Default => !s.contains("-tmp"),
            Filter::Exclude(res) => !res.iter().any(|r| r.is_match(&s)),
            Filter::Include(res) => res.iter().any(|r| r.is_match(&s)),
        }
    }
}

/// Whether a file gets an index written beside it (1.2.1: names with
/// `Data.db`, one per sstable).
pub(crate) fn is_index_anchor(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().contains("Data.db"))
}

/// The index body: `{"<dir>": ["name", ...]}`, names sorted.
pub(crate) fn index_json(dir: &Path, names: &[String]) -> String {
    let mut names = names.to_vec();
    names.sort();
    let mut m = BTreeMap::new();
    m.insert(dir.display().to_string(), names);
    serde_json::to_string(&m).unwrap_or_default()
}

/// Read an index body: the directory and its names.
pub(crate) fn parse_index(text: &str) -> Result<(String, Vec<String>), String> {
    let m: BTreeMap<String, Vec<String>> =
        serde_json::from_str(text).map_err(|e| format!("not a listdir index: {e}"))?;
    let mut it = m.into_iter();
    match (it.next(), it.next()) {
        (Some(one), None) => Ok(one),
        _ => Err("a listdir index holds exactly one directory".into()),
    }
}

/// The `stat` metadata: `{"uid", "gid", "mode", "user", "group"}`, mode
/// as decimal st_mode, names where they resolve.
pub(crate) fn stat_json(
    uid: u32,
    gid: u32,
    mode: u32,
    user: Option<&str>,
    group: Option<&str>,
) -> String {
    let mut m = serde_json::Map::new();
    m.insert("uid".into(), uid.into());
    m.insert("gid".into(), gid.into());
    m.insert("mode".into(), mode.into());
    if let Some(u) = user {
        m.insert("user".into(), u.into());
    }
    if let Some(g) = group {
        m.insert("group".into(), g.into());
    }
    serde_json::Value::Object(m).to_string()
}

/// The `stat` metadata as read back from an object: every field optional
/// (anyone who can write the bucket wrote it), numbers that do not fit
/// dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatMeta {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub user: Option<String>,
    pub group: Option<String>,
}

impl StatMeta {
    /// Parse `stat` metadata; anything unreadable is an empty record.
    pub(crate) fn parse(s: &str) -> StatMeta {
        let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(s) else {
            return StatMeta::default();
        };
        let num = |k: &str| m.get(k)?.as_u64().and_then(|n| u32::try_from(n).ok());
        let text = |k: &str| m.get(k)?.as_str().map(str::to_string);
        StatMeta {
            mode: num("mode"),
            uid: num("uid"),
            gid: num("gid"),
            user: text("user"),
            group: text("group"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_metadata_reads_back_and_hostile_values_are_dropped() {
        let s = stat_json(1000, 1001, 0o104755, Some("cassandra"), None);
        assert_eq!(
            StatMeta::parse(&s),
            StatMeta {
                mode: Some(0o104755),
                uid: Some(1000),
                gid: Some(1001),
                user: Some("cassandra".into()),
                group: None
            }
        );
        let hostile = r#"{"mode": -1, "uid": 99999999999, "gid": "0", "user": 5}"#;
        assert_eq!(StatMeta::parse(hostile), StatMeta::default());
        assert_eq!(StatMeta::parse("not json"), StatMeta::default());
        assert_eq!(StatMeta::parse("[1]"), StatMeta::default());
    }

    fn naming() -> KeyNaming {
        KeyNaming {
            prefix: String::new(),
            name: "host1.example.com".into(),
            separator: ":".into(),
        }
    }

    #[test]
    fn keys_match_tablesnap() {
        let n = naming();
        let p = Path::new("/var/lib/cassandra/data/ks/tbl/ks-tbl-ka-7-Data.db");
        assert_eq!(
            n.key(p),
            "host1.example.com:/var/lib/cassandra/data/ks/tbl/ks-tbl-ka-7-Data.db"
        );
        assert_eq!(
            n.index_key(p),
            "host1.example.com:/var/lib/cassandra/data/ks/tbl/ks-tbl-ka-7-Data.db-listdir.json"
        );
        let custom = KeyNaming {
            prefix: "backups/".into(),
            name: "h".into(),
            separator: "#".into(),
        };
        assert_eq!(custom.key(Path::new("/d/f")), "backups/h#/d/f");
        assert_eq!(custom.dir_prefix(Path::new("/d")), "backups/h#/d/");
    }

    #[test]
    fn filters() {
        let f = Filter::new(&[], &[]).unwrap();
        assert!(f.accepts(Path::new("/d/ks-tbl-ka-1-Data.db")));
        assert!(!f.accepts(Path::new("/d/ks-tbl-tmp-ka-1-Data.db")));
        let ex = Filter::new(&["Filter\\.db$".into()], &[]).unwrap();
        assert!(
            !ex.accepts(Path::new("/d/x-Filter.db")) && ex.accepts(Path::new("/d/x-tmp-Data.db"))
        );
        let inc = Filter::new(&[], &["/ks/tA/".into()]).unwrap();
        assert!(
            inc.accepts(Path::new("/data/ks/tA/x")) && !inc.accepts(Path::new("/data/ks/tB/x"))
        );
        assert!(Filter::new(&["a".into()], &["b".into()]).is_err());
        assert!(Filter::new(&["(".into()], &[])
            .unwrap_err()
            .to_string()
            .starts_with("bad pattern '('"));
    }

    #[test]
    fn index_round_trip_and_shape() {
        let body = index_json(
            Path::new("/d/ks/tbl"),
            &["b-Data.db".into(), "a-Index.db".into()],
        );
        assert_eq!(body, r#"{"/d/ks/tbl":["a-Index.db","b-Data.db"]}"#);
        assert_eq!(
            parse_index(&body).unwrap(),
            (
                "/d/ks/tbl".to_string(),
                vec!["a-Index.db".to_string(), "b-Data.db".to_string()]
            )
        );
        assert!(parse_index("{}").is_err());
        assert!(
            is_index_anchor(Path::new("/d/ks-tbl-ka-7-Data.db"))
                && !is_index_anchor(Path::new("/d/x-Index.db"))
        );
    }

    #[test]
    fn stat_metadata() {
        let s = stat_json(0, 0, 33188, Some("root"), Some("root"));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["mode"], 33188);
        assert_eq!(v["user"], "root");
        assert_eq!(
            stat_json(5, 6, 1, None, None),
            r#"{"gid":6,"mode":1,"uid":5}"#
        );
    }
}

#[cfg(test)]
#[path = "../proptests/keys.rs"]
mod proptests;
