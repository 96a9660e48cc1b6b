//! The `topdog` executable: parses the command line and hands over to `cli`.
#![forbid(unsafe_code)]

/// jemalloc rather than the system allocator: the broker keeps large,
/// mostly empty queues per phone connection, and jemalloc leaves the pages
/// no one writes to untouched (an idle phone: 36.3 KiB of memory instead
/// of 48.9 in a release build, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    topdog::cli::main()
}
