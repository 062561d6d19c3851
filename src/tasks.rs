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

/// What failed of a command's items (each already printed where it
/// happened), for the command's end: exit 0 when nothing failed, else an
/// error whose line, the run's last, names the first failure (its action
/// and its mount point, snapshot or file) and how many more there were.
/// An operator reading only the last line of a cron mail or an SSM run
/// learns what broke.
#[derive(Debug, Default)]
pub(crate) struct Failures(Vec<String>);

impl Failures {
    /// One failure: `what` names the item, `why` the error.
    pub(crate) fn add(&mut self, what: impl std::fmt::Display, why: impl std::fmt::Display) {
        self.0.push(format!("{what}: {why}"));
    }

    /// Failures counted elsewhere (a hook's), already said in full.
    pub(crate) fn add_line(&mut self, line: impl std::fmt::Display) {
        self.0.push(line.to_string());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The command's end: success, or the error that says what failed.
    pub(crate) fn finish(self) -> anyhow::Result<std::process::ExitCode> {
        match self.0.as_slice() {
            [] => Ok(std::process::ExitCode::SUCCESS),
            [one] => Err(anyhow::anyhow!("{one}")),
            [first, rest @ ..] => Err(anyhow::anyhow!(
                "{first} (and {} more failure(s), above)",
                rest.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Failures;

    #[test]
    fn failures_end_the_run_with_the_first_and_a_count() {
        assert!(Failures::default().finish().is_ok());
        let mut one = Failures::default();
        one.add("/data", "CreateVolume failed: InternalError");
        let e = one.finish().unwrap_err().to_string();
        assert_eq!(e, "/data: CreateVolume failed: InternalError");
        let mut three = Failures::default();
        three.add("/data", "AttachVolume failed: x");
        three.add("/logs", "AttachVolume failed: y");
        three.add_line("post_mounts hook failed");
        let e = three.finish().unwrap_err().to_string();
        assert_eq!(
            e,
            "/data: AttachVolume failed: x (and 2 more failure(s), above)"
        );
    }
}
