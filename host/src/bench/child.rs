//! A real `host run` child: this very binary, started as a user starts it,
//! with its own plugins folder, `host.toml` and state folder. The sections
//! that measure what a running host costs or answers (idle processes, the
//! API) read it from outside: its journal (read-only), its /proc files,
//! and its API through `api.addr` and `api.token`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::api::ApiClient;
use crate::bus::{EventQuery, Journal, Pattern, journal_path};

/// A `host run` child process.
pub(crate) struct HostChild {
    child: tokio::process::Child,
    /// Its pid.
    pub pid: u32,
    /// Its state folder.
    pub state: PathBuf,
    /// Where its stderr goes, for error messages.
    stderr: PathBuf,
    /// When it was spawned.
    pub spawned: Instant,
    /// The same moment by the wall clock, to compare with event times.
    pub spawned_at: chrono::DateTime<chrono::Utc>,
}

impl HostChild {
    /// Starts `host run --plugins plugins --config config --state-dir state`
    /// in `dir` (its stdout is dropped, its stderr kept in `dir/host.stderr`).
    ///
    /// # Errors
    ///
    /// When this binary cannot be found or started.
    pub(crate) fn spawn(
        dir: &Path,
        plugins: &Path,
        config: &Path,
        state: &Path,
    ) -> anyhow::Result<Self> {
        let stderr = dir.join("host.stderr");
        let file = std::fs::File::create(&stderr)
            .with_context(|| format!("cannot create {}", stderr.display()))?;
        let exe = std::env::current_exe().context("cannot find this binary to start `host run`")?;
        let child = tokio::process::Command::new(&exe)
            .arg("run")
            .arg("--plugins")
            .arg(plugins)
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(state)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} run", exe.display()))?;
        let pid = child.id().context("the host child has no pid")?;
        Ok(HostChild {
            child,
            pid,
            state: state.to_path_buf(),
            stderr,
            spawned: Instant::now(),
            spawned_at: chrono::Utc::now(),
        })
    }

    /// Fails with the end of the child's stderr if it has exited.
    pub(crate) fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("`host run` exited ({status}): {}", self.stderr_tail());
        }
        Ok(())
    }

    /// The last lines the child wrote to stderr.
    pub(crate) fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Events of type `ty` in its journal (read-only; 0 while there is none).
    pub(crate) fn count(&self, ty: &str) -> u64 {
        Journal::open_read_only(&journal_path(&self.state))
            .and_then(|j| j.stats())
            .map(|s| s.by_type.get(ty).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Every `process.started` event in its journal.
    fn started_events(&self) -> anyhow::Result<Vec<crate::bus::Event>> {
        Ok(
            Journal::open_read_only(&journal_path(&self.state))?.query(&EventQuery {
                types: vec![Pattern::parse("process.started")?],
                after_sequence: Some(0),
                limit: Some(usize::MAX),
                ..Default::default()
            })?,
        )
    }

    /// The `pid` of every `process.started` event in its journal.
    pub(crate) fn started_pids(&self) -> anyhow::Result<Vec<u32>> {
        Ok(self
            .started_events()?
            .iter()
            .filter_map(|e| e.data["pid"].as_u64().map(|p| p as u32))
            .collect())
    }

    /// How long after its spawn the last `process.started` event of its
    /// journal is dated (the host writes it once the command has exec'd).
    pub(crate) fn last_started_after_spawn(&self) -> anyhow::Result<Option<Duration>> {
        let last = self.started_events()?.iter().map(|e| e.time).max();
        Ok(last.and_then(|t| (t - self.spawned_at).to_std().ok()))
    }

    /// Waits until `count(ty)` reaches `n`.
    ///
    /// # Errors
    ///
    /// When the child exits or `limit` passes first.
    pub(crate) async fn wait_count(
        &mut self,
        ty: &str,
        n: u64,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.count(ty) < n {
            self.ensure_running()?;
            if Instant::now() > deadline {
                bail!(
                    "only {} of {n} `{ty}` events within {limit:?}",
                    self.count(ty)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// A client of its API, once `api.addr` and `api.token` are written.
    ///
    /// # Errors
    ///
    /// When the child exits or does not serve its API within 60 s.
    pub(crate) async fn api(&mut self) -> anyhow::Result<(ApiClient, String)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(client) = ApiClient::from_state_dir(&self.state) {
                let token = std::fs::read_to_string(self.state.join(crate::api::TOKEN_FILE))?;
                return Ok((client, token.trim().to_string()));
            }
            self.ensure_running()?;
            if Instant::now() > deadline {
                bail!(
                    "the host child wrote no {} in {} within 60 s",
                    crate::api::ADDR_FILE,
                    self.state.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits (at most `limit`) for the child to exit;
    /// returns how long that took.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent or the child outlives `limit`.
    pub(crate) async fn terminate(mut self, limit: Duration) -> anyhow::Result<Duration> {
        let t = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .with_context(|| format!("`host run` still running {limit:?} after SIGTERM"))??;
        let took = t.elapsed();
        if !status.success() {
            bail!(
                "`host run` exited with {status} on SIGTERM: {}",
                self.stderr_tail()
            );
        }
        Ok(took)
    }
}
