//! `[[profiles.NAME.copies]]`: the Regions that keep copies of a
//! profile's snapshot sets, and `archive_after`: where and how a
//! profile's snapshots are kept beyond the standard tier here. Pure, like
//! `validate.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use toml::Spanned;

use super::problem::Problems;
use super::profile::{CopyTarget, DEFAULT_COPIES_IN_FLIGHT, DEFAULT_RETENTION};
use super::raw::RawCopy;

/// Each target: a Region name, named once; a retention; copies in flight
/// 1-50. `retention` is the profile's (`None` when it was wrong, already
/// reported).
pub(super) fn validate_copies(
    raw: Option<Vec<Spanned<RawCopy>>>,
    retention: Option<Duration>,
    ctx: &str,
    p: &mut Problems,
) -> Vec<CopyTarget> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, c) in raw.unwrap_or_default().into_iter().enumerate() {
        let span = c.span();
        let c = c.into_inner();
        let cctx = format!("{ctx}, copies {}", i + 1);
        let Some(region) = c.region else {
            p.add(
                Some(span),
                &cctx,
                "region is missing (e.g. region = \"us-west-2\")",
            );
            continue;
        };
        let name = region.get_ref().clone();
        if !region_name(&name) {
            p.at(
                &region,
                &cctx,
                format!("region '{name}' is not a Region name (e.g. \"us-west-2\")"),
            );
        } else if !seen.insert(name.clone()) {
            p.at(&region, &cctx, format!("region '{name}' is listed twice"));
        }
        let kms_key_id = c.kms_key_id.and_then(|k| {
            if k.get_ref().trim().is_empty() {
                p.at(&k, &cctx, "kms_key_id is empty");
                None
            } else {
                Some(k.into_inner())
            }
        });
        let own = c
            .retention
            .and_then(|r| match humantime::parse_duration(r.get_ref()) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    p.at(&r, &cctx, "retention must be longer than zero");
                    None
                }
                Err(e) => {
                    p.at(
                        &r,
                        &cctx,
                        format!("retention '{}': {e} (e.g. \"30d\")", r.get_ref()),
                    );
                    None
                }
            });
        let max_in_flight = match c.max_in_flight {
            None => DEFAULT_COPIES_IN_FLIGHT,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(v @ 1..=50) => v,
                _ => {
                    p.at(
                        &n,
                        &cctx,
                        format!("max_in_flight must be 1 to 50, got {}", n.get_ref()),
                    );
                    DEFAULT_COPIES_IN_FLIGHT
                }
            },
        };
        out.push(CopyTarget {
            region: name,
            kms_key_id,
            retention: own.or(retention).unwrap_or(DEFAULT_RETENTION),
            max_in_flight,
        });
    }
    out
}

/// `archive_after`: a duration (`clean` also requires 90 more days of
/// retention before it archives anything).
pub(super) fn validate_archive_after(
    raw: Option<Spanned<String>>,
    ctx: &str,
    p: &mut Problems,
) -> Option<Duration> {
    let r = raw?;
    match humantime::parse_duration(r.get_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            p.at(
                &r,
                ctx,
                format!("archive_after '{}': {e} (e.g. \"90d\")", r.get_ref()),
            );
            None
        }
    }
}

/// `us-west-2`, `eu-central-1`, `us-gov-west-1`, `ap-southeast-4`.
fn region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

#[cfg(test)]
mod tests {
    use super::region_name;

    #[test]
    fn region_names() {
        for ok in [
            "us-west-2",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(region_name(ok), "{ok}");
        }
        for bad in ["us-west", "US-west-2", "us-west-2a", "", "us--2", "west2"] {
            assert!(!region_name(bad), "{bad}");
        }
    }
}
