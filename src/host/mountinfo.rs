//! What is mounted where, from `/proc/self/mountinfo`: the kernel's own
//! view, not "the directory exists" as 0.2.12 assumed.

use std::path::Path;

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub mount_point: String,
    pub fs_type: String,
    /// The mounted device (e.g. `/dev/xvdf`), or a pseudo name (`tmpfs`).
    pub source: String,
    /// `major:minor` of the filesystem.
    pub dev: String,
}

/// Parse mountinfo text (see proc(5)). Malformed lines are skipped.
pub(crate) fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    let dev = left.get(2)?;
    let mount_point = left.get(4)?;
    let fs_type = right.next()?;
    let source = right.next()?;
    Some(MountEntry {
        mount_point: unescape(mount_point),
        fs_type: unescape(fs_type),
        source: unescape(source),
        dev: dev.to_string(),
    })
}

/// The kernel writes space, tab, newline and backslash as `\ooo` octal
/// (one byte, so `\000` to `\377`; a `\4xx` to `\7xx` is left as text).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The current mounts of this process's namespace.
pub(crate) fn read() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The filesystem mounted exactly at `mount_point` (the last one mounted
/// there wins, as it is the one visible).
pub(crate) fn find<'a>(mounts: &'a [MountEntry], mount_point: &str) -> Option<&'a MountEntry> {
    let want = Path::new(mount_point);
    mounts
        .iter()
        .rev()
        .find(|m| Path::new(&m.mount_point) == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
36 22 202:80 / /mnt/solr rw,noatime shared:20 - xfs /dev/xvdf rw,attr2
37 22 259:3 / /mnt/with\\040space rw - ext4 /dev/nvme1n1 rw
38 22 0:50 / /mnt/solr rw - tmpfs tmpfs rw
garbage line
";

    #[test]
    fn parses_and_unescapes() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].mount_point, "/mnt/solr");
        assert_eq!(m[1].source, "/dev/xvdf");
        assert_eq!(m[1].fs_type, "xfs");
        assert_eq!(m[1].dev, "202:80");
        assert_eq!(m[2].mount_point, "/mnt/with space");
    }

    #[test]
    fn last_mount_wins_and_trailing_slash_is_the_same_place() {
        let m = parse(SAMPLE);
        assert_eq!(find(&m, "/mnt/solr").unwrap().source, "tmpfs");
        assert_eq!(find(&m, "/mnt/solr/").unwrap().source, "tmpfs");
        assert!(find(&m, "/mnt").is_none());
    }
}

#[cfg(test)]
#[path = "../proptests/mountinfo.rs"]
mod proptests;
