//! Raw system calls for code that runs in a process sharing the host's
//! memory (`clone(CLONE_VM)`): a namespace's init (`pidns_init`) and a
//! command between its fork and its exec (`child`).
//!
//! Such code must not call the C library: its wrappers write `errno` in the
//! thread-local block of the thread that cloned, which the new process
//! shares, and some take locks that thread may hold. These are the bare
//! instructions, with the kernel's calling convention; a negative result is
//! `-errno`.

use nix::libc;

/// `prctl`.
pub(super) const PRCTL: usize = libc::SYS_prctl as usize;
/// `ppoll`.
pub(super) const PPOLL: usize = libc::SYS_ppoll as usize;
/// `setpgid`.
pub(super) const SETPGID: usize = libc::SYS_setpgid as usize;
/// `close_range`.
pub(super) const CLOSE_RANGE: usize = libc::SYS_close_range as usize;
/// `unshare`.
pub(super) const UNSHARE: usize = libc::SYS_unshare as usize;
/// `rt_sigtimedwait`.
pub(super) const RT_SIGTIMEDWAIT: usize = libc::SYS_rt_sigtimedwait as usize;
/// `rt_sigaction`.
pub(super) const RT_SIGACTION: usize = libc::SYS_rt_sigaction as usize;
/// `rt_sigprocmask`.
pub(super) const RT_SIGPROCMASK: usize = libc::SYS_rt_sigprocmask as usize;
/// `wait4`.
pub(super) const WAIT4: usize = libc::SYS_wait4 as usize;
/// `kill`.
pub(super) const KILL: usize = libc::SYS_kill as usize;
/// `dup3`.
pub(super) const DUP3: usize = libc::SYS_dup3 as usize;
/// `chdir`.
pub(super) const CHDIR: usize = libc::SYS_chdir as usize;
/// `execve`.
pub(super) const EXECVE: usize = libc::SYS_execve as usize;
const EXIT_GROUP: usize = libc::SYS_exit_group as usize;

/// A system call with up to four arguments; negative results are `-errno`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn call(nr: usize, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: a system call; the arguments are the caller's, and each
    // call site passes pointers to memory it owns for the call's length.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A system call with up to four arguments; negative results are `-errno`.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(super) fn call(nr: usize, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: a system call; the arguments are the caller's, and each
    // call site passes pointers to memory it owns for the call's length.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            options(nostack),
        );
    }
    ret
}

/// Ends the calling process (not the host: a `CLONE_VM` child without
/// `CLONE_THREAD` is a thread group of its own).
pub(super) fn exit(code: i32) -> ! {
    loop {
        call(EXIT_GROUP, [code as usize, 0, 0, 0]);
    }
}
