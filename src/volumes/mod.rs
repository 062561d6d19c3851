//! The volume commands. `plan.rs` decides (pure); one file per verb does.

pub mod check;
pub mod clean;
pub mod hooks;
pub mod list;
pub mod mount;
pub mod plan;
pub mod retention;
pub mod snapshot;
pub mod tags;
pub mod unmount;
