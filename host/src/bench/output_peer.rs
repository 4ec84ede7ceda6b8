//! The 1 GiB burst through supervisord (installed by `supervisord.rs`):
//! one program running the same C writer, its stdout in one log file
//! (`stdout_logfile_maxbytes = 0`: no rotation), started from idle with
//! `supervisorctl start` so its own start-up is not in the CPU figure.
//! supervisord says nothing when a burst is over, so the end is the
//! writer's report file plus the log reaching the burst's size. And the
//! same writer, endless, for the flood beside `host run`'s.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::common::{AnonPeak, cpu_and_user_secs, program_code_mib, rss_mib};
use super::fixtures::write;
use super::output::{
    BURST_LINES, BurstFigures, ENDLESS_LINES, FloodFigures, PATIENCE, peak_rss_mib, write_secs,
};
use super::supervisord::{run_capture, spawn, terminate};

/// A supervisord serving its socket in `dir`, with one `[program:...]`
/// section; the caller stops it with [`Peer::stop`].
struct Peer {
    child: tokio::process::Child,
    pid: u32,
    conf: String,
    ctl: PathBuf,
}

impl Peer {
    /// Writes `dir/supervisord.conf` around `program` and starts
    /// supervisord on it; returns once its socket is up and it has had a
    /// second to settle.
    async fn start(supervisord: &Path, dir: &Path, program: &str) -> anyhow::Result<Peer> {
        let sock = dir.join("supervisor.sock");
        let conf = dir.join("supervisord.conf");
        write(
            &conf,
            &format!(
                "[supervisord]\nnodaemon = true\nloglevel = warn\nlogfile = {d}/supervisord.log\n\
                 pidfile = {d}/supervisord.pid\nchildlogdir = {d}\n\n\
                 [unix_http_server]\nfile = {sock}\n\n\
                 [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
                 [supervisorctl]\nserverurl = unix://{sock}\n\n{program}",
                d = dir.display(),
                sock = sock.display(),
            ),
        )?;
        let (mut child, pid) = spawn(supervisord, &conf)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !sock.exists() {
            if let Some(status) = child.try_wait()? {
                bail!("supervisord exited ({status}) before serving its socket");
            }
            if Instant::now() > deadline {
                bail!("supervisord made no {} within 60 s", sock.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(Peer {
            child,
            pid,
            conf: conf.to_string_lossy().into_owned(),
            ctl: supervisord.with_file_name("supervisorctl"),
        })
    }

    /// `supervisorctl -c CONF VERB PROGRAM`.
    async fn ctl(&self, verb: &str, program: &str) -> anyhow::Result<()> {
        run_capture(&self.ctl, &["-c", &self.conf, verb, program], PATIENCE).await?;
        Ok(())
    }

    /// SIGTERM, then up to 30 s for it to exit.
    async fn stop(mut self) -> anyhow::Result<()> {
        terminate(self.pid)?;
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        Ok(())
    }
}

/// Runs the burst under supervisord in `dir`; the log's path and the
/// figures (`identical` is left false for the caller, which knows the MD5).
pub(crate) async fn burst(
    supervisord: &Path,
    writer: &Path,
    dir: &Path,
) -> anyhow::Result<(PathBuf, BurstFigures)> {
    let bytes = BURST_LINES * 100;
    let log = dir.join("burst.log");
    let report = dir.join("supervisord-writer.report");
    let program = format!(
        "[program:burst]\ncommand = {w} {BURST_LINES} {r}\nautostart = false\nautorestart = false\n\
         startsecs = 0\nstdout_logfile = {log}\nstdout_logfile_maxbytes = 0\n\
         stderr_logfile = {d}/burst.err\n",
        d = dir.display(),
        w = writer.display(),
        r = report.display(),
        log = log.display(),
    );
    let peer = Peer::start(supervisord, dir, &program).await?;
    let pid = peer.pid;
    let (before, user_before) = cpu_and_user_secs(pid)?;
    let anon = AnonPeak::start(pid);
    peer.ctl("start", "burst").await?;
    let t = Instant::now();
    loop {
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        if size >= bytes && report.exists() {
            break;
        }
        if t.elapsed() > PATIENCE {
            bail!("supervisord's log holds {size} of {bytes} bytes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (after, user_after) = cpu_and_user_secs(pid)?;
    let (cpu, user_cpu) = (after - before, user_after - user_before);
    let peak = peak_rss_mib(pid)?;
    let peak_anon_mib = anon.finish();
    eprintln!(
        "supervisord: burst done in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let log_bytes = std::fs::metadata(&log)?.len();
    let secs = write_secs(&report)?;
    peer.stop().await?;
    Ok((
        log,
        BurstFigures {
            child_write_mib_s: bytes as f64 / (1 << 20) as f64 / secs,
            child_write_secs: secs,
            log_bytes,
            identical: false,
            cpu_secs: cpu,
            user_cpu_secs: user_cpu,
            peak_rss_mib: peak,
            peak_anon_mib,
            lines_published: None,
            lines_dropped: None,
        },
    ))
}

/// The writer, endless, under supervisord in `dir` for `secs`, its log
/// rotated as `host run` rotates by default (10 MiB, 3 backups): RSS every
/// `every`, then its peaks.
pub(crate) async fn flood(
    supervisord: &Path,
    writer: &Path,
    dir: &Path,
    secs: u64,
    every: Duration,
) -> anyhow::Result<FloodFigures> {
    let program = format!(
        "[program:flood]\ncommand = {w} {lines} {d}/flood.report\nautostart = false\nautorestart = false\n\
         startsecs = 0\nstdout_logfile = {d}/flood.log\nstdout_logfile_maxbytes = 10MB\n\
         stdout_logfile_backups = 3\nstderr_logfile = {d}/flood.err\n",
        d = dir.display(),
        w = writer.display(),
        lines = ENDLESS_LINES,
    );
    let peer = Peer::start(supervisord, dir, &program).await?;
    let idle_rss_mib = rss_mib(peer.pid)?;
    let idle_code_mib = program_code_mib(peer.pid)?;
    let anon = AnonPeak::start(peer.pid);
    peer.ctl("start", "flood").await?;
    let mut samples = Vec::new();
    let count = secs / every.as_secs().max(1);
    for _ in 0..count {
        tokio::time::sleep(every).await;
        samples.push(rss_mib(peer.pid)?);
    }
    peer.ctl("stop", "flood").await?;
    let peak_rss_mib = peak_rss_mib(peer.pid)?;
    let peak_anon_mib = anon.finish();
    peer.stop().await?;
    Ok(FloodFigures {
        secs: count * every.as_secs(),
        idle_rss_mib,
        idle_code_mib,
        rss_mib: samples,
        peak_rss_mib,
        peak_anon_mib,
    })
}
