//! Plugin tests against real compiled components (the fixtures of
//! `tests/plugins` and the shipped plugins), through the host library:
//! a real bus, a real `PluginHost`, and the action channel read directly
//! so each test sees exactly what plugins decided.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use host::bus::{Bus, BusConfig, EventQuery, NewEvent, Pattern};
use host::coordination::{CoordinationConfig, Coordinator, Task};
use host::plugins::{
    Action, ActionRequest, Kind, PluginError, PluginHost, PluginHostConfig, ProcessView,
};
use host::supervisor::{Origin, ProcessInfo, ProcessState};
use host_tests::{fixture, install_component, shipped_component, shipped_plugin};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::time::timeout;

#[path = "plugins/bounds.rs"]
mod bounds;
#[path = "plugins/deadlines.rs"]
mod deadlines;
#[path = "plugins/guest_words.rs"]
mod guest_words;
#[path = "plugins/imports.rs"]
mod imports;
#[path = "plugins/languages.rs"]
mod languages;
#[path = "plugins/operator.rs"]
mod operator;
#[path = "plugins/replay.rs"]
mod replay;
#[path = "plugins/shadow.rs"]
mod shadow;
#[path = "plugins/shipped_agents.rs"]
mod shipped_agents;
#[path = "plugins/shipped_handlers.rs"]
mod shipped_handlers;
#[path = "plugins/shipped_mappers.rs"]
mod shipped_mappers;
#[path = "plugins/shipped_rules.rs"]
mod shipped_rules;
#[path = "plugins/shipped_sessions.rs"]
mod shipped_sessions;
#[path = "plugins/versions.rs"]
mod versions;

/// A process table the test controls.
#[derive(Default, Clone)]
struct FakeProcesses(Arc<Mutex<Vec<ProcessInfo>>>);

impl ProcessView for FakeProcesses {
    fn list(&self) -> Vec<ProcessInfo> {
        self.0.lock().unwrap().clone()
    }
    fn get(&self, name: &str) -> Option<ProcessInfo> {
        self.list().into_iter().find(|p| p.name == name)
    }
}

fn process(name: &str, kind: &str) -> ProcessInfo {
    ProcessInfo {
        name: name.into(),
        label: None,
        kind: kind.into(),
        origin: Origin::Config,
        command: "true".into(),
        state: ProcessState::Running,
        reported_state: None,
        pid: Some(1),
        exit_code: None,
        signal: None,
        restarts: 0,
        progress: None,
        message: None,
        created_at: chrono::Utc::now(),
        started_at: None,
        completed_at: None,
        duration_ms: None,
        timeout_ms: None,
        last_output_at: None,
        run_output_offset: 0,
        memory_bytes: None,
        cpu_percent: None,
        metadata: serde_json::Map::new(),
        ready: None,
        waiting_for: vec![],
    }
}

struct Harness {
    _dir: TempDir,
    plugins: PathBuf,
    bus: Bus,
    host: PluginHost,
    actions: mpsc::Receiver<ActionRequest>,
    processes: FakeProcesses,
}

async fn harness(
    components: &[(&str, PathBuf)],
    configure: impl FnOnce(&mut PluginHostConfig),
) -> Harness {
    harness_prepared(components, |_| {}, configure).await
}

/// [`harness`], with `prepare` given the plugins folder before the host
/// starts (to write manifests the first load must see).
async fn harness_prepared(
    components: &[(&str, PathBuf)],
    prepare: impl FnOnce(&Path),
    configure: impl FnOnce(&mut PluginHostConfig),
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (name, path) in components {
        install_component(path, &plugins, name);
    }
    prepare(&plugins);
    let bus = Bus::open(&dir.path().join("state"), BusConfig::default()).unwrap();
    let mut config = PluginHostConfig::new(plugins.canonicalize().unwrap());
    config.state_dir = Some(dir.path().join("state"));
    config.build_missing = false;
    // Tests grant plugins folders of their own under the temp folder.
    config.ceilings.allowed_dirs = vec![std::env::temp_dir()];
    // Calls get a deadline no loaded machine reaches, unless the test sets
    // its own (every test of deadlines does): 100 ms, the host's default,
    // cut off ordinary calls when CI ran the suite beside a build.
    config.limits.deadline = Duration::from_secs(5);
    configure(&mut config);
    let (tx, actions) = mpsc::channel(1024);
    let processes = FakeProcesses::default();
    let host = PluginHost::start(config, bus.clone(), Arc::new(processes.clone()), tx)
        .await
        .unwrap();
    Harness {
        _dir: dir,
        plugins,
        bus,
        host,
        actions,
        processes,
    }
}

impl Harness {
    fn publish(&self, ty: &str, data: Value) -> u64 {
        self.bus
            .publish(NewEvent::new("test", ty, data))
            .unwrap()
            .sequence
    }

    async fn next_action(&mut self) -> ActionRequest {
        timeout(Duration::from_secs(30), self.actions.recv())
            .await
            .expect("no action within 30 s")
            .expect("action channel closed")
    }

    /// Every committed event of type `ty`, after waiting for what was
    /// submitted before: the host hands its reports to the bus without
    /// waiting, and a test asserting that none was made must not read
    /// before they land.
    fn events(&self, ty: &str) -> Vec<host::bus::Event> {
        self.bus
            .flush()
            .expect("the bus commits what was submitted");
        self.bus
            .query(&EventQuery {
                types: vec![Pattern::parse(ty).unwrap()],
                after_sequence: Some(0),
                limit: Some(100_000),
                ..Default::default()
            })
            .unwrap()
    }

    async fn wait_event(
        &self,
        ty: &str,
        pred: impl Fn(&host::bus::Event) -> bool,
    ) -> host::bus::Event {
        for _ in 0..600 {
            if let Some(e) = self.events(ty).into_iter().find(|e| pred(e)) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {ty} event within 30 s; log: {:#?}", self.events(">"));
    }
}

fn emitted(request: &ActionRequest) -> Vec<(String, Value)> {
    request
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit { ty, data, .. } => Some((ty.clone(), data.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_event_handler_answers_the_events_it_subscribed_to() {
    let mut h = harness(&[("echo", fixture("echo-v1"))], |_| {}).await;
    h.publish("test.unrelated", json!({}));
    let seq = h.publish("test.ping", json!({}));
    let request = h.next_action().await;
    assert_eq!(request.plugin, "echo");
    assert_eq!(request.cause.map(|c| c.sequence), Some(seq));
    let (ty, data) = emitted(&request).remove(0);
    assert_eq!(ty, "test.pong");
    assert_eq!(
        (data["version"].as_u64(), data["ping_sequence"].as_u64()),
        (Some(1), Some(seq))
    );
    // The guest read the host clock through the `now-ms` import.
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let handled = data["handled_ms"].as_u64().unwrap();
    assert!(
        now.abs_diff(handled) < 60_000,
        "handled_ms {handled} vs now {now}"
    );
    assert_eq!(h.events("plugin.loaded").len(), 1);
}

#[tokio::test]
async fn a_guest_error_is_recorded_and_the_plugin_keeps_serving() {
    let mut h = harness(&[("echo", fixture("echo-v1"))], |_| {}).await;
    let failing = h.publish("test.ping", json!({ "fail": true }));
    let ok = h.publish("test.ping", json!({}));
    let request = h.next_action().await;
    assert_eq!(
        request.cause.map(|c| c.sequence),
        Some(ok),
        "the failing ping produced no actions"
    );
    let error = h.wait_event("plugin.error", |_| true).await;
    assert_eq!(error.data["cause_sequence"], json!(failing));
    assert!(
        error.data["error"]
            .as_str()
            .unwrap()
            .contains("asked to fail")
    );
    assert!(
        h.events("plugin.failed").is_empty(),
        "a guest error is not a failure"
    );
}

#[tokio::test]
async fn a_plugin_that_loops_forever_is_cut_off_then_quarantined_while_others_keep_working() {
    let mut h = harness(
        &[
            ("echo", fixture("echo-v1")),
            ("spin", fixture("spin-forever")),
        ],
        |c| {
            c.limits.deadline = Duration::from_millis(50);
        },
    )
    .await;
    for round in 1..=4u64 {
        h.publish("test.spin", json!({}));
        let seq = h.publish("test.ping", json!({}));
        let request = h.next_action().await;
        assert_eq!(
            request.cause.map(|c| c.sequence),
            Some(seq),
            "echo answered ping {round}"
        );
    }
    let failed = h.wait_event("plugin.failed", |_| true).await;
    assert_eq!(failed.data["plugin"], "spin");
    assert_eq!(failed.data["failure"], "deadline");
    h.wait_event("plugin.quarantined", |e| e.data["plugin"] == "spin")
        .await;
    let failures = h.events("plugin.failed");
    assert_eq!(
        failures.len(),
        3,
        "the fourth spin was skipped by the quarantine: {failures:#?}"
    );
    let spin = h
        .host
        .list()
        .into_iter()
        .find(|p| p.name == "spin")
        .unwrap();
    assert!(spin.health.quarantined);
    assert!(spin.health.skipped_while_quarantined >= 1);
}

#[tokio::test]
async fn a_plugin_allocating_a_gibibyte_is_cut_off_at_its_memory_cap() {
    let mut h = harness(
        &[
            ("echo", fixture("echo-v1")),
            ("bomb", fixture("alloc-bomb")),
        ],
        |c| {
            c.limits.memory_bytes = 32 << 20;
        },
    )
    .await;
    h.publish("test.alloc", json!({}));
    let seq = h.publish("test.ping", json!({}));
    assert_eq!(h.next_action().await.cause.map(|c| c.sequence), Some(seq));
    let failed = h.wait_event("plugin.failed", |_| true).await;
    assert_eq!(failed.data["plugin"], "bomb");
    assert_eq!(failed.data["failure"], "memory", "{failed:#?}");
    assert!(h.events("test.alloc-survived").is_empty());
    // A fresh instance serves the next event: the plugin is not dead.
    h.publish("test.alloc", json!({}));
    h.wait_event("plugin.failed", |e| e.data["consecutive_failures"] == 2)
        .await;
}

fn file_reader_with_grant(dir: &Path, grant: Option<&Path>) -> PathBuf {
    let folder = dir.join("reader");
    std::fs::create_dir_all(&folder).unwrap();
    let mut manifest = format!("component = {:?}\n", fixture("file-reader"));
    if let Some(host_dir) = grant {
        manifest.push_str(&format!(
            "[permissions]\ndirs = [{{ host = {host_dir:?}, guest = \"/data\", read_only = true }}]\n"
        ));
    }
    std::fs::write(folder.join("plugin.toml"), manifest).unwrap();
    folder
}

#[tokio::test]
async fn a_plugin_cannot_read_host_files_unless_its_manifest_grants_the_folder() {
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::write(secret_dir.path().join("secret.txt"), "hunter2").unwrap();
    let secret = secret_dir.path().join("secret.txt");

    // No grant: neither the host path nor anything else is visible.
    let mut h = harness(&[], |_| {}).await;
    file_reader_with_grant(&h.plugins, None);
    h.host.reconcile().await.unwrap();
    for path in [secret.to_str().unwrap(), "/etc/passwd", "/data/secret.txt"] {
        h.publish("test.read-file", json!({ "path": path }));
        let (ty, data) = emitted(&h.next_action().await).remove(0);
        assert_eq!(ty, "test.file-result");
        assert_eq!(data["ok"], false, "read {path} without a grant: {data}");
    }

    // Positive control: with the folder granted, the same plugin reads it.
    let mut h = harness(&[], |_| {}).await;
    file_reader_with_grant(&h.plugins, Some(secret_dir.path()));
    h.host.reconcile().await.unwrap();
    h.publish("test.read-file", json!({ "path": "/data/secret.txt" }));
    let (_, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(data["ok"], true, "{data}");
    assert_eq!(data["len"], 7);

    // A grant outside the host's ceiling (the plugins folder and
    // `allowed_dirs`) is refused at load, naming the field.
    let h = harness(&[], |c| c.ceilings.allowed_dirs.clear()).await;
    file_reader_with_grant(&h.plugins, Some(secret_dir.path()));
    h.host.reconcile().await.unwrap();
    let failed = h.wait_event("plugin.load_failed", |_| true).await;
    let error = failed.data["error"].as_str().unwrap();
    assert!(error.contains("permissions.dirs[0].host"), "{error}");
    assert!(error.contains("allowed_dirs"), "{error}");
    assert!(h.host.get("reader").is_none());
}

#[tokio::test]
async fn a_reload_under_a_steady_stream_loses_and_duplicates_nothing() {
    let mut h = harness(&[("echo", fixture("echo-v1"))], |c| {
        c.debounce = Duration::from_millis(50);
    })
    .await;
    h.host.watch().unwrap();
    let bus = h.bus.clone();
    let publisher = tokio::spawn(async move {
        let mut sent = Vec::new();
        for _ in 0..1500 {
            sent.push(
                bus.publish(NewEvent::new("test", "test.ping", json!({})))
                    .unwrap()
                    .sequence,
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sent
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    install_component(&fixture("echo-v2"), &h.plugins, "echo");
    let sent = publisher.await.unwrap();

    let mut answers: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut order = Vec::new();
    while answers.len() < sent.len() {
        let request = h.next_action().await;
        for (_, data) in emitted(&request) {
            let ping = data["ping_sequence"].as_u64().unwrap();
            let version = data["version"].as_u64().unwrap();
            answers.entry(ping).or_default().push(version);
            order.push(version);
        }
    }
    for seq in &sent {
        assert_eq!(
            answers[seq].len(),
            1,
            "ping {seq} answered {:?}",
            answers[seq]
        );
    }
    assert_eq!(answers.len(), sent.len());
    let first_v2 = order
        .iter()
        .position(|v| *v == 2)
        .expect("version 2 took over");
    assert!(first_v2 > 0, "version 1 served before the swap");
    assert!(
        order[first_v2..].iter().all(|v| *v == 2),
        "once swapped, only version 2 answers"
    );
    assert_eq!(h.events("plugin.reloaded").len(), 1);
}

#[tokio::test]
async fn a_broken_component_written_in_place_keeps_the_old_version_serving() {
    let mut h = harness(&[("echo", fixture("echo-v1"))], |c| {
        c.debounce = Duration::from_millis(50);
    })
    .await;
    h.host.watch().unwrap();
    std::fs::write(
        h.plugins.join("echo.wasm"),
        b"\0asm this is not a component",
    )
    .unwrap();
    let failed = h.wait_event("plugin.reload_failed", |_| true).await;
    assert_eq!(failed.data["plugin"], "echo");
    assert!(
        failed.data["error"].as_str().unwrap().contains("echo.wasm"),
        "{failed:#?}"
    );
    let seq = h.publish("test.ping", json!({}));
    let (_, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(
        (data["version"].as_u64(), data["ping_sequence"].as_u64()),
        (Some(1), Some(seq))
    );
}

#[tokio::test]
async fn a_manifest_that_stops_parsing_keeps_the_running_version_serving() {
    let mut h = harness_prepared(
        &[],
        |plugins| {
            let folder = plugins.join("echo");
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::copy(fixture("echo-v1"), folder.join("echo.wasm")).unwrap();
            std::fs::write(folder.join("plugin.toml"), "component = \"echo.wasm\"\n").unwrap();
        },
        |c| c.debounce = Duration::from_millis(50),
    )
    .await;
    h.host.watch().unwrap();
    // A half-saved edit: the file no longer parses.
    std::fs::write(h.plugins.join("echo/plugin.toml"), "component = \"echo.wa").unwrap();
    let failed = h.wait_event("plugin.reload_failed", |_| true).await;
    assert_eq!(failed.data["plugin"], "echo", "{failed:#?}");
    assert!(
        failed.data["error"]
            .as_str()
            .unwrap()
            .contains("plugin.toml")
    );
    assert!(
        h.events("plugin.unloaded").is_empty(),
        "the version it described keeps serving"
    );
    let seq = h.publish("test.ping", json!({}));
    let (_, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(data["ping_sequence"].as_u64(), Some(seq));
}

#[tokio::test]
async fn new_files_load_and_deleted_files_unload() {
    let h = harness(&[], |c| c.debounce = Duration::from_millis(50)).await;
    h.host.watch().unwrap();
    install_component(&fixture("echo-v1"), &h.plugins, "late");
    h.wait_event("plugin.loaded", |e| e.data["plugin"] == "late")
        .await;
    std::fs::remove_file(h.plugins.join("late.wasm")).unwrap();
    h.wait_event("plugin.unloaded", |e| e.data["plugin"] == "late")
        .await;
    assert!(h.host.list().is_empty());
}

#[tokio::test]
async fn plugin_state_survives_a_reload() {
    let mut h = harness(&[], |_| {}).await;
    let folder = h.plugins.join("counter");
    std::fs::create_dir_all(&folder).unwrap();
    let manifest = |interval: u32| {
        format!(
            "component = {:?}\n[config]\ninterval_ms = {interval}\n",
            fixture("counter-agent")
        )
    };
    std::fs::write(folder.join("plugin.toml"), manifest(20)).unwrap();
    h.host.reconcile().await.unwrap();
    let agents = host::agents::Scheduler::start(h.host.clone(), h.bus.clone(), {
        let (tx, rx) = mpsc::channel(1024);
        h.actions = rx;
        tx
    });
    let mut last = 0;
    while last < 3 {
        for (_, data) in emitted(&h.next_action().await) {
            last = data["n"].as_u64().unwrap();
        }
    }
    // A config change is a new version: reload, same state.
    std::fs::write(folder.join("plugin.toml"), manifest(25)).unwrap();
    h.host.reconcile().await.unwrap();
    h.wait_event("plugin.reloaded", |_| true).await;
    let mut after = Vec::new();
    while after.len() < 3 {
        for (_, data) in emitted(&h.next_action().await) {
            after.push(data["n"].as_u64().unwrap());
        }
    }
    assert!(after.windows(2).all(|w| w[1] == w[0] + 1), "{after:?}");
    assert!(
        after[0] > 3,
        "the counter continued rather than restarting: {after:?}"
    );
    agents.shutdown().await;
}

#[tokio::test]
async fn a_background_agent_is_ticked_paused_and_resumed() {
    let mut h = harness(&[("counter", fixture("counter-agent"))], |_| {}).await;
    let (tx, rx) = mpsc::channel(1024);
    h.actions = rx;
    let agents = host::agents::Scheduler::start(h.host.clone(), h.bus.clone(), tx);
    h.next_action().await;
    h.next_action().await;
    let state = agents
        .list()
        .into_iter()
        .find(|a| a.plugin == "counter")
        .unwrap();
    assert!(state.cycles >= 2);
    assert_eq!(state.interval_ms, 100);
    agents.pause("counter").unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    while h.actions.try_recv().is_ok() {}
    let paused_cycles = agents.list()[0].cycles;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        agents.list()[0].cycles,
        paused_cycles,
        "no ticks while paused"
    );
    assert!(h.actions.try_recv().is_err());
    agents.resume("counter").unwrap();
    h.next_action().await;
    assert!(matches!(
        agents.pause("nobody"),
        Err(host::agents::AgentError::Unknown(_))
    ));
    agents.shutdown().await;
}

#[tokio::test]
async fn a_status_mapper_turns_output_lines_of_its_kinds_into_status_updates() {
    let mut h = harness(&[("sink", fixture("kitchen-sink"))], |_| {}).await;
    h.processes
        .0
        .lock()
        .unwrap()
        .extend([process("job", "sink"), process("other", "web")]);
    h.bus
        .publish(
            NewEvent::new(
                "host/supervisor",
                "process.output",
                json!({ "stream": "stdout", "lines": ["done"] }),
            )
            .with_subject("other"),
        )
        .unwrap();
    let seq = h
        .bus
        .publish(
            NewEvent::new(
                "host/supervisor",
                "process.output",
                json!({ "stream": "stdout", "lines": ["working", "done"] }),
            )
            .with_subject("job"),
        )
        .unwrap()
        .sequence;
    let request = loop {
        let r = h.next_action().await;
        if r.actions
            .iter()
            .any(|a| matches!(a, Action::SetStatus { .. }))
        {
            break r;
        }
    };
    assert_eq!(
        request.cause.map(|c| c.sequence),
        Some(seq),
        "the `web` process is not of the mapper's kinds"
    );
    let Action::SetStatus { name, update } = &request.actions[0] else {
        panic!()
    };
    assert_eq!(name, "job");
    assert_eq!(update.state, Some(ProcessState::Completed));
}

#[tokio::test]
async fn the_shipped_progress_mapper_reads_progress_from_output() {
    let mut h = harness(&[], |_| {}).await;
    std::fs::create_dir_all(h.plugins.join("progress-mapper")).unwrap();
    let manifest =
        std::fs::read_to_string(shipped_plugin("progress-mapper").join("plugin.toml")).unwrap();
    let manifest = manifest.replace(
        "../target/wasm32-wasip2/release/progress_mapper.wasm",
        shipped_component("progress-mapper").to_str().unwrap(),
    );
    std::fs::write(h.plugins.join("progress-mapper/plugin.toml"), manifest).unwrap();
    h.host.reconcile().await.unwrap();
    h.processes.0.lock().unwrap().push(process("job", "job"));
    h.bus
        .publish(
            NewEvent::new(
                "host/supervisor",
                "process.output",
                json!({ "lines": ["step [3/4] linking"] }),
            )
            .with_subject("job"),
        )
        .unwrap();
    let request = h.next_action().await;
    let Action::SetStatus { update, .. } = &request.actions[0] else {
        panic!("{request:?}")
    };
    assert_eq!(update.progress, Some(0.75));
}

#[tokio::test]
async fn dependency_rules_are_asked_about_new_tasks_and_hits_become_events() {
    let h = harness(
        &[
            ("sink", fixture("kitchen-sink")),
            ("api", shipped_component("api-contract-rule")),
        ],
        |_| {},
    )
    .await;
    let coordinator =
        Coordinator::new(h.bus.clone(), h.host.clone(), CoordinationConfig::default());
    let task = |id: &str, repo: &str, title: &str, description: &str| Task {
        id: id.into(),
        repository: repo.into(),
        title: title.into(),
        description: description.into(),
        keywords: vec![],
        agent: None,
    };
    assert!(
        coordinator
            .register(
                task("a", "backend", "Expose the orders REST API endpoint", ""),
                "test"
            )
            .await
            .unwrap()
            .is_empty()
    );
    let found = coordinator
        .register(
            task(
                "b",
                "frontend",
                "Call the orders REST API endpoint",
                "consume the endpoint",
            ),
            "test",
        )
        .await
        .unwrap();
    assert!(
        found
            .iter()
            .any(|d| &*d.rule == "api" && &*d.depends_on == "a"),
        "{found:#?}"
    );
    // kitchen-sink says two tasks with the same title depend; same
    // repository pairs are skipped.
    coordinator
        .register(
            task("c", "frontend", "Expose the orders REST API endpoint", ""),
            "test",
        )
        .await
        .unwrap();
    let same_title = coordinator
        .dependencies()
        .into_iter()
        .filter(|d| &*d.rule == "sink")
        .collect::<Vec<_>>();
    assert_eq!(same_title.len(), 1, "{same_title:#?}");
    assert_eq!(
        (&*same_title[0].task, &*same_title[0].depends_on),
        ("c", "a")
    );
    let listed: usize = h
        .events("dependency.detected")
        .iter()
        .flat_map(|e| e.data["groups"].as_array().cloned().unwrap_or_default())
        .map(|group| group["depends_on"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(listed, coordinator.dependencies().len());
}

#[tokio::test]
async fn plugin_kinds_are_detected_from_exports() {
    let sink = host::plugins::check(&fixture("kitchen-sink"), &Default::default())
        .await
        .unwrap();
    assert_eq!(
        sink.kinds,
        vec![
            Kind::EventHandler,
            Kind::StatusMapper,
            Kind::DependencyRule,
            Kind::BackgroundAgent
        ]
    );
    let echo = host::plugins::check(&fixture("echo-v1"), &Default::default())
        .await
        .unwrap();
    assert_eq!(echo.kinds, vec![Kind::EventHandler]);
    assert_eq!(
        echo.description.subscriptions,
        vec!["test.ping".to_string()]
    );
    assert!(echo.grants.dirs.is_empty() && echo.grants.env.is_empty());
    let bad = host::plugins::check(&fixture("bad-kind"), &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(bad, PluginError::NoKnownKind { .. }), "{bad}");
    assert!(bad.to_string().contains("test:other/thing"), "{bad}");
}

#[tokio::test]
async fn check_holds_a_manifest_to_the_ceilings_and_describes_every_grant() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins/greedy");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(fixture("echo-v1"), folder.join("echo.wasm")).unwrap();
    std::fs::write(
        folder.join("plugin.toml"),
        "component = \"echo.wasm\"\n\n[permissions]\n\
         dirs = [{ host = \"/\", guest = \"/root\" }]\n\
         emit = [\"test.>\"]\nrestart = [\"kind:worker\"]\n",
    )
    .unwrap();
    let err = host::plugins::check(&folder, &Default::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("plugin.toml") && text.contains("allowed_dirs"),
        "the refusal names the file and the ceiling: {text}"
    );

    let options = host::plugins::CheckOptions {
        ceilings: host::plugins::Ceilings {
            allowed_dirs: vec!["/".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let report = host::plugins::check(&folder, &options).await.unwrap();
    assert_eq!(
        report.grants_described,
        [
            "dir / as /root (read-only)",
            "emit test.>",
            "restart kind:worker"
        ]
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_component_is_rejected_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"definitely not wasm").unwrap();
    let err = host::plugins::check(&path, &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");
    assert!(err.to_string().contains("junk.wasm"), "{err}");
}

#[tokio::test]
async fn a_broken_plugin_at_start_is_reported_and_the_others_load() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"nope").unwrap();
    let h = harness(&[("echo", fixture("echo-v1")), ("junk", junk)], |_| {}).await;
    let names: Vec<String> = h.host.list().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["echo"]);
    let failed = h.wait_event("plugin.load_failed", |_| true).await;
    assert_eq!(failed.data["plugin"], "junk");
}

/// A plugin folder in the harness with a manifest for `component`.
fn manifest_plugin(h: &Harness, name: &str, component: &Path, extra: &str) {
    let folder = h.plugins.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("plugin.toml"),
        format!("component = {component:?}\n{extra}"),
    )
    .unwrap();
}

#[tokio::test]
async fn the_javascript_example_restarts_failed_processes_until_its_limit() {
    let js = host_tests::example_component("js/restart-on-failure", "restart-on-failure.wasm");
    let mut h = harness(&[], |_| {}).await;
    manifest_plugin(
        &h,
        "heal",
        &js,
        "[config]\nprocesses = \"worker\"\nmax_restarts = 2\n",
    );
    h.host.reconcile().await.unwrap();
    h.processes
        .0
        .lock()
        .unwrap()
        .extend([process("worker", "default"), process("other", "default")]);
    let failed = |name: &str| {
        NewEvent::new(
            "host/supervisor",
            "process.failed",
            json!({ "exit_code": 3 }),
        )
        .with_subject(name)
    };
    h.bus.publish(failed("other")).unwrap();
    let seq = h.bus.publish(failed("worker")).unwrap().sequence;
    let request = h.next_action().await;
    assert_eq!(
        request.cause.map(|c| c.sequence),
        Some(seq),
        "`other` is not in the plugin's list"
    );
    assert!(
        matches!(&request.actions[0], Action::Restart { name } if name == "worker"),
        "{request:?}"
    );
    let (ty, data) = emitted(&request).remove(0);
    assert_eq!(ty, "heal.restarted");
    assert_eq!(data["exit_code"], 3);
    // At its limit it gives up instead of restarting forever.
    h.processes.0.lock().unwrap()[0].restarts = 2;
    h.bus.publish(failed("worker")).unwrap();
    let request = h.next_action().await;
    assert_eq!(emitted(&request)[0].0, "heal.gave_up");
    assert!(
        !request
            .actions
            .iter()
            .any(|a| matches!(a, Action::Restart { .. }))
    );
}

#[tokio::test]
async fn the_python_example_maps_pytest_output_to_progress_and_a_verdict() {
    let py = host_tests::example_component("python/pytest-progress", "pytest-progress.wasm");
    let mut h = harness(&[], |_| {}).await;
    manifest_plugin(&h, "pytest", &py, "[limits]\nmemory_mib = 128\n");
    h.host.reconcile().await.unwrap();
    assert_eq!(h.host.list().len(), 1, "{:#?}", h.events("plugin.>"));
    h.processes
        .0
        .lock()
        .unwrap()
        .push(process("suite", "pytest"));
    let output = |lines: Value| {
        NewEvent::new(
            "host/supervisor",
            "process.output",
            json!({ "lines": lines }),
        )
        .with_subject("suite")
    };
    h.bus
        .publish(output(json!(["tests/test_a.py ....  [ 42%]"])))
        .unwrap();
    let Action::SetStatus { update, .. } = &h.next_action().await.actions[0] else {
        panic!()
    };
    assert_eq!(update.progress, Some(0.42));
    assert_eq!(update.state, None);
    h.bus
        .publish(output(json!(["==== 3 passed, 1 failed in 0.12s ===="])))
        .unwrap();
    let Action::SetStatus { update, .. } = &h.next_action().await.actions[0] else {
        panic!()
    };
    assert_eq!(update.state, Some(ProcessState::Failed));
}

#[tokio::test]
async fn compiled_components_are_cached_in_the_state_folder_and_a_corrupt_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    install_component(&fixture("echo-v1"), &plugins, "echo");
    let start = || async {
        let mut config = PluginHostConfig::new(plugins.canonicalize().unwrap());
        config.state_dir = Some(dir.path().join("state"));
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let host = PluginHost::start(config, bus, Arc::new(FakeProcesses::default()), tx)
            .await
            .unwrap();
        (host, rx)
    };
    let (host, _rx) = start().await;
    assert_eq!(host.list().len(), 1);
    host.shutdown().await;
    let cached: Vec<PathBuf> = std::fs::read_dir(dir.path().join("state/cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "one precompiled artifact: {cached:?}");
    std::fs::write(&cached[0], b"garbage").unwrap();
    let (host, _rx) = start().await;
    assert_eq!(
        host.list().len(),
        1,
        "a corrupt cache entry is ignored, not fatal"
    );
    assert!(
        std::fs::metadata(&cached[0]).unwrap().len() > 100,
        "and rewritten"
    );
}

#[tokio::test]
async fn a_burst_of_runaway_calls_stops_at_the_quarantine_even_within_one_batch() {
    let h = harness(&[("spin", fixture("spin-forever"))], |c| {
        c.limits.deadline = Duration::from_millis(20);
    })
    .await;
    // Published in one go: the dispatcher takes them as one batch.
    h.bus
        .publish_all(
            (0..6)
                .map(|_| NewEvent::new("test", "test.spin", json!({})))
                .collect(),
        )
        .unwrap();
    h.wait_event("plugin.quarantined", |_| true).await;
    for _ in 0..100 {
        if h.host.list()[0].health.skipped_while_quarantined == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = h.host.list()[0].health.clone();
    assert_eq!(health.failures, 3, "{health:?}");
    assert_eq!(health.skipped_while_quarantined, 3, "{health:?}");
    assert_eq!(h.events("plugin.failed").len(), 3);

    // The quarantine lasts until the plugin's file changes.
    h.host.reconcile().await.unwrap();
    assert!(
        h.host.list()[0].health.quarantined,
        "an unchanged file keeps it quarantined"
    );
    install_component(&fixture("echo-v1"), &h.plugins, "spin");
    h.host.reconcile().await.unwrap();
    let health = h.host.list()[0].health.clone();
    assert!(
        !health.quarantined,
        "a new version is given a chance: {health:?}"
    );
    assert_eq!(health.consecutive_failures, 0);
    assert_eq!(h.events("plugin.reloaded").len(), 1);
}

#[tokio::test]
async fn the_failure_alert_counts_only_failures_within_its_window_on_the_hosts_clock() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(plugins.join("alert")).unwrap();
    std::fs::write(
        plugins.join("alert/plugin.toml"),
        format!(
            "component = {:?}\n[config]\nthreshold = 3\nwindow_secs = 600\n",
            shipped_component("failure-alert")
        ),
    )
    .unwrap();
    // A virtual clock the test moves: the plugin reads it through now-ms.
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock = now.clone();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let (tx, mut actions) = mpsc::channel(16);
    let mut config = PluginHostConfig::new(plugins.canonicalize().unwrap());
    config.build_missing = false;
    let host = PluginHost::start_with_clock(
        config,
        bus.clone(),
        Arc::new(FakeProcesses::default()),
        tx,
        Arc::new(move || clock.load(Ordering::SeqCst)),
    )
    .await
    .unwrap();
    assert_eq!(host.list().len(), 1);
    let fail_at = |secs: u64| {
        now.store(1_000_000 + secs * 1000, Ordering::SeqCst);
        bus.publish(
            NewEvent::new(
                "host/supervisor",
                "process.failed",
                json!({ "exit_code": 3 }),
            )
            .with_subject("web"),
        )
        .unwrap()
        .sequence
    };
    // Failures at 0 s, 400 s and 800 s: never three within 600 s.
    for secs in [0, 400, 800] {
        fail_at(secs);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        actions.try_recv().is_err(),
        "no alert for failures spread over 800 s"
    );
    // 900 s: 400, 800 and 900 are within 600 s of each other.
    let third = fail_at(900);
    let request = timeout(Duration::from_secs(30), actions.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(request.cause.map(|c| c.sequence), Some(third));
    let (ty, data) = emitted(&request).remove(0);
    assert_eq!(ty, "alert.process_failures");
    assert_eq!(
        (data["process"].as_str(), data["failures"].as_u64()),
        (Some("web"), Some(3))
    );
}

#[tokio::test]
async fn every_counted_call_is_timed_once_including_the_ones_cut_off_at_their_deadline() {
    let mut h = harness(
        &[
            ("echo", fixture("echo-v1")),
            ("spin", fixture("spin-forever")),
        ],
        |c| {
            c.limits.deadline = Duration::from_millis(50);
        },
    )
    .await;
    for _ in 0..4 {
        h.publish("test.spin", json!({}));
        h.publish("test.ping", json!({}));
        h.next_action().await;
    }
    h.wait_event("plugin.quarantined", |e| e.data["plugin"] == "spin")
        .await;
    for name in ["echo", "spin"] {
        let plugin = h.host.get(name).unwrap();
        let calls = plugin.health().calls;
        assert!(calls >= 3, "{name} made {calls} calls");
        assert_eq!(
            observations(plugin.call_latency()),
            calls,
            "{name}: one duration per counted call"
        );
    }
    // Quarantined calls are skipped, not made: they are neither counted nor timed.
    let spin = h.host.get("spin").unwrap();
    assert_eq!(spin.health().calls, spin.health().failures);
}

/// How many durations a latency histogram holds, read from its rendering.
fn observations(histogram: prometheus_client::metrics::histogram::Histogram) -> u64 {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register("latency", "", histogram);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("latency_count "))
        .expect("a count line")
        .parse()
        .unwrap()
}
