//! How the allocator hands memory back to the kernel.
//!
//! The file commands hold parts of large files in buffers of several MiB
//! (`files::upload::BUFFER_BUDGET` bounds their sum). glibc serves blocks
//! that large with mmap(2) and unmaps them when freed, but only until the
//! first such free: then it raises its mmap threshold to that block's size
//! and serves the next ones from its heaps, where freed buffers linger and
//! fragment across threads' arenas. The first backup of 2 GiB in
//! `tests/it/tablesnap_restart.rs` (debug build, 48 MiB budget) peaks at
//! 143 MiB RSS with the moving threshold and 80 MiB with a fixed one; the
//! test holds the bound at 100 MiB.

/// Fix the mmap threshold at 1 MiB: blocks at least this large are always
/// mapped on their own and returned to the kernel when freed. Call it
/// before any thread starts. Other C libraries: nothing to do.
pub(crate) fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called
    // before the runtime starts any thread, and M_MMAP_THRESHOLD with a
    // value below HEAP_MAX is a documented, valid setting.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
