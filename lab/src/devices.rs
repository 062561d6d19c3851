//! The lab's block devices: one sparse image file per volume and snapshot,
//! a loop device per attached volume, and links under the device root named
//! as the kernel and udev would name them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// How attached volumes show up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Xen instances: `/dev/sdf` appears as `xvdf`.
    Xen,
    /// Nitro instances: `nvme1n1`, `nvme2n1`, ... plus
    /// `disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id without dash>`.
    Nvme,
}

/// One attached volume.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plug {
    pub loop_device: String,
    /// The kernel name under the device root (`xvdf`, `nvme1n1`).
    pub name: String,
    pub links: Vec<PathBuf>,
}

pub(crate) struct Devices {
    pub root: PathBuf,
    images: PathBuf,
    mode: Mode,
    /// The images directory is another lab's (`--images`): cleanup
    /// leaves it, and loop devices this lab did not plug, to their owner.
    shared: bool,
    pub plugged: BTreeMap<String, Plug>,
    next_nvme: u32,
}

impl Devices {
    pub(crate) fn new(root: PathBuf, images: PathBuf, mode: Mode, shared: bool) -> Result<Self> {
        fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
        Ok(Self {
            root,
            images,
            mode,
            shared,
            plugged: BTreeMap::new(),
            next_nvme: 1,
        })
    }

    pub(crate) fn image(&self, id: &str) -> PathBuf {
        self.images.join(format!("{id}.img"))
    }

    /// A sparse image of at least `size_gib` for a volume.
    pub(crate) fn ensure_image(&self, id: &str, size_gib: u64) -> Result<PathBuf> {
        let path = self.image(id);
        let want = size_gib << 30;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating image {}", path.display()))?;
        if f.metadata()?.len() < want {
            f.set_len(want)?;
        }
        Ok(path)
    }

    pub(crate) fn remove_image(&self, id: &str) {
        let _ = fs::remove_file(self.image(id));
    }

    /// Attach: a loop device over the volume's image, linked under the
    /// device root. `device` is the name AttachVolume was given.
    pub(crate) fn plug(&mut self, volume_id: &str, device: &str) -> Result<Plug> {
        if let Some(p) = self.plugged.get(volume_id) {
            return Ok(p.clone());
        }
        let image = self.image(volume_id);
        let loop_device = run(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image))?
        .trim()
        .to_string();
        let mut links = Vec::new();
        let name = match self.mode {
            Mode::Xen => {
                let base = device.strip_prefix("/dev/").unwrap_or(device);
                match base.strip_prefix("sd") {
                    Some(rest) => format!("xvd{rest}"),
                    None => base.to_string(),
                }
            }
            Mode::Nvme => {
                let n = self.next_nvme;
                self.next_nvme += 1;
                format!("nvme{n}n1")
            }
        };
        let link = self.root.join(&name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&loop_device, &link)
            .with_context(|| format!("linking {}", link.display()))?;
        links.push(link);
        if self.mode == Mode::Nvme {
            let by_id = self.root.join("disk/by-id");
            fs::create_dir_all(&by_id)?;
            let l = by_id.join(format!(
                "nvme-Amazon_Elastic_Block_Store_{}",
                volume_id.replace('-', "")
            ));
            let _ = fs::remove_file(&l);
            std::os::unix::fs::symlink(format!("../../{name}"), &l)?;
            links.push(l);
        }
        let plug = Plug {
            loop_device,
            name,
            links,
        };
        self.plugged.insert(volume_id.to_string(), plug.clone());
        Ok(plug)
    }

    /// Detach: the links go at once; the loop device is released (the
    /// kernel frees it when the last user closes it).
    pub(crate) fn unplug(&mut self, volume_id: &str) -> Result<()> {
        let Some(plug) = self.plugged.remove(volume_id) else {
            return Ok(());
        };
        for l in plug.links.iter().rev() {
            let _ = fs::remove_file(l);
        }
        run(Command::new("losetup").args(["--detach", &plug.loop_device]))?;
        wait_released(&plug.loop_device);
        Ok(())
    }

    /// Everything the lab made: thaw and unmount filesystems on its loop
    /// devices, release them, delete the images (unless they are shared:
    /// then the owner's cleanup deletes them).
    pub(crate) fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let ids: Vec<String> = self.plugged.keys().cloned().collect();
        for id in ids {
            let plug = self.plugged[&id].clone();
            if let Err(e) = unmount_all(&plug.loop_device) {
                problems.push(format!("{id}: {e:#}"));
            }
            if let Err(e) = self.unplug(&id) {
                problems.push(format!("{id}: {e:#}"));
            }
        }
        if self.shared {
            let _ = fs::remove_dir_all(&self.root);
            return problems;
        }
        // Loop devices over our images that we lost track of.
        if let Ok(out) = run(Command::new("losetup").args([
            "--list",
            "--noheadings",
            "--output",
            "NAME,BACK-FILE",
        ])) {
            for line in out.lines() {
                let mut parts = line.split_whitespace();
                let (Some(dev), Some(file)) = (parts.next(), parts.next()) else {
                    continue;
                };
                if Path::new(file).starts_with(&self.images) {
                    let _ = unmount_all(dev);
                    let _ = run(Command::new("losetup").args(["--detach", dev]));
                }
            }
        }
        let _ = fs::remove_dir_all(&self.images);
        let _ = fs::remove_dir_all(&self.root);
        problems
    }
}

/// Point-in-time copy of one image to another (reflink where the
/// filesystem can, else a sparse copy); `false` if there is no source.
/// Called without the devices lock, so concurrent snapshots copy in
/// parallel as EC2 would take them.
pub(crate) fn copy_image(src: &Path, dst: &Path) -> Result<bool> {
    if !src.exists() {
        return Ok(false);
    }
    run(Command::new("cp")
        .arg("--reflink=auto")
        .arg("--sparse=always")
        .arg(src)
        .arg(dst))?;
    Ok(true)
}

/// Unmount every mount of a block device (matched by device number, so
/// mounts made through a link count too), thawing a frozen one first.
fn unmount_all(device: &str) -> Result<()> {
    let rdev = fs::metadata(device)?.rdev();
    let want = format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    );
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&want.as_str())).then(|| f.get(4).map(|s| s.replace("\\040", " ")))?
        })
        .collect();
    points.reverse();
    for mp in points {
        let _ = Command::new("fsfreeze").args(["--unfreeze", &mp]).output();
        if run(Command::new("umount").arg(&mp)).is_err() {
            run(Command::new("umount").arg("--lazy").arg(&mp))?;
        }
        eprintln!("lab: unmounted {mp} (left mounted on {device})");
    }
    Ok(())
}

/// The kernel releases a loop device only when its last opener closes it
/// (a udev probe may still hold it): wait, boundedly, until it is free so
/// the lab never leaves one bound to a deleted image.
fn wait_released(device: &str) {
    let name = device.trim_start_matches("/dev/");
    let backing = format!("/sys/block/{name}/loop/backing_file");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while Path::new(&backing).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if Path::new(&backing).exists() {
        eprintln!("lab: {device} is still bound after 10s");
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
