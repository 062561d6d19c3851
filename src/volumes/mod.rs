//! The volume commands. `plan.rs` and `snapshot_plan.rs` decide (pure);
//! one file per verb does.

pub mod clean;
pub mod freshness;
pub mod hooks;
pub mod list;
pub mod mount;
pub mod plan;
pub mod retention;
pub mod snapshot;
pub mod snapshot_plan;
pub mod tags;
pub mod unmount;
