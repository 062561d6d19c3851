//! snaptastic: keep an EC2 host's data safe.
//!
//! - Volumes: restore EBS data volumes from the newest matching snapshot at
//!   boot, take consistent snapshots with a short, bounded freeze, list and
//!   check them. A drop-in for snaptastic 0.2.12 (same commands and tags).
//! - Files: back up immutable files (Cassandra SSTables) to S3 in
//!   tablesnap 1.2.1's layout.
//!
//! Layout: `cli` (flags) -> `app` (dispatch and shared context) -> the
//! commands (`volumes`, `checks`), which use `config` (pure validation),
//! `instance` (metadata), `cloud` (AWS) and `host` (Linux).

pub mod app;
pub mod checks;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod files;
pub mod host;
pub mod instance;
pub mod logging;
pub mod volumes;
