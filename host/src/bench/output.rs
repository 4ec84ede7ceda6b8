//! Output: a 1 GiB burst on stdout, through a `host run` child and through
//! supervisord side by side, and the time from a process's exit to its
//! `process.exited` event.
//!
//! The writer is a C program compiled here with `cc` (the section is
//! skipped without one): 1 GiB of 100-byte lines, every line different, in
//! 64 KiB `write`s, timing its own writes with `CLOCK_MONOTONIC` from the
//! first to the last, so "the child's write rate" is what the child saw,
//! brakes included. The expected MD5 comes from the same writer piped into
//! `md5sum`. Each supervisor keeps the burst in one log file (rotation off:
//! `log_max_bytes = "2GiB"`, `stdout_logfile_maxbytes = 0`), started from
//! idle (`host`'s API, `supervisorctl start`); its CPU is the difference of
//! its `/proc` times around the burst, its peak RSS `VmHWM` over its life.
//!
//! Exit → event: a second C program writes its `CLOCK_REALTIME` to a file
//! and exits at once, 200 times in a row; each time the bench takes the
//! event's own `time` (when the host published it) and the moment an SSE
//! consumer of the API got it, minus the child's last timestamp. Both
//! include the child's own exit in the kernel; the second also the journal
//! commit and the HTTP stream.
//!
//! Flood: the same writer, endless, through a fresh `host run` with the
//! default log rotation and bus, and through supervisord rotating its log
//! the same way, for [`FLOOD_SECS`]; each one's `VmRSS` every
//! [`FLOOD_SAMPLE`]. A burst of a few seconds shows the bus's 4 MiB
//! burst allowance; only a longer flood shows what the bus and its
//! in-memory ring hold once the 1 MiB/s after it has run for a while.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use serde::Serialize;

use super::child::HostChild;
use super::common::{AnonPeak, Spread, cpu_and_user_secs, program_code_mib, rss_mib, status_kib};
use super::fixtures::write;
use super::output_peer as peer;
use crate::api::{EventsQuery, Operations as _};
use crate::bus::{EventQuery, Journal, Pattern, journal_path};

/// Lines of 100 bytes in the burst: 1 GiB.
pub(crate) const BURST_LINES: u64 = (1 << 30) / 100;
/// Runs of the exit → event measurement.
const EXIT_RUNS: usize = 200;
/// Longest a burst may take.
pub(crate) const PATIENCE: Duration = Duration::from_secs(900);
/// Length of the sustained flood, s: long enough for the bus's 1 MiB/s
/// after its burst to have filled an in-memory ring of 64 MiB (the bound
/// before the flood showed what it cost).
const FLOOD_SECS: u64 = 45;
/// The writer's line count for the flood: more than it can write in
/// [`FLOOD_SECS`], so it writes until stopped.
pub(crate) const ENDLESS_LINES: i64 = i64::MAX;
/// How often the flood samples the host's RSS.
const FLOOD_SAMPLE: Duration = Duration::from_secs(5);

/// What the output section measured.
#[derive(Debug, Serialize)]
pub struct OutputReport {
    /// Bytes the writer wrote.
    pub bytes: u64,
    /// MD5 of those bytes.
    pub md5: String,
    /// Through a `host run` child.
    pub host: BurstFigures,
    /// Through supervisord, when it could run.
    pub supervisord: Option<BurstFigures>,
    /// supervisord's version, or why it did not run.
    pub supervisord_note: String,
    /// Process exit → `process.exited` published (the event's `time`), ms.
    pub exit_to_event_ms: Spread,
    /// Process exit → the event received by an SSE consumer of the API, ms.
    pub exit_to_consumer_ms: Spread,
    /// The host's memory through a sustained flood.
    pub flood: FloodFigures,
    /// supervisord's through the same flood, when it could run.
    pub supervisord_flood: Option<FloodFigures>,
}

/// A supervisor's resident memory while a child writes as fast as it can
/// for [`FLOOD_SECS`], with the host's default log rotation (and its bus
/// budget, for the host).
#[derive(Debug, Serialize)]
pub struct FloodFigures {
    /// How long the child wrote, s.
    pub secs: u64,
    /// The supervisor's `VmRSS` before the flood, MiB.
    pub idle_rss_mib: f64,
    /// Of it, program code (see `program_code_mib`), MiB.
    pub idle_code_mib: f64,
    /// `VmRSS` every [`FLOOD_SAMPLE`] during the flood, MiB.
    pub rss_mib: Vec<f64>,
    /// `VmHWM` once the flood is stopped, MiB.
    pub peak_rss_mib: f64,
    /// The peak of `RssAnon` over the flood (see [`BurstFigures`]), MiB.
    pub peak_anon_mib: f64,
}

/// One supervisor under the burst.
#[derive(Debug, Serialize)]
pub struct BurstFigures {
    /// The child's own rate, from its first write to its last, MiB/s.
    pub child_write_mib_s: f64,
    /// The child's elapsed write time, s.
    pub child_write_secs: f64,
    /// Bytes in the log file.
    pub log_bytes: u64,
    /// Whether the log's MD5 is the writer's.
    pub identical: bool,
    /// Supervisor CPU (user + system) during the burst, s.
    pub cpu_secs: f64,
    /// The user part of `cpu_secs` (the rest is the kernel copying from
    /// the pipe and into the page cache), s.
    pub user_cpu_secs: f64,
    /// Supervisor peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Supervisor peak anonymous resident memory (`RssAnon`, sampled every
    /// 10 ms: heap and stacks, without its program's pages), MiB.
    pub peak_anon_mib: f64,
    /// Lines published on the bus as `process.output` (host only).
    pub lines_published: Option<u64>,
    /// Lines counted in `process.output_dropped` (host only).
    pub lines_dropped: Option<u64>,
}

const WRITER_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
/* writer LINES REPORT: LINES different lines of 100 bytes on stdout in
   64 KiB writes; the elapsed time of the writes (ns) into REPORT. */
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    long long left = atoll(argv[1]);
    enum { BLOCK = 10000, LINE = 100 };
    static char block[BLOCK * LINE];
    for (int i = 0; i < BLOCK; i++) {
        char *l = block + (size_t)i * LINE;
        memset(l, 'a' + i % 26, LINE - 1);
        l[LINE - 1] = '\n';
        char head[32];
        int n = snprintf(head, sizeof head, "%08x %05d ", 0u, i);
        memcpy(l, head, (size_t)n);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned number = 0;
    while (left > 0) {
        long long n = left < BLOCK ? left : BLOCK;
        char hex[9];
        snprintf(hex, sizeof hex, "%08x", number++);
        for (long long i = 0; i < n; i++) memcpy(block + i * LINE, hex, 8);
        size_t len = (size_t)n * LINE, off = 0;
        while (off < len) {
            size_t chunk = len - off < 65536 ? len - off : 65536;
            ssize_t w = write(1, block + off, chunk);
            if (w < 0) {
                if (errno == EINTR) continue;
                perror("write");
                return 1;
            }
            off += (size_t)w;
        }
        left -= n;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    FILE *f = fopen(argv[2], "w");
    if (!f) return 1;
    fprintf(f, "%lld\n", (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    return fclose(f) != 0;
}
"#;

const STAMP_C: &str = r#"
#include <stdio.h>
#include <time.h>
#include <unistd.h>
/* stamp FILE: its CLOCK_REALTIME (ns) into FILE, then exit at once. */
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 1;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    fprintf(f, "%lld\n", t.tv_sec * 1000000000LL + t.tv_nsec);
    fclose(f);
    _exit(0);
}
"#;

/// Compiles `source` into `dir/name` with `cc -O2`.
fn compile(dir: &Path, name: &str, source: &str) -> anyhow::Result<PathBuf> {
    let c = dir.join(format!("{name}.c"));
    write(&c, source)?;
    let bin = dir.join(name);
    let out = std::process::Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&bin)
        .arg(&c)
        .output()
        .context("output section skipped: no C compiler (`cc`)")?;
    if !out.status.success() {
        bail!(
            "output section skipped: cc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(bin)
}

/// `md5sum FILE`, or of the writer's output when `file` is None.
fn md5(file: Option<&Path>, writer: &Path) -> anyhow::Result<String> {
    let out = match file {
        Some(f) => std::process::Command::new("md5sum").arg(f).output()?,
        None => std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "'{}' {BURST_LINES} /dev/null | md5sum",
                writer.display()
            ))
            .output()?,
    };
    if !out.status.success() {
        bail!("md5sum failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// The writer's own elapsed write time from its report file, s.
pub(crate) fn write_secs(report: &Path) -> anyhow::Result<f64> {
    let ns: u64 = std::fs::read_to_string(report)
        .with_context(|| format!("the writer wrote no {}", report.display()))?
        .trim()
        .parse()?;
    Ok(ns as f64 / 1e9)
}

/// Peak resident memory of `pid`, MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    Ok(status_kib(Path::new(&format!("/proc/{pid}/status")), "VmHWM")? as f64 / 1024.0)
}

/// Runs the whole section; supervisord is installed in `cache` unless
/// `peers` is false.
pub(crate) async fn measure(cache: &Path, peers: bool) -> anyhow::Result<OutputReport> {
    let dir = tempfile::tempdir()?;
    let writer = compile(dir.path(), "writer", WRITER_C)?;
    let stamp = compile(dir.path(), "stamp", STAMP_C)?;
    let bytes = BURST_LINES * 100;
    let md5 = md5(None, &writer)?;
    let (host, exit_to_event_ms, exit_to_consumer_ms) =
        host_run(dir.path(), &writer, &stamp, bytes, &md5).await?;
    let flood = flood(&dir.path().join("flood"), &writer).await?;
    let (supervisord, supervisord_note, supervisord_flood) = if !peers {
        (None, "--no-peers".to_string(), None)
    } else {
        match super::supervisord::install(&cache.join("supervisor-venv")).await {
            Err(e) => (None, format!("{e:#}"), None),
            Ok(bin) => {
                let version = super::supervisord::version(&bin).await;
                let peer = tempfile::tempdir()?;
                let (log, figures) = peer::burst(&bin, &writer, peer.path()).await?;
                let identical = figures.log_bytes == bytes && md5_of(&log)? == md5;
                let flood_dir = tempfile::tempdir()?;
                let flood =
                    peer::flood(&bin, &writer, flood_dir.path(), FLOOD_SECS, FLOOD_SAMPLE).await?;
                (
                    Some(BurstFigures {
                        identical,
                        ..figures
                    }),
                    version,
                    Some(flood),
                )
            }
        }
    };
    Ok(OutputReport {
        bytes,
        md5,
        host,
        supervisord,
        supervisord_note,
        exit_to_event_ms,
        exit_to_consumer_ms,
        flood,
        supervisord_flood,
    })
}

/// The writer, endless, through its own `host run` (default rotation: the
/// log stays at a few tens of MiB) for [`FLOOD_SECS`].
async fn flood(dir: &Path, writer: &Path) -> anyhow::Result<FloodFigures> {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let config = dir.join("host.toml");
    write(
        &config,
        &format!(
            "[process.flood]\ncommand = {:?}\nargs = [\"{}\", {:?}]\nautostart = false\n",
            writer.display().to_string(),
            ENDLESS_LINES,
            dir.join("flood.report").display().to_string(),
        ),
    )?;
    let mut host = HostChild::spawn(dir, &plugins, &config, &dir.join("state"))?;
    let (client, _) = host.api().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mib = rss_mib(host.pid)?;
    let idle_code_mib = program_code_mib(host.pid)?;
    let anon = AnonPeak::start(host.pid);
    client
        .start("flood")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut samples_mib = Vec::new();
    let samples = FLOOD_SECS / FLOOD_SAMPLE.as_secs();
    for _ in 0..samples {
        tokio::time::sleep(FLOOD_SAMPLE).await;
        host.ensure_running()?;
        samples_mib.push(rss_mib(host.pid)?);
    }
    client
        .stop("flood", crate::api::StopOptions { force: true })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let peak_rss_mib = peak_rss_mib(host.pid)?;
    let peak_anon_mib = anon.finish();
    host.terminate(Duration::from_secs(60)).await?;
    Ok(FloodFigures {
        secs: samples * FLOOD_SAMPLE.as_secs(),
        idle_rss_mib,
        idle_code_mib,
        rss_mib: samples_mib,
        peak_rss_mib,
        peak_anon_mib,
    })
}

fn md5_of(log: &Path) -> anyhow::Result<String> {
    md5(Some(log), log)
}

/// The burst and the exit runs through one `host run` child.
async fn host_run(
    dir: &Path,
    writer: &Path,
    stamp: &Path,
    bytes: u64,
    md5: &str,
) -> anyhow::Result<(BurstFigures, Spread, Spread)> {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let report = dir.join("host-writer.report");
    let stamp_file = dir.join("stamp.out");
    let config = dir.join("host.toml");
    write(
        &config,
        &format!(
            "[supervisor]\nlog_max_bytes = \"2GiB\"\n\n\
             [process.burst]\ncommand = {:?}\nargs = [\"{BURST_LINES}\", {:?}]\nautostart = false\n\n\
             [process.blip]\ncommand = {:?}\nargs = [{:?}]\nautostart = false\n",
            writer.display().to_string(),
            report.display().to_string(),
            stamp.display().to_string(),
            stamp_file.display().to_string(),
        ),
    )?;
    let state = dir.join("state");
    let mut host = HostChild::spawn(dir, &plugins, &config, &state)?;
    let (client, _) = host.api().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, user_before) = cpu_and_user_secs(host.pid)?;
    let anon = AnonPeak::start(host.pid);
    client
        .start("burst")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = Instant::now();
    host.wait_count("process.completed", 1, PATIENCE).await?;
    let (after, user_after) = cpu_and_user_secs(host.pid)?;
    let (cpu, user_cpu) = (after - before, user_after - user_before);
    let peak = peak_rss_mib(host.pid)?;
    let peak_anon_mib = anon.finish();
    eprintln!("host: burst done in {:.1} s", t.elapsed().as_secs_f64());
    let log = state.join("logs/burst.log");
    let log_bytes = std::fs::metadata(&log)?.len();
    let identical = log_bytes == bytes && md5_of(&log)? == md5;
    let (published, dropped) = output_counts(&state, "burst")?;
    std::fs::remove_file(&log)?;
    let secs = write_secs(&report)?;
    let figures = BurstFigures {
        child_write_mib_s: bytes as f64 / (1 << 20) as f64 / secs,
        child_write_secs: secs,
        log_bytes,
        identical,
        cpu_secs: cpu,
        user_cpu_secs: user_cpu,
        peak_rss_mib: peak,
        peak_anon_mib,
        lines_published: Some(published),
        lines_dropped: Some(dropped),
    };
    eprintln!("host: {figures:?}");
    let (event, consumer) = exit_runs(&client, &stamp_file).await?;
    host.terminate(Duration::from_secs(60)).await?;
    Ok((figures, event, consumer))
}

/// Lines of `process.output` events about `process`, and the sum of its
/// `process.output_dropped` counts, from the journal.
fn output_counts(state: &Path, process: &str) -> anyhow::Result<(u64, u64)> {
    let journal = Journal::open_read_only(&journal_path(state))?;
    let count = |ty: &str, f: &dyn Fn(&serde_json::Value) -> u64| -> anyhow::Result<u64> {
        let mut total = 0;
        let mut after = 0;
        loop {
            let page = journal.query(&EventQuery {
                types: vec![Pattern::parse(ty)?],
                subject: Some(process.to_string()),
                after_sequence: Some(after),
                limit: Some(1000),
                ..Default::default()
            })?;
            let Some(last) = page.last() else {
                return Ok(total);
            };
            after = last.sequence;
            total += page.iter().map(|e| f(&e.data)).sum::<u64>();
        }
    };
    let published = count("process.output", &|d| {
        d["lines"].as_array().map_or(0, |l| l.len() as u64)
    })?;
    let dropped = count("process.output_dropped", &|d| {
        d["dropped"].as_u64().unwrap_or(0)
    })?;
    Ok((published, dropped))
}

/// Starts `blip` [`EXIT_RUNS`] times, one after the other; for each, the
/// event's `time` and its arrival over SSE minus the child's last stamp.
async fn exit_runs(
    client: &crate::api::ApiClient,
    stamp_file: &Path,
) -> anyhow::Result<(Spread, Spread)> {
    let query = EventsQuery {
        types: vec!["process.exited".into()],
        subject: Some("blip".into()),
        ..EventsQuery::default()
    };
    let stream = client
        // No `blip` has exited yet: replaying from the start finds none.
        .follow(&query, Some(0))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut stream = std::pin::pin!(stream);
    let (mut to_event, mut to_consumer) = (Vec::new(), Vec::new());
    for _ in 0..EXIT_RUNS {
        let _ = std::fs::remove_file(stamp_file);
        let deadline = Instant::now() + Duration::from_secs(30);
        // The previous run may still be winding down: retry briefly.
        while let Err(e) = client.start("blip").await {
            if Instant::now() > deadline {
                bail!("cannot start blip: {e}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let event = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .context("no process.exited within 30 s")?
            .context("the event stream ended")?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let received = chrono::Utc::now();
        let exited: i64 = std::fs::read_to_string(stamp_file)?.trim().parse()?;
        let ms = |t: chrono::DateTime<chrono::Utc>| {
            (t.timestamp_nanos_opt().unwrap_or(0) - exited) as f64 / 1e6
        };
        to_event.push(ms(event.time));
        to_consumer.push(ms(received));
    }
    Ok((Spread::of(to_event), Spread::of(to_consumer)))
}

/// Prints the section.
pub(crate) fn print(r: &OutputReport) {
    println!(
        "1 GiB stdout burst ({} lines of 100 bytes, md5 {}):",
        BURST_LINES, r.md5
    );
    let line = |who: &str, f: &BurstFigures| {
        let bus = match (f.lines_published, f.lines_dropped) {
            (Some(p), Some(d)) => format!(
                "; bus: {p} lines published + {d} dropped = {} of {BURST_LINES}",
                p + d
            ),
            _ => String::new(),
        };
        println!(
            "  {who:<12} child writes {:>6.0} MiB/s ({:.2} s), log {} bytes identical: {}, CPU {:.2} s ({:.2} s user), peak RSS {:.1} MiB (anonymous {:.1}){bus}",
            f.child_write_mib_s,
            f.child_write_secs,
            f.log_bytes,
            f.identical,
            f.cpu_secs,
            f.user_cpu_secs,
            f.peak_rss_mib,
            f.peak_anon_mib
        );
    };
    line("host run", &r.host);
    match &r.supervisord {
        Some(s) => line(&format!("supervisord {}", r.supervisord_note), s),
        None => println!("  supervisord  not run: {}", r.supervisord_note),
    }
    let s = &r.exit_to_event_ms;
    let c = &r.exit_to_consumer_ms;
    println!(
        "exit -> process.exited, {} runs: published p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; at an SSE consumer p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        s.samples, s.median, s.p99, s.max, c.median, c.p99, c.max
    );
    println!(
        "flood: a child writing as fast as it can for {} s, the host's default rotation (and bus):",
        r.flood.secs
    );
    let flood = |who: &str, f: &FloodFigures| {
        let samples: Vec<String> = f.rss_mib.iter().map(|m| format!("{m:.1}")).collect();
        println!(
            "  {who:<12} RSS {:.1} MiB idle (code {:.1}), then every {} s: {} MiB; peak {:.1} MiB (anonymous {:.1})",
            f.idle_rss_mib,
            f.idle_code_mib,
            FLOOD_SAMPLE.as_secs(),
            samples.join(", "),
            f.peak_rss_mib,
            f.peak_anon_mib
        );
    };
    flood("host run", &r.flood);
    if let Some(s) = &r.supervisord_flood {
        flood("supervisord", s);
    }
}
