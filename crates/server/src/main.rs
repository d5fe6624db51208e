#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
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
