//! The container's init, between clone and execve. Runs in the child only: every error
//! goes back to runc-rs over the sync socket and the process leaves with _exit.
use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::namespaces::{self, Plan};
use crate::{hooks, process, rootfs, sync};

/// What the init needs from runc-rs.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub cgroup: &'a Cgroup,
    pub plan: &'a Plan,
    pub sync: OwnedFd,
    /// O_PATH fd of `<root>/<id>/exec.fifo`, reopened for writing through /proc/self/fd.
    pub fifo: Option<RawFd>,
    pub console: Option<RawFd>,
    pub no_pivot: bool,
    /// The session keyring to join (runc's `_ses.<id>`), unless `--no-new-keyring`.
    pub keyring: Option<String>,
    pub preserve_fds: u32,
    /// Ask runc-rs to run prestart/createRuntime hooks before pivot_root.
    pub parent_hooks: bool,
    /// Move ourselves into the v1 cgroups (else runc-rs moves us).
    pub self_join: bool,
}

/// Never returns: execs the user process or reports an error and exits.
pub fn run(a: InitArgs<'_>) -> ! {
    let state = match wait_go(&a.sync) {
        Ok(s) => s,
        Err(e) => sync::fail(&a.sync, &e),
    };
    match setup(&a, &state) {
        Ok(exec) => finish(&a.sync, a.fifo, exec, a.spec, &state),
        Err(e) => sync::fail(&a.sync, &e),
    }
}

fn wait_go(fd: &OwnedFd) -> Result<Vec<u8>> {
    let msg = sync::recv(fd)?;
    match msg.strip_prefix(sync::GO) {
        Some(rest) => Ok(rest.to_vec()),
        None => Err(Error::Init(
            "runc-rs went away before the init could start".into(),
        )),
    }
}

fn wait_cgroup(fd: &OwnedFd) -> Result<()> {
    match sync::recv(fd)? {
        m if m == sync::CGROUP => Ok(()),
        m => Err(Error::Init(format!(
            "unexpected sync message {:?}",
            String::from_utf8_lossy(&m)
        ))),
    }
}

/// The resolved command, ready for execve.
pub struct Exec {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

fn setup(a: &InitArgs<'_>, state: &[u8]) -> Result<Exec> {
    let spec = a.spec;
    let proc_ = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Spec("process is missing".into()))?;
    process::cloexec_from(3 + a.preserve_fds);
    if a.self_join {
        a.cgroup.join_v1_self()?;
    }
    process::set_oom_score_adj(proc_)?;
    let userns = a.plan.has(LinuxNamespaceType::User);
    for (t, fd) in &a.plan.join {
        namespaces::setns(*t, fd)?;
    }
    if userns {
        become_root()?;
    }
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    set_hostname(spec, a.plan)?;
    if let Some(name) = &a.keyring {
        process::join_session_keyring(name, userns)?;
    }
    if !a.plan.has(LinuxNamespaceType::Mount) {
        return Err(Error::Spec("a mount namespace is required".into()));
    }
    rootfs::mount_all(spec, a.rootfs, a.cgroup, userns)?;
    // runc-rs moves us into the cgroup while we build the rootfs (a v1 migration waits
    // for an RCU grace period): wait for it before anything that needs the cgroup.
    wait_cgroup(&a.sync)?;
    if a.plan.new.contains(CloneFlags::CLONE_NEWCGROUP) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .ctx(|| "unshare cgroup namespace".into())?;
    }
    if a.parent_hooks {
        sync::send(&a.sync, sync::HOOKS)?;
        wait_go(&a.sync)?;
    }
    hooks::run(
        spec.hooks()
            .as_ref()
            .and_then(|h| h.create_container().as_ref()),
        state,
    )?;
    if a.no_pivot {
        rootfs::move_root(a.rootfs)?;
    } else {
        rootfs::pivot_root(a.rootfs)?;
    }
    if let Some(sock) = a.console {
        let size = proc_
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup(sock, size)?;
    }
    rootfs::sysctl(spec)?;
    rootfs::finalize(spec)?;
    prepare_process(proc_, userns, spec)
}

/// Settings common to the init and exec'd processes, ending with the resolved command.
pub fn prepare_process(proc_: &Process, userns: bool, spec: &Spec) -> Result<Exec> {
    process::set_rlimits(proc_)?;
    if proc_
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        tracing::debug!("apparmor profile skipped: no AppArmor on this host");
    }
    if proc_
        .selinux_label()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        tracing::debug!("selinux label skipped: no SELinux on this host");
    }
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let nnp = proc_.no_new_privileges() == Some(true);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before the
    // capabilities are dropped (as runc does); otherwise as late as possible.
    if !nnp {
        crate::seccomp::load(seccomp)?;
    }
    let setgroups = !userns
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "allow")
            .unwrap_or(true);
    process::set_user_and_caps(proc_, setgroups)?;
    let cwd = proc_.cwd();
    nix::unistd::chdir(cwd)
        .ctx(|| format!("chdir to cwd ({:?}) set in config.json", cwd.display()))?;
    let env = process::env(proc_);
    let args = proc_.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::Spec("args must not be empty".into()))?;
    let path = process::find_executable(arg0, &env)?;
    process::set_no_new_privs(proc_)?;
    if nnp {
        crate::seccomp::load(seccomp)?;
    }
    Ok(Exec {
        path: rootfs::cstr(&path)?,
        argv: process::cstrings(&args)?,
        envp: process::cstrings(&env)?,
    })
}

fn become_root() -> Result<()> {
    let root_u = nix::unistd::Uid::from_raw(0);
    let root_g = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g).ctx(|| "setgid 0 in user namespace".into())?;
    nix::unistd::setresuid(root_u, root_u, root_u).ctx(|| "setuid 0 in user namespace".into())
}

fn set_hostname(spec: &Spec, plan: &Plan) -> Result<()> {
    let uts = plan.has(LinuxNamespaceType::Uts);
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if !uts {
            return Err(Error::Spec(
                "unable to set hostname without a private UTS namespace".into(),
            ));
        }
        nix::unistd::sethostname(h).ctx(|| format!("sethostname {h}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        if !uts {
            return Err(Error::Spec(
                "unable to set domainname without a private UTS namespace".into(),
            ));
        }
        // SAFETY: setdomainname reads `len` bytes from a valid buffer.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::io(
                format!("setdomainname {d}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// Reports success, waits on the exec fifo until `start`, then execs.
fn finish(sync_fd: &OwnedFd, fifo: Option<RawFd>, exec: Exec, spec: &Spec, state: &[u8]) -> ! {
    if let Err(e) = sync::send(sync_fd, sync::OK) {
        sync::fail(sync_fd, &e);
    }
    if let Some(fd) = fifo {
        let path = format!("/proc/self/fd/{fd}");
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(mut f) => {
                let _ = std::io::Write::write_all(&mut f, b"0");
            }
            // SAFETY: _exit ends the init; runc-rs has already returned.
            Err(_) => unsafe { libc::_exit(1) },
        }
        let _ = nix::unistd::close(fd);
    }
    if let Err(_e) = hooks::run(
        spec.hooks()
            .as_ref()
            .and_then(|h| h.start_container().as_ref()),
        state,
    ) {
        // SAFETY: _exit ends the init when a startContainer hook fails, as runc does.
        unsafe { libc::_exit(1) }
    }
    exec_now(&exec)
}

/// execve, or exit 127 (the caller has already been told we were ready).
pub fn exec_now(exec: &Exec) -> ! {
    process::reset_signals();
    let _ = nix::unistd::execve(&exec.path, &exec.argv, &exec.envp);
    // SAFETY: _exit after a failed execve.
    unsafe { libc::_exit(127) }
}
