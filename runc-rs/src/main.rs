//! runc-rs: runc's command line over `runc_rs::commands`.
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use runc_rs::commands::{self, CreateOpts};
use runc_rs::logging::{self, LogConfig};

#[derive(Parser)]
#[command(
    name = "runc-rs",
    about = "OCI runtime with runc's command line",
    disable_version_flag = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Print the version (runc's format).
    #[arg(short = 'v', long)]
    version: bool,
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/runc-rs")]
    root: PathBuf,
    /// Log file (default stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd cgroups (not supported: fails with an error).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "auto")]
    rootless: Option<String>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Args)]
struct CreateArgs {
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

impl CreateArgs {
    fn opts(self) -> CreateOpts {
        CreateOpts {
            id: self.id,
            bundle: self.bundle,
            pid_file: self.pid_file,
            console_socket: self.console_socket,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container (its process waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
    },
    /// Print the state of a container.
    State { id: String },
    /// Send a signal to the container's init (or all its processes).
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Processes running in a container.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a new process in a running container.
    Exec {
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        env: Vec<String>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short = 'g', long = "additional-gids")]
        additional_gids: Vec<u32>,
        #[arg(short, long)]
        cap: Vec<String>,
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print the features this runtime supports.
    Features,
    /// Update a container's resource limits.
    Update(UpdateArgs),
    /// Print the container's cgroup counters (and OOM events) as JSON.
    Events {
        /// Print the stats once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between stats.
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
}

#[derive(clap::Args)]
struct UpdateArgs {
    /// JSON file with the resources (`-` for stdin).
    #[arg(short, long)]
    resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    id: String,
}

impl UpdateArgs {
    fn opts(self) -> commands::UpdateOpts {
        commands::UpdateOpts {
            id: self.id,
            resources: self.resources,
            blkio_weight: self.blkio_weight,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_share: self.cpu_share,
            cpu_rt_period: self.cpu_rt_period,
            cpu_rt_runtime: self.cpu_rt_runtime,
            cpuset_cpus: self.cpuset_cpus,
            cpuset_mems: self.cpuset_mems,
            memory: self.memory,
            memory_reservation: self.memory_reservation,
            memory_swap: self.memory_swap,
            kernel_memory: self.kernel_memory,
            kernel_memory_tcp: self.kernel_memory_tcp,
            pids_limit: self.pids_limit,
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if cli.version {
        print!("{}", runc_rs::spec::version_text());
        return;
    }
    let to_stderr = logging::init(&LogConfig {
        file: cli.log.clone(),
        json: cli.log_format == "json",
        debug: cli.debug,
    });
    // runc's prefixes and exit codes: create/run errors say what failed, exec exits 255.
    let (prefix, fail_code) = match &cli.cmd {
        Some(Cmd::Create(_)) => ("runc-rs create failed: ", 1),
        Some(Cmd::Run { .. }) => ("runc-rs run failed: ", 1),
        Some(Cmd::Exec { .. }) => ("exec failed: ", 255),
        _ => ("", 1),
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{prefix}{e}");
            if !to_stderr {
                eprintln!("{prefix}{e}");
            }
            fail_code
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> runc_rs::Result<i32> {
    let Some(cmd) = cli.cmd else {
        return Ok(0);
    };
    // The cgroup driver matters only where cgroups are made; the others read state.json.
    if cli.systemd_cgroup && matches!(cmd, Cmd::Create(_) | Cmd::Run { .. }) {
        return Err(runc_rs::cgroups::systemd_unsupported());
    }
    let root = cli.root;
    match cmd {
        Cmd::Create(a) => commands::create(&root, &a.opts()).map(|_| 0),
        Cmd::Start { id } => commands::start(&root, &id).map(|_| 0),
        Cmd::Run { create, detach } => commands::run(&root, &create.opts(), detach),
        Cmd::State { id } => commands::state(&root, &id).map(|_| 0),
        Cmd::Kill { all, id, signal } => commands::kill(&root, &id, &signal, all).map(|_| 0),
        Cmd::Delete { force, id } => commands::delete(&root, &id, force).map(|_| 0),
        Cmd::List { format, quiet } => commands::list(&root, format == "json", quiet).map(|_| 0),
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => commands::ps(&root, &id, format == "json", &ps_args).map(|_| 0),
        Cmd::Exec {
            process,
            detach,
            pid_file,
            console_socket,
            tty,
            env,
            cwd,
            user,
            additional_gids,
            cap,
            no_new_privs,
            preserve_fds,
            id,
            args,
        } => commands::exec(
            &root,
            &commands::ExecOpts {
                id,
                process,
                args,
                detach,
                pid_file,
                console_socket,
                tty,
                env,
                cwd,
                user,
                additional_gids,
                caps: cap,
                no_new_privs,
                preserve_fds,
            },
        ),
        Cmd::Pause { id } => commands::pause(&root, &id).map(|_| 0),
        Cmd::Resume { id } => commands::resume(&root, &id).map(|_| 0),
        Cmd::Spec { bundle } => commands::spec(&bundle, cli.rootless.is_some()).map(|_| 0),
        Cmd::Features => commands::features().map(|_| 0),
        Cmd::Update(a) => commands::update(&root, &a.opts()).map(|_| 0),
        Cmd::Events {
            stats,
            interval,
            id,
        } => {
            let every = commands::parse_duration(&interval)?;
            commands::events(&root, &id, stats, every).map(|_| 0)
        }
    }
}
