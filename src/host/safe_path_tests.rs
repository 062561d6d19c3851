use std::io::{Read, Write};
use std::os::unix::fs::symlink;

use super::*;

/// A tree with a victim outside it and links planted inside it.
struct Planted {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    victim: PathBuf,
}

fn planted() -> Planted {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("real")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim");
    std::fs::write(&victim, b"secret").unwrap();
    std::fs::write(root.join("real/file"), b"data").unwrap();
    symlink(&victim, root.join("file-link")).unwrap();
    symlink(&outside, root.join("dir-link")).unwrap();
    symlink("../outside", root.join("rel-link")).unwrap();
    Planted {
        _tmp: tmp,
        root,
        victim,
    }
}

fn read(mut f: File) -> String {
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

#[test]
fn names_from_outside_must_be_one_plain_component() {
    assert_eq!(check_name("a-Data.db"), Ok("a-Data.db"));
    assert_eq!(check_name("..."), Ok("..."));
    assert_eq!(check_name(""), Err(BadName::Empty));
    assert!(matches!(check_name("."), Err(BadName::Dot(_))));
    assert!(matches!(check_name(".."), Err(BadName::Dot(_))));
    assert!(matches!(check_name("../x"), Err(BadName::Slash(_))));
    assert!(matches!(check_name("/etc"), Err(BadName::Slash(_))));
    assert!(matches!(check_name("a\0b"), Err(BadName::Nul(_))));
}

#[test]
fn files_below_open_but_no_link_is_followed() {
    let p = planted();
    let root = SafeDir::open(&p.root).unwrap();
    assert_eq!(
        read(root.open_file(Path::new("real/file")).unwrap()),
        "data"
    );
    for rel in [
        "file-link",
        "dir-link/victim",
        "rel-link/victim",
        "../outside/victim",
    ] {
        let e = root.open_file(Path::new(rel)).unwrap_err();
        assert!(
            is_refused_link(&e) || e.kind() == io::ErrorKind::InvalidInput,
            "{rel}: {e}"
        );
    }
    assert!(root.dir(Path::new("dir-link")).is_err());
    assert_eq!(std::fs::read(&p.victim).unwrap(), b"secret");
}

#[test]
fn the_component_walk_refuses_links_as_openat2_does() {
    let p = planted();
    let root = SafeDir::open(&p.root).unwrap();
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let ok = walk(
        &root.fd,
        &[OsStr::new("real"), OsStr::new("file")],
        flags,
        Mode::empty(),
    );
    assert_eq!(read(File::from(ok.unwrap())), "data");
    for names in [
        vec!["file-link"],
        vec!["dir-link", "victim"],
        vec!["rel-link", "victim"],
    ] {
        let names: Vec<&OsStr> = names.iter().map(OsStr::new).collect();
        let e = walk(&root.fd, &names, flags, Mode::empty()).unwrap_err();
        assert!(is_refused_link(&e), "{names:?}: {e}");
    }
}

#[test]
fn a_new_file_is_never_an_existing_one_or_a_link() {
    let p = planted();
    let root = SafeDir::open(&p.root).unwrap();
    let e = root.create_new("file-link").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert!(root.create_new("../x").is_err());
    let mut f = root.create_new("fresh").unwrap();
    f.write_all(b"new").unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(f.metadata().unwrap().permissions().mode() & 0o7777, 0o600);
    // Renamed over a link: the link is replaced, its target untouched.
    root.rename("fresh", "file-link").unwrap();
    assert_eq!(std::fs::read(p.root.join("file-link")).unwrap(), b"new");
    assert!(!std::fs::symlink_metadata(p.root.join("file-link"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Removing a link removes the link.
    root.remove("dir-link").unwrap();
    assert_eq!(std::fs::read(&p.victim).unwrap(), b"secret");
}

#[test]
fn entries_report_links_as_links() {
    let p = planted();
    let root = SafeDir::open(&p.root).unwrap();
    let mut e = root.entries().unwrap();
    e.sort();
    let kinds: Vec<(&str, Kind)> = e.iter().map(|(n, k)| (n.to_str().unwrap(), *k)).collect();
    assert_eq!(
        kinds,
        [
            ("dir-link", Kind::Link),
            ("file-link", Kind::Link),
            ("real", Kind::Dir),
            ("rel-link", Kind::Link)
        ]
    );
}

#[test]
fn created_directories_never_pass_through_a_link() {
    let p = planted();
    let root = SafeDir::open(&p.root).unwrap();
    let made = root.create_dirs(Path::new("a/b/c")).unwrap();
    assert_eq!(made.path(), p.root.join("a/b/c"));
    assert!(p.root.join("a/b/c").is_dir());
    assert!(root.create_dirs(Path::new("dir-link/new")).is_err());
    assert!(!p.victim.parent().unwrap().join("new").exists());
    // From `/`: a link anywhere on an absolute path is refused.
    assert!(SafeDir::no_links(&p.root.join("real"), false).is_ok());
    let e = SafeDir::no_links(&p.root.join("dir-link/sub"), true).unwrap_err();
    assert!(is_refused_link(&e), "{e}");
    assert!(!p.victim.parent().unwrap().join("sub").exists());
}

#[test]
fn a_fifo_does_not_block_the_open_and_is_refused() {
    let p = planted();
    nix::unistd::mkfifo(&p.root.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    let root = SafeDir::open(&p.root).unwrap();
    let e = root.open_file(Path::new("fifo")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn roots_answer_for_their_own_trees_only() {
    let p = planted();
    let roots = Roots::open(&[p.root.clone(), p.root.join("real")]).unwrap();
    assert_eq!(
        read(roots.open_file(&p.root.join("real/file")).unwrap()),
        "data"
    );
    assert!(roots.open_file(&p.victim).is_err());
    assert!(roots.open_file(&p.root.join("dir-link/victim")).is_err());
    assert!(roots.dir(&p.root.join("real")).is_ok());
}

#[test]
fn a_named_path_follows_only_links_that_root_alone_can_have_made() {
    let p = planted();
    let tmp = p.root.parent().unwrap().to_path_buf();
    // tempdir() is 0700 and ours: a link in it is followed.
    symlink(p.root.join("real"), tmp.join("trusted-link")).unwrap();
    let d = SafeDir::open(&tmp.join("trusted-link")).unwrap();
    assert_eq!(read(d.open_file(Path::new("file")).unwrap()), "data");
    // `..` and relative links resolve as the kernel would.
    let d = SafeDir::open(&p.root.join("real/../real")).unwrap();
    assert!(d.open_file(Path::new("file")).is_ok());
    // A link in a directory others may write is refused, whoever owns it.
    let open = tmp.join("shared");
    std::fs::create_dir(&open).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    symlink(p.victim.parent().unwrap(), open.join("data")).unwrap();
    let e = SafeDir::open(&open.join("data")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.to_string().contains("is a symbolic link in a directory"),
        "{e}"
    );
    // And one in a directory another user owns (root can tell only as root).
    if nix::unistd::geteuid().is_root() {
        let theirs = tmp.join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        symlink(p.victim.parent().unwrap(), theirs.join("data")).unwrap();
        let e = SafeDir::open(&theirs.join("data")).unwrap_err();
        assert!(e.to_string().contains("uid 65534 owns"), "{e}");
        assert!(SafeDir::create(&theirs.join("data/new")).is_err());
        assert!(!p.victim.parent().unwrap().join("new").exists());
    }
    // create makes what is missing, without following anything.
    let made = SafeDir::create(&tmp.join("a/b")).unwrap();
    assert_eq!(made.path(), tmp.join("a/b"));
    assert!(tmp.join("a/b").is_dir());
}
