//! PID namespaces: one per supervised process, so that "the whole tree" is
//! a fact the kernel keeps, not something found by walking `/proc`.
//!
//! The spawner thread makes each run's namespace in three steps:
//! `unshare(CLONE_NEWPID)` (its next child starts a new namespace), an init
//! of ours as that child (PID 1, see `pidns_init`), then the command,
//! forked normally into the same namespace, where it is PID 2; finally
//! `setns` back to the host's own namespace. The command stays the host's
//! direct child (its exit status, pipes and pid are read as without a
//! namespace) and every pid the host shows is the real one, as the host
//! sees it; only the processes themselves see namespace pids (`$$` is 2).
//!
//! What the namespace gives:
//! - `kill -9` of the host: the init dies with it (parent-death signal) and
//!   the kernel kills every process of the namespace, `setsid`'d and
//!   double-forked ones included;
//! - a stop: the host signals the init, which forwards the signal to every
//!   other process of the namespace at once; after the grace, one
//!   `SIGKILL` of the init ends them all. No `/proc` scan, so stopping
//!   1,000 processes costs 1,000 small steps, not 1,000 scans;
//! - the command's exit ends the run and its namespace: whatever it left
//!   running (daemons it started) is killed with it, at once, and the exit
//!   is reported as soon as that is done.
//!
//! Creating a PID namespace needs `CAP_SYS_ADMIN` in the host's user
//! namespace (root, or a host started under `unshare --user
//! --map-root-user`). Where that fails, or with `[host] pid_namespaces =
//! false`, the supervisor falls back to process groups, the child
//! subreaper and `/proc` walks (`stop`, `reaper`).
//!
//! The inits are registered by their command's pid, so the `/proc` walks
//! that remain (pause, resume, resource samples) include processes that
//! were re-parented to an init.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;

use super::pidns_init::{self, InitStack};

/// Command pid → its init's pid, for every namespace alive.
static INITS: Mutex<Option<HashMap<i32, i32>>> = Mutex::new(None);

/// The pids of every namespace init alive (the host's children).
pub(crate) fn init_pids() -> std::collections::HashSet<i32> {
    INITS
        .lock()
        .as_ref()
        .map(|inits| inits.values().copied().collect())
        .unwrap_or_default()
}

/// The init of the namespace that command `leader` runs in, if it has one.
pub(crate) fn init_of(leader: i32) -> Option<i32> {
    INITS.lock().as_ref()?.get(&leader).copied()
}

/// What the spawner thread needs to make namespaces: its way back to the
/// host's own namespace, and a pidfd of the host for the inits.
pub(crate) struct Namespaces {
    /// `/proc/self/ns/pid`: `setns` to it after each spawn.
    own: OwnedFd,
    /// The host's pidfd, inherited by each init for its start-up check.
    host: OwnedFd,
}

impl Namespaces {
    /// Checks, on the calling thread, that a namespace can be made and left
    /// again; `Err` says why not (then use the fallback).
    ///
    /// # Errors
    ///
    /// The OS error of opening the host's namespace or pidfd, of `unshare`
    /// or of `setns`; [`io::ErrorKind::Unsupported`] on an architecture
    /// whose init is not written.
    pub(crate) fn probe() -> io::Result<Namespaces> {
        if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no namespace init for this architecture",
            ));
        }
        let own: OwnedFd = std::fs::File::open("/proc/self/ns/pid")?.into();
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        let host = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let ns = Namespaces { own, host };
        ns.enter_new()?;
        ns.leave()?;
        Ok(ns)
    }

    /// Makes the calling thread's next child the init of a new namespace.
    fn enter_new(&self) -> io::Result<()> {
        // SAFETY: unshare takes flags only; CLONE_NEWPID changes nothing of
        // this thread but where its later children go.
        match unsafe { libc::unshare(libc::CLONE_NEWPID) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Puts the calling thread's later children back in the host's namespace.
    fn leave(&self) -> io::Result<()> {
        // SAFETY: setns takes a descriptor we own and flags.
        match unsafe { libc::setns(self.own.as_raw_fd(), libc::CLONE_NEWPID) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Runs `spawn` (which forks exactly the command) in a new namespace
    /// whose init is started first; returns its result and the init.
    ///
    /// Must run on the spawner thread. If `spawn` fails the init is ended
    /// here.
    ///
    /// # Errors
    ///
    /// The OS error of making the namespace or its init; `spawn`'s own
    /// error is returned inside `Ok`.
    pub(crate) fn spawn_in_new<T>(
        &self,
        spawn: impl FnOnce() -> io::Result<T>,
        pid_of: impl FnOnce(&T) -> Option<u32>,
    ) -> io::Result<(io::Result<T>, Option<Init>)> {
        self.enter_new()?;
        // The init inherits this thread's mask: every signal blocked from
        // its first instruction, so no handler of the host runs on it. The
        // command is forked with the mask as it was (the standard library
        // keeps the parent's mask).
        let all = nix::sys::signal::SigSet::all();
        let mut before = nix::sys::signal::SigSet::empty();
        let made = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&all),
            Some(&mut before),
        )
        .map_err(io::Error::from)
        .and_then(|()| {
            let made = pidns_init::start(self.host.as_raw_fd());
            let _ = nix::sys::signal::pthread_sigmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&before),
                None,
            );
            made
        });
        let (init_pid, stack) = match made {
            Ok(made) => made,
            Err(e) => {
                self.leave()?;
                return Err(e);
            }
        };
        let init = Init {
            pid: init_pid,
            leader: None,
            stack: Some(stack),
        };
        let result = spawn();
        // Left whatever happened; if this fails the thread cannot make
        // another namespace, and the next spawn reports it.
        let left = self.leave();
        let leader = result.as_ref().ok().and_then(pid_of);
        match leader {
            Some(leader) => {
                let mut init = init;
                init.leader = Some(leader as i32);
                INITS
                    .lock()
                    .get_or_insert_default()
                    .insert(leader as i32, init.pid);
                left?;
                Ok((result, Some(init)))
            }
            None => {
                init.end();
                left?;
                Ok((result, None))
            }
        }
    }
}

/// The init of one run's namespace, as the host holds it: its pid (an
/// unreaped child of ours, so the number cannot be reused while we hold
/// it) and its stack.
pub(crate) struct Init {
    pid: i32,
    /// The command's pid, under which the init is registered.
    leader: Option<i32>,
    /// `None` once released.
    stack: Option<InitStack>,
}

impl std::fmt::Debug for Init {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Init")
            .field("pid", &self.pid)
            .field("leader", &self.leader)
            .finish()
    }
}

impl Init {
    /// The init's pid, as the host sees it.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal` to every process of the namespace (through the init,
    /// which forwards it); `SIGKILL` kills the init, and with it the rest.
    ///
    /// # Errors
    ///
    /// The OS error of `kill`, if the init cannot be signalled.
    pub(crate) fn signal(&self, signal: Signal) -> Result<(), Errno> {
        kill(Pid::from_raw(self.pid), signal)
    }

    /// True when no process but the init is left in the namespace, given
    /// that the command has exited: everything else then descends from the
    /// init, which reaps its children as they die.
    pub(crate) fn childless(&self) -> bool {
        let path = format!("/proc/{0}/task/{0}/children", self.pid);
        std::fs::read_to_string(path).map_or(true, |c| c.trim().is_empty())
    }

    /// Kills the namespace, waits for the init to exit and releases its
    /// stack. Blocks: the init exits only once every process of its
    /// namespace has been reaped, the command included (by its owner).
    pub(crate) fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(leader) = self.leader.take()
            && let Some(inits) = INITS.lock().as_mut()
        {
            inits.remove(&leader);
        }
        let Some(stack) = self.stack.take() else {
            return;
        };
        let _ = self.signal(Signal::SIGKILL);
        loop {
            match nix::sys::wait::waitpid(Pid::from_raw(self.pid), None) {
                Err(Errno::EINTR) => continue,
                Ok(_) => {
                    // SAFETY: the init has exited and been reaped.
                    unsafe { stack.release() };
                }
                // Reaped by someone else (it cannot be: no one waits on
                // pids they do not know); keep the stack mapped rather
                // than risk unmapping one in use.
                // (An `InitStack` only unmaps through `release`: letting it
                // go here leaves the mapping in place.)
                Err(e) => {
                    tracing::warn!(pid = self.pid, error = %e, "could not reap a namespace init; its stack is kept");
                    let _ = stack;
                }
            }
            return;
        }
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        if self.stack.is_none() {
            return;
        }
        // Dropped without `end` (a runner that ended early): kill it now
        // and reap it on a thread of its own, since its exit may wait for
        // the command to be reaped elsewhere.
        let _ = self.signal(Signal::SIGKILL);
        let (pid, leader, stack) = (self.pid, self.leader.take(), self.stack.take());
        let reaped = std::thread::Builder::new()
            .name("supervisor-init-reaper".into())
            .spawn(move || {
                Init { pid, leader, stack }.finish();
            });
        if reaped.is_err() {
            tracing::warn!(pid, "no thread to reap a namespace init; it stays a zombie");
        }
    }
}
