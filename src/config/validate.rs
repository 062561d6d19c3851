//! Raw TOML -> validated `Config`. Pure: it reads no files and touches no
//! host state, and it reports every problem it finds, each with the place
//! (`file:line:col`), profile and volume at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::mount_point;
use super::profile::{
    Config, DescriptionStyle, FileSystem, HookPoint, Hooks, Profile, Tablesnap, Template, Volume,
    VolumeSource, VolumeType, DEFAULT_DESCRIPTION, DEFAULT_FILTER_TAGS, DEFAULT_RETENTION,
    DEFAULT_SNAPSHOT_OWNERS,
};
use super::raw::{RawConfig, RawHook, RawProfile, RawTablesnap, RawVolume};

/// One thing wrong, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub span: Option<Range<usize>>,
    /// "profile 'solr', volume 1 (/mnt/solr)" or empty for file-level keys.
    pub context: String,
    pub message: String,
}

/// Where the validated text came from, to turn byte spans into places.
pub(crate) enum Origin<'a> {
    File {
        path: &'a Path,
        text: &'a str,
    },
    /// Volumes read from userdata; spans point into generated text, so the
    /// place is the userdata key instead.
    Userdata {
        key: &'a str,
    },
    /// A volume built in a program (`Volume::new`): no place to point at.
    Code,
}

impl Origin<'_> {
    /// `path:line:col` (1-based) for a byte offset.
    pub(crate) fn place(&self, span: Option<&Range<usize>>) -> String {
        match self {
            Origin::File { path, text } => match span {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("{}:{line}:{col}", path.display())
                }
                None => path.display().to_string(),
            },
            Origin::Userdata { key } => format!("userdata '{key}'"),
            Origin::Code => "Volume::new".to_string(),
        }
    }

    pub(crate) fn render(&self, p: &Problem) -> String {
        let place = self.place(p.span.as_ref());
        if p.context.is_empty() {
            format!("{place}: {}", p.message)
        } else {
            format!("{place}: {}: {}", p.context, p.message)
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[derive(Default)]
pub(super) struct Problems {
    pub(super) list: Vec<Problem>,
}

impl Problems {
    fn add(&mut self, span: Option<Range<usize>>, context: &str, message: impl Into<String>) {
        self.list.push(Problem {
            span,
            context: context.to_string(),
            message: message.into(),
        });
    }

    fn at<T>(&mut self, v: &Spanned<T>, context: &str, message: impl Into<String>) {
        self.add(Some(v.span()), context, message)
    }
}

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
        hooks,
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

/// Validate a list of volumes (from the file or from userdata), including
/// the rules that span volumes: no device or mount point twice.
pub(super) fn validate_volumes(
    list: Vec<Spanned<RawVolume>>,
    ctx: &str,
    p: &mut Problems,
) -> Option<Vec<Volume>> {
    let before = p.list.len();
    let mut out: Vec<Volume> = Vec::new();
    let mut devices: BTreeMap<String, usize> = BTreeMap::new();
    let mut mounts: BTreeMap<String, usize> = BTreeMap::new();
    for (i, raw) in list.into_iter().enumerate() {
        let n = i + 1;
        let vctx = match raw.get_ref().mount_point.as_ref() {
            Some(mp) => format!("{ctx}, volume {n} ({})", mp.get_ref()),
            None => format!("{ctx}, volume {n}"),
        };
        // Duplicates are judged on what was written, even when the volume
        // has other problems, so every clash is reported in one pass.
        let r = raw.get_ref();
        if let Some(d) = r
            .device
            .as_ref()
            .filter(|d| check_device(d.get_ref()).is_ok())
        {
            let offset = r
                .device_name_offset
                .as_ref()
                .and_then(|o| u8::try_from(*o.get_ref()).ok())
                .unwrap_or(0);
            if let Some(other) = devices.insert(kernel_device_name(d.get_ref(), offset), n) {
                p.at(
                    d,
                    &vctx,
                    format!("device {} is also used by volume {other}", d.get_ref()),
                );
            }
        }
        if let Some(m) = &r.mount_point {
            // `/mnt/a` and `/mnt/a/` are one mount point (and one tag).
            if let Some(other) = mounts.insert(mount_point::normalize(m.get_ref()), n) {
                p.at(
                    m,
                    &vctx,
                    format!("mount point {} is also used by volume {other}", m.get_ref()),
                );
            }
        }
        let span = raw.span();
        if let Some(v) = validate_volume(raw.into_inner(), span, &vctx, p) {
            out.push(v);
        }
    }
    (p.list.len() == before).then_some(out)
}

/// One volume, field by field; `span` is the volume's table, for the
/// problems that have no key to point at. `None` if anything is wrong.
fn validate_volume(
    raw: RawVolume,
    span: Range<usize>,
    ctx: &str,
    p: &mut Problems,
) -> Option<Volume> {
    let before = p.list.len();

    let device = validate_device(raw.device.as_ref(), &span, ctx, p);
    let mount_point = validate_mount_point(raw.mount_point.as_ref(), &span, ctx, p);
    let file_system = validate_file_system(raw.file_system.as_ref(), ctx, p);
    let known_type = validate_volume_type(&raw, ctx, p);
    let volume_type = known_type.unwrap_or(VolumeType::Gp3);
    let size_gib = validate_size(raw.size.as_ref(), known_type, ctx, p);
    let iops = validate_iops(raw.iops.as_ref(), known_type, ctx, p);
    let throughput = validate_throughput(raw.throughput.as_ref(), known_type, ctx, p);
    let (encrypted, kms_key_id) = validate_encryption(&raw, ctx, p);
    let device_name_offset =
        validate_device_name_offset(raw.device_name_offset.as_ref(), &device, ctx, p);
    let mount_options = validate_mount_options(raw.mount_options.as_ref(), ctx, p);

    if p.list.len() != before {
        return None;
    }
    Some(Volume {
        device,
        mount_point,
        size_gib,
        file_system,
        mount_options,
        volume_type,
        iops,
        throughput,
        encrypted,
        kms_key_id,
        delete_on_termination: raw.delete_on_termination.is_some_and(|d| d.into_inner()),
        device_name_offset,
    })
}

/// `device` is present and an EC2 device name. Empty if missing.
fn validate_device(
    device: Option<&Spanned<String>>,
    span: &Range<usize>,
    ctx: &str,
    p: &mut Problems,
) -> String {
    let Some(d) = device else {
        p.add(
            Some(span.clone()),
            ctx,
            "device is missing (e.g. device = \"/dev/sdf\")",
        );
        return String::new();
    };
    if let Err(e) = check_device(d.get_ref()) {
        p.at(d, ctx, e);
    }
    d.get_ref().clone()
}

/// `mount_point` is present and a plain absolute path other than `/`,
/// kept in its lexical normal form (`/mnt/a/` is `/mnt/a`), so the
/// `mount_point` tags written and compared never depend on how it was
/// typed. Empty if missing.
fn validate_mount_point(
    mount_point: Option<&Spanned<String>>,
    span: &Range<usize>,
    ctx: &str,
    p: &mut Problems,
) -> String {
    let Some(m) = mount_point else {
        p.add(Some(span.clone()), ctx, "mount_point is missing");
        return String::new();
    };
    if let Err(e) = mount_point::check(m.get_ref()) {
        p.at(m, ctx, e);
    }
    mount_point::normalize(m.get_ref())
}

/// `file_system` is one we can make and mount; unset means xfs.
fn validate_file_system(
    file_system: Option<&Spanned<String>>,
    ctx: &str,
    p: &mut Problems,
) -> FileSystem {
    let Some(f) = file_system else {
        return FileSystem::Xfs;
    };
    FileSystem::parse(f.get_ref()).unwrap_or_else(|| {
        p.at(
            f,
            ctx,
            format!(
                "unknown file_system '{}'; supported: {}",
                f.get_ref(),
                FileSystem::NAMES
            ),
        );
        FileSystem::Xfs
    })
}

/// `volume_type` is a known EBS type. `None` if it is not (and reported):
/// the size, iops and throughput checks depend on the type, so they are
/// skipped rather than judged against a guess.
fn validate_volume_type(raw: &RawVolume, ctx: &str, p: &mut Problems) -> Option<VolumeType> {
    // As in 0.2.12, `iops` alone means a provisioned-IOPS volume (io1);
    // otherwise the modern default gp3 replaces the original's magnetic
    // `standard`.
    match &raw.volume_type {
        None if raw.iops.is_some() => Some(VolumeType::Io1),
        None => Some(VolumeType::Gp3),
        Some(t) => {
            let parsed = VolumeType::parse(t.get_ref());
            if parsed.is_none() {
                p.at(
                    t,
                    ctx,
                    format!(
                        "unknown volume_type '{}'; supported: {}",
                        t.get_ref(),
                        VolumeType::NAMES
                    ),
                );
            }
            parsed
        }
    }
}

/// `size` (GiB) is in the range of the volume type, when the type is known.
fn validate_size(
    size: Option<&Spanned<i64>>,
    volume_type: Option<VolumeType>,
    ctx: &str,
    p: &mut Problems,
) -> u32 {
    // The original's default size.
    let Some(s) = size else { return 5 };
    let v = *s.get_ref();
    if let Some(volume_type) = volume_type {
        let (lo, hi) = volume_type.size_range();
        if v < i64::from(lo) || v > i64::from(hi) {
            p.at(
                s,
                ctx,
                format!("size must be {lo} to {hi} GiB for {volume_type}, got {v}"),
            );
        }
    }
    u32::try_from(v).unwrap_or(0)
}

/// `iops` is allowed for the volume type and in its range, when the type
/// is known.
fn validate_iops(
    iops: Option<&Spanned<i64>>,
    volume_type: Option<VolumeType>,
    ctx: &str,
    p: &mut Problems,
) -> Option<u32> {
    let i = iops?;
    let volume_type = volume_type?;
    let v = *i.get_ref();
    match volume_type.iops_range() {
        None => {
            p.at(
                i,
                ctx,
                format!("iops cannot be set for {volume_type} volumes"),
            );
            None
        }
        Some((lo, hi)) if v < i64::from(lo) || v > i64::from(hi) => {
            p.at(
                i,
                ctx,
                format!("iops must be {lo} to {hi} for {volume_type}, got {v}"),
            );
            None
        }
        Some(_) => u32::try_from(v).ok(),
    }
}

/// `throughput` (MiB/s) is set only for gp3 and in its range, when the
/// type is known.
fn validate_throughput(
    throughput: Option<&Spanned<i64>>,
    volume_type: Option<VolumeType>,
    ctx: &str,
    p: &mut Problems,
) -> Option<u32> {
    let t = throughput?;
    let volume_type = volume_type?;
    let v = *t.get_ref();
    if volume_type != VolumeType::Gp3 {
        p.at(
            t,
            ctx,
            format!("throughput can only be set for gp3, not {volume_type}"),
        );
        None
    } else if !(125..=1000).contains(&v) {
        p.at(
            t,
            ctx,
            format!("throughput must be 125 to 1000 MiB/s, got {v}"),
        );
        None
    } else {
        u32::try_from(v).ok()
    }
}

/// `encrypted` and `kms_key_id`: a key only on an encrypted volume, and
/// not blank.
fn validate_encryption(raw: &RawVolume, ctx: &str, p: &mut Problems) -> (bool, Option<String>) {
    let encrypted = raw.encrypted.as_ref().is_some_and(|e| *e.get_ref());
    let kms_key_id = raw.kms_key_id.as_ref().map(|k| {
        if !encrypted {
            p.at(k, ctx, "kms_key_id needs encrypted = true");
        }
        if k.get_ref().trim().is_empty() {
            p.at(k, ctx, "kms_key_id is empty");
        }
        k.get_ref().clone()
    });
    (encrypted, kms_key_id)
}

/// `device_name_offset` is 0 to 20 and does not shift a valid `device`
/// past `z`.
fn validate_device_name_offset(
    offset: Option<&Spanned<i64>>,
    device: &str,
    ctx: &str,
    p: &mut Problems,
) -> u8 {
    let Some(o) = offset else { return 0 };
    match u8::try_from(*o.get_ref()) {
        Ok(v) if v <= 20 => {
            if !device.is_empty()
                && check_device(device).is_ok()
                && shift_letter(device, v).is_none()
            {
                p.at(
                    o,
                    ctx,
                    format!("device_name_offset {v} shifts {device} past 'z'"),
                );
            }
            v
        }
        _ => {
            p.at(
                o,
                ctx,
                format!("device_name_offset must be 0 to 20, got {}", o.get_ref()),
            );
            0
        }
    }
}

/// `mount_options` is one comma-separated word; unset means `defaults`.
fn validate_mount_options(
    mount_options: Option<&Spanned<String>>,
    ctx: &str,
    p: &mut Problems,
) -> String {
    match mount_options {
        None => "defaults".to_string(),
        Some(m) if m.get_ref().trim().is_empty() || m.get_ref().contains(char::is_whitespace) => {
            p.at(m, ctx, "mount_options is a comma-separated list without spaces, e.g. \"noatime,nodiratime\"");
            String::new()
        }
        Some(m) => m.get_ref().clone(),
    }
}

/// EC2 device names: `/dev/sd[a-z]`, `/dev/xvd[a-z]` with an optional
/// second letter and an optional partition number (old paravirtual AMIs
/// used `/dev/sdf1`).
pub(super) fn check_device(d: &str) -> Result<(), String> {
    let bad = || format!("device '{d}' is not an EC2 device name like /dev/sdf or /dev/xvdg");
    let rest = d.strip_prefix("/dev/").ok_or_else(bad)?;
    let rest = rest
        .strip_prefix("xvd")
        .or_else(|| rest.strip_prefix("sd"))
        .ok_or_else(bad)?;
    let letters = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
    let digits = &rest[letters..];
    if !(1..=2).contains(&letters) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    if !digits.is_empty() && !matches!(digits.parse::<u32>(), Ok(1..=15)) {
        return Err(bad());
    }
    if rest.starts_with('a') && letters == 1 {
        return Err(format!(
            "device '{d}' is the root device name; use /dev/sdf to /dev/sdp"
        ));
    }
    Ok(())
}

/// The letter of a device name moved by `offset` (the CentOS 6 shift),
/// leaving any partition digits alone (0.2.12 shifted the digit instead).
pub(super) fn shift_letter(device: &str, offset: u8) -> Option<String> {
    let digits_at = device.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (name, digits) = device.split_at(digits_at);
    let last = name.chars().last()?;
    let shifted = char::from_u32(last as u32 + u32::from(offset))?;
    if !shifted.is_ascii_lowercase() {
        return None;
    }
    Some(format!("{}{shifted}{digits}", &name[..name.len() - 1]))
}

/// The name the Xen kernel gives the device (`sd` -> `xvd`, plus offset).
pub(crate) fn kernel_device_name(device: &str, offset: u8) -> String {
    let name = match device.strip_prefix("/dev/sd") {
        Some(rest) => format!("/dev/xvd{rest}"),
        None => device.to_string(),
    };
    shift_letter(&name, offset).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        for ok in [
            "/dev/sdf",
            "/dev/xvdg",
            "/dev/sdf1",
            "/dev/xvdba",
            "/dev/sdp15",
        ] {
            assert_eq!(check_device(ok), Ok(()), "{ok}");
        }
        for bad in [
            "sdf",
            "/dev/nvme1n1",
            "/dev/sdf0",
            "/dev/sdf16",
            "/dev/sd",
            "/dev/sdabc",
            "/dev/sda",
            "/dev/hdf",
        ] {
            assert!(check_device(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kernel_names_shift_the_letter_not_the_partition() {
        assert_eq!(kernel_device_name("/dev/sdf", 0), "/dev/xvdf");
        assert_eq!(kernel_device_name("/dev/sdf", 4), "/dev/xvdj");
        assert_eq!(kernel_device_name("/dev/sdf1", 4), "/dev/xvdj1");
        assert_eq!(kernel_device_name("/dev/xvdg", 0), "/dev/xvdg");
        assert_eq!(shift_letter("/dev/sdz", 1), None);
    }

    #[test]
    fn line_and_column() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, t.find('2').unwrap()), (2, 6));
    }
}
