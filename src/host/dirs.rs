//! Where the daemon keeps its files: the record of uploaded files' digests
//! and its lock file per key space, in a state directory (kept across
//! reboots, which is the point of the record; and never removed under a
//! running daemon, as a unit's runtime directory is when the unit stops).
//! systemd's `StateDirectory=` sets the variable read here.

use std::path::PathBuf;

/// Persistent state: `$SNAPTASTIC_STATE_DIR`, else systemd's
/// `$STATE_DIRECTORY`, else `/var/lib/snaptastic` for root, else
/// `$XDG_STATE_HOME/snaptastic`, else `~/.local/state/snaptastic`.
pub(crate) fn state_dir() -> PathBuf {
    if let Some(d) = from_env(&["SNAPTASTIC_STATE_DIR", "STATE_DIRECTORY"]) {
        return d;
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/snaptastic");
    }
    if let Some(d) = from_env(&["XDG_STATE_HOME"]) {
        return d.join("snaptastic");
    }
    match from_env(&["HOME"]) {
        Some(h) => h.join(".local/state/snaptastic"),
        None => std::env::temp_dir().join(format!("snaptastic-{}", nix::unistd::geteuid())),
    }
}

/// The first of `vars` that is set and not empty. systemd joins several
/// directories of one kind with `:` in its `*_DIRECTORY` variables; the
/// first is this unit's.
fn from_env(vars: &[&str]) -> Option<PathBuf> {
    vars.iter().find_map(|v| {
        let d = std::env::var_os(v).filter(|d| !d.is_empty())?;
        if !v.ends_with("_DIRECTORY") {
            return Some(PathBuf::from(d));
        }
        let s = d.to_string_lossy();
        Some(PathBuf::from(s.split(':').next().unwrap_or(&s)))
    })
}
