//! A profile's volumes, from the file or from userdata: each volume's
//! fields, and the rules that span volumes. Pure, like `validate.rs`,
//! whose `Problems` collects what is wrong.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::device_name::{check_device, kernel_device_name, shift_letter};
use super::mount_point;
use super::problem::Problems;
use super::profile::{FileSystem, Volume, VolumeType};
use super::raw::RawVolume;

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
    let init_rate = validate_init_rate(raw.init_rate.as_ref(), ctx, p);

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
        init_rate,
    })
}

/// `init_rate`: EC2's range for `VolumeInitializationRate`, 100-300 MiB/s.
fn validate_init_rate(rate: Option<&Spanned<i64>>, ctx: &str, p: &mut Problems) -> Option<u32> {
    let r = rate?;
    let v = *r.get_ref();
    if crate::config::INIT_RATES.contains(&v) {
        u32::try_from(v).ok()
    } else {
        p.at(
            r,
            ctx,
            format!("init_rate must be 100 to 300 MiB/s (EC2's range), got {v}"),
        );
        None
    }
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
