//! The init of a process's PID namespace: the code that runs as its PID 1.
//!
//! Made by `clone(CLONE_VM)` from the spawner thread, without an exec: it
//! runs on a small stack of its own inside the host's address space, so it
//! costs one page of memory and no copy of the host's page tables (a
//! `fork` would pin a copy-on-write snapshot of the host's heap for as long
//! as the process runs, a thousand snapshots for a thousand processes; an
//! exec of the host binary would relocate megabytes per process).
//!
//! Sharing the host's memory is why the code here is so narrow: it touches
//! nothing but its own stack and makes raw system calls (inline `syscall`
//! / `svc`), never the C library, whose wrappers write `errno` in the
//! spawner thread's thread-local block, which the init shares. It never
//! allocates, locks, panics or returns into Rust code of the host.
//!
//! What it does, as PID 1 of the namespace the supervised command runs in:
//! - dies with the host: `PR_SET_PDEATHSIG` = `SIGKILL` (and leaves at once
//!   if the host is already gone when that is set); when a namespace's init
//!   dies the kernel kills every process in it, `setsid`'d and
//!   double-forked ones included;
//! - reaps every orphan re-parented to it (a PID 1 must);
//! - forwards any signal it gets to every other process of the namespace
//!   (`kill(-1, sig)`): a PID 1 ignores signals it has no handler for, so
//!   the host asks it, and the whole tree gets the signal in one step;
//! - leads a process group of its own, so a terminal's Ctrl-C for the host
//!   never reaches it.
//!
//! Every signal is blocked (the spawner thread blocks them all around the
//! clone, and the init inherits the mask) and taken with `rt_sigtimedwait`:
//! a blocked signal is queued even for a PID 1 without a handler.

use std::ffi::c_void;
use std::io;

use nix::libc;

use super::rawsys as sys;

/// Size of an init's stack mapping. Only the pages it touches (one) are
/// ever backed by memory.
const STACK_SIZE: usize = 64 * 1024;

/// What an init is given, written at the top of its own stack.
#[repr(C)]
struct InitArgs {
    /// A pidfd of the host: readable once the host has exited.
    host_pidfd: i32,
}

/// An init's stack; unmapped only once the init has been reaped.
pub(super) struct InitStack {
    base: *mut c_void,
}

// SAFETY: the mapping is owned by this value alone; moving it to another
// thread moves the right to unmap it.
unsafe impl Send for InitStack {}
// SAFETY: a shared reference gives no access to the mapping at all.
unsafe impl Sync for InitStack {}

impl InitStack {
    /// Unmaps the stack.
    ///
    /// # Safety
    ///
    /// The init that ran on it must have exited (been reaped).
    pub(super) unsafe fn release(self) {
        // SAFETY: `base` came from mmap with STACK_SIZE and nothing runs on
        // it any more (the caller's promise).
        unsafe {
            libc::munmap(self.base, STACK_SIZE);
        }
    }
}

/// Starts an init as the first process of the spawner thread's namespace
/// for children (after `unshare(CLONE_NEWPID)`, it is that namespace's
/// PID 1). Returns its pid (as the host sees it) and its stack.
///
/// The calling thread must block every signal (the spawner thread does so
/// around this call): the init inherits the mask, so no handler of the host
/// ever runs on it.
///
/// # Errors
///
/// The OS error of `mmap` or `clone`.
pub(super) fn start(host_pidfd: i32) -> io::Result<(i32, InitStack)> {
    // SAFETY: a fresh private anonymous mapping; no memory of ours is
    // touched.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let stack = InitStack { base };
    // The arguments sit at the top of the mapping; the stack grows down
    // from just below them, 16-byte aligned as both ABIs want.
    let top = base as usize + STACK_SIZE;
    let args_at = (top - std::mem::size_of::<InitArgs>()) & !15;
    let args = args_at as *mut InitArgs;
    // SAFETY: `args` lies inside the mapping, aligned, and nothing else
    // uses it yet.
    unsafe { args.write(InitArgs { host_pidfd }) };
    let stack_top = (args_at - 16) as *mut c_void;
    // SAFETY: `init_main` only touches its stack and makes raw system
    // calls (see the module doc); the stack is ours and outlives the
    // init (it is released only after the init is reaped). CLONE_VM
    // without CLONE_THREAD makes a process sharing our memory; CLONE_FILES
    // shares our descriptor table until the init lets go of it (see
    // `init_main`); SIGCHLD makes it reapable with waitpid like any child.
    let pid = unsafe {
        libc::clone(
            init_main,
            stack_top,
            libc::CLONE_VM | libc::CLONE_FILES | libc::SIGCHLD,
            args.cast::<c_void>(),
        )
    };
    if pid < 0 {
        let err = io::Error::last_os_error();
        // SAFETY: no init was made, so nothing runs on the stack.
        unsafe { stack.release() };
        return Err(err);
    }
    Ok((pid, stack))
}

/// The init's body; see the module doc. Never returns.
extern "C" fn init_main(arg: *mut c_void) -> i32 {
    // SAFETY: `arg` points at the InitArgs written on this stack by `start`.
    let host_pidfd = unsafe { (*arg.cast::<InitArgs>()).host_pidfd };
    sys::call(
        sys::PRCTL,
        [
            libc::PR_SET_PDEATHSIG as usize,
            libc::SIGKILL as usize,
            0,
            0,
        ],
    );
    // The host may have died between the clone and the prctl: then no
    // death signal will come, and the host's pidfd is readable.
    let mut poll = libc::pollfd {
        fd: host_pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if sys::call(
        sys::PPOLL,
        [&raw mut poll as usize, 1, &raw const now as usize, 0],
    ) > 0
    {
        sys::exit(0);
    }
    // Its own group: the host's terminal group (Ctrl-C) must not reach it.
    sys::call(sys::SETPGID, [0, 0, 0, 0]);
    // The descriptor table is still the host's own (CLONE_FILES): trade it
    // for an empty one of our own, so no pipe or socket is held open by
    // us. Unsharing with nothing to keep copies no descriptor; the copy
    // `clone` would otherwise make, and closing it here, cost every spawn
    // as much as the host has descriptors open (five per running process).
    // A kernel without CLOSE_RANGE_UNSHARE (before 5.9) leaves the table
    // shared: nothing is held open that the host does not hold itself, and
    // the init dies with the host.
    sys::call(
        sys::CLOSE_RANGE,
        [0, u32::MAX as usize, libc::CLOSE_RANGE_UNSHARE as usize, 0],
    );
    // Every signal, as the kernel's 64-bit set.
    let all: u64 = !0;
    loop {
        let mut info = [0u64; 16];
        let sig = sys::call(
            sys::RT_SIGTIMEDWAIT,
            [
                &raw const all as usize,
                info.as_mut_ptr() as usize,
                0,
                std::mem::size_of::<u64>(),
            ],
        );
        if sig <= 0 {
            continue;
        }
        if sig == libc::SIGCHLD as isize {
            while sys::call(sys::WAIT4, [usize::MAX, 0, libc::WNOHANG as usize, 0]) > 0 {}
        } else {
            // -1: every process of the namespace but ourselves.
            sys::call(sys::KILL, [usize::MAX, sig as usize, 0, 0]);
        }
    }
}
