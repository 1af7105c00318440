//! The devices allow/deny list on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program built
//! from the rules (last matching rule wins, as in v1) and attached to the container's cgroup.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// A rule reduced to what the program compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// None: any type.
    pub typ: Option<i32>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: i32,
    pub allow: bool,
}

fn access_bits(s: &str) -> i32 {
    s.chars().fold(0, |a, c| {
        a | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

pub fn rule(d: &LinuxDeviceCgroup) -> Rule {
    Rule {
        typ: match d.typ() {
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
            _ => None,
        },
        major: d.major().filter(|m| *m >= 0),
        minor: d.minor().filter(|m| *m >= 0),
        access: access_bits(d.access().as_deref().unwrap_or("rwm")),
        allow: d.allow(),
    }
}

/// The program: r2 = type, r3 = access, r4 = major, r5 = minor from bpf_cgroup_dev_ctx,
/// then one block per rule (last rule first), then the default.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    // A wildcard rule for every device and access resets the list: it is the default.
    let start = rules
        .iter()
        .rposition(|r| r.typ.is_none() && r.major.is_none() && r.minor.is_none() && r.access == 7)
        .map(|i| i + 1)
        .unwrap_or(0);
    let default_allow = start > 0 && rules[start - 1].allow;
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules[start..].iter().rev() {
        let mut block: Vec<Insn> = Vec::new();
        // Each test jumps past the rest of the block when it does not match (patched below).
        if let Some(t) = r.typ {
            block.push(insn(JNE_K, 2, 0, 0, t));
        }
        if r.access != 7 {
            // Matches when every requested access is in the rule's set.
            block.push(insn(MOV_X, 1, 3, 0, 0));
            block.push(insn(AND_K, 1, 0, 0, !r.access));
            block.push(insn(JNE_K, 1, 0, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(insn(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(insn(JNE_K, 5, 0, 0, m as i32));
        }
        block.push(insn(MOV_K, 0, 0, 0, i32::from(r.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let n = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K {
                ins.off = (n - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(MOV_K, 0, 0, 0, i32::from(default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    pad: [u8; 64],
}

#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    pad: [u8; 32],
}

/// Loads the program for `devices` and attaches it to the cgroup2 directory `dir`.
pub fn apply(dir: &Path, devices: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules: Vec<Rule> = devices.iter().map(rule).collect();
    let prog = program(&rules);
    let license = c"Apache";
    let mut log = vec![0u8; 4096];
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        pad: [0; 64],
    };
    let cgerr = |msg: String| Error::Cgroup {
        path: dir.to_path_buf(),
        msg,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_PROG_LOAD; the pointers it holds
    // (instructions, license, log) stay alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoad,
            std::mem::size_of::<ProgLoad>(),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        let verifier = String::from_utf8_lossy(&log);
        return Err(cgerr(format!(
            "load device filter: {e}: {}",
            verifier.trim_end_matches('\0').trim()
        )));
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).map_err(|e| cgerr(format!("open: {e}")))?;
    let attach = ProgAttach {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        pad: [0; 32],
    };
    // SAFETY: attach is a valid bpf_attr prefix for BPF_PROG_ATTACH with open fds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attach as *const ProgAttach,
            std::mem::size_of::<ProgAttach>(),
        )
    };
    if r < 0 {
        return Err(cgerr(format!(
            "attach device filter: {}",
            std::io::Error::last_os_error()
        )));
    }
    // The attachment keeps the program alive; our fd can go.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(
        typ: Option<i32>,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
        allow: bool,
    ) -> Rule {
        Rule {
            typ,
            major,
            minor,
            access: access_bits(access),
            allow,
        }
    }

    /// Runs the program on one request, as the kernel would.
    fn eval(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> i64 {
        let ctx = [(typ as u32) | ((access as u32) << 16), major, minor];
        let mut reg = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => reg[dst] = i64::from(ctx[(i.off / 4) as usize]),
                AND_K => reg[dst] &= i64::from(i.imm),
                RSH_K => reg[dst] >>= i.imm,
                MOV_X => reg[dst] = reg[src],
                MOV_K => reg[dst] = i64::from(i.imm),
                JNE_K => {
                    if reg[dst] != i64::from(i.imm) {
                        pc += i.off as usize;
                    }
                }
                EXIT => return reg[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn last_matching_rule_wins_over_a_deny_all_default() {
        let rules = [
            r(None, None, None, "rwm", false),
            r(Some(DEV_CHAR), None, None, "m", true),
            r(Some(DEV_CHAR), Some(1), Some(3), "rwm", true),
            r(Some(DEV_CHAR), Some(136), None, "rw", true),
            r(Some(DEV_CHAR), Some(1), Some(3), "w", false),
        ];
        let p = program(&rules);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 1, 3), 0, "later deny wins");
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 136, 7), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_MKNOD, 136, 7), 1, "c *:* m");
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 8, 0), 0);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 0);
        assert_eq!(
            eval(&p, DEV_CHAR, ACC_READ | ACC_MKNOD, 136, 0),
            0,
            "m not in rw"
        );
    }

    #[test]
    fn allow_all_default_with_a_deny() {
        let rules = [
            r(None, None, None, "rwm", true),
            r(Some(DEV_BLOCK), Some(8), None, "rwm", false),
        ];
        let p = program(&rules);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 8, 1), 0);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 9, 1), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 1, 3), 1);
        // Without any wildcard rule the default is deny.
        let p = program(&[r(Some(DEV_CHAR), Some(1), Some(3), "rwm", true)]);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 5), 0);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
    }
}
