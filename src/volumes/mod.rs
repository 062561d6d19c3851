//! The volume commands. `plan.rs` decides (pure); one file per verb does.

pub mod list;
pub mod plan;
pub mod tags;
