//! `/metrics`: the host's figures in the OpenMetrics text format (which
//! Prometheus scrapes), written by `prometheus-client`.
//!
//! Every figure already lives in the room that owns it (the process table,
//! the bus's counters, the plugins' health and call-latency histograms); a
//! scrape reads them and builds a registry for that one answer, so no second
//! copy of any count is kept here to drift from the first. The latency
//! histograms are the slots' own (a `Histogram` clone shares its state),
//! written out by a collector under one metric name.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::bus::BusStats;
use crate::supervisor::{ProcessInfo, ProcessState};

use super::control::Control;
use super::model::PluginStatus;

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

/// A gauge family of fractional values.
fn float_gauges(registry: &mut Registry, name: &str, help: &str, values: Vec<(Labels, f64)>) {
    let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
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
    processes(
        &mut registry,
        &c.supervisor.list(),
        c.supervisor.output_lines_dropped(),
    );
    bus(&mut registry, &c.bus.stats());
    let plugins = c.plugins();
    let latencies = plugins
        .iter()
        .filter_map(|p| Some((p.name.clone(), c.plugins.get(&p.name)?.call_latency())))
        .collect();
    plugin_metrics(&mut registry, &plugins, latencies);
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

/// The process table's figures.
fn processes(registry: &mut Registry, processes: &[ProcessInfo], output_dropped: u64) {
    let by_state = ProcessState::ALL
        .iter()
        .map(|state| {
            let n = processes.iter().filter(|p| p.state == *state).count();
            (labels(&[("state", state.as_str())]), n as i64)
        })
        .collect();
    gauges(
        registry,
        "processes",
        "Processes by lifecycle state",
        by_state,
    );
    gauges(
        registry,
        "process_restarts",
        "Restarts of each process since its last explicit start",
        processes
            .iter()
            .map(|p| (labels(&[("process", &p.name)]), i64::from(p.restarts)))
            .collect(),
    );
    gauges(
        registry,
        "process_memory_bytes",
        "Resident memory of each running process tree at its last sample",
        processes
            .iter()
            .filter(|p| p.state.is_active())
            .filter_map(|p| Some((labels(&[("process", &p.name)]), p.memory_bytes? as i64)))
            .collect(),
    );
    float_gauges(
        registry,
        "process_cpu_percent",
        "CPU use of each running process tree at its last sample, in percent of one core",
        processes
            .iter()
            .filter(|p| p.state.is_active())
            .filter_map(|p| {
                let cpu = f64::from(p.cpu_percent?);
                Some((labels(&[("process", &p.name)]), cpu))
            })
            .collect(),
    );
    counters(
        registry,
        "output_lines_dropped",
        "Output lines that did not reach the bus (they are in the log files)",
        vec![(Vec::new(), output_dropped)],
    );
}

/// The bus's counters.
fn bus(registry: &mut Registry, stats: &BusStats) {
    counters(
        registry,
        "events_published",
        "Events published since the bus was opened, by type",
        stats
            .published_by_type
            .iter()
            .map(|(ty, n)| (labels(&[("type", ty)]), *n))
            .collect(),
    );
    gauges(
        registry,
        "journal_events",
        "Events held in the journal, by type",
        stats
            .by_type
            .iter()
            .map(|(ty, n)| (labels(&[("type", ty)]), *n as i64))
            .collect(),
    );
    gauges(
        registry,
        "bus_head_sequence",
        "The sequence of the newest event",
        vec![(Vec::new(), stats.head as i64)],
    );
    gauges(
        registry,
        "journal_bytes",
        "Size of the journal database and its write-ahead log",
        vec![(Vec::new(), stats.journal_bytes as i64)],
    );
}

/// The plugins' health, lag and call latency (`latencies`: each plugin's
/// histogram, by name).
fn plugin_metrics(
    registry: &mut Registry,
    plugins: &[PluginStatus],
    latencies: Vec<(String, Histogram)>,
) {
    let per_plugin = |value: fn(&PluginStatus) -> u64| {
        plugins
            .iter()
            .map(|p| (labels(&[("plugin", &p.name)]), value(p)))
            .collect()
    };
    counters(
        registry,
        "plugin_calls",
        "Calls made to each plugin",
        per_plugin(|p| p.calls),
    );
    counters(
        registry,
        "plugin_failures",
        "Plugin calls that trapped or ran out of time or memory",
        per_plugin(|p| p.failures),
    );
    counters(
        registry,
        "plugin_errors",
        "Plugin calls that returned an error or a value the host refused",
        per_plugin(|p| p.errors),
    );
    counters(
        registry,
        "plugin_skipped",
        "Deliveries to each plugin skipped while it was quarantined",
        per_plugin(|p| p.skipped),
    );
    gauges(
        registry,
        "plugin_quarantined",
        "1 while a plugin is quarantined",
        plugins
            .iter()
            .map(|p| (labels(&[("plugin", &p.name)]), i64::from(p.quarantined)))
            .collect(),
    );
    gauges(
        registry,
        "consumer_lag_events",
        "Events between the head of the log and how far a plugin's dispatcher has read it",
        plugins
            .iter()
            .flat_map(|p| {
                p.lag.iter().map(|(kind, lag)| {
                    (labels(&[("plugin", &p.name), ("kind", kind)]), *lag as i64)
                })
            })
            .collect(),
    );
    registry.register_collector(Box::new(CallLatency(
        latencies
            .into_iter()
            .map(|(name, histogram)| (labels(&[("plugin", &name)]), histogram))
            .collect(),
    )));
}

/// The plugins' call-latency histograms, written as one metric family
/// (`host_plugin_call_seconds`) with a `plugin` label each. A collector,
/// because a `Family` makes its own metrics and these already exist.
#[derive(Debug)]
struct CallLatency(Vec<(Labels, Histogram)>);

impl Collector for CallLatency {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "plugin_call",
            // Registered families get their period from the registry; a
            // collector writes its help as given.
            "How long each plugin call took on the plugin's worker thread.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (labels, histogram) in &self.0 {
            histogram.encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    fn plugin(name: &str, calls: u64, lag: &[(&str, u64)]) -> PluginStatus {
        PluginStatus {
            name: name.into(),
            version: None,
            kinds: Vec::new(),
            state: "serving".into(),
            calls,
            failures: 0,
            errors: 0,
            consecutive_failures: 0,
            quarantined: false,
            skipped: 0,
            last_error: None,
            lag: lag.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            loaded_at: None,
            digest: String::new(),
            awaiting_approval: Vec::new(),
        }
    }

    #[test]
    fn events_published_are_a_counter_by_type_beside_the_journal_gauge() {
        let stats = BusStats {
            total: 1,
            by_type: BTreeMap::from([("a.b".to_string(), 1)]),
            by_source: BTreeMap::new(),
            events_per_minute: 0.0,
            head: 7,
            last_event_time: None,
            // More were published than the journal still holds.
            published_by_type: BTreeMap::from([("a.b".to_string(), 5), ("c.d".to_string(), 2)]),
            journal_bytes: 4096,
        };
        let mut registry = Registry::with_prefix("host");
        bus(&mut registry, &stats);
        let text = text(&registry);
        for line in [
            "# TYPE host_events_published counter",
            "host_events_published_total{type=\"a.b\"} 5",
            "host_events_published_total{type=\"c.d\"} 2",
            "host_journal_events{type=\"a.b\"} 1",
            "host_bus_head_sequence 7",
            "host_journal_bytes 4096",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn each_plugin_gets_its_own_latency_histogram_under_one_metric_name() {
        // The slots' buckets: doubling from 1 µs.
        let histogram = || {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                1e-6, 2.0, 25,
            ))
        };
        let fast = histogram();
        fast.observe(3e-6);
        fast.observe(5e-6);
        let slow = histogram();
        slow.observe(2.0);
        let plugins = [
            plugin("fast", 2, &[("event-handler", 0)]),
            plugin("slow", 1, &[]),
        ];
        let mut registry = Registry::with_prefix("host");
        plugin_metrics(
            &mut registry,
            &plugins,
            vec![("fast".into(), fast.clone()), ("slow".into(), slow)],
        );
        let text = text(&registry);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert_eq!(
            text.matches("# TYPE host_plugin_call_seconds histogram")
                .count(),
            1,
            "one family:\n{text}"
        );
        assert!(has("# UNIT host_plugin_call_seconds seconds"), "{text}");
        for line in [
            "host_plugin_call_seconds_count{plugin=\"fast\"} 2",
            "host_plugin_call_seconds_bucket{le=\"0.000004\",plugin=\"fast\"} 1",
            "host_plugin_call_seconds_bucket{le=\"0.000008\",plugin=\"fast\"} 2",
            "host_plugin_call_seconds_count{plugin=\"slow\"} 1",
            "host_plugin_call_seconds_bucket{le=\"1.048576\",plugin=\"slow\"} 0",
            "host_plugin_call_seconds_bucket{le=\"2.097152\",plugin=\"slow\"} 1",
            "host_plugin_calls_total{plugin=\"fast\"} 2",
            "host_consumer_lag_events{plugin=\"fast\",kind=\"event-handler\"} 0",
        ] {
            assert!(has(line), "{line} missing:\n{text}");
        }
        // The histogram is the slot's own: a call after the scrape shows next time.
        fast.observe(1e-3);
        let mut again = Registry::with_prefix("host");
        plugin_metrics(&mut again, &plugins[..1], vec![("fast".into(), fast)]);
        let text = super::tests::text(&again);
        assert!(
            text.lines()
                .any(|l| l == "host_plugin_call_seconds_count{plugin=\"fast\"} 3"),
            "{text}"
        );
    }
}
