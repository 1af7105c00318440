//! engine-api: the Docker Engine API daemon. See ARCHITECTURE.md.
use clap::Parser;

fn main() -> std::process::ExitCode {
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
