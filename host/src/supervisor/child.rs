//! Forking a supervised command, and waiting for it.
//!
//! Why not the standard library's `Command`: its `posix_spawn` (or `fork`)
//! gives the child a copy of the host's whole descriptor table, and the
//! child's `exec` then closes every copied descriptor one by one. A host
//! supervising 1,000 processes holds about four descriptors for each, so
//! every spawn cost as much as the host had processes running: starting
//! 1,000 `sleep`s took 1.8 s, more than half of the spawner thread's time
//! in the kernel closing those copies (`perf record` of `host run`).
//!
//! Here the child is made by `clone(CLONE_VM | CLONE_VFORK | CLONE_FILES)`:
//! it shares the host's memory and descriptor table (nothing is copied),
//! and the spawner thread waits until it has exec'd. Its first step trades
//! the shared table for one of its own with `close_range(low, ~0,
//! CLOSE_RANGE_UNSHARE)`, which copies only the descriptors below `low`:
//! the spawner keeps three slots at the bottom of the table (reserved first
//! thing in `main`, see [`reserve_spawn_slots`] and [`Forker`]) and, before
//! each spawn, points them at the child's stdin (`/dev/null`), stdout and
//! stderr pipes. So a spawn costs
//! the same with ten processes running or ten thousand.
//!
//! Between the clone and the exec the child shares the host's memory, so
//! it runs only raw system calls (`rawsys`) on a stack of its own, touching
//! nothing but what the spawner prepared for it ([`Prepared`]): the paths
//! to try, `argv`, `envp`, the working directory. It reports a failure in
//! that shared memory and exits with 127; the spawner turns it into the
//! error `Command::spawn` would have given (a missing program is
//! `NotFound`).
//!
//! The child is waited for through a pidfd (`CLONE_PIDFD`, so there is no
//! window in which the pid could be reused): readable once it has exited,
//! then reaped with `waitid(P_PIDFD)`.

use std::ffi::{CString, OsStr, OsString, c_void};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI64, Ordering};

use nix::libc;
use parking_lot::Mutex;
use tokio::io::unix::AsyncFd;

use super::rawsys as sys;
use super::spec::ProcessSpec;

/// The child's stack while it runs before its exec (the spawner thread is
/// suspended meanwhile; `CLONE_VFORK`). It needs well under a page.
const STACK_SIZE: usize = 64 * 1024;

/// What the spawner thread keeps for forking, made once when it starts:
/// three descriptor slots at the bottom of the host's table for the
/// streams of the child it is making (stdin, stdout, stderr; between
/// spawns all hold `/dev/null`), the stack the child runs on until its
/// exec, and the host's environment.
///
/// Everything below the highest slot is copied into each child (and closed
/// there before the exec), so the slots are reserved as early as possible,
/// with few descriptors open.
pub(super) struct Forker {
    /// `/dev/null`, the stdin of every child, and what the other two slots
    /// hold between spawns.
    null: OwnedFd,
    /// The stdout and stderr slots.
    out: OwnedFd,
    err: OwnedFd,
    /// Reused by every spawn: one child at a time runs on it, and only
    /// until its exec (the spawner waits for that; `CLONE_VFORK`).
    stack: Box<[MaybeUninit<u128>]>,
    /// The host's environment, read once (the host never changes it): a
    /// copy per spawn was a tenth of the spawner's time.
    env: Vec<(OsString, OsString)>,
}

/// Slots reserved by [`reserve_spawn_slots`] for the first [`Forker`].
static EARLY_SLOTS: Mutex<Option<[OwnedFd; 3]>> = Mutex::new(None);

/// Reserves the stream slots of the first spawner now: the lowest free
/// descriptors from 3 up, which at the start of `main` are 4, 5 and 6 (an
/// epoll descriptor is already open), so each child copies seven
/// descriptors from the host, not the thirty the
/// host has open once its journal, plugins and sockets are up. Optional:
/// a spawner without early slots reserves its own when it starts.
///
/// # Errors
///
/// The OS error of opening `/dev/null` or duplicating it.
pub fn reserve_spawn_slots() -> io::Result<()> {
    let slots = three_null_slots()?;
    *EARLY_SLOTS.lock() = Some(slots);
    Ok(())
}

/// `/dev/null` three times, in the lowest free descriptors from 3 up.
fn three_null_slots() -> io::Result<[OwnedFd; 3]> {
    let null = std::fs::File::open("/dev/null")?;
    let low = || -> io::Result<OwnedFd> {
        // SAFETY: F_DUPFD_CLOEXEC takes a descriptor we hold and a
        // minimum number; it returns a new descriptor or -1.
        let new = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if new < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just made this descriptor; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(new) })
    };
    Ok([low()?, low()?, low()?])
}

impl Forker {
    /// Takes the early slots (or reserves three), makes the stack, and
    /// reads the environment.
    ///
    /// # Errors
    ///
    /// The OS error of opening `/dev/null` or duplicating it.
    pub(super) fn new() -> io::Result<Forker> {
        let early = EARLY_SLOTS.lock().take();
        let [null, out, err] = match early {
            Some(slots) => slots,
            None => three_null_slots()?,
        };
        Ok(Forker {
            null,
            out,
            err,
            stack: Box::new_uninit_slice(STACK_SIZE / 16),
            env: std::env::vars_os().collect(),
        })
    }

    /// One past the highest slot: a child keeps the descriptors below this.
    fn keep_below(&self) -> RawFd {
        self.null
            .as_raw_fd()
            .max(self.out.as_raw_fd())
            .max(self.err.as_raw_fd())
            + 1
    }

    /// Points the stdout and stderr slots at `out` and `err`.
    fn fill(&self, out: &OwnedFd, err: &OwnedFd) -> io::Result<()> {
        dup_onto(out.as_raw_fd(), self.out.as_raw_fd())?;
        dup_onto(err.as_raw_fd(), self.err.as_raw_fd())
    }

    /// Points both back at `/dev/null`: the host must not hold the write
    /// ends of a child's pipes, or their readers would never see the end.
    fn clear(&self) {
        let _ = dup_onto(self.null.as_raw_fd(), self.out.as_raw_fd());
        let _ = dup_onto(self.null.as_raw_fd(), self.err.as_raw_fd());
    }
}

/// `dup3(from, onto, O_CLOEXEC)`.
fn dup_onto(from: RawFd, onto: RawFd) -> io::Result<()> {
    // SAFETY: dup3 takes two descriptor numbers and flags; `onto` is a slot
    // this module owns, so replacing what it holds closes nothing of others.
    match unsafe { libc::dup3(from, onto, libc::O_CLOEXEC) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// A pipe whose both ends close on exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// What the child needs between its clone and its exec, made by the
/// spawner beforehand: pointers into this value's own strings, which live
/// until the clone returns (the child has exec'd or exited by then).
struct Prepared {
    /// The program paths to try in order (one, or one per `PATH` entry).
    programs: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
}

impl Prepared {
    /// The command line, environment and working directory of `spec`, as
    /// `Command` would run them: no `args` is a `/bin/sh -c` line; a
    /// program without a `/` is looked for in `PATH` (the child's own, if
    /// the spec sets one).
    fn of(spec: &ProcessSpec, host_env: &[(OsString, OsString)]) -> io::Result<Prepared> {
        let (program, args): (&str, Vec<&str>) = match &spec.args {
            None => ("/bin/sh", vec!["-c", spec.command.as_str()]),
            Some(args) => (
                spec.command.as_str(),
                args.iter().map(String::as_str).collect(),
            ),
        };
        let mut env: Vec<(&OsStr, &OsStr)> = host_env
            .iter()
            .filter(|(key, _)| key.to_str().is_none_or(|key| !spec.env.contains_key(key)))
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
            .collect();
        env.extend(spec.env.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        let path = env
            .iter()
            .find(|(key, _)| *key == "PATH")
            .map(|(_, value)| *value);
        let programs = candidates(program, path)?;
        let argv = std::iter::once(program)
            .chain(args)
            .map(|arg| c_string(arg.as_bytes(), "an argument"))
            .collect::<io::Result<_>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut entry = k.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                c_string(&entry, "an environment variable")
            })
            .collect::<io::Result<_>>()?;
        let cwd = spec
            .cwd
            .as_deref()
            .map(|dir| c_string(dir.as_os_str().as_bytes(), "the working directory"))
            .transpose()?;
        Ok(Prepared {
            programs,
            argv,
            envp,
            cwd,
        })
    }
}

/// The paths to exec for `program`: itself if it names a path, otherwise
/// each entry of `path` joined with it (an empty entry is the working
/// directory, as `execvp` has it); glibc's default when `PATH` is unset.
fn candidates(program: &str, path: Option<&OsStr>) -> io::Result<Vec<CString>> {
    if program.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the program name is empty",
        ));
    }
    if program.contains('/') {
        return Ok(vec![c_string(program.as_bytes(), "the program")?]);
    }
    let path = path.map_or(b"/bin:/usr/bin".as_slice(), |p| p.as_bytes());
    path.split(|b| *b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            c_string(
                Path::new(OsStr::from_bytes(dir))
                    .join(program)
                    .as_os_str()
                    .as_bytes(),
                "the program",
            )
        })
        .collect()
}

fn c_string(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// Null-terminated pointer arrays over a [`Prepared`]'s strings.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The step of the child that failed, reported with its errno.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(i64)]
enum Step {
    /// Making its own descriptor table.
    Descriptors = 1,
    /// Putting its streams in place.
    Streams = 2,
    /// Leading a process group of its own.
    Group = 3,
    /// Asking for the parent-death signal.
    ParentDeath = 4,
    /// Entering the working directory.
    Cwd = 5,
    /// Executing the program.
    Exec = 6,
}

impl Step {
    /// What the step does, for an error message.
    fn describe(self) -> &'static str {
        match self {
            Step::Descriptors => "cannot give the child a descriptor table of its own",
            Step::Streams => "cannot connect the child's stdin, stdout and stderr",
            Step::Group => "cannot make the child lead a process group",
            Step::ParentDeath => "cannot set the child's parent-death signal",
            Step::Cwd => "cannot enter the working directory",
            Step::Exec => "cannot execute the program",
        }
    }

    fn of(code: i64) -> Step {
        match code {
            1 => Step::Descriptors,
            2 => Step::Streams,
            3 => Step::Group,
            4 => Step::ParentDeath,
            5 => Step::Cwd,
            _ => Step::Exec,
        }
    }
}

/// What the child reads, at the address the clone passes it. Plain
/// numbers and pointers only: the child must not run Rust code that could
/// allocate or unwind.
#[repr(C)]
struct ChildArgs {
    slots: [i32; 3],
    keep_below: i32,
    parent_death: bool,
    cwd: *const libc::c_char,
    /// Null-terminated.
    programs: *const *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// `step << 32 | errno` of a failure; 0 while none.
    failure: AtomicI64,
}

/// The child's body, from its clone to its exec. Never returns.
extern "C" fn child_main(arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the ChildArgs the spawner made for this clone; it
    // lives until the clone returns, which is after this exec or exit.
    let a = unsafe { &*arg.cast::<ChildArgs>() };
    let fail = |step: Step, ret: isize| -> ! {
        a.failure
            .store(((step as i64) << 32) | (-ret) as i64, Ordering::Relaxed);
        sys::exit(127)
    };
    // A table of our own holding only what is below `keep_below` (the
    // slots and the few descriptors the host opened before them); before
    // Linux 5.9, a copy of the whole table.
    let unshared = sys::call(
        sys::CLOSE_RANGE,
        [
            a.keep_below as usize,
            u32::MAX as usize,
            libc::CLOSE_RANGE_UNSHARE as usize,
            0,
        ],
    );
    if unshared < 0 {
        let ret = sys::call(sys::UNSHARE, [libc::CLONE_FILES as usize, 0, 0, 0]);
        if ret < 0 {
            fail(Step::Descriptors, ret);
        }
    }
    for (stream, slot) in a.slots.iter().enumerate() {
        // Flags 0: the copy does not close on exec.
        let ret = sys::call(sys::DUP3, [*slot as usize, stream, 0, 0]);
        if ret < 0 {
            fail(Step::Streams, ret);
        }
    }
    // Everything else; the result does not matter, as all of it closes on
    // exec anyway.
    sys::call(sys::CLOSE_RANGE, [3, u32::MAX as usize, 0, 0]);
    // Leader of a new group: stop and pause reach the whole tree, and the
    // terminal's Ctrl-C goes to the host, which stops children in order.
    let ret = sys::call(sys::SETPGID, [0, 0, 0, 0]);
    if ret < 0 {
        fail(Step::Group, ret);
    }
    if a.parent_death {
        // No getppid() race check is needed: the spawner thread is
        // suspended until this exec (CLONE_VFORK), so it cannot have exited.
        let ret = sys::call(
            sys::PRCTL,
            [
                libc::PR_SET_PDEATHSIG as usize,
                libc::SIGKILL as usize,
                0,
                0,
            ],
        );
        if ret < 0 {
            fail(Step::ParentDeath, ret);
        }
    }
    if !a.cwd.is_null() {
        let ret = sys::call(sys::CHDIR, [a.cwd as usize, 0, 0, 0]);
        if ret < 0 {
            fail(Step::Cwd, ret);
        }
    }
    reset_signals();
    // SAFETY: `programs` is a null-terminated array of C strings.
    let mut program = a.programs;
    let mut error = -(libc::ENOENT as isize);
    loop {
        // SAFETY: `program` stays inside that array (it stops at the null).
        let path = unsafe { *program };
        if path.is_null() {
            break;
        }
        let ret = sys::call(
            sys::EXECVE,
            [path as usize, a.argv as usize, a.envp as usize, 0],
        );
        // As execvp: a path that is not there is passed over; a refusal is
        // remembered in case no later one runs; anything else ends the search.
        match -ret as i32 {
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {
                if error != -(libc::EACCES as isize) {
                    error = ret;
                }
            }
            libc::EACCES => error = ret,
            _ => {
                error = ret;
                break;
            }
        }
        // SAFETY: see above.
        program = unsafe { program.add(1) };
    }
    fail(Step::Exec, error)
}

/// Every signal the host handles back to its default, `SIGPIPE` (which a
/// Rust program ignores) included, then an empty mask, as `Command` leaves
/// a child: the spawner blocked everything around the clone, so no handler
/// of the host ran in the child before this.
fn reset_signals() {
    // The kernel's `struct sigaction`: handler, flags, restorer, mask; all
    // zero is SIG_DFL with no flags.
    let default = [0u64; 4];
    for sig in 1..=64usize {
        if sig == libc::SIGKILL as usize || sig == libc::SIGSTOP as usize {
            continue;
        }
        let mut old = [0u64; 4];
        let ret = sys::call(sys::RT_SIGACTION, [sig, 0, old.as_mut_ptr() as usize, 8]);
        let handler = old[0] as usize;
        let handled = handler != libc::SIG_DFL && handler != libc::SIG_IGN;
        let ignored_sigpipe = sig == libc::SIGPIPE as usize && handler == libc::SIG_IGN;
        if ret == 0 && (handled || ignored_sigpipe) {
            sys::call(sys::RT_SIGACTION, [sig, default.as_ptr() as usize, 0, 8]);
        }
    }
    let empty = 0u64;
    sys::call(
        sys::RT_SIGPROCMASK,
        [libc::SIG_SETMASK as usize, &raw const empty as usize, 0, 8],
    );
}

/// Forks `spec`'s command as a direct child of the calling thread, with
/// `forker`'s slots and stack; with `parent_death`, it gets `SIGKILL` when
/// that thread exits.
///
/// Must run on the spawner thread (the only user of `forker`), inside the
/// tokio runtime (the pidfd is registered with its reactor).
///
/// # Errors
///
/// What `Command::spawn` would give: the OS error of the failed step, with
/// its kind (a missing program or working directory is `NotFound`), and a
/// message naming the working directory when entering it failed.
pub(super) fn spawn(
    spec: &ProcessSpec,
    forker: &mut Forker,
    parent_death: bool,
) -> io::Result<ChildProcess> {
    let prepared = Prepared::of(spec, &forker.env)?;
    let (programs, argv, envp) = (
        pointers(&prepared.programs),
        pointers(&prepared.argv),
        pointers(&prepared.envp),
    );
    // 16-byte aligned (u128), as both ABIs want the stack.
    let stack_top = forker.stack.as_mut_ptr_range().end.cast::<c_void>();
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let args = ChildArgs {
        slots: [
            forker.null.as_raw_fd(),
            forker.out.as_raw_fd(),
            forker.err.as_raw_fd(),
        ],
        keep_below: forker.keep_below(),
        parent_death,
        cwd: prepared
            .cwd
            .as_ref()
            .map_or(std::ptr::null(), |c| c.as_ptr()),
        programs: programs.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        failure: AtomicI64::new(0),
    };
    // The slots hold the pipes' write ends only for the clone: cleared
    // whatever happens, or the host would keep a pipe open.
    let cloned = forker
        .fill(&out_write, &err_write)
        .and_then(|()| clone_child(&args, stack_top));
    forker.clear();
    drop((out_write, err_write));
    let (pid, pidfd) = cloned?;
    let pidfd = match register(pidfd) {
        Ok(pidfd) => pidfd,
        Err((pidfd, e)) => {
            // Not to be left running unwatched, nor as a zombie.
            kill_pidfd(pidfd.as_raw_fd());
            let _ = reap_pidfd(pidfd.as_raw_fd(), true);
            return Err(e);
        }
    };
    let mut child = ChildProcess {
        pid,
        pidfd: Some(pidfd),
        status: None,
        stdout: Some(out_read),
        stderr: Some(err_read),
    };
    let failure = args.failure.load(Ordering::Relaxed);
    if failure == 0 {
        return Ok(child);
    }
    // The child has exited (CLONE_VFORK returned): reap it now.
    let _ = child.reap(true);
    let error = io::Error::from_raw_os_error((failure & 0xffff_ffff) as i32);
    Err(match Step::of(failure >> 32) {
        Step::Exec => error,
        Step::Cwd => io::Error::new(
            error.kind(),
            format!(
                "cannot enter the working directory {}: {error}",
                spec.cwd.as_deref().unwrap_or(Path::new("")).display()
            ),
        ),
        step => io::Error::new(error.kind(), format!("{}: {error}", step.describe())),
    })
}

/// The clone itself: runs [`child_main`] on `stack_top` with `args`, and
/// returns once the child has exec'd or exited, with its pid and pidfd.
fn clone_child(args: &ChildArgs, stack_top: *mut c_void) -> io::Result<(u32, OwnedFd)> {
    // Every signal blocked around the clone: the child inherits the mask,
    // so no handler of the host runs in it (it resets them before exec).
    let all = nix::sys::signal::SigSet::all();
    let mut before = nix::sys::signal::SigSet::empty();
    nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&all),
        Some(&mut before),
    )
    .map_err(io::Error::from)?;
    let mut pidfd: libc::c_int = -1;
    // SAFETY: `child_main` only makes raw system calls and reads `args`
    // (see the module doc); `args`, the strings it points to and the
    // stack outlive the child's use of them, because CLONE_VFORK keeps
    // this thread here until the child has exec'd or exited. CLONE_PIDFD
    // writes the pidfd to `pidfd`.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack_top,
            libc::CLONE_VM
                | libc::CLONE_VFORK
                | libc::CLONE_FILES
                | libc::CLONE_PIDFD
                | libc::SIGCHLD,
            std::ptr::from_ref(args).cast_mut().cast::<c_void>(),
            &raw mut pidfd,
        )
    };
    let error = io::Error::last_os_error();
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&before),
        None,
    );
    if pid < 0 {
        return Err(error);
    }
    // SAFETY: CLONE_PIDFD gave us this new descriptor; nobody else owns it.
    Ok((pid as u32, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// `pidfd` registered with the reactor, or it back with the error.
fn register(pidfd: OwnedFd) -> Result<AsyncFd<OwnedFd>, (OwnedFd, io::Error)> {
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same
    // for as long as the AsyncFd lives.
    unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts())
}

/// A supervised command, the host's direct child: its pid, the read ends
/// of its stdout and stderr, and its exit. Dropped before it was reaped,
/// it is killed (and reaped in the background), as a `Command` child with
/// `kill_on_drop`.
#[derive(Debug)]
pub(crate) struct ChildProcess {
    pid: u32,
    /// Until reaped.
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
    /// The read end of the child's stdout, until taken.
    pub(crate) stdout: Option<OwnedFd>,
    /// The read end of the child's stderr, until taken.
    pub(crate) stderr: Option<OwnedFd>,
}

impl ChildProcess {
    /// The child's pid, until it has been reaped.
    pub(crate) fn id(&self) -> Option<u32> {
        self.status.is_none().then_some(self.pid)
    }

    /// Resolves once the child has exited, without reaping it: until it is
    /// reaped, its pid and its process group id cannot be reused, so the
    /// rest of its tree can still be found and signalled by them.
    pub(crate) async fn exited(&self) {
        if let Some(pidfd) = &self.pidfd {
            // Readable once the child has exited; the readiness is kept, so
            // a later `wait` finds it at once.
            let _ = pidfd.readable().await;
        }
    }

    /// Waits for the child to exit and reaps it; later calls give the same
    /// status again.
    ///
    /// # Errors
    ///
    /// The OS error of waiting (e.g. the child was reaped by someone else).
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.reap(false)? {
                return Ok(status);
            }
            let Some(pidfd) = &self.pidfd else {
                return Err(io::Error::other("the child was already reaped"));
            };
            // Readable once the child has exited.
            pidfd.readable().await?.clear_ready();
        }
    }

    /// The status if the child has exited (reaping it), waiting for that
    /// with `block`.
    fn reap(&mut self, block: bool) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let Some(pidfd) = &self.pidfd else {
            return Err(io::Error::other("the child was already reaped"));
        };
        let status = reap_pidfd(pidfd.get_ref().as_raw_fd(), block)?;
        if status.is_some() {
            self.status = status;
            self.pidfd = None;
        }
        Ok(status)
    }
}

/// `waitid(P_PIDFD, fd, WEXITED)`, without blocking unless `block`.
fn reap_pidfd(fd: RawFd, block: bool) -> io::Result<Option<ExitStatus>> {
    // SAFETY: an all-zero siginfo_t is a valid value of it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
    // SAFETY: waitid writes into `info`, which we own.
    if unsafe { libc::waitid(libc::P_PIDFD, fd as libc::id_t, &mut info, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info` for a child event (or left it zero).
    let (pid, code, value) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    // As the wait status `waitpid` would have given.
    let raw = match code {
        libc::CLD_EXITED => (value & 0xff) << 8,
        libc::CLD_DUMPED => (value & 0x7f) | 0x80,
        _ => value & 0x7f,
    };
    Ok(Some(ExitStatus::from_raw(raw)))
}

/// `SIGKILL` through a pidfd.
fn kill_pidfd(fd: RawFd) {
    // SAFETY: pidfd_send_signal takes a pidfd we own, a signal number and
    // no info; it touches no memory of ours.
    unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, fd, libc::SIGKILL, 0, 0);
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        let fd = pidfd.get_ref().as_raw_fd();
        kill_pidfd(fd);
        if !matches!(reap_pidfd(fd, false), Ok(None)) {
            return;
        }
        // Still exiting: reap it once it has, or it stays a zombie.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Ok(mut ready) = pidfd.readable().await {
                    ready.clear_ready();
                }
                let _ = reap_pidfd(pidfd.get_ref().as_raw_fd(), true);
            });
        }
    }
}
