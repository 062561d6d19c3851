//! Calling a snapshotter's hook from the async commands: on a blocking
//! thread (a hook may run a command for minutes), with a failure turned
//! into one error that names the hook point.

use std::sync::Arc;

use thiserror::Error;

use crate::config::HookPoint;
use crate::snapshotter::{HookCtx, Snapshotter};

/// A hook that failed (or could not be run); the caller decides what that
/// stops.
#[derive(Debug, Error)]
pub(crate) enum HookError {
    #[error("{}", named(*.point, .message))]
    Failed { point: HookPoint, message: String },
    #[error("hook {point} did not finish: {message}")]
    Panicked { point: HookPoint, message: String },
}

/// The message as the snapshotter gave it if it names the hook already
/// (the TOML profile's do), else prefixed with the hook point.
fn named(point: HookPoint, message: &str) -> String {
    if message.starts_with("hook ") {
        message.to_string()
    } else {
        format!("hook {point}: {message}")
    }
}

/// Run the snapshotter's hook at `point`.
pub(crate) async fn run(
    snapshotter: &Arc<dyn Snapshotter>,
    point: HookPoint,
    ctx: &HookCtx,
) -> Result<(), HookError> {
    let (s, c) = (snapshotter.clone(), ctx.clone());
    match tokio::task::spawn_blocking(move || s.hook(point, &c)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(HookError::Failed {
            point,
            message: e.to_string(),
        }),
        Err(e) => Err(HookError::Panicked {
            point,
            message: e.to_string(),
        }),
    }
}
