//! `cli`: the flag values our own code parses (the other duration flags
//! go to `humantime::parse_duration` as they are).

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::proptests::{check, hostile_text};

#[test]
fn freeze_timeouts_and_log_levels_parse_or_are_errors() {
    let text = prop_oneof![
        hostile_text(),
        "[0-9]{1,25}(ns|us|ms|s|m|h|d|w|M|y|sec|min)( [0-9]{1,3}(ms|s))?",
    ];
    check("flag_values_any_text", text, |t| {
        if let Ok(d) = parse_freeze_timeout(&t) {
            let (lo, hi) = FREEZE_TIMEOUT_RANGE;
            prop_assert!(lo <= d && d <= hi);
        }
        let _ = parse_log_level(&t);
        Ok(())
    });
    let in_range = (100_000_000u64..=60_000_000_000).prop_map(Duration::from_nanos);
    check("freeze_timeout_read_back", in_range, |d| {
        let text = humantime::format_duration(d).to_string();
        prop_assert_eq!(parse_freeze_timeout(&text).ok(), Some(d));
        Ok(())
    });
}
