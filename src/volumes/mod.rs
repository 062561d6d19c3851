//! The volume commands. `plan.rs` and `snapshot_plan.rs` decide (pure),
//! `explain.rs` says why (pure); one file per verb does.

mod archive;
pub(crate) mod clean;
pub(crate) mod copies;
mod copy_plan;
mod error;
pub(crate) mod explain;
pub(crate) mod fast_restore;
#[cfg(test)]
mod fixtures;
pub(crate) mod freshness;
pub(crate) mod hooks;
pub(crate) mod list;
pub(crate) mod mount;
mod mount_report;
pub(crate) mod nesting;
pub(crate) mod plan;
pub(crate) mod points;
mod readiness;
mod restore;
mod restore_speed;
pub(crate) mod retention;
pub(crate) mod retention_sets;
pub(crate) mod snapshot;
pub(crate) mod snapshot_plan;
pub(crate) mod tags;
pub(crate) mod thaw;
pub(crate) mod unfinished;
pub(crate) mod unmount;
mod verdict;
pub(crate) mod window;
