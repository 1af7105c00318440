//! engine-api: the Docker Engine API daemon. See ARCHITECTURE.md.
use clap::Parser;

/// glibc raises its mmap threshold each time it frees a large mmapped block (a `docker load`
/// body, a layer) and from then on serves such blocks from the heap, which it keeps: the idle
/// daemon would stay megabytes bigger after every load. Fixed thresholds return them.
fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists and before the allocator has handed out large blocks.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

fn main() -> std::process::ExitCode {
    tune_malloc();
    let cli = engine_api::config::Cli::parse();
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("engine-api: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    engine_api::observability::init(config.debug);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("engine-api: tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(engine_api::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "engine-api failed");
            eprintln!("engine-api: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
