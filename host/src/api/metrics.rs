//! `/metrics`: the host's figures in the OpenMetrics text format (which
//! Prometheus scrapes), written by `prometheus-client`.
//!
//! Every figure already lives in the room that owns it (the process table,
//! the bus's counters, the plugins' health); a scrape reads them and builds
//! a registry for that one answer, so no second copy of any count is kept
//! here to drift from the first.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::supervisor::ProcessState;

use super::control::Control;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A gauge family filled from a snapshot.
fn gauges(registry: &mut Registry, name: &str, help: &str, values: Vec<(Labels, i64)>) {
    let family = Family::<Labels, Gauge>::default();
    for (l, v) in values {
        family.get_or_create(&l).set(v);
    }
    registry.register(name, help, family);
}

/// A counter family filled from monotonic counts kept elsewhere.
fn counters(registry: &mut Registry, name: &str, help: &str, values: Vec<(Labels, u64)>) {
    let family = Family::<Labels, Counter<u64, AtomicU64>>::default();
    for (l, v) in values {
        family.get_or_create(&l).inner().store(v, Ordering::Relaxed);
    }
    registry.register(name, help, family);
}

/// The whole `/metrics` answer.
pub fn render(c: &Control) -> String {
    let mut registry = Registry::with_prefix("host");
    let processes = c.supervisor.list();

    let by_state = ProcessState::ALL
        .iter()
        .map(|state| {
            let n = processes.iter().filter(|p| p.state == *state).count();
            (labels(&[("state", state.as_str())]), n as i64)
        })
        .collect();
    gauges(
        &mut registry,
        "processes",
        "Processes by lifecycle state",
        by_state,
    );
    gauges(
        &mut registry,
        "process_restarts",
        "Restarts of each process since its last explicit start",
        processes
            .iter()
            .map(|p| (labels(&[("process", &p.name)]), i64::from(p.restarts)))
            .collect(),
    );
    gauges(
        &mut registry,
        "process_memory_bytes",
        "Resident memory of each running process tree at its last sample",
        processes
            .iter()
            .filter(|p| p.state.is_active())
            .filter_map(|p| Some((labels(&[("process", &p.name)]), p.memory_bytes? as i64)))
            .collect(),
    );
    counters(
        &mut registry,
        "output_lines_dropped",
        "Output lines that did not reach the bus (they are in the log files)",
        vec![(Vec::new(), c.supervisor.output_lines_dropped())],
    );

    let stats = c.bus.stats();
    gauges(
        &mut registry,
        "journal_events",
        "Events held in the journal, by type",
        stats
            .by_type
            .iter()
            .map(|(ty, n)| (labels(&[("type", ty)]), *n as i64))
            .collect(),
    );
    gauges(
        &mut registry,
        "bus_head_sequence",
        "The sequence of the newest event",
        vec![(Vec::new(), stats.head as i64)],
    );
    gauges(
        &mut registry,
        "journal_bytes",
        "Size of the journal database and its write-ahead log",
        vec![(Vec::new(), journal_bytes(c) as i64)],
    );

    let plugins = c.plugins();
    counters(
        &mut registry,
        "plugin_calls",
        "Calls made to each plugin",
        plugins
            .iter()
            .map(|p| (labels(&[("plugin", &p.name)]), p.calls))
            .collect(),
    );
    counters(
        &mut registry,
        "plugin_failures",
        "Plugin calls that trapped or ran out of time or memory",
        plugins
            .iter()
            .map(|p| (labels(&[("plugin", &p.name)]), p.failures))
            .collect(),
    );
    counters(
        &mut registry,
        "plugin_errors",
        "Plugin calls that returned an error or a value the host refused",
        plugins
            .iter()
            .map(|p| (labels(&[("plugin", &p.name)]), p.errors))
            .collect(),
    );
    gauges(
        &mut registry,
        "plugin_quarantined",
        "1 while a plugin is quarantined",
        plugins
            .iter()
            .map(|p| (labels(&[("plugin", &p.name)]), i64::from(p.quarantined)))
            .collect(),
    );
    gauges(
        &mut registry,
        "consumer_lag_events",
        "Events a plugin's dispatcher is behind the head of the log",
        plugins
            .iter()
            .flat_map(|p| {
                p.lag.iter().map(|(kind, lag)| {
                    (labels(&[("plugin", &p.name), ("kind", kind)]), *lag as i64)
                })
            })
            .collect(),
    );

    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

fn journal_bytes(c: &Control) -> u64 {
    let journal = crate::bus::journal_path(&c.state_dir);
    let mut wal = journal.clone().into_os_string();
    wal.push("-wal");
    [journal, wal.into()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}
