//! `exec`: a new process in a running container: joins the init's namespaces and
//! cgroup, applies the process settings, reports over the sync socket, execs.
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::create::{clone_child, write_pid_file};
use crate::error::{Context, Error, Result};
use crate::namespaces::{self, proc_name};
use crate::state::{State, Status};
use crate::{init, sync};

/// `exec` options (runc's flags).
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub id: String,
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub tty: bool,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
}

fn build_process(st: &State, o: &ExecOpts) -> Result<Process> {
    if let Some(p) = &o.process {
        let data = std::fs::read(p).ctx(|| format!("read process file {}", p.display()))?;
        return serde_json::from_slice(&data)
            .map_err(|e| Error::Spec(format!("parse process {}: {e}", p.display())));
    }
    if o.args.is_empty() {
        return Err(Error::InvalidArgument(
            "exec: arguments are required".into(),
        ));
    }
    let mut p = st
        .config
        .process()
        .clone()
        .ok_or_else(|| Error::Spec("process is missing".into()))?;
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &o.env {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(c) = &o.cwd {
        p.set_cwd(c.clone());
    }
    if let Some(u) = &o.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let uid = uid
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("invalid --user {u:?}")))?;
        let gid = gid
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("invalid --user {u:?}")))?;
        p.user_mut().set_uid(uid);
        p.user_mut().set_gid(gid);
    }
    if !o.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(o.additional_gids.clone()));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !o.caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        let extra: Vec<oci_spec::runtime::Capability> = o
            .caps
            .iter()
            .map(|n| {
                serde_json::from_value(n.clone().into())
                    .map_err(|_| Error::InvalidArgument(format!("unknown capability {n:?}")))
            })
            .collect::<Result<_>>()?;
        let add = |s: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = s.clone().unwrap_or_default();
            s.extend(extra.iter().copied());
            Some(s)
        };
        c.set_bounding(add(c.bounding()));
        c.set_effective(add(c.effective()));
        c.set_permitted(add(c.permitted()));
        p.set_capabilities(Some(c));
    }
    Ok(p)
}

/// Runs the exec. Returns the exit code (0 when detached).
pub fn exec(root: &Path, o: &ExecOpts) -> Result<i32> {
    let st = State::load(root, &o.id)?;
    match st.status(root) {
        Status::Running | Status::Created => {}
        Status::Paused => return Err(Error::State("cannot exec in a paused container".into())),
        Status::Stopped => return Err(Error::State("cannot exec in a stopped container".into())),
    }
    let process = build_process(&st, o)?;
    let terminal = process.terminal() == Some(true);
    if terminal && o.console_socket.is_none() {
        return Err(Error::InvalidArgument(
            "exec with a terminal needs --console-socket".into(),
        ));
    }
    let pid_s = st.pid.to_string();
    let me = std::process::id().to_string();
    let mut join: Vec<(LinuxNamespaceType, OwnedFd)> = Vec::new();
    use LinuxNamespaceType::*;
    for t in [User, Ipc, Uts, Network, Pid, Mount, Cgroup] {
        let name = proc_name(t);
        if namespaces::inode(&pid_s, name) == namespaces::inode(&me, name) {
            continue;
        }
        let p = format!("/proc/{pid_s}/ns/{name}");
        let fd = nix::fcntl::open(
            p.as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| format!("open {p}"))?;
        // SAFETY: open returned a new fd owned by nothing else.
        join.push((t, unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let userns = join.iter().any(|(t, _)| *t == User);
    let console = match &o.console_socket {
        Some(p) => Some(
            std::os::unix::net::UnixStream::connect(p)
                .ctx(|| format!("connect console socket {}", p.display()))?,
        ),
        None => None,
    };
    for (t, fd) in &join {
        if *t == Pid {
            namespaces::setns(*t, fd)?;
        }
    }
    let (parent_sock, child_sock) = sync::pair()?;
    let cg_fd = st.cgroup.unified_fd();
    let (pid, in_unified) = clone_child(CloneFlags::empty(), cg_fd.as_ref().map(|f| f.as_fd()))?;
    drop(cg_fd);
    if pid == 0 {
        drop(parent_sock);
        child(
            &child_sock,
            &st.cgroup,
            &join,
            &process,
            &st.config,
            console.as_ref().map(|c| c.as_raw_fd()),
            userns,
            o.preserve_fds,
        );
    }
    drop(child_sock);
    let kill_child = || {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    };
    if !in_unified {
        if let Err(e) = st.cgroup.add_pid_unified(pid) {
            kill_child();
            return Err(e);
        }
    }
    sync::send(&parent_sock, sync::GO)?;
    let msg = sync::recv(&parent_sock)?;
    if msg != sync::OK {
        kill_child();
        let text = msg
            .strip_prefix(sync::ERR)
            .map(|e| String::from_utf8_lossy(e).into_owned());
        return Err(Error::Init(text.unwrap_or_else(|| {
            "exec process exited before it was ready".into()
        })));
    }
    if let Some(p) = &o.pid_file {
        write_pid_file(p, pid)?;
    }
    if o.detach {
        return Ok(0);
    }
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::sys("wait exec process", e)),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn child(
    sock: &OwnedFd,
    cgroup: &crate::cgroups::Cgroup,
    join: &[(LinuxNamespaceType, OwnedFd)],
    p: &Process,
    spec: &Spec,
    console: Option<i32>,
    userns: bool,
    preserve: u32,
) -> ! {
    let run = || -> Result<init::Exec> {
        if sync::recv(sock)? != sync::GO {
            return Err(Error::Init("runc-rs went away".into()));
        }
        crate::process::cloexec_from(3 + preserve);
        // The host's cgroup files, before joining the container's namespaces.
        cgroup.join_v1_self()?;
        for (t, fd) in join {
            if *t != LinuxNamespaceType::Pid {
                namespaces::setns(*t, fd)?;
            }
        }
        if let Some(sock) = console {
            nix::unistd::setsid().ctx(|| "setsid".into())?;
            let size = p
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16));
            crate::console::setup(sock, size)?;
        }
        crate::process::set_oom_score_adj(p)?;
        init::prepare_process(p, userns, spec)
    };
    match run() {
        Ok(exec) => {
            if let Err(e) = sync::send(sock, sync::OK) {
                sync::fail(sock, &e);
            }
            init::exec_now(&exec)
        }
        Err(e) => sync::fail(sock, &e),
    }
}
