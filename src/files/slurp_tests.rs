//! tableslurp's pure choices: which index restores a file, and which is
//! the newest not after `--at`.

use chrono::TimeZone;

use super::*;

fn obj(key: &str, hour: u32) -> ObjectInfo {
    ObjectInfo {
        key: key.into(),
        size: 1,
        last_modified: Some(Utc.with_ymd_and_hms(2026, 11, 23, hour, 0, 0).unwrap()),
    }
}

#[test]
fn a_file_without_its_own_index_takes_the_first_after_it() {
    let objects = vec![
        obj("h:/d/a-Data.db", 2),
        obj("h:/d/a-Data.db-listdir.json", 2),
        obj("h:/d/b-Data.db", 3),
        obj("h:/d/c-Data.db", 4),
        obj("h:/d/c-Data.db-listdir.json", 4),
        obj("h:/d/d-Data.db-listdir.json", 6),
    ];
    let pick = |f: &str| index_for_file(&objects, f).map(|o| o.key.as_str());
    assert_eq!(pick("h:/d/a-Data.db"), Some("h:/d/a-Data.db-listdir.json"));
    assert_eq!(pick("h:/d/b-Data.db"), Some("h:/d/c-Data.db-listdir.json"));
    assert_eq!(pick("h:/d/nope-Data.db"), None);
}

#[test]
fn newest_index_not_after_the_time() {
    let objects = vec![
        obj("h:/d/a-Data.db", 9),
        obj("h:/d/a-Data.db-listdir.json", 1),
        obj("h:/d/b-Data.db-listdir.json", 5),
        obj("h:/d/c-Data.db-listdir.json", 8),
    ];
    assert_eq!(
        choose_index(&objects, None).unwrap().key,
        "h:/d/c-Data.db-listdir.json"
    );
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 6, 0, 0).unwrap();
    assert_eq!(
        choose_index(&objects, Some(at)).unwrap().key,
        "h:/d/b-Data.db-listdir.json"
    );
    let early = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
    assert!(choose_index(&objects, Some(early)).is_none());
}
