//! Reading every block of a block device once (a "warm-up"): a volume
//! created from an EBS snapshot loads each block from S3 the first time it
//! is read, tens of milliseconds each, so a database restored at boot
//! crawls until every block has been touched. Reading the whole device
//! once, ahead of the application, moves that cost out of its way.
//!
//! How it reads, and why:
//! - `O_DIRECT`: the bytes are not wanted, only the read; going around
//!   the page cache neither evicts the application's pages nor lets a
//!   cached page hide a block that was never loaded;
//! - `depth` requests in flight, one thread each with `pread`, in
//!   ascending order: EBS (like any network disk) gives its throughput
//!   only to many requests at once (what `fio --iodepth=32` measures);
//! - at the idle I/O priority class, so the application's own reads go
//!   first where the scheduler honours classes;
//! - with an optional cap in bytes per second, for volumes whose
//!   throughput the application needs;
//! - a stop flag ends it cleanly: no request is issued after it is seen,
//!   those in flight finish. Requests are taken in order, so then every
//!   byte below the returned offset has been read and none above it: a
//!   resume from there reads every block exactly once in all.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::libc;

/// How a warm-up reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadPlan {
    /// Requests in flight.
    pub depth: usize,
    /// Bytes per request: a multiple of [`ALIGN`].
    pub request: usize,
    /// At most this many bytes per second, if set.
    pub max_rate: Option<u64>,
}

/// The alignment of buffers, offsets and lengths `O_DIRECT` needs: a
/// page covers every logical block size in use (512 and 4096).
pub(crate) const ALIGN: usize = 4096;

/// How a run of [`read_range`] ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Everything up to the end was read.
    Finished,
    /// The stop flag was seen: everything below `at` was read, nothing
    /// above it.
    Stopped { at: u64 },
    /// A read failed at `offset` (the last `tick` had what was read
    /// contiguously before it).
    Failed { offset: u64, error: io::Error },
}

/// A block device opened for direct reads, with its size in bytes.
#[derive(Debug)]
pub(crate) struct Device {
    file: File,
    pub size: u64,
}

impl Device {
    /// Open `path` read-only with `O_DIRECT`. A regular file is refused:
    /// the warm-up is for block devices (a file would be read through
    /// whatever its filesystem does with direct I/O, and prove nothing).
    pub(crate) fn open(path: &Path) -> io::Result<Device> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::FileTypeExt;
        let not_a_device = || io::Error::new(io::ErrorKind::InvalidInput, "not a block device");
        // Asked first too: some files refuse O_DIRECT itself (EINVAL),
        // which would hide the reason.
        if !std::fs::metadata(path)?.file_type().is_block_device() {
            return Err(not_a_device());
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(path)?;
        if !file.metadata()?.file_type().is_block_device() {
            return Err(not_a_device());
        }
        // A block device's size is where its end is.
        let size = file.seek(SeekFrom::End(0))?;
        Ok(Device { file, size })
    }
}

/// What a warm-up reads from: a [`Device`] (a fake in the tests).
pub(crate) trait Blocks: Sync {
    /// Fill `buf` from `offset`, or fail.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl Blocks for Device {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// Put the calling thread in the idle I/O scheduling class: it gets disk
/// time only when no one else wants it (where the scheduler, BFQ or
/// mq-deadline's priorities, honours classes; with `none` it is a no-op).
pub(crate) fn idle_io_priority() -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: ioprio_set takes three integers and touches no memory of
    // ours; `who` 0 is the calling thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which requests of a run are done, and the lowest byte not yet read
/// (the watermark): requests finish out of order, a checkpoint may only
/// record what is read contiguously from the start.
#[derive(Debug)]
pub(crate) struct Watermark {
    start: u64,
    end: u64,
    request: u64,
    /// Requests issued so far (request `i` covers `start + i * request`).
    issued: u64,
    /// Requests below this are all done.
    low: u64,
    /// Done requests at or above `low`.
    done_above: std::collections::BTreeSet<u64>,
}

impl Watermark {
    pub(crate) fn new(start: u64, end: u64, request: u64) -> Watermark {
        Watermark {
            start,
            end,
            request: request.max(1),
            issued: 0,
            low: 0,
            done_above: Default::default(),
        }
    }

    /// The next request to issue (`(index, offset, length)`), if any is left.
    pub(crate) fn issue(&mut self) -> Option<(u64, u64, usize)> {
        let offset = self
            .start
            .checked_add(self.issued.checked_mul(self.request)?)?;
        if offset >= self.end {
            return None;
        }
        let len = (self.end - offset).min(self.request) as usize;
        let i = self.issued;
        self.issued += 1;
        Some((i, offset, len))
    }

    /// Request `i` is done.
    pub(crate) fn done(&mut self, i: u64) {
        self.done_above.insert(i);
        while self.done_above.remove(&self.low) {
            self.low += 1;
        }
    }

    /// Every byte below this has been read.
    pub(crate) fn offset(&self) -> u64 {
        (self.start + self.low * self.request).min(self.end)
    }
}

/// What the workers share.
struct Shared {
    marks: Watermark,
    /// The lowest failed offset and its error.
    failed: Option<(u64, io::Error)>,
    /// Workers still running.
    running: usize,
}

/// Spacing of requests for a rate cap: each request takes its slot
/// `len / rate` after the previous one.
struct Pacer {
    rate: Option<u64>,
    next: Mutex<Instant>,
}

impl Pacer {
    /// Wait for the slot of a request of `len` bytes; `false` if `stop`
    /// was set meanwhile (the slot is then not used).
    fn wait(&self, len: usize, stop: &AtomicBool) -> bool {
        let Some(rate) = self.rate.filter(|r| *r > 0) else {
            return true;
        };
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + Duration::from_secs_f64(len as f64 / rate as f64);
            slot
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= slot {
                return true;
            }
            std::thread::sleep((slot - now).min(Duration::from_millis(50)));
        }
    }
}

/// A zeroed buffer of `len` bytes aligned to [`ALIGN`], as `O_DIRECT`
/// needs (kept as pages; read through [`as_bytes`]).
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u8; ALIGN]);

fn pages(len: usize) -> Vec<Page> {
    vec![Page([0; ALIGN]); len.div_ceil(ALIGN)]
}

fn as_bytes(pages: &mut [Page]) -> &mut [u8] {
    let len = std::mem::size_of_val(pages);
    // SAFETY: `Page` is `repr(C)` around a byte array with no padding
    // (its size is its alignment, 4096), so the slice is `len`
    // initialised bytes, borrowed mutably for the returned lifetime.
    unsafe { std::slice::from_raw_parts_mut(pages.as_mut_ptr().cast::<u8>(), len) }
}

/// Read `[start, end)` of `dev` as `plan` says until done, `stop` is set
/// or a read fails. `tick` is called about every `every` (and once at
/// the end) with the watermark, from the calling thread: checkpoints and
/// progress lines are written there, never from a reader.
pub(crate) fn read_range(
    dev: &impl Blocks,
    start: u64,
    end: u64,
    plan: ReadPlan,
    stop: &AtomicBool,
    every: Duration,
    tick: &mut dyn FnMut(u64),
) -> Ended {
    let depth = plan.depth.max(1);
    let shared = Mutex::new(Shared {
        marks: Watermark::new(start, end, plan.request as u64),
        failed: None,
        running: depth,
    });
    let changed = Condvar::new();
    let pacer = Pacer {
        rate: plan.max_rate,
        next: Mutex::new(Instant::now()),
    };
    let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
    std::thread::scope(|s| {
        for _ in 0..depth {
            s.spawn(|| {
                // Best effort: a kernel or container that refuses it
                // leaves the reads at their normal class.
                let _ = idle_io_priority();
                let mut buf = pages(plan.request);
                let buf = as_bytes(&mut buf);
                loop {
                    // The slot comes before the take: a stop seen while
                    // waiting issues nothing more, and what was taken is
                    // read at once (what was issued stays contiguous).
                    if !pacer.wait(plan.request, stop) {
                        break;
                    }
                    let next = {
                        let mut sh = lock();
                        if stop.load(Ordering::Relaxed) || sh.failed.is_some() {
                            None
                        } else {
                            sh.marks.issue()
                        }
                    };
                    let Some((i, offset, len)) = next else { break };
                    let r = dev.read_exact_at(&mut buf[..len], offset);
                    let mut sh = lock();
                    match r {
                        Ok(()) => sh.marks.done(i),
                        Err(e) => {
                            if sh.failed.as_ref().is_none_or(|(o, _)| offset < *o) {
                                sh.failed = Some((offset, e));
                            }
                        }
                    }
                    changed.notify_all();
                }
                let mut sh = lock();
                sh.running -= 1;
                changed.notify_all();
            });
        }
        // The calling thread reports until the readers are gone.
        let mut last = Instant::now();
        let mut sh = lock();
        while sh.running > 0 {
            let wait = every.saturating_sub(last.elapsed());
            sh = changed
                .wait_timeout(sh, wait.max(Duration::from_millis(1)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if last.elapsed() >= every {
                let at = sh.marks.offset();
                drop(sh);
                tick(at);
                last = Instant::now();
                sh = lock();
            }
        }
    });
    let sh = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    let at = sh.marks.offset();
    tick(at);
    match sh.failed {
        Some((offset, error)) => Ended::Failed { offset, error },
        None if at >= end => Ended::Finished,
        None => Ended::Stopped { at },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_moves_only_over_contiguous_requests() {
        let mut m = Watermark::new(0, 10 * 4096 + 512, 4096);
        let issued: Vec<_> = std::iter::from_fn(|| m.issue()).collect();
        assert_eq!(issued.len(), 11);
        assert_eq!(
            issued[10],
            (10, 10 * 4096, 512),
            "the last request is short"
        );
        assert_eq!(m.offset(), 0);
        m.done(1);
        m.done(2);
        assert_eq!(m.offset(), 0, "request 0 is still in flight");
        m.done(0);
        assert_eq!(m.offset(), 3 * 4096);
        for i in 3..11 {
            m.done(i);
        }
        assert_eq!(m.offset(), 10 * 4096 + 512, "the end, not past it");
    }

    #[test]
    fn a_resumed_range_starts_at_its_offset() {
        let mut m = Watermark::new(8192, 8192 * 3, 8192);
        assert_eq!(m.issue(), Some((0, 8192, 8192)));
        assert_eq!(m.issue(), Some((1, 16384, 8192)));
        assert_eq!(m.issue(), None);
        m.done(1);
        assert_eq!(m.offset(), 8192, "request 0 is still in flight");
        m.done(0);
        assert_eq!(m.offset(), 8192 * 3);
        let mut empty = Watermark::new(100, 100, 4096);
        assert_eq!(empty.issue(), None);
        assert_eq!(empty.offset(), 100);
    }

    #[test]
    fn buffers_are_aligned_for_direct_io() {
        let mut p = pages(3 * ALIGN + 1);
        let b = as_bytes(&mut p);
        assert_eq!(b.len(), 4 * ALIGN);
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
    }

    #[test]
    fn a_regular_file_is_not_a_device() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = Device::open(f.path()).unwrap_err();
        assert_eq!(e.to_string(), "not a block device");
    }

    /// A device of `size` bytes that records each read, fails the read at
    /// `fail_at` and sets `stop` once `stop_after` reads were made.
    struct Fake {
        size: u64,
        fail_at: Option<u64>,
        stop_after: usize,
        stop: AtomicBool,
        reads: Mutex<Vec<(u64, usize)>>,
    }

    impl Fake {
        fn new(size: u64) -> Fake {
            Fake {
                size,
                fail_at: None,
                stop_after: usize::MAX,
                stop: AtomicBool::new(false),
                reads: Mutex::new(Vec::new()),
            }
        }

        fn run(&self, start: u64, depth: usize) -> (Ended, Vec<u64>) {
            let plan = ReadPlan {
                depth,
                request: 8192,
                max_rate: None,
            };
            let mut ticks = Vec::new();
            let ended = read_range(
                self,
                start,
                self.size,
                plan,
                &self.stop,
                Duration::from_millis(1),
                &mut |at| ticks.push(at),
            );
            (ended, ticks)
        }

        /// The bytes read, each counted once per read.
        fn coverage(&self) -> Vec<u32> {
            let mut c = vec![0u32; (self.size / 512) as usize];
            for (o, l) in self.reads.lock().unwrap().iter() {
                for s in (*o / 512)..((*o + *l as u64) / 512) {
                    c[s as usize] += 1;
                }
            }
            c
        }
    }

    impl Blocks for Fake {
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            std::thread::sleep(Duration::from_micros(200 + offset % 7 * 100));
            let n = {
                let mut r = self.reads.lock().unwrap();
                r.push((offset, buf.len()));
                r.len()
            };
            if n >= self.stop_after {
                self.stop.store(true, Ordering::Relaxed);
            }
            if self.fail_at == Some(offset) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            Ok(())
        }
    }

    #[test]
    fn a_stop_and_a_resume_read_every_block_exactly_once() {
        let size = 100 * 8192 + 1024;
        let fake = Fake {
            stop_after: 30,
            ..Fake::new(size)
        };
        let (ended, ticks) = fake.run(0, 8);
        let Ended::Stopped { at } = ended else {
            panic!("{ended:?}")
        };
        assert_eq!(ticks.last(), Some(&at));
        assert!(ticks.windows(2).all(|w| w[0] <= w[1]), "{ticks:?}");
        let read: u64 = fake.reads.lock().unwrap().iter().map(|r| r.1 as u64).sum();
        assert_eq!(
            read, at,
            "everything below the offset was read, nothing above"
        );
        assert!((30 * 8192..size).contains(&at), "{at}");
        fake.stop.store(false, Ordering::Relaxed);
        let rest = Fake {
            reads: Mutex::new(fake.reads.lock().unwrap().clone()),
            ..Fake::new(size)
        };
        let (ended, _) = rest.run(at, 8);
        assert!(matches!(ended, Ended::Finished), "{ended:?}");
        assert!(
            rest.coverage().iter().all(|&n| n == 1),
            "a block read twice or never"
        );
    }

    #[test]
    fn a_failed_read_names_its_offset_and_keeps_what_is_below() {
        let fake = Fake {
            fail_at: Some(40 * 8192),
            ..Fake::new(100 * 8192)
        };
        let (ended, ticks) = fake.run(0, 4);
        let Ended::Failed { offset, error } = ended else {
            panic!("{ended:?}")
        };
        assert_eq!(offset, 40 * 8192);
        assert_eq!(error.raw_os_error(), Some(libc::EIO));
        assert_eq!(
            ticks.last(),
            Some(&(40 * 8192)),
            "the watermark stops at the failure"
        );
        let reads = fake.reads.lock().unwrap();
        assert!(reads.len() < 100, "reading went on after the failure");
    }

    #[test]
    fn the_pacer_spaces_requests_by_the_rate() {
        let p = Pacer {
            rate: Some(1 << 20),
            next: Mutex::new(Instant::now()),
        };
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(p.wait(100 << 10, &stop));
        }
        // The first at once, the next two 100 KiB / (1 MiB/s) apart.
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(190), "{e:?}");
        stop.store(true, Ordering::Relaxed);
        assert!(!p.wait(1 << 20, &stop), "a stop ends the wait");
    }
}
