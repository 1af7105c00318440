//! `create`: runc-rs's side of making a container. Forks the init straight from this
//! single-threaded process (no re-exec), drives it over the sync socket, writes state.
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::init::{self, InitArgs};
use crate::namespaces::{self, Plan};
use crate::state::{self, State, Status};
use crate::{hooks, sync, utils};

/// `create` options (runc's flags).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of joining `_ses.<id>`.
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// Undoes a half-made container unless disarmed.
struct Cleanup<'a> {
    dir: &'a Path,
    cgroup: Option<Cgroup>,
    child: Option<i32>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!(error = %e, "remove cgroup after failed create");
            }
        }
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let p = bundle.join("config.json");
    let mut data = std::fs::read(&p).ctx(|| format!("open {}", p.display()))?;
    fix_oci_names(&mut data);
    serde_json::from_slice(&data).map_err(|e| Error::Spec(format!("parse {}: {e}", p.display())))
}

#[cfg(test)]
mod oci_name_tests {
    use super::fix_oci_names;

    fn fixed(s: &str) -> String {
        let mut b = s.as_bytes().to_vec();
        fix_oci_names(&mut b);
        String::from_utf8(b).expect("utf8")
    }

    #[test]
    fn renames_the_oci_keys() {
        assert_eq!(
            fixed(r#"{"throttleReadIOPSDevice":[],"throttleWriteIOPSDevice":[]}"#),
            r#"{"throttleReadIopsDevice":[],"throttleWriteIopsDevice":[]}"#
        );
    }

    #[test]
    fn leaves_a_key_alone_when_both_spellings_are_there() {
        let both = r#"{"throttleReadIOPSDevice":[1],"throttleReadIopsDevice":[1]}"#;
        assert_eq!(fixed(both), both);
    }

    #[test]
    fn does_not_touch_values() {
        let v = r#"{"env":["X=throttleReadIOPSDevice"]}"#;
        assert_eq!(fixed(v), v);
    }
}

/// oci-spec 0.7 spells the spec's `throttleReadIOPSDevice` keys `throttleReadIopsDevice`:
/// rename the quoted keys in the raw JSON (same length, in place) so that they are not dropped.
/// A document that already carries oci-spec's spelling is left alone for that key (renaming
/// would make a duplicate field, which serde rejects).
pub fn fix_oci_names(json: &mut [u8]) {
    for (from, to) in [
        (
            &b"\"throttleReadIOPSDevice\""[..],
            &b"\"throttleReadIopsDevice\""[..],
        ),
        (
            &b"\"throttleWriteIOPSDevice\""[..],
            &b"\"throttleWriteIopsDevice\""[..],
        ),
    ] {
        if json.windows(to.len()).any(|w| w == to) {
            continue;
        }
        let mut i = 0;
        while i + from.len() <= json.len() {
            if &json[i..i + from.len()] == from {
                json[i..i + from.len()].copy_from_slice(to);
                i += from.len();
            } else {
                i += 1;
            }
        }
    }
}

/// Creates the container and leaves its init blocked on the exec fifo. Returns its pid.
pub fn create(root: &Path, o: &CreateOpts, with_fifo: bool) -> Result<i32> {
    create_with_console(root, o, with_fifo, None)
}

/// `create` where the caller may hand over the console socket itself (`run` with a
/// terminal and no `--console-socket`: one end of a socketpair).
pub fn create_with_console(
    root: &Path,
    o: &CreateOpts,
    with_fifo: bool,
    own_console: Option<std::os::unix::net::UnixStream>,
) -> Result<i32> {
    state::validate_id(&o.id)?;
    let bundle =
        std::fs::canonicalize(&o.bundle).ctx(|| format!("bundle {}", o.bundle.display()))?;
    let spec = load_spec(&bundle)?;
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| Error::Spec("root is missing".into()))?;
    let rootfs = std::fs::canonicalize(bundle.join(&root_path))
        .ctx(|| format!("rootfs {}", root_path.display()))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Spec("process is missing".into()))?;
    let terminal = process.terminal() == Some(true);
    match (terminal, &o.console_socket) {
        (true, None) if own_console.is_none() => {
            return Err(Error::InvalidArgument(
                "cannot allocate tty if runc will detach without setting console socket".into(),
            ))
        }
        (false, Some(_)) => {
            return Err(Error::InvalidArgument(
                "cannot use console socket if runc will not detach or allocate tty".into(),
            ))
        }
        _ => {}
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::Spec("linux section is missing".into()))?;

    std::fs::create_dir_all(root).ctx(|| format!("mkdir {}", root.display()))?;
    let dir = state::container_dir(root, &o.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Exists(o.id.clone()))
        }
        Err(e) => return Err(Error::io(format!("mkdir {}", dir.display()), e)),
    }
    let mut guard = Cleanup {
        dir: &dir,
        cgroup: None,
        child: None,
        armed: true,
    };

    let fifo_path = dir.join("exec.fifo");
    let fifo = if with_fifo {
        nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .ctx(|| "mkfifo exec.fifo".into())?;
        nix::sys::stat::fchmodat(
            None,
            &fifo_path,
            nix::sys::stat::Mode::from_bits_truncate(0o622),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .ctx(|| "chmod exec.fifo".into())?;
        let fd = nix::fcntl::open(
            &fifo_path,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| "open exec.fifo".into())?;
        // SAFETY: open returned a new fd owned by nothing else.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        None
    };

    let cgroup = Cgroup::resolve(linux.cgroups_path().as_deref(), &o.id)?;
    guard.cgroup = Some(cgroup.clone());
    cgroup.create(linux.resources().as_ref())?;

    let plan = Plan::from_spec(linux.namespaces().as_deref().unwrap_or(&[]))?;
    let console = match &o.console_socket {
        Some(p) => Some(
            std::os::unix::net::UnixStream::connect(p)
                .ctx(|| format!("connect console socket {}", p.display()))?,
        ),
        None => own_console.filter(|_| terminal),
    };
    let (parent_sock, child_sock) = sync::pair()?;
    let hooks_cfg = spec.hooks().as_ref();
    let parent_hooks =
        hooks_cfg.is_some_and(|h| h.prestart().is_some() || h.create_runtime().is_some());

    // Joining a pid namespace applies to children: do it here, before clone.
    for (t, fd) in &plan.join {
        if *t == LinuxNamespaceType::Pid {
            namespaces::setns(*t, fd)?;
        }
    }
    let flags = plan.new & !CloneFlags::CLONE_NEWCGROUP;
    // Without a new user namespace the init moves itself into the v1 cgroups (no RCU
    // grace period) and is born in the unified one; in a user namespace it may not write
    // the host's cgroup files, so runc-rs moves it.
    let self_join = !flags.contains(CloneFlags::CLONE_NEWUSER);
    let cg_fd = if self_join { cgroup.unified_fd() } else { None };
    let (pid, in_unified) = clone_child(flags, cg_fd.as_ref().map(|f| f.as_fd()))?;
    drop(cg_fd);
    if pid == 0 {
        drop(parent_sock);
        std::mem::forget(guard);
        let join: Vec<_> = plan
            .join
            .iter()
            .filter(|(t, _)| *t != LinuxNamespaceType::Pid)
            .map(|(t, fd)| (*t, fd.try_clone()))
            .collect();
        let mut child_plan = Plan {
            new: plan.new,
            join: Vec::new(),
        };
        for (t, fd) in join {
            match fd {
                Ok(fd) => child_plan.join.push((t, fd)),
                Err(e) => sync::fail(&child_sock, &Error::io("dup namespace fd", e)),
            }
        }
        init::run(InitArgs {
            spec: &spec,
            rootfs: &rootfs,
            cgroup: &cgroup,
            plan: &child_plan,
            sync: child_sock,
            fifo: fifo.as_ref().map(|f| f.as_raw_fd()),
            console: console.as_ref().map(|c| c.as_raw_fd()),
            no_pivot: o.no_pivot,
            keyring: (!o.no_new_keyring).then(|| format!("_ses.{}", o.id)),
            preserve_fds: o.preserve_fds,
            parent_hooks,
            self_join,
        });
    }
    drop(child_sock);
    guard.child = Some(pid);
    tracing::debug!(pid, id = %o.id, "init cloned");

    if plan.new.contains(CloneFlags::CLONE_NEWUSER) {
        namespaces::write_id_maps(
            pid,
            linux.uid_mappings().as_deref().unwrap_or(&[]),
            linux.gid_mappings().as_deref().unwrap_or(&[]),
        )?;
    }

    let start_time = utils::proc_stat(pid).map(|s| s.0).unwrap_or(0);
    let st = State {
        id: o.id.clone(),
        pid,
        start_time,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: utils::now_rfc3339(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        owner: String::new(),
        cgroup: cgroup.clone(),
        config: spec.clone(),
    };
    let creating = hook_state(&st, "creating");
    let mut go = sync::GO.to_vec();
    go.extend_from_slice(&creating);
    sync::send(&parent_sock, &go)?;
    if !self_join {
        cgroup.add_pid(pid)?;
    } else if !in_unified {
        cgroup.add_pid_unified(pid)?;
    }
    sync::send(&parent_sock, sync::CGROUP)?;
    loop {
        let msg = sync::recv(&parent_sock)?;
        if msg == sync::OK {
            break;
        } else if msg == sync::HOOKS {
            if let Some(h) = hooks_cfg {
                hooks::run(h.prestart().as_ref(), &creating)?;
                hooks::run(h.create_runtime().as_ref(), &creating)?;
            }
            sync::send(&parent_sock, sync::GO)?;
        } else if let Some(e) = msg.strip_prefix(sync::ERR) {
            return Err(Error::Init(String::from_utf8_lossy(e).into_owned()));
        } else {
            let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            guard.child = None;
            return Err(Error::Init(format!(
                "container init exited before it was ready: {status:?}"
            )));
        }
    }
    st.save(root)?;
    if let Some(p) = &o.pid_file {
        write_pid_file(p, pid)?;
    }
    guard.armed = false;
    Ok(pid)
}

/// The state JSON given to hooks.
pub fn hook_state(st: &State, status: &str) -> Vec<u8> {
    let mut oci = st.oci(Status::Created);
    oci.status = status;
    oci.pid = st.pid;
    serde_json::to_vec(&oci).unwrap_or_default()
}

/// Writes the pid file atomically, as runc does.
pub fn write_pid_file(p: &Path, pid: i32) -> Result<()> {
    let tmp = p.with_file_name(format!(
        ".{}",
        p.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, p).ctx(|| format!("rename {}", p.display()))
}

/// clone3's argument structure (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork-like clone with namespace flags. Returns 0 in the child. With `cgroup` (a cgroup2
/// directory fd) the child is born in that cgroup (clone3 CLONE_INTO_CGROUP), which costs
/// no migration; the second value says whether that happened.
pub fn clone_child(
    flags: CloneFlags,
    cgroup: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<(i32, bool)> {
    if let Some(fd) = cgroup {
        let args = CloneArgs {
            flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: fd.as_raw_fd() as u64,
            ..Default::default()
        };
        // SAFETY: clone3 without CLONE_VM and without a stack behaves like fork(2) (see
        // below); `args` is a valid clone_args of the size passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if r >= 0 {
            return Ok((r as i32, true));
        }
        let e = std::io::Error::last_os_error();
        tracing::debug!(error = %e, "clone3 into cgroup failed: plain clone");
    }
    // SAFETY: a raw clone without CLONE_VM and without a new stack behaves like fork(2):
    // the child runs on a copy of this address space. runc-rs is single-threaded, so
    // no other thread can hold a lock (malloc, stdio) that the child would inherit.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        return Err(Error::io(
            format!("clone with {flags:?}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok((r as i32, false))
}
