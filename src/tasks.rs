//! Running tasks side by side and collecting their results in order, and
//! the exit code their failures add up to.

use thiserror::Error;

/// A task that did not finish: it panicked or was cancelled.
#[derive(Debug, Error)]
#[error("internal error: {0}")]
pub(crate) struct TaskFailed(String);

impl From<tokio::task::JoinError> for TaskFailed {
    fn from(e: tokio::task::JoinError) -> Self {
        TaskFailed(e.to_string())
    }
}

/// Run tasks concurrently and return their results in the order given. A
/// task that panicked yields `Err` with the panic, and the others still
/// run to the end. Dropping the returned future aborts them all.
pub(crate) async fn join_in_order<T, F>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<Result<T, TaskFailed>>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut index = std::collections::HashMap::new();
    for (i, f) in futures.into_iter().enumerate() {
        index.insert(set.spawn(f).id(), i);
    }
    let mut out: Vec<Option<Result<T, TaskFailed>>> = (0..index.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next_with_id().await {
        match joined {
            Ok((id, r)) => out[index[&id]] = Some(Ok(r)),
            Err(e) => {
                let i = index[&e.id()];
                out[i] = Some(Err(e.into()));
            }
        }
    }
    out.into_iter().flatten().collect()
}

/// A command's exit code from how many of its items failed: 0 when none,
/// 1 otherwise.
pub(crate) fn exit_code(failed: usize) -> std::process::ExitCode {
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
