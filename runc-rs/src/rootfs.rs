//! The container's filesystem: propagation, spec mounts, /dev, pivot_root, masked and
//! readonly paths. Runs in the init, inside its new mount namespace.
use std::ffi::CString;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::utils::{self, secure_join};

/// Mount options split into flags, propagation changes and fs data.
#[derive(Debug, PartialEq)]
pub struct MountOpts {
    pub flags: MsFlags,
    pub clear: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    /// Recursive attributes (`rro`, `rnosuid`...): MOUNT_ATTR_* to set and to clear.
    pub rec_set: u64,
    pub rec_clr: u64,
    /// `tmpcopyup`: a tmpfs starts with a copy of what it covers.
    pub copyup: bool,
}

const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;
const ATTR_NOEXEC: u64 = 0x8;
const ATTR_ATIME_MASK: u64 = 0x70;
const ATTR_NOATIME: u64 = 0x10;
const ATTR_STRICTATIME: u64 = 0x20;
const ATTR_NODIRATIME: u64 = 0x80;
const ATTR_NOSYMFOLLOW: u64 = 0x20_0000;

/// runc's recursive options: (set, clear) MOUNT_ATTR_* bits for mount_setattr.
fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    Some(match opt {
        "rro" => (ATTR_RDONLY, 0),
        "rrw" => (0, ATTR_RDONLY),
        "rnosuid" => (ATTR_NOSUID, 0),
        "rsuid" => (0, ATTR_NOSUID),
        "rnodev" => (ATTR_NODEV, 0),
        "rdev" => (0, ATTR_NODEV),
        "rnoexec" => (ATTR_NOEXEC, 0),
        "rexec" => (0, ATTR_NOEXEC),
        "rnodiratime" => (ATTR_NODIRATIME, 0),
        "rdiratime" => (0, ATTR_NODIRATIME),
        "rrelatime" => (0, ATTR_ATIME_MASK),
        "rnorelatime" => (0, 0),
        "rnoatime" => (ATTR_NOATIME, ATTR_ATIME_MASK),
        "ratime" => (0, ATTR_NOATIME),
        "rstrictatime" => (ATTR_STRICTATIME, ATTR_ATIME_MASK),
        "rnostrictatime" => (0, ATTR_STRICTATIME),
        "rnosymfollow" => (ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Applies recursive attributes to `dst` and every mount below it (mount_setattr).
fn set_recursive(dst: &Path, set: u64, clr: u64) -> Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let c = cstr(dst)?;
    // SAFETY: mount_setattr reads a valid mount_attr of the size passed and a NUL-terminated path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(Error::io(
            format!(
                "mount_setattr {} (set {set:#x}, clear {clr:#x})",
                dst.display()
            ),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Parses options like `ro,nosuid,rbind,rprivate,size=65536k,mode=755`.
pub fn parse_options(opts: &[String]) -> MountOpts {
    let mut o = MountOpts {
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
        rec_set: 0,
        rec_clr: 0,
        copyup: false,
    };
    for opt in opts {
        if let Some((set, clr)) = recursive_attr(opt) {
            o.rec_set = (o.rec_set & !clr) | set;
            o.rec_clr = (o.rec_clr & !set) | clr;
            continue;
        }
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "nosymfollow" => (MsFlags::from_bits_retain(256), MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MsFlags::from_bits_retain(256)),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
            "acl" => (MsFlags::MS_POSIXACL, MsFlags::empty()),
            "noacl" => (MsFlags::empty(), MsFlags::MS_POSIXACL),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation
                    .push(propagation_flag(opt).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            "tmpcopyup" => {
                o.copyup = true;
                continue;
            }
            "idmap" | "ridmap" => continue,
            _ => {
                o.data.push(opt.clone());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
    }
    o
}

pub fn propagation_flag(s: &str) -> Option<MsFlags> {
    Some(match s {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

pub(crate) fn do_mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(src, dst, fstype, flags, data).ctx(|| {
        format!(
            "mount {} to {} (type {}, flags {:?}, data {:?})",
            src.map(|s| s.display().to_string()).unwrap_or_default(),
            dst.display(),
            fstype.unwrap_or(""),
            flags,
            data.unwrap_or("")
        )
    })
}

/// Mount flags that are locked on a bind mount and must be kept when remounting it.
fn locked_flags(path: &Path) -> MsFlags {
    let mut f = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::statvfs(path) {
        use nix::sys::statvfs::FsFlags;
        let fl = st.flags();
        for (a, b) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if fl.contains(a) {
                f |= b;
            }
        }
    }
    f
}

/// Creates `dst` as a directory, or as an empty file when the source is a file.
fn create_target(dst: &Path, file: bool) -> Result<()> {
    if file {
        if let Some(parent) = dst.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .ctx(|| format!("mkdir {}", parent.display()))?;
        }
        if std::fs::symlink_metadata(dst).is_err() {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o755)
                .open(dst)
                .ctx(|| format!("create {}", dst.display()))?;
        }
        Ok(())
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dst)
            .ctx(|| format!("mkdir {}", dst.display()))
    }
}

/// Everything before pivot_root: propagation, the rootfs bind, spec mounts, /dev.
pub fn mount_all(spec: &Spec, rootfs: &Path, cgroup: &Cgroup, in_userns: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
        .map(|p| {
            propagation_flag(p)
                .ok_or_else(|| Error::Spec(format!("unknown rootfsPropagation {p:?}")))
        })
        .transpose()?
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    do_mount(None, Path::new("/"), None, prop, None)?;
    // After a slave or private `/`, no mount is shared: only a shared propagation needs
    // the parent of the rootfs made private for pivot_root.
    if prop.contains(MsFlags::MS_SHARED) {
        make_parent_mount_private(rootfs)?;
    }
    do_mount(
        Some(rootfs),
        rootfs,
        Some("bind"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;

    let mut dev_is_bind = false;
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        if m.destination() == Path::new("/dev") && is_bind(m) {
            dev_is_bind = true;
        }
        mount_one(m, rootfs, cgroup, in_userns)?;
    }
    if !dev_is_bind {
        create_devices(
            rootfs,
            linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]),
            in_userns,
        )?;
        dev_symlinks(rootfs)?;
    }
    Ok(())
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// pivot_root needs the rootfs's parent mount to be non-shared.
fn make_parent_mount_private(rootfs: &Path) -> Result<()> {
    let mounts = utils::mountinfo()?;
    let best = mounts
        .iter()
        .filter(|m| rootfs.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len());
    if let Some(m) = best {
        if m.optional.contains("shared:") {
            do_mount(None, &m.mount_point, None, MsFlags::MS_PRIVATE, None)?;
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, rootfs: &Path, cgroup: &Cgroup, in_userns: bool) -> Result<()> {
    let dst = secure_join(rootfs, m.destination())?;
    let o = parse_options(m.options().as_deref().unwrap_or(&[]));
    let data = o.data.join(",");
    let data = (!data.is_empty()).then_some(data);
    let typ = m.typ().as_deref().unwrap_or("");
    if is_bind(m) {
        let src = m.source().clone().unwrap_or_default();
        let meta = std::fs::metadata(&src).ctx(|| format!("stat bind source {}", src.display()))?;
        create_target(&dst, !meta.is_dir())?;
        let rec = o.flags & MsFlags::MS_REC;
        do_mount(Some(&src), &dst, Some("bind"), MsFlags::MS_BIND | rec, None)?;
        let extra = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            let f = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | extra
                | (locked_flags(&dst) & !o.clear & !MsFlags::MS_RDONLY);
            do_mount(None, &dst, None, f | (extra & MsFlags::MS_RDONLY), None)?;
        }
    } else if typ == "cgroup" {
        mount_cgroup(&dst, cgroup, &o)?;
    } else if typ == "tmpfs" {
        // runc gives a tmpfs over an existing directory that directory's mode.
        let before = std::fs::metadata(&dst).ok().filter(|m| m.is_dir());
        create_target(&dst, false)?;
        let src = m.source().clone().unwrap_or_else(|| PathBuf::from("tmpfs"));
        if o.copyup {
            crate::copyup::tmpfs_copyup(&dst, o.flags, data.as_deref())?;
        } else {
            do_mount(Some(&src), &dst, Some("tmpfs"), o.flags, data.as_deref())?;
        }
        if let Some(m) = before {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::os::unix::fs::MetadataExt::mode(&m) & 0o7777;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))
                .ctx(|| format!("chmod {}", dst.display()))?;
        }
    } else {
        create_target(&dst, false)?;
        let src = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        let res = do_mount(Some(&src), &dst, Some(typ), o.flags, data.as_deref());
        match res {
            // sysfs in a user namespace without its own net namespace: bind the host's /sys.
            Err(Error::Sys {
                source: nix::Error::EPERM,
                ..
            }) if typ == "sysfs" && in_userns => {
                do_mount(
                    Some(Path::new("/sys")),
                    &dst,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
            }
            // /dev/mqueue from the host's ipc namespace cannot be mounted from a user namespace.
            Err(Error::Sys {
                source: nix::Error::EPERM,
                ..
            }) if typ == "mqueue" && in_userns => {
                do_mount(
                    Some(Path::new("/dev/mqueue")),
                    &dst,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
            }
            r => r?,
        }
    }
    if o.rec_set != 0 || o.rec_clr != 0 {
        set_recursive(&dst, o.rec_set, o.rec_clr)?;
    }
    for p in &o.propagation {
        do_mount(None, &dst, None, *p, None)?;
    }
    Ok(())
}

/// A `cgroup` mount: a tmpfs with the container's own cgroup directories bound read-only
/// (v1), or the container's cgroup2 directory.
fn mount_cgroup(dst: &Path, cg: &Cgroup, o: &MountOpts) -> Result<()> {
    create_target(dst, false)?;
    let ro = o.flags.contains(MsFlags::MS_RDONLY);
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if cg.v2_only {
        if let Some(dir) = &cg.unified {
            do_mount(Some(dir), dst, Some("bind"), MsFlags::MS_BIND, None)?;
            if ro {
                do_mount(
                    None,
                    dst,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
                    None,
                )?;
            }
        }
        return Ok(());
    }
    do_mount(
        Some(Path::new("tmpfs")),
        dst,
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )?;
    let mut by_dir: std::collections::BTreeMap<PathBuf, Vec<String>> = Default::default();
    for (ctrl, dir) in &cg.v1 {
        by_dir
            .entry(dir.clone())
            .or_default()
            .push(ctrl.strip_prefix("name=").unwrap_or(ctrl).to_string());
    }
    let mut entries: Vec<(String, PathBuf)> =
        by_dir.into_iter().map(|(d, c)| (c.join(","), d)).collect();
    if let Some(u) = &cg.unified {
        entries.push(("unified".into(), u.clone()));
    }
    for (name, dir) in entries {
        let target = dst.join(&name);
        create_target(&target, false)?;
        do_mount(Some(&dir), &target, Some("bind"), MsFlags::MS_BIND, None)?;
        let f = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | base
            | if ro {
                MsFlags::MS_RDONLY
            } else {
                MsFlags::empty()
            };
        do_mount(None, &target, None, f, None)?;
        if name.contains(',') {
            for part in name.split(',') {
                let _ = std::os::unix::fs::symlink(&name, dst.join(part));
            }
        }
    }
    if ro {
        do_mount(
            None,
            dst,
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
            Some("mode=755"),
        )?;
    }
    Ok(())
}

struct DefaultDev {
    path: &'static str,
    major: u64,
    minor: u64,
}

const DEFAULT_DEVICES: &[DefaultDev] = &[
    DefaultDev {
        path: "null",
        major: 1,
        minor: 3,
    },
    DefaultDev {
        path: "zero",
        major: 1,
        minor: 5,
    },
    DefaultDev {
        path: "full",
        major: 1,
        minor: 7,
    },
    DefaultDev {
        path: "random",
        major: 1,
        minor: 8,
    },
    DefaultDev {
        path: "urandom",
        major: 1,
        minor: 9,
    },
    DefaultDev {
        path: "tty",
        major: 5,
        minor: 0,
    },
];

#[allow(clippy::too_many_arguments)]
fn make_device(
    rootfs: &Path,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    owner: (Option<u32>, Option<u32>),
    bind: bool,
) -> Result<()> {
    let dst = secure_join(rootfs, path)?;
    if let Some(parent) = dst.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .ctx(|| format!("mkdir {}", parent.display()))?;
    }
    if bind {
        create_target(&dst, true)?;
        return do_mount(
            Some(&Path::new("/").join(path.strip_prefix("/").unwrap_or(path))),
            &dst,
            Some("bind"),
            MsFlags::MS_BIND,
            None,
        );
    }
    let _ = std::fs::remove_file(&dst);
    mknod(
        &dst,
        kind,
        Mode::from_bits_truncate(mode & 0o7777),
        makedev(major, minor),
    )
    .ctx(|| format!("mknod {}", dst.display()))?;
    // mknod is subject to the umask: set the mode explicitly.
    nix::sys::stat::fchmodat(
        None,
        &dst,
        Mode::from_bits_truncate(mode & 0o7777),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .ctx(|| format!("chmod {}", dst.display()))?;
    if owner.0.is_some() || owner.1.is_some() {
        nix::unistd::chown(
            &dst,
            owner.0.map(nix::unistd::Uid::from_raw),
            owner.1.map(nix::unistd::Gid::from_raw),
        )
        .ctx(|| format!("chown {}", dst.display()))?;
    }
    Ok(())
}

/// The default /dev nodes and the spec's devices (bind-mounted from the host in a user namespace).
fn create_devices(rootfs: &Path, devices: &[LinuxDevice], in_userns: bool) -> Result<()> {
    for d in DEFAULT_DEVICES {
        let path = PathBuf::from("/dev").join(d.path);
        if devices.iter().any(|x| x.path() == &path) {
            continue;
        }
        make_device(
            rootfs,
            &path,
            SFlag::S_IFCHR,
            d.major,
            d.minor,
            0o666,
            (None, None),
            in_userns,
        )?;
    }
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        make_device(
            rootfs,
            d.path(),
            kind,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            (d.uid(), d.gid()),
            in_userns,
        )?;
    }
    Ok(())
}

fn dev_symlinks(rootfs: &Path) -> Result<()> {
    let dev = secure_join(rootfs, Path::new("/dev"))?;
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("/proc/kcore", "core"),
    ];
    for (target, name) in links {
        match std::os::unix::fs::symlink(target, dev.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("symlink /dev/{name}"), e)),
        }
    }
    let ptmx = dev.join("ptmx");
    if dev.join("pts").is_dir() {
        let _ = std::fs::remove_file(&ptmx);
        std::os::unix::fs::symlink("pts/ptmx", &ptmx).ctx(|| "symlink /dev/ptmx".into())?;
    }
    Ok(())
}

/// pivot_root into `rootfs` and detach the old root (runc's fchdir trick, no temp dir).
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    let oldroot = std::fs::File::open("/").ctx(|| "open /".into())?;
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    nix::unistd::pivot_root(".", ".").ctx(|| format!("pivot_root {}", rootfs.display()))?;
    nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&oldroot))
        .ctx(|| "fchdir old root".into())?;
    do_mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

/// `--no-pivot`: move the rootfs over / and chroot.
pub fn move_root(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    do_mount(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)?;
    nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

/// After pivot_root: readonly paths, masked paths and the readonly root.
pub fn finalize(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or(&[])
    {
        let path = Path::new(p);
        match do_mount(
            Some(path),
            path,
            Some("bind"),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        ) {
            Err(Error::Sys {
                source: nix::Error::ENOENT,
                ..
            }) => continue,
            r => r?,
        }
        let f = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_REC
            | locked_flags(path);
        do_mount(None, path, None, f, None)?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or(&[])
    {
        let path = Path::new(p);
        let r = match std::fs::metadata(path) {
            Err(_) => continue,
            Ok(m) if m.is_dir() => do_mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            ),
            Ok(_) => do_mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            ),
        };
        match r {
            Err(Error::Sys {
                source: nix::Error::ENOENT,
                ..
            }) => {}
            r => r?,
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let f = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | locked_flags(Path::new("/"));
        do_mount(None, Path::new("/"), None, f, None)?;
    }
    Ok(())
}

/// Writes `linux.sysctl` into /proc/sys (after pivot_root, so the container's /proc).
pub fn sysctl(spec: &Spec) -> Result<()> {
    for (k, v) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        utils::write_file(&path, v)?;
    }
    Ok(())
}

/// The C string of a path (for raw syscalls).
pub fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidArgument(format!("path with NUL: {}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> Vec<String> {
        s.split(',').map(str::to_string).collect()
    }

    #[test]
    fn option_parsing() {
        let o = parse_options(&opts("nosuid,strictatime,mode=755,size=65536k"));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(
            o.data,
            vec!["mode=755".to_string(), "size=65536k".to_string()]
        );
        let o = parse_options(&opts("rbind,ro,rprivate"));
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        let o = parse_options(&opts("ro,rw,noexec,exec"));
        assert_eq!(o.flags, MsFlags::empty());
        let o = parse_options(&opts("rbind,rro,rnosuid,rnoatime,rsuid"));
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(o.rec_set, ATTR_RDONLY | ATTR_NOATIME);
        assert_eq!(o.rec_clr, ATTR_ATIME_MASK | ATTR_NOSUID);
        assert!(o.data.is_empty());
    }
}
