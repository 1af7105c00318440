//! containerd-rs: parses flags, sets up logging and runs the daemon (see ARCHITECTURE.md).
fn main() -> anyhow::Result<()> {
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
