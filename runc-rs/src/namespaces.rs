//! Namespace flags, joins by path, and user namespace id maps.
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespace, LinuxNamespaceType};

use crate::error::{Context, Error, Result};

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The namespaces a container gets: new ones (as clone flags) and ones to join (open fds).
pub struct Plan {
    pub new: CloneFlags,
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
}

impl Plan {
    pub fn from_spec(list: &[LinuxNamespace]) -> Result<Plan> {
        let mut plan = Plan {
            new: CloneFlags::empty(),
            join: Vec::new(),
        };
        for ns in list {
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    let fd = nix::fcntl::open(
                        p,
                        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .ctx(|| format!("open namespace {} {}", proc_name(ns.typ()), p.display()))?;
                    // SAFETY: open returned a new fd that nothing else owns.
                    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                    plan.join.push((ns.typ(), fd));
                }
                _ => plan.new |= flag(ns.typ()),
            }
        }
        // A user namespace must be joined first: it owns the others.
        plan.join
            .sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
        Ok(plan)
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(flag(t)) || self.join.iter().any(|(x, _)| *x == t)
    }
}

/// Joins one namespace.
pub fn setns(t: LinuxNamespaceType, fd: &OwnedFd) -> Result<()> {
    nix::sched::setns(fd, flag(t)).ctx(|| format!("setns {}", proc_name(t)))
}

/// Writes uid_map and gid_map of a child in a new user namespace.
pub fn write_id_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    let fmt = |m: &[LinuxIdMapping]| {
        m.iter()
            .map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size()))
            .collect::<String>()
    };
    if uids.is_empty() || gids.is_empty() {
        return Err(Error::Spec(
            "a new user namespace needs uidMappings and gidMappings".into(),
        ));
    }
    for (file, data) in [("uid_map", fmt(uids)), ("gid_map", fmt(gids))] {
        let p = format!("/proc/{pid}/{file}");
        std::fs::write(&p, data).ctx(|| format!("write {p}"))?;
    }
    Ok(())
}

/// The inode of `/proc/<pid>/ns/<name>` (to compare namespaces).
pub fn inode(pid: &str, name: &str) -> Option<u64> {
    std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(Path::new("/proc").join(pid).join("ns").join(name)).ok()?,
    )
    .into()
}
