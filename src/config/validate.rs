//! Raw TOML -> validated `Config`. Pure: it reads no files and touches no
//! host state, and it reports every problem it finds, each with the place
//! (`file:line:col`), profile and volume at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::problem::{Problem, Problems};
use super::profile::{
    Config, DescriptionStyle, HookPoint, Hooks, Prewarm, Profile, Tablesnap, Template,
    VolumeSource, DEFAULT_DESCRIPTION, DEFAULT_FILTER_TAGS, DEFAULT_RETENTION,
    DEFAULT_SNAPSHOT_OWNERS,
};
use super::raw::{RawConfig, RawHook, RawProfile, RawTablesnap, RawVolume};
use super::validate_volume::validate_volumes;

/// Validate a whole file. `Err` holds every problem found.
pub(super) fn validate_config(raw: RawConfig, path: &Path) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    let region = raw.region.as_ref().and_then(|r| {
        let ok = !r.get_ref().is_empty()
            && r.get_ref()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            p.at(
                r,
                "",
                format!(
                    "region '{}' is not a region name like eu-west-1",
                    r.get_ref()
                ),
            );
        }
        ok.then(|| r.get_ref().clone())
    });
    let device_root = match &raw.device_root {
        Some(d) if !Path::new(d.get_ref()).is_absolute() => {
            p.at(
                d,
                "",
                format!("device_root '{}' must be an absolute path", d.get_ref()),
            );
            PathBuf::from("/dev")
        }
        Some(d) => PathBuf::from(d.get_ref()),
        None => PathBuf::from("/dev"),
    };
    if raw.profiles.is_empty() && raw.tablesnap.is_none() {
        p.add(None, "", "no profiles defined: add a [profiles.NAME] table");
    }
    let tablesnap = raw
        .tablesnap
        .map(|t| validate_tablesnap(t.into_inner(), &mut p));
    let mut profiles = BTreeMap::new();
    for (name, profile) in raw.profiles {
        let ctx = format!("profile '{}'", name.get_ref());
        if !valid_name(name.get_ref()) {
            p.at(
                &name,
                &ctx,
                "profile names may hold letters, digits, '_', '-' and '.'",
            );
        }
        if let Some(prof) = validate_profile(name.get_ref(), profile, &ctx, &mut p) {
            profiles.insert(name.into_inner(), prof);
        }
    }
    if p.list.is_empty() {
        return Ok(Config {
            path: path.to_path_buf(),
            region,
            device_root,
            profiles,
            tablesnap,
        });
    }
    // In file order, as an editor would walk them.
    p.list
        .sort_by_key(|x| x.span.as_ref().map_or(0, |s| s.start));
    Err(p.list)
}

fn validate_tablesnap(raw: RawTablesnap, p: &mut Problems) -> Tablesnap {
    let ctx = "[tablesnap]";
    let mut count = |v: Option<Spanned<i64>>, what: &str, min: i64| -> Option<u64> {
        let v = v?;
        if *v.get_ref() < min {
            p.at(
                &v,
                ctx,
                format!("{what} must be at least {min}, got {}", v.get_ref()),
            );
            return None;
        }
        u64::try_from(*v.get_ref()).ok()
    };
    let threads = count(raw.threads, "threads", 1).and_then(|n| usize::try_from(n).ok());
    let max_upload_size = count(raw.max_upload_size, "max_upload_size", 1);
    let multipart_chunk_size = count(raw.multipart_chunk_size, "multipart_chunk_size", 5);
    let retries = count(raw.retries, "retries", 0).and_then(|n| u32::try_from(n).ok());
    let mut paths = Vec::new();
    for path in raw.paths.unwrap_or_default() {
        if !Path::new(path.get_ref()).is_absolute() {
            p.at(
                &path,
                ctx,
                format!("path '{}' must be absolute", path.get_ref()),
            );
        }
        paths.push(PathBuf::from(path.into_inner()));
    }
    let mut listen_events = Vec::new();
    for e in raw.listen_events.unwrap_or_default() {
        if !["IN_MOVED_TO", "IN_CLOSE_WRITE", "IN_CREATE"].contains(&e.get_ref().as_str()) {
            p.at(
                &e,
                ctx,
                format!(
                    "unknown listen event '{}'; use IN_MOVED_TO, IN_CLOSE_WRITE or IN_CREATE",
                    e.get_ref()
                ),
            );
        }
        listen_events.push(e.into_inner());
    }
    if let Some(sse) = &raw.sse {
        if !["AES256", "aws:kms"].contains(&sse.get_ref().as_str()) {
            p.at(
                sse,
                ctx,
                format!("sse '{}' is not AES256 or aws:kms", sse.get_ref()),
            );
        }
    }
    let (exclude, include) = (
        raw.exclude.unwrap_or_default(),
        raw.include.unwrap_or_default(),
    );
    if !exclude.is_empty() && !include.is_empty() {
        p.add(None, ctx, "set exclude or include, not both");
    }
    if let Some(b) = raw.bucket.as_ref().filter(|b| b.get_ref().is_empty()) {
        p.at(b, ctx, "bucket is empty");
    }
    if let Some(d) = raw
        .state_dir
        .as_ref()
        .filter(|d| !Path::new(d.get_ref()).is_absolute())
    {
        p.at(
            d,
            ctx,
            format!("state_dir '{}' must be absolute", d.get_ref()),
        );
    }
    let stall_timeout =
        raw.stall_timeout
            .and_then(|t| match humantime::parse_duration(t.get_ref()) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    p.at(&t, ctx, "stall_timeout must be longer than zero");
                    None
                }
                Err(e) => {
                    p.at(
                        &t,
                        ctx,
                        format!("stall_timeout '{}': {e} (e.g. \"30s\")", t.get_ref()),
                    );
                    None
                }
            });
    Tablesnap {
        bucket: raw.bucket.map(Spanned::into_inner),
        paths,
        recursive: raw.recursive.unwrap_or(false),
        auto_add: raw.auto_add.unwrap_or(false),
        backup: raw.backup.unwrap_or(false),
        without_index: raw.without_index.unwrap_or(false),
        prefix: raw.prefix,
        name: raw.name,
        keyname_separator: raw.keyname_separator,
        threads,
        exclude,
        include,
        listen_events,
        max_upload_size,
        multipart_chunk_size,
        aws_region: raw.aws_region,
        endpoint_url: raw.endpoint_url,
        s3_force_path_style: raw.s3_force_path_style.unwrap_or(false),
        storage_class: raw.storage_class,
        sse: raw.sse.map(Spanned::into_inner),
        sse_kms_key_id: raw.sse_kms_key_id,
        retries,
        state_dir: raw.state_dir.map(|d| PathBuf::from(d.into_inner())),
        md5_on_start: raw.md5_on_start.unwrap_or(false),
        stall_timeout,
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// One profile; `None` if anything in it is wrong (all of it reported).
fn validate_profile(
    name: &str,
    raw: Spanned<RawProfile>,
    ctx: &str,
    p: &mut Problems,
) -> Option<Profile> {
    let span = raw.span();
    let raw = raw.into_inner();
    let before = p.list.len();

    let volumes = validate_volume_source(raw.volumes, raw.volumes_from_userdata, span, ctx, p);
    let filter_tags = validate_filter_tags(raw.filter_tags, ctx, p);
    let description = validate_description(raw.description, ctx, p);
    let description_style = validate_description_style(raw.description_style, ctx, p);
    let retention = validate_retention(raw.snapshot_retention, ctx, p);
    let snapshot_owners = validate_snapshot_owners(raw.snapshot_owners, ctx, p);
    let prewarm = validate_prewarm(raw.prewarm, ctx, p);
    let copies = super::validate_copies::validate_copies(raw.copies, retention, ctx, p);
    let archive_after = super::validate_copies::validate_archive_after(raw.archive_after, ctx, p);
    let hooks = validate_hooks(raw.hooks, ctx, p);

    if p.list.len() != before {
        return None;
    }
    Some(Profile {
        name: name.to_string(),
        volumes: volumes?,
        filter_tags,
        description: description?,
        description_style: description_style?,
        retention: retention?,
        snapshot_owners,
        prewarm,
        copies,
        archive_after,
        hooks,
    })
}

/// `prewarm`: `"block"` or `"off"` (the default).
fn validate_prewarm(raw: Option<Spanned<String>>, ctx: &str, p: &mut Problems) -> Prewarm {
    let Some(w) = raw else {
        return Prewarm::Off;
    };
    Prewarm::parse(w.get_ref()).unwrap_or_else(|| {
        p.at(
            &w,
            ctx,
            format!("prewarm must be {}, got {:?}", Prewarm::NAMES, w.get_ref()),
        );
        Prewarm::Off
    })
}

/// Where the profile's volumes come from: exactly one of `volumes` (checked
/// volume by volume) or `volumes_from_userdata` (a key, read at run time).
/// `span` is the profile's table, for the problems that have no key to
/// point at.
fn validate_volume_source(
    volumes: Option<Vec<Spanned<RawVolume>>>,
    from_userdata: Option<Spanned<String>>,
    span: Range<usize>,
    ctx: &str,
    p: &mut Problems,
) -> Option<VolumeSource> {
    match (volumes, from_userdata) {
        (Some(_), Some(key)) => {
            p.at(
                &key,
                ctx,
                "set either volumes or volumes_from_userdata, not both",
            );
            None
        }
        (None, None) => {
            p.add(
                Some(span),
                ctx,
                "has no volumes: add [[profiles.NAME.volumes]] tables or volumes_from_userdata = \"KEY\"",
            );
            None
        }
        (None, Some(key)) => {
            if key.get_ref().is_empty() {
                p.at(&key, ctx, "volumes_from_userdata needs a userdata key");
            }
            Some(VolumeSource::FromUserdata(key.into_inner()))
        }
        (Some(list), None) => {
            if list.is_empty() {
                p.add(Some(span), ctx, "volumes is empty");
            }
            validate_volumes(list, ctx, p).map(VolumeSource::Listed)
        }
    }
}

/// The tag keys that find this host's snapshots: not empty (that would
/// match every host's), each a valid tag key and none twice. Unset means
/// the defaults.
fn validate_filter_tags(
    tags: Option<Spanned<Vec<Spanned<String>>>>,
    ctx: &str,
    p: &mut Problems,
) -> Vec<String> {
    let Some(tags) = tags else {
        return DEFAULT_FILTER_TAGS.iter().map(|s| s.to_string()).collect();
    };
    if tags.get_ref().is_empty() {
        p.at(
            &tags,
            ctx,
            "filter_tags is empty: snapshots of every host would match",
        );
    }
    let mut seen = BTreeSet::new();
    for t in tags.get_ref() {
        if !valid_tag_key(t.get_ref()) {
            p.at(
                t,
                ctx,
                format!("filter tag '{}' is not a valid tag key", t.get_ref()),
            );
        } else if !seen.insert(t.get_ref().clone()) {
            p.at(
                t,
                ctx,
                format!("filter tag '{}' is listed twice", t.get_ref()),
            );
        }
    }
    tags.into_inner()
        .into_iter()
        .map(Spanned::into_inner)
        .collect()
}

/// The snapshot description template parses; unset means the default one.
fn validate_description(
    description: Option<Spanned<String>>,
    ctx: &str,
    p: &mut Problems,
) -> Option<Template> {
    let Some(d) = description else {
        return Template::parse(DEFAULT_DESCRIPTION).ok();
    };
    match Template::parse(d.get_ref()) {
        Ok(t) => Some(t),
        Err(e) => {
            p.at(&d, ctx, format!("description: {e}"));
            None
        }
    }
}

/// `description_style` is one of the known styles; unset means plain.
fn validate_description_style(
    style: Option<Spanned<String>>,
    ctx: &str,
    p: &mut Problems,
) -> Option<DescriptionStyle> {
    let Some(s) = style else {
        return Some(DescriptionStyle::Plain);
    };
    let parsed = DescriptionStyle::parse(s.get_ref());
    if parsed.is_none() {
        p.at(
            &s,
            ctx,
            format!(
                "unknown description_style '{}'; use {}",
                s.get_ref(),
                DescriptionStyle::NAMES
            ),
        );
    }
    parsed
}

/// `snapshot_owners`: `"self"` or 12-digit account ids, at least one and
/// none twice; unset means `["self"]`. Aliases such as `"amazon"` are
/// refused: public snapshots are never a host's backups.
fn validate_snapshot_owners(
    owners: Option<Spanned<Vec<Spanned<String>>>>,
    ctx: &str,
    p: &mut Problems,
) -> Vec<String> {
    let Some(owners) = owners else {
        return DEFAULT_SNAPSHOT_OWNERS
            .iter()
            .map(|s| s.to_string())
            .collect();
    };
    if owners.get_ref().is_empty() {
        p.at(
            &owners,
            ctx,
            "snapshot_owners is empty: list \"self\" and/or 12-digit account ids",
        );
    }
    let mut seen = BTreeSet::new();
    for o in owners.get_ref() {
        let v = o.get_ref();
        let account = v.len() == 12 && v.chars().all(|c| c.is_ascii_digit());
        if v != "self" && !account {
            p.at(
                o,
                ctx,
                format!("snapshot owner '{v}' is neither \"self\" nor a 12-digit account id"),
            );
        } else if !seen.insert(v.clone()) {
            p.at(o, ctx, format!("snapshot owner '{v}' is listed twice"));
        }
    }
    owners
        .into_inner()
        .into_iter()
        .map(Spanned::into_inner)
        .collect()
}

/// `snapshot_retention` is a humantime duration longer than zero; unset
/// means the default.
fn validate_retention(
    retention: Option<Spanned<String>>,
    ctx: &str,
    p: &mut Problems,
) -> Option<Duration> {
    let Some(r) = retention else {
        return Some(DEFAULT_RETENTION);
    };
    match humantime::parse_duration(r.get_ref()) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            p.at(&r, ctx, "snapshot_retention must be longer than zero");
            None
        }
        Err(e) => {
            p.at(
                &r,
                ctx,
                format!(
                    "snapshot_retention '{}': {e} (e.g. \"7d\", \"36h\")",
                    r.get_ref()
                ),
            );
            None
        }
    }
}

fn valid_tag_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 128 && !k.starts_with("aws:")
}

fn validate_hooks(
    raw: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawHook>>>>,
    ctx: &str,
    p: &mut Problems,
) -> Hooks {
    let mut hooks = Hooks::default();
    let Some(raw) = raw else { return hooks };
    for (point, hook) in raw.into_inner() {
        let Some(hp) = HookPoint::parse(point.get_ref()) else {
            let names: Vec<_> = HookPoint::ALL.iter().map(|h| h.as_str()).collect();
            p.at(
                &point,
                ctx,
                format!(
                    "unknown hook '{}'; hooks are {}",
                    point.get_ref(),
                    names.join(", ")
                ),
            );
            continue;
        };
        let hctx = format!("{ctx}, hook {}", hp.as_str());
        let span = hook.span();
        let argvs: Vec<Vec<String>> = match hook.into_inner() {
            RawHook::One(argv) => vec![argv],
            RawHook::Many(list) => list,
        };
        if argvs.is_empty() {
            p.add(Some(span.clone()), &hctx, "has no command");
        }
        let mut cmds = Vec::new();
        for argv in argvs {
            match argv.first() {
                None => p.add(
                    Some(span.clone()),
                    &hctx,
                    "a command is an argv list like [\"systemctl\", \"stop\", \"postgresql\"]",
                ),
                Some(prog) if prog.trim().is_empty() => {
                    p.add(Some(span.clone()), &hctx, "the program name is empty")
                }
                Some(_) => cmds.push(argv),
            }
        }
        hooks.0.insert(hp, cmds);
    }
    hooks
}
