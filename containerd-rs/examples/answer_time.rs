//! Start-up probe for deploy/bench-containerd.sh: spawns a daemon command, then calls
//! `containerd.services.version.v1.Version/Version` on its socket every millisecond until it
//! answers, and prints the milliseconds from the spawn to the first answer. The daemon keeps
//! running; its pid is written to the pid file for the caller to stop it.
//!
//! `answer_time <socket> <pid file> <command> [args...]`

use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use proto::services::version::version_client::VersionClient;
use tonic::transport::{Endpoint, Uri};

async fn version(sock: &std::path::Path) -> Result<String, Box<dyn std::error::Error>> {
    let path = sock.to_path_buf();
    let ch = Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await?;
    Ok(VersionClient::new(ch)
        .version(())
        .await?
        .into_inner()
        .version)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: answer_time <socket> <pid file> <command> [args...]");
        std::process::exit(2);
    }
    let sock = std::path::PathBuf::from(&args[0]);
    let t0 = Instant::now();
    let child = match std::process::Command::new(&args[2])
        .args(&args[3..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("answer_time: spawn {}: {e}", args[2]);
            std::process::exit(1);
        }
    };
    if let Err(e) = std::fs::write(&args[1], child.id().to_string()) {
        eprintln!("answer_time: write {}: {e}", args[1]);
        std::process::exit(1);
    }
    let deadline = t0 + Duration::from_secs(30);
    loop {
        if let Ok(v) = version(&sock).await {
            println!("{:.1}", t0.elapsed().as_secs_f64() * 1000.0);
            eprintln!("answer_time: version {v}");
            // The daemon is the caller's to stop (by the pid in the file).
            std::mem::forget(child);
            return;
        }
        if Instant::now() > deadline {
            eprintln!("answer_time: no answer on {} within 30 s", sock.display());
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
