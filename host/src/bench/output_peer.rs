//! The 1 GiB burst through supervisord (installed by `supervisord.rs`):
//! one program running the same C writer, its stdout in one log file
//! (`stdout_logfile_maxbytes = 0`: no rotation), started from idle with
//! `supervisorctl start` so its own start-up is not in the CPU figure.
//! supervisord says nothing when a burst is over, so the end is the
//! writer's report file plus the log reaching the burst's size.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::common::{AnonPeak, cpu_and_user_secs};
use super::fixtures::write;
use super::output::{BURST_LINES, BurstFigures, PATIENCE, peak_rss_mib, write_secs};
use super::supervisord::{run_capture, spawn, terminate};

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
    let sock = dir.join("supervisor.sock");
    let conf = dir.join("supervisord.conf");
    write(
        &conf,
        &format!(
            "[supervisord]\nnodaemon = true\nloglevel = warn\nlogfile = {d}/supervisord.log\n\
             pidfile = {d}/supervisord.pid\nchildlogdir = {d}\n\n\
             [unix_http_server]\nfile = {sock}\n\n\
             [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl = unix://{sock}\n\n\
             [program:burst]\ncommand = {w} {BURST_LINES} {r}\nautostart = false\nautorestart = false\n\
             startsecs = 0\nstdout_logfile = {log}\nstdout_logfile_maxbytes = 0\n\
             stderr_logfile = {d}/burst.err\n",
            d = dir.display(),
            sock = sock.display(),
            w = writer.display(),
            r = report.display(),
            log = log.display(),
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
    let ctl = supervisord.with_file_name("supervisorctl");
    let (before, user_before) = cpu_and_user_secs(pid)?;
    let anon = AnonPeak::start(pid);
    let conf_arg = conf.to_string_lossy().into_owned();
    run_capture(&ctl, &["-c", &conf_arg, "start", "burst"], PATIENCE).await?;
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
    terminate(pid)?;
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
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
