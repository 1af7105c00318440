//! containerd-rs: parses flags, sets up logging and runs the daemon (see ARCHITECTURE.md).
fn main() -> anyhow::Result<()> {
    tune_malloc();
    let config = containerd_rs::Config::from_args()?;
    let level = if config.debug {
        "containerd_rs=debug,info"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Two workers are plenty for a daemon whose requests wait on shims and disks; blocking
    // store work goes to the (lazily grown) blocking pool.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()?;
    rt.block_on(containerd_rs::run(config))?;
    Ok(())
}

/// glibc malloc for a long-lived daemon with a small working set: at most two arenas (one per
/// worker thread by default, each keeping what its thread freed), and big buffers (content
/// chunks, layer data) always in their own mappings, returned to the kernel when freed: the
/// default threshold grows after such frees until they come from the heap, which then stays
/// large.
fn tune_malloc() {
    const ARENAS: libc::c_int = 2;
    const MMAP_AT: libc::c_int = 128 << 10;
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists, and its integer arguments are in range.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_AT);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_AT);
    }
}
