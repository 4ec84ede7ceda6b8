//! The conformance suite of issue 9: the same policy written in Rust,
//! JavaScript and Python gives identical decisions.
//!
//! The shipped Rust plugins (`plugins/api-contract-rule`,
//! `plugins/failure-alert`) are the reference; their ports in
//! `examples/js/*` and `examples/python/*` are loaded beside them in one
//! real `PluginHost` and fed the shared fixtures of
//! `tests/fixtures/conformance/`, which hold inputs only: no answer is
//! written by hand, the Rust plugin's is the expected one. Every call goes
//! through the real runtime (sandbox, deadline, conversion and validation
//! of what the guest returns), with a clock the test moves so the failure
//! windows are the fixture's, not the machine's.

use std::sync::atomic::{AtomicU64, Ordering};

use host::bus::Event;
use host::plugins::Clock;

use super::*;

/// The three versions of one policy: (label, component).
fn versions(rust: &str, example: &str) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("rust", shipped_component(rust)),
        (
            "js",
            host_tests::example_component(&format!("js/{example}"), &format!("{example}.wasm")),
        ),
        (
            "py",
            host_tests::example_component(&format!("python/{example}"), &format!("{example}.wasm")),
        ),
    ]
}

fn conformance_fixture(file: &str) -> PathBuf {
    host_tests::workspace_root()
        .join("tests/fixtures/conformance")
        .join(file)
}

/// A plugin host over an empty bus with the clock `now`, and `plugins`
/// installed as (folder name, component, manifest tail). Nothing is
/// published on its bus, so no dispatcher calls a handler behind the
/// test's back: every decision compared is one the test asked for.
///
/// The first plugin of each component loads first and fills the
/// compilation cache; the rest (the same components under other configs)
/// then load from it, instead of compiling an 18 MB Python component once
/// per config side by side.
async fn host_with(
    now: Arc<AtomicU64>,
    plugins: &[(String, PathBuf, String)],
) -> (TempDir, PluginHost) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    let install = |(name, component, tail): &(String, PathBuf, String)| {
        let own = folder.join(name);
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(
            own.join("plugin.toml"),
            format!("component = {component:?}\n{tail}"),
        )
        .unwrap();
    };
    let mut first: Vec<&PathBuf> = Vec::new();
    let mut later = Vec::new();
    for plugin in plugins {
        if first.contains(&&plugin.1) {
            later.push(plugin);
        } else {
            first.push(&plugin.1);
            install(plugin);
        }
    }
    let bus = Bus::open(&dir.path().join("state"), BusConfig::default()).unwrap();
    let mut config = PluginHostConfig::new(folder.canonicalize().unwrap());
    config.state_dir = Some(dir.path().join("state"));
    config.build_missing = false;
    let (tx, _actions) = mpsc::channel(1024);
    let clock: Clock = Arc::new(move || now.load(Ordering::SeqCst));
    let host =
        PluginHost::start_with_clock(config, bus, Arc::new(FakeProcesses::default()), tx, clock)
            .await
            .unwrap();
    for plugin in later {
        install(plugin);
    }
    host.reconcile().await.unwrap();
    for (name, _, _) in plugins {
        assert!(
            host.get(name).is_some(),
            "{name} did not load: {:?}",
            host.failures()
        );
    }
    (dir, host)
}

/// A TOML basic string of `text`.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Generous limits: the suite compares answers, not speed, and a loaded
/// test machine must not turn a slow Python call into a deadline.
const LIMITS: &str = "[limits]\ndeadline_ms = 10000\nmemory_mib = 256\n";

/// One rule's answer about a task and its candidates, exact to the bit of
/// the confidence.
fn rule_answer(found: &[host::coordination::Dependency]) -> Vec<String> {
    found
        .iter()
        .map(|d| {
            format!(
                "{} -> {}: {} / {} / {:#010x}",
                d.task,
                d.depends_on,
                d.relationship,
                d.reason,
                d.confidence.to_bits()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_api_contract_rule_decides_alike_in_rust_javascript_and_python() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(conformance_fixture("api_contract_pairs.json")).unwrap(),
    )
    .unwrap();
    let tasks: Vec<Task> = serde_json::from_value(fixture["tasks"].clone()).unwrap();
    let keywords: Vec<Option<String>> =
        serde_json::from_value(fixture["keywords"].clone()).unwrap();
    let versions = versions("api-contract-rule", "api-contract-rule");
    let mut plugins = Vec::new();
    for (k, config) in keywords.iter().enumerate() {
        let tail = match config {
            Some(words) => format!("[config]\nkeywords = {}\n{LIMITS}", toml_string(words)),
            None => LIMITS.to_string(),
        };
        for (label, component) in &versions {
            plugins.push((format!("{label}-{k}"), component.clone(), tail.clone()));
        }
    }
    let started = std::time::Instant::now();
    let (_dir, host) = host_with(Arc::new(AtomicU64::new(0)), &plugins).await;
    eprintln!(
        "api-contract: {} plugins loaded in {:?}",
        plugins.len(),
        started.elapsed()
    );

    let mut compared = 0;
    let mut found = 0;
    for (k, declared) in keywords.iter().enumerate() {
        let rule = |label: &str| host.get(&format!("{label}-{k}")).unwrap();
        let describe = |label: &str| {
            let d = rule(label).description().unwrap();
            serde_json::to_value(&d.rule).unwrap()
        };
        assert_eq!(
            describe("js"),
            describe("rust"),
            "describe, keywords {:?}",
            declared
        );
        assert_eq!(
            describe("py"),
            describe("rust"),
            "describe, keywords {:?}",
            declared
        );
        for (i, task) in tasks.iter().enumerate() {
            let others: Vec<&Task> = tasks
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, t)| t)
                .collect();
            let reference = rule_answer(&rule("rust").check_many(task, &others).await.unwrap());
            // The reference itself must not depend on batching.
            let pairwise = rule_answer(&rule("rust").check_pairs(task, &others).await.unwrap());
            assert_eq!(
                pairwise, reference,
                "rust, batch vs pairs, task {}",
                task.id
            );
            for label in ["js", "py"] {
                let batch = rule_answer(&rule(label).check_many(task, &others).await.unwrap());
                assert_eq!(
                    batch, reference,
                    "{label} check-batch, task {}, keywords {:?}",
                    task.id, declared
                );
                let pairs = rule_answer(&rule(label).check_pairs(task, &others).await.unwrap());
                assert_eq!(
                    pairs, reference,
                    "{label} check, task {}, keywords {:?}",
                    task.id, declared
                );
            }
            compared += others.len();
            if i == 0 {
                eprintln!(
                    "api-contract: first task of keywords {k} at {:?}",
                    started.elapsed()
                );
            }
            found += reference.len();
        }
    }
    // A fixture where the reference finds nothing (or everything) would
    // compare nothing worth comparing.
    assert!(
        found > 20 && found < compared / 2,
        "{found} dependencies in {compared} pairs"
    );
}

/// One handler's decision about one event: its validated actions, or the
/// text of the error it answered with.
fn handler_answer(result: Result<Vec<Action>, PluginError>) -> String {
    match result {
        Ok(actions) => serde_json::to_string(&actions).unwrap(),
        Err(PluginError::Call {
            failure: host::plugins::CallFailure::GuestError(text),
            ..
        }) => format!("error: {text}"),
        Err(other) => panic!("not a decision: {other}"),
    }
}

/// `(threshold, window_secs)` configs the events are replayed under:
/// shipped, tight, zero-length, saturating, and malformed ones the
/// handlers must refuse with the same words.
const FAILURE_CONFIGS: &[(&str, &str)] = &[
    ("3", "600"),
    ("1", "10"),
    ("2", "0"),
    (" +2 ", "18446744073709551615"),
    ("", ""),
    ("many", "600"),
    ("0", "600"),
    ("3", "-1"),
    ("4294967296", "600"),
];

#[tokio::test]
async fn failure_alert_decides_alike_in_rust_javascript_and_python() {
    let lines = std::fs::read_to_string(conformance_fixture("failure_alert_events.jsonl")).unwrap();
    let fixture: Vec<Value> = lines
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("failure_alert_events.jsonl line {}: {e}", n + 1))
        })
        .collect();
    // The events as the bus makes them (id, time, sequence), minted once so
    // every version sees the very same ones.
    let mint = Bus::open_in_memory(BusConfig::default()).unwrap();
    let events: Vec<(u64, Event)> = fixture
        .iter()
        .map(|f| {
            let mut e = NewEvent::new(
                "host/supervisor",
                f["type"].as_str().unwrap(),
                f["data"].clone(),
            );
            if let Some(s) = f["subject"].as_str() {
                e = e.with_subject(s);
            }
            (f["at_ms"].as_u64().unwrap(), mint.publish(e).unwrap())
        })
        .collect();

    let versions = versions("failure-alert", "failure-alert");
    let mut plugins = Vec::new();
    for (c, (threshold, window)) in FAILURE_CONFIGS.iter().enumerate() {
        let tail = format!(
            "[config]\nthreshold = {}\nwindow_secs = {}\n[permissions]\nemit = [\"alert.>\"]\n{LIMITS}",
            toml_string(threshold),
            toml_string(window)
        );
        for (label, component) in &versions {
            plugins.push((format!("{label}-{c}"), component.clone(), tail.clone()));
        }
    }
    let now = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let (_dir, host) = host_with(now.clone(), &plugins).await;
    eprintln!(
        "failure-alert: {} plugins loaded in {:?}",
        plugins.len(),
        started.elapsed()
    );

    let mut alerts = 0;
    for (c, config) in FAILURE_CONFIGS.iter().enumerate() {
        for (n, (at, event)) in events.iter().enumerate() {
            now.store(*at, Ordering::SeqCst);
            let answer = |label: &str| {
                let plugin = host.get(&format!("{label}-{c}")).unwrap();
                async move { handler_answer(plugin.handle(event).await) }
            };
            let reference = answer("rust").await;
            for label in ["js", "py"] {
                assert_eq!(
                    answer(label).await,
                    reference,
                    "{label}, config {config:?}, fixture line {}",
                    n + 1
                );
            }
            alerts += reference.matches("alert.process_failures").count();
        }
    }
    assert!(alerts >= 10, "the fixture raised only {alerts} alerts");
}

/// Per-language figures for docs/benchmarks.md (not a test of speed: it
/// asserts nothing about time). Run with
/// `cargo test --release -p host --test plugins languages::figures -- --ignored --nocapture`.
///
/// For each version of failure-alert and api-contract-rule: the
/// component's size; a cold load (empty compilation cache: compile +
/// instantiate + describe) and a warm one (the cache filled); and the
/// median cost of one call through the plugin host (`handle` of one event;
/// `check-batch` of one task against 35 candidates).
#[tokio::test]
#[ignore = "measurement, run by hand for docs/benchmarks.md"]
async fn figures() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(conformance_fixture("api_contract_pairs.json")).unwrap(),
    )
    .unwrap();
    let tasks: Vec<Task> = serde_json::from_value(fixture["tasks"].clone()).unwrap();
    let mint = Bus::open_in_memory(BusConfig::default()).unwrap();
    let failed = mint
        .publish(
            NewEvent::new(
                "host/supervisor",
                "process.failed",
                json!({ "exit_code": 1 }),
            )
            .with_subject("web"),
        )
        .unwrap();
    println!("| plugin | language | size | cold load | warm load | one call |");
    println!("|---|---|---|---|---|---|");
    for (policy, rust, example) in [
        ("failure-alert", "failure-alert", "failure-alert"),
        ("api-contract", "api-contract-rule", "api-contract-rule"),
    ] {
        for (label, component) in versions(rust, example) {
            let size = std::fs::metadata(&component).unwrap().len();
            let state = tempfile::tempdir().unwrap();
            let tail = format!("[permissions]\nemit = [\"alert.>\"]\n{LIMITS}");
            let mut loads = Vec::new();
            let mut call = Duration::ZERO;
            for round in 0..2 {
                let now = Arc::new(AtomicU64::new(1_800_000_000_000));
                let dir = tempfile::tempdir().unwrap();
                let folder = dir.path().join("plugins");
                let own = folder.join("p");
                std::fs::create_dir_all(&own).unwrap();
                std::fs::write(
                    own.join("plugin.toml"),
                    format!("component = {component:?}\n{tail}"),
                )
                .unwrap();
                let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
                let mut config = PluginHostConfig::new(folder.canonicalize().unwrap());
                config.state_dir = Some(state.path().to_path_buf());
                config.build_missing = false;
                let (tx, _rx) = mpsc::channel(16);
                let clock: Clock = {
                    let now = now.clone();
                    Arc::new(move || now.load(Ordering::SeqCst))
                };
                let started = std::time::Instant::now();
                let host = PluginHost::start_with_clock(
                    config,
                    bus,
                    Arc::new(FakeProcesses::default()),
                    tx,
                    clock,
                )
                .await
                .unwrap();
                let plugin = host.get("p").expect("loaded");
                loads.push(started.elapsed());
                if round == 1 {
                    let mut times = Vec::new();
                    for i in 0..200u64 {
                        // Spread out: most calls raise nothing, as in life.
                        now.store(1_800_000_000_000 + i * 400_000, Ordering::SeqCst);
                        let t = std::time::Instant::now();
                        if policy == "failure-alert" {
                            plugin.handle(&failed).await.unwrap();
                        } else {
                            let task = &tasks[(i as usize) % tasks.len()];
                            let others: Vec<&Task> =
                                tasks.iter().filter(|t| t.id != task.id).collect();
                            plugin.check_many(task, &others).await.unwrap();
                        }
                        times.push(t.elapsed());
                    }
                    times.sort();
                    call = times[times.len() / 2];
                }
                host.shutdown().await;
            }
            println!(
                "| {policy} | {label} | {:.2} MB | {:.0} ms | {:.1} ms | {:.0} µs |",
                size as f64 / 1e6,
                loads[0].as_secs_f64() * 1e3,
                loads[1].as_secs_f64() * 1e3,
                call.as_secs_f64() * 1e6
            );
        }
    }
}
