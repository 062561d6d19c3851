//! What a command did, on stdout: one line per volume or file as it
//! happens, or with `--json` one JSON document at the end holding the same
//! items (ids created, snapshots used, ages, files restored and failed),
//! for orchestration (SSM Run Command, scripts). Logs stay on stderr
//! either way, so stdout parses.

use std::fmt::Display;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// Shared by a command's tasks; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Report {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("json", &self.inner.json)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    json: bool,
    items: Mutex<Vec<Value>>,
    failures: Mutex<usize>,
}

impl Report {
    pub(crate) fn new(json: bool) -> Self {
        Report {
            inner: Arc::new(Inner {
                json,
                ..Inner::default()
            }),
        }
    }

    /// Something done: `line` as text, or `item` in the document.
    pub(crate) fn item(&self, line: impl Display, item: Value) {
        if self.inner.json {
            lock(&self.inner.items).push(item);
        } else {
            println!("{line}");
        }
    }

    /// A line said only as text (the document holds the same inside an
    /// item).
    pub(crate) fn line(&self, line: impl Display) {
        if !self.inner.json {
            println!("{line}");
        }
    }

    /// Something that failed (counted: the document's `ok` is false).
    pub(crate) fn failure(&self, line: impl Display, item: Value) {
        *lock(&self.inner.failures) += 1;
        self.item(line, item);
    }

    /// With `--json`, print the document for `command`'s `result` (its
    /// error too, as a string); the result is handed back unchanged.
    pub(crate) fn finish(
        &self,
        command: &str,
        result: anyhow::Result<ExitCode>,
    ) -> anyhow::Result<ExitCode> {
        if self.inner.json {
            let failures = *lock(&self.inner.failures);
            let mut doc = json!({
                "command": command,
                "ok": result.is_ok() && failures == 0,
                "failures": failures,
                "items": std::mem::take(&mut *lock(&self.inner.items)),
            });
            if let Err(e) = &result {
                doc["error"] = Value::String(format!("{e:#}"));
            }
            println!("{doc:#}");
        }
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
