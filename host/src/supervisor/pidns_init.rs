//! The init of a process's PID namespace: the code that runs as its PID 1.
//!
//! Made by `clone(CLONE_VM)` from the spawner thread, without an exec: it
//! runs on a small stack of its own inside the host's address space (a
//! 2 KiB slot, two to a page), so it costs half a page of memory and no
//! copy of the host's page tables (a
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
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::libc;
use parking_lot::Mutex;

use super::rawsys as sys;

/// Bytes of stack each init gets. High-water marks (`InitStack::release`
/// reads them): 208 bytes in a release build, 712 in a debug one.
/// A page each (64 KiB mapped, one page touched) was 3.9 MiB of the host's
/// memory at 1,000 processes; two to a page is half that.
const STACK_SLOT: usize = 2 * 1024;

/// Slots cut from one mapping, above a guard page of its own.
const SLOTS_PER_CHUNK: usize = 32;

/// What an init is given, written at the top of its own stack.
#[repr(C)]
struct InitArgs {
    /// A pidfd of the host: readable once the host has exited.
    host_pidfd: i32,
}

/// Where the inits' stacks come from: mappings of [`SLOTS_PER_CHUNK`]
/// slots, kept for reuse once made.
struct Slab {
    /// Each mapping's first slot (just above its guard page) and how many
    /// of its slots are free.
    chunks: Vec<(usize, usize)>,
    /// Free slots, by their lowest address; the next is taken from the end.
    free: Vec<usize>,
}

static SLAB: Mutex<Slab> = Mutex::new(Slab {
    chunks: Vec::new(),
    free: Vec::new(),
});

impl Slab {
    /// A free slot (zeroed), mapping a new chunk if none is left.
    fn take(&mut self) -> io::Result<usize> {
        if self.free.is_empty() {
            let page = page_size();
            let len = page + SLOTS_PER_CHUNK * STACK_SLOT;
            // SAFETY: a fresh private anonymous mapping; no memory of ours
            // is touched.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                    -1,
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            // The lowest page faults instead of letting the lowest slot's
            // init run into whatever lies below the mapping. Best effort:
            // without it the slots still work.
            // SAFETY: the page is ours, and nothing uses it.
            unsafe { libc::mprotect(base, page, libc::PROT_NONE) };
            let first = base as usize + page;
            self.chunks.push((first, SLOTS_PER_CHUNK));
            // Reversed, so that consecutive inits share pages in order.
            self.free
                .extend((0..SLOTS_PER_CHUNK).rev().map(|i| first + i * STACK_SLOT));
        }
        let slot = self.free.pop().expect("a chunk was just added");
        self.chunk_of(slot).1 -= 1;
        Ok(slot)
    }

    /// Takes back a slot nothing runs on any more; gives a chunk's memory
    /// back to the kernel once all its slots are free.
    fn give_back(&mut self, slot: usize) {
        // Zeroed for the next init, so that its high-water mark can be
        // read as the lowest byte it wrote.
        // SAFETY: the slot is ours and no init runs on it.
        unsafe { std::ptr::write_bytes(slot as *mut u8, 0, STACK_SLOT) };
        self.free.push(slot);
        let chunk = self.chunk_of(slot);
        chunk.1 += 1;
        if chunk.1 == SLOTS_PER_CHUNK {
            // Every slot is free: drop its pages (they read as zeros after).
            // SAFETY: nothing runs on any slot of the chunk.
            unsafe {
                libc::madvise(
                    chunk.0 as *mut c_void,
                    SLOTS_PER_CHUNK * STACK_SLOT,
                    libc::MADV_DONTNEED,
                )
            };
        }
    }

    fn chunk_of(&mut self, slot: usize) -> &mut (usize, usize) {
        self.chunks
            .iter_mut()
            .find(|(first, _)| (*first..*first + SLOTS_PER_CHUNK * STACK_SLOT).contains(&slot))
            .expect("a slot belongs to a chunk")
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// The most stack any init of this host has used, in bytes (read by the
/// tests, which hold it to half a slot).
static HIGHEST_STACK_USE: AtomicUsize = AtomicUsize::new(0);

/// [`HIGHEST_STACK_USE`] and the slot size.
#[cfg(test)]
pub(super) fn highest_stack_use() -> (usize, usize) {
    (HIGHEST_STACK_USE.load(Ordering::Relaxed), STACK_SLOT)
}

/// An init's stack; given back only once the init has been reaped (dropped
/// without that, the slot is never reused).
pub(super) struct InitStack {
    /// The slot's lowest address.
    base: usize,
}

impl InitStack {
    /// Gives the stack back for another init.
    ///
    /// # Safety
    ///
    /// The init that ran on it must have exited (been reaped).
    pub(super) unsafe fn release(self) {
        // SAFETY: the slot is ours and nothing runs on it any more (the
        // caller's promise); it was zeroed before the init ran.
        let used = unsafe {
            let bytes = std::slice::from_raw_parts(self.base as *const u8, STACK_SLOT);
            STACK_SLOT - bytes.iter().position(|b| *b != 0).unwrap_or(STACK_SLOT)
        };
        HIGHEST_STACK_USE.fetch_max(used, Ordering::Relaxed);
        if used > STACK_SLOT / 2 {
            // The margin the slot size was chosen with is gone; past the
            // slot an init would write into its neighbour's stack.
            tracing::error!(
                used,
                slot = STACK_SLOT,
                "a namespace init used more than half its stack"
            );
        }
        SLAB.lock().give_back(self.base);
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
/// The OS error of `mmap` (a new chunk of stacks) or `clone`.
pub(super) fn start(host_pidfd: i32) -> io::Result<(i32, InitStack)> {
    let base = SLAB.lock().take()?;
    let stack = InitStack { base };
    // The arguments sit at the top of the slot; the stack grows down
    // from just below them, 16-byte aligned as both ABIs want.
    let top = base + STACK_SLOT;
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
