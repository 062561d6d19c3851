//! The process's own limits, raised where a command needs more than the
//! usual defaults give.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raise the soft limit of open files to the hard one (commonly 1,024
/// soft, 524,288 hard): a restore holds up to two batches of verified
/// files open per directory, plus a file and one or more connections per
/// download, and `-r` restores directories in parallel. The soft limit
/// (before, after) on success; a limit that cannot be read or raised is
/// left as it is.
pub(crate) fn raise_open_files() -> Option<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return Some((soft, soft));
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).ok()?;
    Some((soft, hard))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_of_open_files_reaches_the_hard_one() {
        let (_, after) = super::raise_open_files().unwrap();
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((soft, after), (hard, hard));
    }
}
