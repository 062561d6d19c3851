//! snaptastic: keep an EC2 host's data safe.
//!
//! - Volumes: restore EBS data volumes from the newest matching snapshot at
//!   boot, take consistent snapshots with a short, bounded freeze, list and
//!   check them. A drop-in for snaptastic 0.2.12 (same commands and tags).
//! - Files: back up immutable files (Cassandra SSTables) to S3 in
//!   tablesnap 1.2.1's layout.
//!
//! The library's public face is what a program needs to bring its own
//! [`Snapshotter`] (0.2.12's extension point) and run the tool with it:
//!
//! ```no_run
//! use snaptastic::{HookCtx, HookPoint, HostFacts, Snapshotter, SnapshotterError, Volume};
//!
//! struct Pg;
//!
//! impl Snapshotter for Pg {
//!     fn name(&self) -> &str {
//!         "pg"
//!     }
//!     fn volumes(&self, _: &HostFacts) -> Result<Vec<Volume>, SnapshotterError> {
//!         Ok(vec![Volume::new("/dev/sdf", "/var/lib/pg", 100)?])
//!     }
//!     fn filter_tags(&self, host: &HostFacts) -> Result<Vec<(String, String)>, SnapshotterError> {
//!         let cluster = host.userdata.get_str("cluster").ok_or("userdata has no cluster")?;
//!         Ok(vec![("cluster".into(), cluster)])
//!     }
//!     fn description(&self, v: &Volume, _: &HostFacts) -> Result<String, SnapshotterError> {
//!         Ok(format!("pg snapshot of {}", v.mount_point))
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     snaptastic::main(vec![Box::new(Pg)])
//! }
//! ```
//!
//! Layout: `cli` (flags) -> `run` (dispatch) -> `context` and
//! `files::settings` (resolve once) -> the commands (`volumes`, `files`,
//! `selftest`), which use `config` (pure validation), `instance`
//! (metadata), `cloud` (AWS) and `host` (Linux). Only `cloud` names AWS
//! SDK types and only `host` names `nix`.

mod cli;
mod cloud;
mod config;
mod context;
mod digest;
mod files;
mod generate;
mod host;
mod instance;
mod logging;
mod policy;
mod prewarm;
mod progress;
mod prompt;
#[cfg(test)]
mod proptests;
mod registry;
mod report;
mod run;
mod selftest;
mod snapshotter;
mod tasks;
mod toml_snapshotter;
mod volumes;

pub use config::{
    ConfigError, CopyTarget, FileSystem, HookPoint, Prewarm, Userdata, Volume, VolumeType,
};
pub use instance::Identity;
pub use run::main;
pub use snapshotter::{HookCtx, HostFacts, Snapshotter, SnapshotterError};
