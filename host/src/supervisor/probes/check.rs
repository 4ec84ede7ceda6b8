//! One probe check: run a command, GET a URL, connect to a port, or look
//! for a line in the run's output; each bounded by the probe's timeout.
//!
//! Split from the task so the four checks can be tested one by one against
//! real servers and commands, without a supervisor around them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::Check;
use crate::supervisor::store::SharedRing;

/// How many ring lines a log check reads per look: a flood of output is
/// read in bounded slices, and the rest at the next period.
const LOG_LINES_PER_LOOK: usize = 4096;

/// What the checks of one run need beside the probe itself.
pub(super) struct Context {
    /// The process's `cwd`, for `exec`.
    pub(super) cwd: Option<PathBuf>,
    /// The process's extra `env`, for `exec`.
    pub(super) env: BTreeMap<String, String>,
    /// The process's output ring, for `log`.
    pub(super) ring: SharedRing,
    /// Offset of the current run's first output line: a `log` check looks
    /// only at this run's lines.
    pub(super) run_output_offset: u64,
    /// Built once per run: it keeps no connections between checks.
    pub(super) http: Option<reqwest::Client>,
}

/// A `log` check's progress through the output: a match holds for the
/// rest of the run, so lines are read once.
pub(super) struct LogCursor {
    regex: regex::Regex,
    next: u64,
    matched: bool,
}

impl LogCursor {
    /// A cursor at the run's first line; `None` for a bad regex (refused
    /// by validation, so only an unchecked spec gets there).
    pub(super) fn new(pattern: &str, run_output_offset: u64) -> Option<LogCursor> {
        Some(LogCursor {
            regex: regex::Regex::new(pattern).ok()?,
            next: run_output_offset,
            matched: false,
        })
    }

    /// Reads the lines printed since the last look; true once one matched.
    pub(super) fn look(&mut self, ring: &SharedRing) -> bool {
        if self.matched {
            return true;
        }
        let page = ring.lock().after(self.next, LOG_LINES_PER_LOOK);
        self.next = page.next_offset;
        self.matched = page.lines.iter().any(|l| self.regex.is_match(&l.line));
        self.matched
    }
}

/// Runs one check; `Err` says why it failed.
pub(super) async fn run(
    check: Check<'_>,
    timeout: Duration,
    ctx: &Context,
    log: Option<&mut LogCursor>,
) -> Result<(), String> {
    match check {
        Check::Exec(command) => exec(command, timeout, ctx).await,
        Check::HttpGet(url) => http_get(url, timeout, ctx).await,
        Check::Tcp(addr) => tcp(addr, timeout).await,
        Check::Log(pattern) => match log.map(|cursor| cursor.look(&ctx.ring)) {
            Some(true) => Ok(()),
            Some(false) => Err(format!("no output line matched `{pattern}` yet")),
            None => Err(format!("`{pattern}` is not a regex")),
        },
    }
}

async fn exec(command: &str, timeout: Duration, ctx: &Context) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .envs(&ctx.env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group, so a timeout kills whatever the command started.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &ctx.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd.spawn().map_err(|e| format!("could not run: {e}"))?;
    let group = child.id().map(|pid| pid as i32);
    let verdict = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("exited with {status}")),
        Ok(Err(e)) => Err(format!("could not wait for it: {e}")),
        Err(_) => {
            if let Some(pid) = group {
                // Unreaped, the leader pins its group id: this reaches only its group.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Err(format!(
                "timed out after {}",
                crate::supervisor::duration::format(timeout)
            ))
        }
    };
    if let Some(pgid) = group {
        end_group(pgid).await;
    }
    verdict
}

/// Ends what a probe command left running in its group (`cmd &`): a check
/// leaves nothing behind. Those processes were re-parented to the host (a
/// child subreaper) when the command exited, and no supervised tree
/// registers them with the orphan reaper, so they are reaped here, by
/// group: `waitpid(-pgid)` touches no other child of the host.
async fn end_group(pgid: i32) {
    // The group id stays allocated while any member lives, so it cannot
    // name another group; with no member left this is ESRCH.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    let members = Pid::from_raw(-pgid);
    // SIGKILL is delivered at once, but the exit takes a moment: a few
    // short waits, then stop (ECHILD: no child of ours is left in it).
    for _ in 0..200 {
        match waitpid(members, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => tokio::time::sleep(Duration::from_millis(5)).await,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

async fn http_get(url: &str, timeout: Duration, ctx: &Context) -> Result<(), String> {
    let client = ctx
        .http
        .as_ref()
        .ok_or_else(|| "no HTTP client could be built".to_string())?;
    let response = tokio::time::timeout(timeout, client.get(url).send())
        .await
        .map_err(|_| {
            format!(
                "timed out after {}",
                crate::supervisor::duration::format(timeout)
            )
        })?
        .map_err(|e| format!("GET failed: {e}"))?;
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("GET answered {status}"))
    }
}

async fn tcp(addr: &str, timeout: Duration) -> Result<(), String> {
    let (host, port) = parse_tcp(addr)?;
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("connect failed: {e}")),
        Err(_) => Err(format!(
            "timed out after {}",
            crate::supervisor::duration::format(timeout)
        )),
    }
}

/// The client `http_get` checks share within a run: no proxy (a probe
/// asks the process itself, not whatever `http_proxy` points at), no
/// redirects followed (a 3xx already passes).
pub(super) fn http_client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok()
}

/// Checks an `http_get` URL: `http://` with a host (the build has no TLS).
pub(super) fn parse_http_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "`{url}` must be an http:// URL (probes speak plain HTTP)"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// Splits a `tcp` address `host:port` (`[::1]:80` for IPv6).
pub(super) fn parse_tcp(addr: &str) -> Result<(&str, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` must be host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{addr}` has no valid port"))?;
    if host.is_empty() || port == 0 {
        return Err(format!("`{addr}` must be host:port with a port above 0"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::state::{OutputLine, Stream};
    use crate::supervisor::store::Ring;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn context() -> Context {
        Context {
            cwd: None,
            env: BTreeMap::from([("PROBE_VALUE".into(), "42".into())]),
            ring: Ring::shared(100),
            run_output_offset: 0,
            http: http_client(),
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// A one-shot HTTP server answering every request with `status`.
    async fn server(status: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        format!("http://{addr}/health")
    }

    #[tokio::test]
    async fn an_exec_check_passes_on_exit_zero_with_the_process_env() {
        let ctx = context();
        let ok = run(
            Check::Exec("test \"$PROBE_VALUE\" = 42"),
            SECOND,
            &ctx,
            None,
        )
        .await;
        assert_eq!(ok, Ok(()));
        let err = run(Check::Exec("exit 3"), SECOND, &ctx, None)
            .await
            .unwrap_err();
        assert!(err.contains("exit status: 3"), "{err}");
    }

    #[tokio::test]
    async fn an_exec_check_leaves_nothing_running_behind_it() {
        // Whether this test process is a subreaper (other tests make it
        // one) or not, the background sleep must be gone, not a zombie.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pid");
        let command = format!("sleep 300 & echo $! > {}; exit 0", file.display());
        assert_eq!(
            run(Check::Exec(&command), SECOND, &context(), None).await,
            Ok(())
        );
        let pid: i32 = std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(format!("/proc/{pid}")).is_ok() {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                std::time::Instant::now() < deadline,
                "the probe's background sleep {pid} is still there: {state}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn an_exec_check_that_hangs_fails_at_its_timeout() {
        let err = run(
            Check::Exec("sleep 30"),
            Duration::from_millis(100),
            &context(),
            None,
        )
        .await
        .unwrap_err();
        assert!(err.contains("timed out"), "{err}");
    }

    #[tokio::test]
    async fn an_http_check_passes_on_2xx_and_fails_on_5xx() {
        let ctx = context();
        let ok = server("204 No Content").await;
        assert_eq!(run(Check::HttpGet(&ok), SECOND, &ctx, None).await, Ok(()));
        let bad = server("503 Service Unavailable").await;
        let err = run(Check::HttpGet(&bad), SECOND, &ctx, None)
            .await
            .unwrap_err();
        assert!(err.contains("503"), "{err}");
    }

    #[tokio::test]
    async fn an_http_check_against_a_server_that_never_answers_times_out() {
        // Accepts, then says nothing: the hostile server.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let err = run(
            Check::HttpGet(&url),
            Duration::from_millis(200),
            &context(),
            None,
        )
        .await
        .unwrap_err();
        assert!(err.contains("timed out"), "{err}");
    }

    #[tokio::test]
    async fn a_tcp_check_passes_while_a_port_listens_and_fails_once_it_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert_eq!(
            run(Check::Tcp(&addr), SECOND, &context(), None).await,
            Ok(())
        );
        drop(listener);
        assert!(
            run(Check::Tcp(&addr), SECOND, &context(), None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_log_check_matches_only_this_runs_lines_and_then_holds() {
        let mut ctx = context();
        let push = |ring: &SharedRing, text: &str| {
            let offset = ring.lock().next_offset();
            ring.lock().push(OutputLine {
                stream: Stream::Stdout,
                line: text.into(),
                time: chrono::Utc::now(),
                offset,
            });
        };
        push(&ctx.ring, "ready (from the last run)");
        ctx.run_output_offset = 1;
        let mut cursor = LogCursor::new("^ready", ctx.run_output_offset).unwrap();
        let check = Check::Log("^ready");
        assert!(run(check, SECOND, &ctx, Some(&mut cursor)).await.is_err());
        push(&ctx.ring, "starting");
        push(&ctx.ring, "ready to serve");
        assert_eq!(run(check, SECOND, &ctx, Some(&mut cursor)).await, Ok(()));
        push(&ctx.ring, "anything else");
        assert_eq!(run(check, SECOND, &ctx, Some(&mut cursor)).await, Ok(()));
    }

    #[test]
    fn addresses_and_urls_are_checked_before_any_run() {
        assert_eq!(parse_tcp("127.0.0.1:5432"), Ok(("127.0.0.1", 5432)));
        assert_eq!(parse_tcp("[::1]:80"), Ok(("::1", 80)));
        assert!(parse_tcp("localhost").is_err());
        assert!(parse_tcp(":80").is_err());
        assert!(parse_http_url("http://127.0.0.1:8080/health").is_ok());
        assert!(parse_http_url("https://example.com/").is_err());
        assert!(parse_http_url("not a url").is_err());
    }
}
