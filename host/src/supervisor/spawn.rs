//! Turning a spec into a running child: the command line, the process group,
//! the parent-death signal, and the thread that forks.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
//! not the process. Forking from a tokio worker would be fragile (a worker
//! that enters `block_in_place` may later retire as a blocking-pool thread)
//! and forking from a `spawn_blocking` thread would kill the child as soon as
//! that idle thread is retired, seconds later. So every child is forked by
//! one dedicated thread that lives as long as the supervisor: if the host
//! dies, every direct child gets `SIGKILL`.

use std::io;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;

use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::reaper;
use super::spec::ProcessSpec;

/// Builds the command for `spec`: shell or direct exec, env, cwd, pipes, group.
pub(crate) fn build_command(spec: &ProcessSpec) -> Command {
    let mut cmd = match &spec.args {
        None => {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(&spec.command);
            cmd
        }
        Some(args) => {
            let mut cmd = Command::new(&spec.command);
            cmd.args(args);
            cmd
        }
    };
    cmd.envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Leader of a new group: stop and pause reach the whole tree, and the
        // terminal's Ctrl-C goes to the host, which stops children in order.
        .process_group(0)
        // Last resort if the Child handle is dropped without our cleanup.
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    // SAFETY: the closure runs between fork and exec and only makes the
    // async-signal-safe `prctl` system call; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let rc = nix::libc::prctl(
                nix::libc::PR_SET_PDEATHSIG,
                nix::libc::SIGKILL as nix::libc::c_ulong,
                0,
                0,
                0,
            );
            if rc == -1 {
                return Err(io::Error::last_os_error());
            }
            // No getppid() race check is needed: std keeps the forking thread
            // blocked until exec succeeds, so it cannot have exited yet.
            Ok(())
        });
    }
    cmd
}

struct Request {
    command: Command,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// The dedicated forking thread; it ends when the supervisor drops this.
pub(crate) struct Spawner {
    requests: mpsc::Sender<Request>,
}

impl Spawner {
    /// Starts the thread, tied to `runtime` so tokio can reap the children.
    pub(crate) fn start(runtime: Handle) -> io::Result<Spawner> {
        let (requests, inbox) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("supervisor-spawner".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                while let Ok(Request { mut command, reply }) = inbox.recv() {
                    let result = command.spawn();
                    if let Ok(child) = &result
                        && let Some(pid) = child.id()
                    {
                        reaper::track_child(pid as i32);
                    }
                    if let Err(Ok(child)) = reply.send(result) {
                        // The caller went away: nobody will supervise this
                        // child, so take its whole group down now.
                        if let Some(pid) = child.id() {
                            let _ = nix::sys::signal::killpg(
                                nix::unistd::Pid::from_raw(pid as i32),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                            reaper::untrack_child(pid as i32);
                        }
                    }
                }
            })?;
        Ok(Spawner { requests })
    }

    /// Forks `command` on the spawner thread.
    pub(crate) async fn spawn(&self, command: Command) -> io::Result<Child> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { command, reply })
            .map_err(|_| io::Error::other("the supervisor's spawner thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the supervisor's spawner thread has stopped"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_leads_its_own_group() {
        let spawner = Spawner::start(Handle::current()).unwrap();
        let spec = ProcessSpec::new("t", "cat /proc/self/stat");
        let child = spawner.spawn(build_command(&spec)).await.unwrap();
        let pid = child.id().unwrap() as i32;
        let out = child.wait_with_output().await.unwrap();
        reaper::untrack_child(pid);
        reaper::forget_group(pid);
        let stat = super::super::stop::parse_stat(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(stat.pgid, pid, "the child must lead its own process group");
    }

    #[tokio::test]
    async fn env_and_cwd_reach_the_child() {
        let spawner = Spawner::start(Handle::current()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut spec = ProcessSpec::new("t", "echo \"$GREETING\"; pwd");
        spec.env.insert("GREETING".into(), "hello there".into());
        spec.cwd = Some(dir.path().to_path_buf());
        let child = spawner.spawn(build_command(&spec)).await.unwrap();
        let pid = child.id().unwrap() as i32;
        let out = child.wait_with_output().await.unwrap();
        reaper::untrack_child(pid);
        reaper::forget_group(pid);
        let text = String::from_utf8(out.stdout).unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(text, format!("hello there\n{}\n", canonical.display()));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let spawner = Spawner::start(Handle::current()).unwrap();
        let mut spec = ProcessSpec::new("t", "/nonexistent/program");
        spec.args = Some(vec![]);
        let err = spawner.spawn(build_command(&spec)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
