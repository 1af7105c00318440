//! `--security-opt` and the seccomp profile a container gets (`linux.seccomp` of its spec).
//!
//! Without options a container gets the built-in profile: a deny list of the syscalls Docker's
//! default profile keeps from unprivileged containers (documented in Docker's seccomp notes),
//! each failing with EPERM unless the container holds the capability Docker ties it to
//! (`--cap-add SYS_ADMIN` lifts mount/unshare/setns and namespace flags of clone, and so on).
//! `clone3` fails with ENOSYS, as in Docker's profile, so that libc falls back to `clone`, whose
//! flags the filter can see. `--privileged` and `seccomp=unconfined` run without a filter;
//! `seccomp=<profile JSON>` (the CLI sends the file's content) is converted from Docker's profile
//! format (`archMap`, `includes`/`excludes` by capability, arch and kernel) to the OCI one.
use serde::Deserialize;
use serde_json::{json, Value};

use crate::spec::SpecError;

/// What the container's seccomp filter is.
#[derive(Debug, Clone, PartialEq)]
pub enum Seccomp {
    /// The built-in profile.
    Default,
    /// No filter.
    Unconfined,
    /// A profile in Docker's format.
    Custom(String),
}

/// The parsed `HostConfig.SecurityOpt`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityOpts {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    /// `systempaths=unconfined`: no masked or read-only paths.
    pub unmasked_paths: bool,
}

/// Parses `--security-opt` values as dockerd does (`key=value`, or the old `key:value`).
pub fn parse(opts: &[String]) -> Result<SecurityOpts, SpecError> {
    let mut out = SecurityOpts {
        seccomp: Seccomp::Default,
        no_new_privileges: false,
        unmasked_paths: false,
    };
    for opt in opts {
        let (key, value) = match opt.split_once('=') {
            Some(kv) => kv,
            None => match opt.split_once(':') {
                Some(kv) => kv,
                None if opt == "no-new-privileges" => (opt.as_str(), "true"),
                None => return Err(invalid(opt)),
            },
        };
        match key {
            "seccomp" if value == "unconfined" => out.seccomp = Seccomp::Unconfined,
            "seccomp" if value == "builtin" => out.seccomp = Seccomp::Default,
            "seccomp" => {
                serde_json::from_str::<Profile>(value).map_err(|e| {
                    SpecError::SecurityOpt(format!("Decoding seccomp profile failed: {e}"))
                })?;
                out.seccomp = Seccomp::Custom(value.to_string());
            }
            "no-new-privileges" => {
                out.no_new_privileges = value.parse::<bool>().map_err(|_| {
                    SpecError::SecurityOpt(format!("invalid --security-opt 2: {opt:?}"))
                })?;
            }
            "systempaths" if value == "unconfined" => out.unmasked_paths = true,
            // This host has neither AppArmor nor SELinux: accepted, as dockerd does there.
            "apparmor" | "label" => tracing::debug!(option = %opt, "security option skipped"),
            _ => return Err(invalid(opt)),
        }
    }
    Ok(out)
}

/// [`parse`] of a container's `HostConfig.SecurityOpt`.
pub fn of(hc: &crate::types::HostConfig) -> Result<SecurityOpts, SpecError> {
    parse(hc.security_opt.as_deref().unwrap_or_default())
}

fn invalid(opt: &str) -> SpecError {
    SpecError::SecurityOpt(format!("invalid --security-opt 2: {opt:?}"))
}

/// EPERM, the errno of Docker's profile.
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Syscalls kept from containers, and the capabilities any one of which lifts the ban.
const DENIED: &[(&[&str], &[&str])] = &[
    // The kernel keyring is not namespaced.
    (&["add_key", "keyctl", "request_key"], &[]),
    (&["acct"], &["CAP_SYS_PACCT"]),
    (&["bpf"], &["CAP_SYS_ADMIN", "CAP_BPF"]),
    (
        &["clock_adjtime", "clock_settime", "settimeofday", "stime"],
        &["CAP_SYS_TIME"],
    ),
    (
        &[
            "create_module",
            "delete_module",
            "finit_module",
            "get_kernel_syms",
            "init_module",
            "query_module",
        ],
        &["CAP_SYS_MODULE"],
    ),
    (
        &["get_mempolicy", "mbind", "move_pages", "set_mempolicy"],
        &["CAP_SYS_NICE"],
    ),
    (&["ioperm", "iopl"], &["CAP_SYS_RAWIO"]),
    (
        &[
            "kcmp",
            "pidfd_getfd",
            "process_vm_readv",
            "process_vm_writev",
            "userfaultfd",
        ],
        &["CAP_SYS_PTRACE"],
    ),
    (
        &["kexec_file_load", "kexec_load", "reboot"],
        &["CAP_SYS_BOOT"],
    ),
    (
        &[
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "pivot_root",
            "quotactl",
            "setdomainname",
            "sethostname",
            "setns",
            "swapoff",
            "swapon",
            "umount",
            "umount2",
            "unshare",
        ],
        &["CAP_SYS_ADMIN"],
    ),
    (&["open_by_handle_at"], &["CAP_DAC_READ_SEARCH"]),
    (&["perf_event_open"], &["CAP_SYS_ADMIN", "CAP_PERFMON"]),
    (&["syslog"], &["CAP_SYSLOG"]),
    // Obsolete or not namespaced at all.
    (
        &[
            "_sysctl",
            "nfsservctl",
            "sysfs",
            "uselib",
            "ustat",
            "vm86",
            "vm86old",
        ],
        &[],
    ),
];

/// CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
/// CLONE_NEWNET: together Docker's mask 0x7E020000.
const CLONE_NEW_FLAGS: [u64; 7] = [
    0x0002_0000,
    0x0200_0000,
    0x0400_0000,
    0x0800_0000,
    0x1000_0000,
    0x2000_0000,
    0x4000_0000,
];

/// The seccomp architectures of this host: the native one and its 32-bit companions, so that
/// the filter also covers the compat syscall entry points.
fn architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => vec![],
    }
}

/// Docker's (Go) name of this host's architecture, as profiles' `arches` spell it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The built-in profile for a container with these (bounding) capabilities.
pub fn default_profile(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut syscalls = Vec::new();
    let names: Vec<&str> = DENIED
        .iter()
        .filter(|(_, lift)| !lift.iter().any(|c| has(c)))
        .flat_map(|(names, _)| names.iter().copied())
        .collect();
    syscalls.push(json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}));
    if !has("CAP_SYS_ADMIN") {
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}));
        // One rule per flag: the filter matches when any namespace flag is set.
        for flag in CLONE_NEW_FLAGS {
            syscalls.push(json!({
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": EPERM,
                "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
            }));
        }
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures(),
        "syscalls": syscalls,
    })
}

/// A seccomp profile in Docker's format.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    syscalls: Vec<Syscall>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    #[serde(default)]
    names: Vec<String>,
    /// The old single-name form.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// `major.minor` of a kernel release string.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn running_kernel() -> Option<(u32, u32)> {
    kernel_version(
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()?
            .trim(),
    )
}

/// Converts a profile in Docker's format to the OCI `linux.seccomp` of a container with these
/// capabilities: rules whose `includes` do not hold, or whose `excludes` do, are left out.
pub fn custom_profile(profile: &str, caps: &[String]) -> Result<Value, SpecError> {
    let p: Profile = serde_json::from_str(profile)
        .map_err(|e| SpecError::SecurityOpt(format!("Decoding seccomp profile failed: {e}")))?;
    if !p.architectures.is_empty() && !p.arch_map.is_empty() {
        return Err(SpecError::SecurityOpt(
            "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'".into(),
        ));
    }
    let native = architectures();
    let arches: Vec<String> = if p.arch_map.is_empty() {
        p.architectures.clone()
    } else {
        p.arch_map
            .iter()
            .filter(|m| native.first() == Some(&m.architecture.as_str()))
            .flat_map(|m| {
                std::iter::once(m.architecture.clone()).chain(m.sub_architectures.clone())
            })
            .collect()
    };
    let kernel = running_kernel();
    let at_least = |min: &Option<String>| match (min.as_deref().and_then(kernel_version), kernel) {
        (Some(min), Some(k)) => k >= min,
        _ => true,
    };
    let has = |c: &String| caps.contains(c);
    let mut syscalls = Vec::new();
    for sc in &p.syscalls {
        let inc = &sc.includes;
        if !inc.caps.iter().all(has)
            || (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == go_arch()))
            || (inc.min_kernel.is_some() && !at_least(&inc.min_kernel))
        {
            continue;
        }
        let exc = &sc.excludes;
        if exc.caps.iter().any(has)
            || exc.arches.iter().any(|a| a == go_arch())
            || (exc.min_kernel.is_some() && at_least(&exc.min_kernel))
        {
            continue;
        }
        let mut names = sc.names.clone();
        names.extend(sc.name.clone());
        let mut rule = json!({"names": names, "action": sc.action});
        if let Some(e) = sc.errno_ret {
            rule["errnoRet"] = json!(e);
        }
        if !sc.args.is_empty() {
            rule["args"] = json!(sc.args);
        }
        syscalls.push(rule);
    }
    let mut out = json!({
        "defaultAction": p.default_action,
        "architectures": arches,
        "syscalls": syscalls,
    });
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    if !p.flags.is_empty() {
        out["flags"] = json!(p.flags);
    }
    Ok(out)
}

/// `linux.seccomp` for a container, or `None` for no filter.
pub fn profile(
    opts: &SecurityOpts,
    privileged: bool,
    caps: &[String],
) -> Result<Option<Value>, SpecError> {
    if privileged {
        return Ok(None);
    }
    match &opts.seccomp {
        Seccomp::Unconfined => Ok(None),
        Seccomp::Default => Ok(Some(default_profile(caps))),
        Seccomp::Custom(p) => custom_profile(p, caps).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_as_dockerd_takes_them() {
        let o = parse(&strings(&["seccomp=unconfined", "no-new-privileges"])).unwrap();
        assert_eq!(o.seccomp, Seccomp::Unconfined);
        assert!(o.no_new_privileges);
        let o = parse(&strings(&["seccomp:unconfined", "no-new-privileges=false"])).unwrap();
        assert_eq!(o.seccomp, Seccomp::Unconfined);
        assert!(!o.no_new_privileges);
        assert!(parse(&strings(&["apparmor=unconfined", "label=disable"])).is_ok());
        let e = parse(&strings(&["bogus"])).unwrap_err().to_string();
        assert_eq!(e, "invalid --security-opt 2: \"bogus\"");
        let e = parse(&strings(&["seccomp={not json"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Decoding seccomp profile failed"), "{e}");
    }

    #[test]
    fn capabilities_lift_their_syscalls_from_the_default_profile() {
        let names = |p: &Value| -> Vec<String> {
            p["syscalls"][0]["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        };
        let plain = default_profile(&strings(&["CAP_CHOWN"]));
        let n = names(&plain);
        assert!(n.contains(&"mount".to_string()) && n.contains(&"keyctl".to_string()));
        assert_eq!(plain["syscalls"].as_array().unwrap().len(), 1 + 1 + 7);
        let admin = default_profile(&strings(&["CAP_SYS_ADMIN"]));
        let n = names(&admin);
        assert!(!n.contains(&"mount".to_string()) && !n.contains(&"bpf".to_string()));
        assert!(n.contains(&"keyctl".to_string()));
        assert_eq!(admin["syscalls"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn docker_profiles_are_filtered_by_caps_arch_and_kernel() {
        let p = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]},
                       {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],
            "syscalls":[
              {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
              {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
              {"names":["iopl"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["amd64","arm64"]}},
              {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}},
              {"names":["chown"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_CHOWN"]}},
              {"name":"old","action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}
            ]}"#;
        let out = custom_profile(p, &strings(&["CAP_CHOWN"])).unwrap();
        let names: Vec<&str> = out["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["names"][0].as_str().unwrap())
            .collect();
        assert_eq!(names, ["read", "iopl", "ptrace", "old"]);
        assert_eq!(out["defaultErrnoRet"], 1);
        assert_eq!(out["syscalls"][3]["args"][0]["op"], "SCMP_CMP_EQ");
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(
                out["architectures"],
                json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
            );
        }
        assert_eq!(kernel_version("6.18.44-fc-v1045"), Some((6, 18)));
        assert!(custom_profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86"}]}"#,
            &[]
        )
        .is_err());
    }
}
