//! seccomp filters from `linux.seccomp`, compiled by libseccomp (linked through a small FFI).
use std::ffi::{c_char, c_int, c_uint, c_void, CString};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use crate::error::{Error, Result};

#[repr(C)]
struct ScmpArgCmp {
    arg: c_uint,
    op: c_int,
    datum_a: u64,
    datum_b: u64,
}

#[link(name = "seccomp")]
extern "C" {
    fn seccomp_init(def_action: u32) -> *mut c_void;
    fn seccomp_release(ctx: *mut c_void);
    fn seccomp_arch_add(ctx: *mut c_void, arch_token: u32) -> c_int;
    fn seccomp_arch_resolve_name(name: *const c_char) -> u32;
    fn seccomp_syscall_resolve_name(name: *const c_char) -> c_int;
    fn seccomp_rule_add_array(
        ctx: *mut c_void,
        action: u32,
        syscall: c_int,
        arg_cnt: c_uint,
        arg_array: *const ScmpArgCmp,
    ) -> c_int;
    fn seccomp_attr_set(ctx: *mut c_void, attr: c_int, value: u32) -> c_int;
    fn seccomp_load(ctx: *const c_void) -> c_int;
    fn seccomp_version() -> *const ScmpVersion;
}

#[repr(C)]
struct ScmpVersion {
    major: c_uint,
    minor: c_uint,
    micro: c_uint,
}

/// The version of the linked libseccomp (`2.5.4`).
pub fn version() -> String {
    // SAFETY: seccomp_version returns a pointer to a static structure (or NULL).
    let v = unsafe { seccomp_version().as_ref() };
    v.map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|| "unknown".into())
}

const SCMP_FLTATR_CTL_NNP: c_int = 3;
const SCMP_FLTATR_CTL_LOG: c_int = 6;

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> u32 {
    let low = |e: u32| e & 0xffff;
    match a {
        LinuxSeccompAction::ScmpActKill => 0x0000_0000,
        LinuxSeccompAction::ScmpActKillThread => 0x0000_0000,
        LinuxSeccompAction::ScmpActKillProcess => 0x8000_0000,
        LinuxSeccompAction::ScmpActTrap => 0x0003_0000,
        LinuxSeccompAction::ScmpActErrno => 0x0005_0000 | low(errno.unwrap_or(libc::EPERM as u32)),
        LinuxSeccompAction::ScmpActTrace => 0x7ff0_0000 | low(errno.unwrap_or(libc::EPERM as u32)),
        LinuxSeccompAction::ScmpActLog => 0x7ffc_0000,
        LinuxSeccompAction::ScmpActAllow => 0x7fff_0000,
        LinuxSeccompAction::ScmpActNotify => 0x7fc0_0000,
    }
}

fn op(o: LinuxSeccompOperator) -> c_int {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => 1,
        LinuxSeccompOperator::ScmpCmpLt => 2,
        LinuxSeccompOperator::ScmpCmpLe => 3,
        LinuxSeccompOperator::ScmpCmpEq => 4,
        LinuxSeccompOperator::ScmpCmpGe => 5,
        LinuxSeccompOperator::ScmpCmpGt => 6,
        LinuxSeccompOperator::ScmpCmpMaskedEq => 7,
    }
}

struct Filter(*mut c_void);

impl Drop for Filter {
    fn drop(&mut self) {
        // SAFETY: the context came from seccomp_init and is released once.
        unsafe { seccomp_release(self.0) };
    }
}

fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Builds the filter and loads it into the calling process.
pub fn load(s: Option<&LinuxSeccomp>) -> Result<()> {
    let Some(s) = s else {
        return Ok(());
    };
    if s.listener_path().is_some() {
        return Err(Error::Spec(
            "seccomp listenerPath (SCMP_ACT_NOTIFY) is not supported".into(),
        ));
    }
    let def = action(s.default_action(), s.default_errno_ret());
    // SAFETY: seccomp_init returns a new context or NULL.
    let ctx = unsafe { seccomp_init(def) };
    if ctx.is_null() {
        return Err(Error::Spec("seccomp_init failed".into()));
    }
    let f = Filter(ctx);
    // runc-rs sets no_new_privs itself, from the spec.
    // SAFETY: valid context and attribute.
    unsafe { seccomp_attr_set(f.0, SCMP_FLTATR_CTL_NNP, 0) };
    let log_flag = s
        .flags()
        .iter()
        .flatten()
        .any(|fl| serde_name(fl) == "SECCOMP_FILTER_FLAG_LOG");
    if log_flag {
        // SAFETY: valid context and attribute.
        unsafe { seccomp_attr_set(f.0, SCMP_FLTATR_CTL_LOG, 1) };
    }
    for a in s.architectures().iter().flatten() {
        let name = serde_name(a);
        let short = name.trim_start_matches("SCMP_ARCH_").to_ascii_lowercase();
        let c = CString::new(short.clone()).map_err(|_| Error::Spec(format!("bad arch {name}")))?;
        // SAFETY: c is a valid NUL-terminated string.
        let token = unsafe { seccomp_arch_resolve_name(c.as_ptr()) };
        if token == 0 {
            return Err(Error::Spec(format!("unknown seccomp architecture {name}")));
        }
        // SAFETY: valid context; EEXIST for the native arch is fine.
        let r = unsafe { seccomp_arch_add(f.0, token) };
        if r != 0 && r != -libc::EEXIST {
            return Err(Error::Spec(format!(
                "seccomp add architecture {name}: errno {}",
                -r
            )));
        }
    }
    for sc in s.syscalls().iter().flatten() {
        let act = action(sc.action(), sc.errno_ret());
        if act == def {
            continue;
        }
        let args: Vec<ScmpArgCmp> = sc
            .args()
            .iter()
            .flatten()
            .map(|a| ScmpArgCmp {
                arg: a.index() as c_uint,
                op: op(a.op()),
                datum_a: a.value(),
                datum_b: a.value_two().unwrap_or(0),
            })
            .collect();
        let mut idx: Vec<c_uint> = args.iter().map(|a| a.arg).collect();
        idx.sort_unstable();
        let same_index = idx.windows(2).any(|w| w[0] == w[1]);
        for name in sc.names() {
            let c = CString::new(name.as_str())
                .map_err(|_| Error::Spec(format!("bad syscall name {name:?}")))?;
            // SAFETY: c is a valid NUL-terminated string.
            let nr = unsafe { seccomp_syscall_resolve_name(c.as_ptr()) };
            if nr < 0 {
                tracing::debug!(syscall = %name, "unknown syscall skipped");
                continue;
            }
            let groups: Vec<&[ScmpArgCmp]> = if same_index {
                args.chunks(1).collect()
            } else {
                vec![&args[..]]
            };
            for g in groups {
                // SAFETY: valid context; g points to g.len() initialised comparisons.
                let r =
                    unsafe { seccomp_rule_add_array(f.0, act, nr, g.len() as c_uint, g.as_ptr()) };
                if r != 0 {
                    return Err(Error::Spec(format!(
                        "seccomp rule for {name}: errno {}",
                        -r
                    )));
                }
            }
        }
    }
    // SAFETY: valid context.
    let r = unsafe { seccomp_load(f.0) };
    if r != 0 {
        return Err(Error::io(
            "load seccomp filter",
            std::io::Error::from_raw_os_error(-r),
        ));
    }
    Ok(())
}
