//! A `clean` decision and its reason (`retention.rs`, `retention_sets.rs`).

/// Keep or delete, with the reason (printed by `--dry-run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep(String),
    Delete(String),
}

impl Verdict {
    /// The reason, whichever the verdict.
    pub(crate) fn reason(&self) -> &str {
        match self {
            Verdict::Keep(why) | Verdict::Delete(why) => why,
        }
    }

    /// The same verdict with `lead` before its reason.
    pub(crate) fn led_by(self, lead: &str) -> Verdict {
        match self {
            Verdict::Keep(why) => Verdict::Keep(format!("{lead}, {why}")),
            Verdict::Delete(why) => Verdict::Delete(format!("{lead}, {why}")),
        }
    }
}
