//! A FIFREEZE slower than the deadline, for real. A writer's write(2)
//! takes its bytes from a page registered with userfaultfd and left
//! unmapped, so it parks inside the filesystem's write section; a
//! FIFREEZE then waits in the kernel (uninterruptibly) until the page is
//! supplied. make-snapshots must give up at its deadline, yet not exit
//! until that FIFREEZE has returned and been undone; nothing stays frozen.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::support::lab_prerequisites;
use crate::support::Setup;

const UFFD_API: u64 = 0xAA;
// _IOWR(0xAA, nr, size) for the three ioctls used (linux/userfaultfd.h).
const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;
const UFFDIO_ZEROPAGE: libc::c_ulong = 0xC020_AA04;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const PAGE: usize = 4096;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioZeropage {
    range: UffdioRange,
    mode: u64,
    zeropage: i64,
}

/// A page whose first touch waits until `release`.
pub(crate) struct TrapPage {
    uffd: libc::c_int,
    addr: usize,
}

impl TrapPage {
    /// A trap page, or `None` with the reason printed where userfaultfd is
    /// not available (root may use it for kernel faults; a sandbox may
    /// forbid it with seccomp). CI must be able to use it.
    pub(crate) fn for_test() -> Option<TrapPage> {
        let trap = TrapPage::new();
        if trap.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "userfaultfd is not available"
            );
            eprintln!("SKIPPED: userfaultfd is not available here");
        }
        trap
    }

    fn new() -> Option<TrapPage> {
        // SAFETY: a plain syscall with flags; the result is checked.
        let uffd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) } as libc::c_int;
        if uffd < 0 {
            return None;
        }
        let mut api = UffdioApi {
            api: UFFD_API,
            features: 0,
            ioctls: 0,
        };
        // SAFETY: `api` is a valid, writable uffdio_api for the call.
        if unsafe { libc::ioctl(uffd, UFFDIO_API, &mut api) } != 0 {
            return None;
        }
        // SAFETY: a fresh anonymous private mapping; the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return None;
        }
        let mut reg = UffdioRegister {
            range: UffdioRange {
                start: addr as u64,
                len: PAGE as u64,
            },
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        // SAFETY: `reg` names the page just mapped, never touched.
        if unsafe { libc::ioctl(uffd, UFFDIO_REGISTER, &mut reg) } != 0 {
            return None;
        }
        Some(TrapPage {
            uffd,
            addr: addr as usize,
        })
    }

    /// Whether a fault on the page is waiting (the writer is parked).
    fn faulted(&self, wait: Duration) -> bool {
        let mut p = libc::pollfd {
            fd: self.uffd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) > 0 }
    }

    /// A thread writing the page to a new file at `path`: it parks inside
    /// the filesystem's write section (so a FIFREEZE of it waits) until
    /// `release`. Returns once it is parked; the thread returns what
    /// write(2) returned.
    pub(crate) fn park_writer(&self, path: &std::path::Path) -> std::thread::JoinHandle<isize> {
        let file = std::fs::File::create(path).unwrap();
        let (fd, addr) = (file.as_raw_fd(), self.addr);
        let writer = std::thread::spawn(move || {
            // SAFETY: `addr` is a mapped page of PAGE bytes; the read of it
            // waits for the test to supply it; `fd` outlives the call.
            let n = unsafe { libc::write(fd, addr as *const libc::c_void, PAGE) };
            drop(file);
            n
        });
        assert!(
            self.faulted(Duration::from_secs(5)),
            "the writer never parked"
        );
        writer
    }

    /// Supply the page: the parked writer goes on.
    pub(crate) fn release(&self) {
        let mut z = UffdioZeropage {
            range: UffdioRange {
                start: self.addr as u64,
                len: PAGE as u64,
            },
            mode: 0,
            zeropage: 0,
        };
        // SAFETY: `z` names the registered page; the kernel fills it.
        let r = unsafe { libc::ioctl(self.uffd, UFFDIO_ZEROPAGE, &mut z) };
        assert_eq!(r, 0, "UFFDIO_ZEROPAGE: {}", std::io::Error::last_os_error());
    }
}

#[test]
#[ignore = "needs root and the lab (loop devices, mount): scripts/test.sh runs it as root"]
fn a_freeze_slower_than_the_deadline_is_awaited_and_undone() {
    let Some(moto) = lab_prerequisites() else {
        return;
    };
    let Some(trap) = TrapPage::for_test() else {
        return;
    };
    let s = Setup::new(&moto, false, None, &[("/dev/sdf", "ext4", 1)]);
    s.snaptastic(&["mount-snapshots", "db"]).expect_code(0);
    let writer = trap.park_writer(&s.mp(0).join("parked"));

    let started = Instant::now();
    let mut child = s
        .lab
        .run(&["make-snapshots", "db", "--freeze-timeout", "1s"])
        .config(&s.cfg)
        .spawn();
    // Well past the deadline the FIFREEZE is still inside the kernel, and
    // the run must not have exited.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.try_wait().unwrap().is_none(),
        "make-snapshots exited while its FIFREEZE was outstanding"
    );
    let released = Instant::now();
    trap.release();
    assert_eq!(writer.join().unwrap(), PAGE as isize);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        released.elapsed() < Duration::from_secs(3),
        "exit {:?} after the freeze could return",
        released.elapsed()
    );
    assert!(
        stderr.contains("waiting for the freeze of")
            && stderr.contains("the freeze itself did not return in time"),
        "{stderr}"
    );
    assert_eq!(s.calls("CreateSnapshot"), 0, "{stderr}");
    // Nothing stays frozen: a write completes.
    let t = Instant::now();
    std::fs::write(s.mp(0).join("after"), b"ok").unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
    eprintln!(
        "the run waited {:?} for the slow FIFREEZE, then exited",
        started.elapsed()
    );
}
