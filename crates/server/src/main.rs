#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    allocator_settings();
    dialboard::cli::main()
}

/// Keeps resident memory near the live heap (SPEC §10: ≤ 500 MB at 10M calls). mimalloc asks
/// for transparent huge pages on its arenas (`madvise(MADV_HUGEPAGE)`), and the kernel's
/// khugepaged then folds every 2 MiB range that still has one page in use back into a whole
/// huge page: memory mimalloc had purged (returned to the OS) is resident again, and the
/// longer the server runs the more of its freed memory counts. Without them a backfill in random
/// time order peaked at 318 instead of 391 MiB at 1M calls, 329 instead of 421 at 2M, at the
/// same rate (bench/README.md). Set before the first big allocation; the flag is the
/// process's, so SQLite's malloc arenas and a system in THP mode `always` are covered too.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("dialboard: transparent huge pages stay on: {e}");
    }
}

/// mimalloc's `mi_option_purge_delay` (its place in mimalloc.h's `mi_option_e`; the sys crate
/// names no constant for it): how long freed memory stays resident before it goes back to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_MS: std::ffi::c_long = 0;

/// Two settings of the allocators that keep resident memory near the live heap (SPEC §10:
/// ≤ 500 MB at 10M calls):
/// - SQLite's memory in one glibc arena. Rust's allocations go to mimalloc; SQLite's go to
///   glibc's malloc, which gives each new thread that allocates an arena of its own (up to 8 per
///   core). SQLite's live memory is bounded (`SQLITE_HEAP_LIMIT`), but each of those arenas kept
///   what its thread once held: at 10M calls in random order glibc held ~270 MiB in eleven arenas
///   for SQLite's 127 MiB, and the peak was 635 MiB; with one arena glibc held 131 MiB and the
///   peak was 481 MiB (bench/README.md). SQLite's allocations are few and large next to Rust's
///   (page-cache pages), so the shared lock costs nothing measurable.
/// - mimalloc's purge delay 0 instead of its default 1 s: memory goes back to the OS as soon as
///   it is free, not after the delay. What was freed in the last delay stayed resident, and the
///   more so the faster the ingest: at 25,000 calls/s in time order a 1 s delay held ~100 MiB
///   (a 10M ingest peaked at 493 MiB against 386 MiB at 10,000 calls/s), and at 100 ms the peak
///   still grew with the rate (518–595 MB at 53–67k calls/s). With no delay, 10M calls in time
///   order peaked at 434 MB against 493 MB at 100 ms (VmHWM), side by side, resident memory
///   40–58 MB lower at every percentile, for the same CPU a call (bench/README.md).
#[allow(unsafe_code)]
fn allocator_settings() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets one of glibc's allocator parameters; it is called first thing
    // in `main`, before any other thread exists, and takes no pointers.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) } != 1 {
        eprintln!("dialboard: glibc kept several malloc arenas");
    }
    // SAFETY: sets one integer option of mimalloc (the global allocator), before any other
    // thread exists; mimalloc reads it at each purge. No pointers.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}
