//! `host bench`, bus section: what the event bus sustains, measured on a file
//! journal on disk (the state directory's filesystem, or `--bus-dir`).
//!
//! 1. **Journaled**: events/s committed with 1, 4 and 16 concurrent publishers,
//!    one event per `publish` and batches of 100 per `publish_all` (durable on
//!    return), and fire-and-forget `submit` batches followed by one `flush`.
//!    Each run also reports CPU time per event, of the whole process and of the
//!    writer thread alone: the machine is shared, so the wall rate depends on
//!    what else runs, while `1 / writer time` is what the single writer
//!    sustains when it has a core to itself.
//! 2. **Delivered**: the same, while one consumer reads every event; the rate is
//!    events over the time until the consumer has the last one.
//! 3. **Open**: time until `Bus::open` returns on a journal of `--journal-gb`
//!    GiB, and the resident memory of a process that did only that (a child
//!    `host bench --bus-open-probe`), so nothing else inflates it. The journal is
//!    built once and reused from `--bus-cache`.
//! 4. **WAL**: the largest `-wal` file seen (sampled every 5 ms) during a storm
//!    of `--storm-secs` seconds, and its size after the bus closes.
//!
//! Events are small: a process output line of about 150 bytes with attributes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::common::{clock_ticks, stat_ticks};
use crate::bus::{Bus, BusConfig, NewEvent, StartAt, journal_path};

/// Longest a single throughput run may take; it stops early and reports what it did.
const RUN_LIMIT: Duration = Duration::from_secs(5);

/// Flags of the bus section.
#[derive(Debug, Args)]
pub struct BusBenchArgs {
    /// Events per bus throughput run (each also stops after 5 s); 0 skips them.
    #[arg(long, default_value_t = 1_000_000)]
    pub bus_events: u64,
    /// Size of the journal for the open measurement, in GiB; 0 skips it.
    #[arg(long, default_value_t = 1.0)]
    pub journal_gb: f64,
    /// Length of the WAL storm, in seconds; 0 skips it.
    #[arg(long, default_value_t = 10)]
    pub storm_secs: u64,
    /// Where the throughput and storm journals are written [default: the temp dir].
    #[arg(long)]
    pub bus_dir: Option<PathBuf>,
    /// Where the open measurement's journal is built once and kept.
    #[arg(long, default_value = "/tmp/host-bench-cache")]
    pub bus_cache: PathBuf,
    /// Run only the bus section.
    #[arg(long)]
    pub bus_only: bool,
    /// Internal: open the bus in this directory, print time and memory as JSON, exit.
    #[arg(long, hide = true)]
    pub bus_open_probe: Option<PathBuf>,
}

/// Everything the bus section measured.
#[derive(Debug, Serialize)]
pub struct BusReport {
    /// Journaled throughput runs.
    pub journaled: Vec<ThroughputRun>,
    /// Runs with one consumer reading everything.
    pub delivered: Vec<ThroughputRun>,
    /// Opening a large journal, when measured.
    pub open: Option<OpenReport>,
    /// The WAL under a storm, when measured.
    pub wal: Option<WalReport>,
}

/// One throughput run.
#[derive(Debug, Serialize)]
pub struct ThroughputRun {
    /// Concurrent publisher threads.
    pub publishers: usize,
    /// Events per call.
    pub batch: usize,
    /// `publish` / `publish_all` (durable on return) or `submit` (+ one flush).
    pub mode: &'static str,
    /// Events committed (and, for delivery runs, received).
    pub events: u64,
    /// Events per second.
    pub per_sec: f64,
    /// CPU time of the whole process per event, in microseconds.
    pub cpu_us_per_event: f64,
    /// CPU time of the bus writer thread per event, in microseconds.
    pub writer_us_per_event: f64,
}

/// Opening a large journal.
#[derive(Debug, Serialize)]
pub struct OpenReport {
    /// Size of the journal files.
    pub journal_mib: f64,
    /// Events in it.
    pub events: u64,
    /// Time until `Bus::open` returned, each of three runs.
    pub ready_ms: Vec<f64>,
    /// Peak resident memory of the probe process, each run.
    pub peak_rss_mib: Vec<f64>,
    /// Resident memory the open added (after minus before), each run.
    pub open_rss_mib: Vec<f64>,
}

/// The WAL under a storm.
#[derive(Debug, Serialize)]
pub struct WalReport {
    /// Storm length.
    pub seconds: u64,
    /// Events/s journaled during the storm.
    pub per_sec: f64,
    /// The configured bound.
    pub bound_mib: f64,
    /// Largest WAL seen.
    pub peak_mib: f64,
    /// WAL size after the bus closed.
    pub after_close_bytes: u64,
}

/// What the probe child prints.
#[derive(Debug, Serialize, Deserialize)]
struct Probe {
    ready_ms: f64,
    head: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    peak_kib: u64,
}

fn event(i: u64) -> NewEvent {
    NewEvent::new(
        "host/bench",
        "process.output",
        json!({"pid": 4242, "line": "some output line of moderate length"}),
    )
    .with_subject(format!("p{}", i % 16))
}

/// Runs the whole section.
pub(crate) fn measure(args: &BusBenchArgs) -> anyhow::Result<BusReport> {
    let base = args.bus_dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut report = BusReport {
        journaled: Vec::new(),
        delivered: Vec::new(),
        open: None,
        wal: None,
    };
    if args.bus_events > 0 {
        for publishers in [1, 4, 16] {
            for (batch, mode) in [(1, "publish"), (100, "publish_all"), (100, "submit")] {
                let run = throughput(&base, args.bus_events, publishers, batch, mode, false)?;
                report.journaled.push(run);
            }
        }
        for publishers in [1, 4, 16] {
            for (batch, mode) in [(1, "publish"), (100, "publish_all"), (100, "submit")] {
                let run = throughput(&base, args.bus_events, publishers, batch, mode, true)?;
                report.delivered.push(run);
            }
        }
    }
    if args.journal_gb > 0.0 {
        report.open = Some(measure_open(&args.bus_cache, args.journal_gb)?);
    }
    if args.storm_secs > 0 {
        report.wal = Some(measure_wal(&base, args.storm_secs)?);
    }
    Ok(report)
}

/// `publishers` threads publish `n` events in all (or for [`RUN_LIMIT`]); with
/// `deliver`, one consumer thread reads them all.
fn throughput(
    base: &Path,
    n: u64,
    publishers: usize,
    batch: usize,
    mode: &'static str,
    deliver: bool,
) -> anyhow::Result<ThroughputRun> {
    let dir = tempfile::tempdir_in(base).context("bus bench directory")?;
    let bus = Bus::open(dir.path(), BusConfig::default())?;
    let taken = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let consumer = deliver.then(|| {
        let mut consumer = bus.consumer("bench", Vec::new(), StartAt::Head);
        let done = done.clone();
        std::thread::spawn(move || -> anyhow::Result<(u64, Instant)> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()?;
            runtime.block_on(async {
                let mut received = 0u64;
                let mut last = Instant::now();
                loop {
                    // Drain what is there, then wait (a timer per wait, not per event).
                    while consumer.try_next()?.is_some() {
                        received += 1;
                        last = Instant::now();
                    }
                    match tokio::time::timeout(Duration::from_millis(200), consumer.next()).await {
                        Ok(event) => {
                            event?;
                            received += 1;
                            last = Instant::now();
                        }
                        // Publishers finished and nothing came for a while: all read.
                        Err(_) if done.load(Ordering::Acquire) => return Ok((received, last)),
                        Err(_) => {}
                    }
                }
            })
        })
    });
    let cpu_before = (process_ticks()?, thread_ticks("bus-writer")?);
    let start = Instant::now();
    let threads: Vec<_> = (0..publishers)
        .map(|_| {
            let (bus, taken) = (bus.clone(), taken.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                loop {
                    let first = taken.fetch_add(batch as u64, Ordering::Relaxed);
                    if first >= n || start.elapsed() > RUN_LIMIT {
                        return Ok(());
                    }
                    let events: Vec<NewEvent> = (first..first + batch as u64).map(event).collect();
                    match mode {
                        "submit" => bus.submit(events)?,
                        _ if batch == 1 => {
                            drop(bus.publish(events.into_iter().next().expect("one"))?)
                        }
                        _ => drop(bus.publish_all(events)?),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("publisher thread")?;
    }
    bus.flush()?;
    let journaled = bus.head();
    let mut elapsed = start.elapsed();
    let cpu_after = (process_ticks()?, thread_ticks("bus-writer")?);
    let mut events = journaled;
    if let Some(consumer) = consumer {
        done.store(true, Ordering::Release);
        let (received, last) = consumer.join().expect("consumer thread")?;
        elapsed = last.duration_since(start);
        events = received;
        anyhow::ensure!(
            received == journaled,
            "the consumer received {received} of {journaled} events"
        );
    }
    let per_event = |ticks: u64| ticks as f64 / clock_ticks() * 1e6 / journaled.max(1) as f64;
    Ok(ThroughputRun {
        publishers,
        batch,
        mode,
        events,
        per_sec: events as f64 / elapsed.as_secs_f64(),
        cpu_us_per_event: per_event(cpu_after.0.saturating_sub(cpu_before.0)),
        writer_us_per_event: per_event(cpu_after.1.saturating_sub(cpu_before.1)),
    })
}

/// User plus system CPU of this process, in clock ticks.
fn process_ticks() -> anyhow::Result<u64> {
    stat_ticks(Path::new("/proc/self/stat"))
}

/// The same for this process's threads named `name`.
fn thread_ticks(name: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?.path();
        if std::fs::read_to_string(task.join("comm")).is_ok_and(|c| c.trim() == name) {
            total += stat_ticks(&task.join("stat")).unwrap_or(0);
        }
    }
    Ok(total)
}

/// Builds (once) a journal of `gb` GiB in `cache`, then opens it three times in
/// a child process.
fn measure_open(cache: &Path, gb: f64) -> anyhow::Result<OpenReport> {
    let dir = cache.join(format!("journal-{gb}gib"));
    let marker = dir.join("complete");
    if !marker.exists() {
        build_journal(&dir, gb)?;
        std::fs::write(&marker, b"built by host bench\n")?;
    }
    let journal_mib = std::fs::metadata(journal_path(&dir))?.len() as f64 / 1048576.0;
    let mut report = OpenReport {
        journal_mib,
        events: 0,
        ready_ms: Vec::new(),
        peak_rss_mib: Vec::new(),
        open_rss_mib: Vec::new(),
    };
    for _ in 0..3 {
        let out = std::process::Command::new(std::env::current_exe()?)
            .arg("bench")
            .arg("--bus-open-probe")
            .arg(&dir)
            .stderr(std::process::Stdio::inherit())
            .output()?;
        anyhow::ensure!(out.status.success(), "the open probe failed");
        let probe: Probe =
            serde_json::from_slice(&out.stdout).context("the open probe's output")?;
        report.events = probe.head;
        report.ready_ms.push(probe.ready_ms);
        report.peak_rss_mib.push(probe.peak_kib as f64 / 1024.0);
        report
            .open_rss_mib
            .push(probe.rss_after_kib.saturating_sub(probe.rss_before_kib) as f64 / 1024.0);
    }
    Ok(report)
}

/// Events of about 1 KiB, in batches, until the journal file reaches `gb` GiB.
fn build_journal(dir: &Path, gb: f64) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    let target = (gb * 1024.0 * 1024.0 * 1024.0) as u64;
    eprintln!("building a {gb} GiB journal in {} (once)...", dir.display());
    let bus = Bus::open(dir, no_retention())?;
    let pad = "x".repeat(900);
    let path = journal_path(dir);
    let mut i = 0u64;
    loop {
        let events = (i..i + 1000)
            .map(|j| {
                NewEvent::new(
                    format!("plugin/p{}", j % 7),
                    format!("bench.kind{}", j % 13),
                    json!({ "n": j, "pad": pad }),
                )
                .with_subject(format!("s{}", j % 50))
            })
            .collect();
        bus.submit(events)?;
        i += 1000;
        if i.is_multiple_of(100_000) {
            bus.flush()?;
            if std::fs::metadata(&path)?.len() >= target {
                return Ok(());
            }
        }
    }
}

fn no_retention() -> BusConfig {
    BusConfig {
        max_journal_events: 0,
        max_journal_bytes: 0,
        ..BusConfig::default()
    }
}

/// The child side of [`measure_open`]: open, measure, print, exit.
pub(crate) fn probe_open(dir: &Path) -> anyhow::Result<std::process::ExitCode> {
    let rss_before_kib = status_kib("VmRSS")?;
    let start = Instant::now();
    let bus = Bus::open(dir, no_retention())?;
    let ready_ms = start.elapsed().as_secs_f64() * 1000.0;
    let probe = Probe {
        ready_ms,
        head: bus.head(),
        rss_before_kib,
        rss_after_kib: status_kib("VmRSS")?,
        peak_kib: status_kib("VmHWM")?,
    };
    println!("{}", serde_json::to_string(&probe)?);
    Ok(std::process::ExitCode::SUCCESS)
}

fn status_kib(field: &str) -> anyhow::Result<u64> {
    super::common::status_kib(Path::new("/proc/self/status"), field)
}

/// Four publishers submit batches of 100 for `secs` seconds under the default
/// WAL bound; a sampler records the largest WAL.
fn measure_wal(base: &Path, secs: u64) -> anyhow::Result<WalReport> {
    let dir = tempfile::tempdir_in(base)?;
    let config = BusConfig::default();
    let bound = config.max_wal_bytes;
    let bus = Bus::open(dir.path(), config)?;
    let mut wal = journal_path(dir.path()).into_os_string();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak, wal) = (stop.clone(), peak.clone(), wal.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(
                    std::fs::metadata(&wal).map_or(0, |m| m.len()),
                    Ordering::Relaxed,
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let bus = bus.clone();
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut i = 0;
                while Instant::now() < until {
                    bus.submit((i..i + 100).map(event).collect())?;
                    i += 100;
                }
                Ok(())
            })
        })
        .collect();
    for p in publishers {
        p.join().expect("publisher thread")?;
    }
    bus.flush()?;
    let per_sec = bus.head() as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler thread");
    drop(bus);
    Ok(WalReport {
        seconds: secs,
        per_sec,
        bound_mib: bound as f64 / 1048576.0,
        peak_mib: peak.load(Ordering::Relaxed) as f64 / 1048576.0,
        after_close_bytes: std::fs::metadata(&wal).map_or(0, |m| m.len()),
    })
}

/// The best of the throughput runs, for the handler section's summary.
pub(crate) struct Summary {
    /// Highest journaled rate.
    pub journaled_per_sec: f64,
    /// Which run that was.
    pub journaled_run: String,
    /// Highest rate delivered to one consumer.
    pub delivered_per_sec: f64,
    /// Which run that was.
    pub delivered_run: String,
}

impl Summary {
    /// The best runs of `r`, if it has throughput runs.
    pub(crate) fn of(r: &BusReport) -> Option<Summary> {
        let best = |runs: &[ThroughputRun]| {
            runs.iter()
                .max_by(|a, b| a.per_sec.total_cmp(&b.per_sec))
                .map(|run| {
                    (
                        run.per_sec,
                        format!(
                            "{} publishers x {} x{}",
                            run.publishers, run.mode, run.batch
                        ),
                    )
                })
        };
        let (journaled_per_sec, journaled_run) = best(&r.journaled)?;
        let (delivered_per_sec, delivered_run) = best(&r.delivered)?;
        Some(Summary {
            journaled_per_sec,
            journaled_run,
            delivered_per_sec,
            delivered_run,
        })
    }
}

/// Prints the section like the others.
pub(crate) fn print(r: &BusReport) {
    if !r.journaled.is_empty() {
        println!(
            "event bus, small events (~150 B), file journal (CPU per event: whole process / writer thread; 1/writer = the writer's ceiling):"
        );
        for (what, runs) in [("journaled", &r.journaled), ("delivered", &r.delivered)] {
            for run in runs {
                println!(
                    "  {what:<9} {:>2} publishers x {:<11} x{:<3}: {:>8.0} events/s  cpu {:>5.2} / {:>4.2} us (ceiling {:>7.0}/s)",
                    run.publishers,
                    run.mode,
                    run.batch,
                    run.per_sec,
                    run.cpu_us_per_event,
                    run.writer_us_per_event,
                    1e6 / run.writer_us_per_event.max(1e-3)
                );
            }
        }
    }
    if let Some(o) = &r.open {
        let ms: Vec<String> = o.ready_ms.iter().map(|m| format!("{m:.0}")).collect();
        let peak: Vec<String> = o.peak_rss_mib.iter().map(|m| format!("{m:.0}")).collect();
        let added: Vec<String> = o.open_rss_mib.iter().map(|m| format!("{m:.0}")).collect();
        println!(
            "open a {:.0} MiB journal ({} events): ready in {} ms; process RSS peak {} MiB, added by the open {} MiB",
            o.journal_mib,
            o.events,
            ms.join(" / "),
            peak.join(" / "),
            added.join(" / ")
        );
    }
    if let Some(w) = &r.wal {
        println!(
            "WAL during a {} s storm (4 publishers, submit x 100, {:.0} events/s): peak {:.1} MiB (bound {:.0} MiB); after close {} bytes",
            w.seconds, w.per_sec, w.peak_mib, w.bound_mib, w.after_close_bytes
        );
    }
}
