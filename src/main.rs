//! The `fastsam-track` binary: a thin command-line front end over the `fastsam_track` library.

mod cli;

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    cli::main()
}

/// glibc gives threads up to 8 malloc arenas per core and never returns them; a live input
/// rebuilds its decoder threads at every reconnect, and the 20-minute soak run grew by 2.4 MiB per
/// reconnect (+11%) that way, though nothing leaked. One arena per core keeps memory flat
/// (BENCHMARKS.md, live cameras). `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |c| c.get()).max(2);
        let arenas = i32::try_from(cores).unwrap_or(i32::MAX);
        // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
