//! Asking the operator, and running tasks side by side: the two small
//! helpers several commands share.

use anyhow::{bail, Result};

/// Ask as the original did; `y`, `yes` and `yeay` proceed. Without a
/// terminal it fails with the flag to pass instead.
pub(crate) fn confirm(question: &str) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("{question} needs an answer, and there is no terminal to ask on: pass --yes when running unattended");
    }
    print!("{question} [y/N]: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "yeay"))
}
