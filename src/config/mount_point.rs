//! Mount points: what a valid one is, and the one lexical normal form every
//! comparison goes through.
//!
//! 0.2.12 compared the `mount_point` tag with the configured path as
//! strings, so `/mnt/a/` in a config and a snapshot tagged `/mnt/a` gave a
//! freshly formatted, empty volume instead of a restore. Both sides are
//! therefore normalised here (the configuration and userdata when they are
//! read, tags whenever they are compared) and nowhere else.

use std::path::{Component, Path};

/// A `mount_point` from the configuration or userdata is acceptable: an
/// absolute path other than `/`, without `..` (resolving it lexically is
/// wrong when a parent is a symlink, and symlinks are never resolved here),
/// without NUL or newline. `.` components are fine: they are dropped by
/// [`normalize`].
pub(super) fn check(m: &str) -> Result<(), String> {
    let path = Path::new(m);
    if !path.is_absolute() {
        return Err(format!("mount_point '{m}' must be an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("mount_point '{m}' must not contain '..'"));
    }
    if normalize(m) == "/" {
        return Err("mount_point cannot be '/'".into());
    }
    if m.contains('\0') || m.contains('\n') {
        return Err("mount_point contains a control character".into());
    }
    Ok(())
}

/// The lexical normal form of a mount point: repeated `/` collapsed, `.`
/// components dropped, no trailing `/` (except for `/` itself). Nothing
/// else: `..` stays (see [`check`]), case and whitespace stay (they name
/// other directories), and symlinks are never resolved (the path may not
/// exist yet, and a restore must not depend on the host's current tree).
/// A relative value (only a hand-made tag can be one) stays relative.
pub(crate) fn normalize(m: &str) -> String {
    let parts: Vec<&str> = m
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if m.starts_with('/') {
        format!("/{}", parts.join("/"))
    } else if parts.is_empty() && !m.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Whether two mount points (a configured one, a tag) name the same place
/// once both are normalised.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a == b || normalize(a) == normalize(b)
}

/// Whether two mount points that are not the [`same`] differ only by case
/// or whitespace (and slashes): the mistakes of a hand-written tag or
/// config that should be pointed out, never silently matched, since on a
/// case-sensitive file system `/mnt/Data` is another directory.
pub(crate) fn nearly_same(a: &str, b: &str) -> bool {
    let loose = |s: &str| {
        let squeezed: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        normalize(&squeezed).to_lowercase()
    };
    !same(a, b) && loose(a) == loose(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        for (raw, want) in [
            ("/mnt/a", "/mnt/a"),
            ("/mnt/a/", "/mnt/a"),
            ("/mnt/a//", "/mnt/a"),
            ("//mnt//a", "/mnt/a"),
            ("/mnt/./a/.", "/mnt/a"),
            ("/", "/"),
            ("//", "/"),
            ("/mnt/../a", "/mnt/../a"),
            ("/mnt/A ", "/mnt/A "),
            ("mnt/a/", "mnt/a"),
            ("./", "."),
            ("", ""),
        ] {
            assert_eq!(normalize(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn same_and_nearly_same() {
        assert!(same("/mnt/a/", "/mnt/a"));
        assert!(same("/mnt//a", "/mnt/./a/"));
        assert!(!same("/mnt/a", "/mnt/A"));
        assert!(!nearly_same("/mnt/a/", "/mnt/a"), "the same is not nearly");
        for near in ["/mnt/A", "/mnt/a ", " /mnt/a/", "/MNT/A/", "/mnt/ a"] {
            assert!(nearly_same("/mnt/a", near), "{near:?}");
        }
        assert!(!nearly_same("/mnt/a", "/mnt/b"));
        assert!(!nearly_same("/mnt/a", "/mnt/a/b"));
    }

    #[test]
    fn valid_mount_points() {
        for ok in ["/mnt/a", "/mnt/a/", "/mnt//a", "/mnt/./a"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for (bad, want) in [
            ("mnt/a", "mount_point 'mnt/a' must be an absolute path"),
            ("/", "mount_point cannot be '/'"),
            ("//./", "mount_point cannot be '/'"),
            (
                "/mnt/../etc",
                "mount_point '/mnt/../etc' must not contain '..'",
            ),
            ("/mnt/a\n", "mount_point contains a control character"),
        ] {
            assert_eq!(check(bad), Err(want.to_string()), "{bad:?}");
        }
    }
}
