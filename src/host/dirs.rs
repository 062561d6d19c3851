//! Where the daemon keeps its files: lock files in a runtime directory
//! (gone at reboot, which is right for locks) and the record of uploaded
//! files' digests in a state directory (kept across reboots, which is the
//! point of it). systemd's `RuntimeDirectory=`/`StateDirectory=` set the
//! variables read here.

use std::path::PathBuf;

/// Lock files: `$SNAPTASTIC_RUNTIME_DIR`, else systemd's
/// `$RUNTIME_DIRECTORY`, else `/run/snaptastic` for root, else
/// `$XDG_RUNTIME_DIR/snaptastic`, else `<tmp>/snaptastic-<uid>`.
pub(crate) fn runtime_dir() -> PathBuf {
    if let Some(d) = from_env(&["SNAPTASTIC_RUNTIME_DIR", "RUNTIME_DIRECTORY"]) {
        return d;
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/snaptastic");
    }
    if let Some(d) = from_env(&["XDG_RUNTIME_DIR"]) {
        return d.join("snaptastic");
    }
    std::env::temp_dir().join(format!("snaptastic-{uid}"))
}

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
        None => runtime_dir(),
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
