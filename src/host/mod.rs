//! The Linux side: mounts, devices, filesystems. `nix` types stay here.

pub mod mountinfo;
