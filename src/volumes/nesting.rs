//! Mount points inside other mount points of the same profile (data at
//! `/var/lib/pg`, WAL at `/var/lib/pg/wal`): a parent must be mounted
//! before its child (else it would be mounted over the child, and writes
//! meant for the child land on the parent's volume) and unmounted after
//! it. Pure: compared by path components, never by string prefix.

use std::path::Path;

/// For each mount point, the index of its nearest ancestor among the
/// others, if any.
pub(crate) fn parents(mount_points: &[&str]) -> Vec<Option<usize>> {
    mount_points
        .iter()
        .map(|mp| {
            let mp = Path::new(mp);
            mount_points
                .iter()
                .enumerate()
                .filter(|(_, other)| {
                    let other = Path::new(other);
                    other != mp && mp.starts_with(other)
                })
                .max_by_key(|(_, other)| Path::new(other).components().count())
                .map(|(i, _)| i)
        })
        .collect()
}

/// How many ancestors each mount point has among the others (0: none).
pub(crate) fn depths(mount_points: &[&str]) -> Vec<usize> {
    let parents = parents(mount_points);
    (0..mount_points.len())
        .map(|mut i| {
            let mut depth = 0;
            while let Some(p) = parents[i] {
                depth += 1;
                i = p;
            }
            depth
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_by_components_not_by_prefix() {
        let mps = [
            "/var/lib/pg/wal",
            "/var/lib/pg",
            "/var/lib/pgdata",
            "/var/lib/pg/wal/x",
            "/srv",
        ];
        assert_eq!(parents(&mps), vec![Some(1), None, None, Some(0), None]);
        assert_eq!(depths(&mps), vec![1, 0, 0, 2, 0]);
    }
}
