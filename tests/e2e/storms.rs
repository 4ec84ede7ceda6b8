//! Scenario: plugins that try to start a storm (issue 6, "No storms", and
//! the rows of its table not covered elsewhere). Each test runs the real
//! binary with `hostile` plugins told by their `[config]` how to react to
//! which events (`react_to`, `react`), and reads the journal: the storm is
//! cut, refused or bounded, the cut is reported, and the host keeps serving.
//!
//! Nothing here depends on how fast the host is: bounds are counts (what a
//! storm would make in a few seconds is thousands of events), and waits are
//! generous timeouts on events the host publishes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use host_tests::{
    Api, EMITS_TEST, RunningHost, eventually, fixture, install_plugin_folder, sequence,
};
use serde_json::{Value, json};

use crate::PATIENCE;

/// How long a storm, had it started, is given to show in the journal.
const STORM_TIME: Duration = Duration::from_secs(3);

/// A host running `hostile` plugins, with its API.
struct Rig {
    host: RunningHost,
    api: Api,
    plugins: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Starts a host with `config` as its `host.toml` and a `hostile` plugin
/// per `(name, manifest lines)`; returns once the plugins are loaded.
fn start(config: &str, plugins: &[(&str, String)]) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    for (name, tail) in plugins {
        install_plugin_folder(&dir, name, &fixture("hostile"), tail);
    }
    let config_path = tmp.path().join("host.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut host = RunningHost::start(
        &dir,
        &tmp.path().join("state"),
        &["--config", config_path.to_str().unwrap(), "--no-build"],
    );
    let api = host.api();
    Rig {
        host,
        api,
        plugins: dir,
        _tmp: tmp,
    }
}

impl Rig {
    /// Publishes an event through the API; returns its sequence.
    fn publish(&self, ty: &str, data: Value) -> u64 {
        let (status, body) = self
            .api
            .post("/v1/events", &json!({ "type": ty, "data": data }));
        assert_eq!(status, 201, "publishing {ty}: {body}");
        sequence(&body)
    }

    /// Events of type `pattern` whose data names `plugin`.
    fn about(&self, pattern: &str, plugin: &str) -> Vec<Value> {
        self.host
            .events(pattern)
            .into_iter()
            .filter(|e| e["data"]["plugin"] == plugin)
            .collect()
    }

    /// Waits for an event of type `pattern` whose data names `plugin` and
    /// that satisfies `pred`.
    fn wait_about(&mut self, pattern: &str, plugin: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.host
            .wait_for(pattern, PATIENCE, |e| {
                e["data"]["plugin"] == plugin && pred(e)
            })
            .unwrap_or_else(|e| panic!("no {pattern} about {plugin}: {e:#}"))
    }

    /// The sequence of the newest event in the journal (`host events`
    /// reads at most the newest 10,000: counting them would hide a storm).
    fn head(&self) -> u64 {
        self.host.events(">").last().map_or(0, sequence)
    }

    /// [`Rig::head`] once the journal has stopped growing for two
    /// seconds: a storm never settles.
    fn settled_head(&self) -> u64 {
        let mut last = self.head();
        let settled = eventually(PATIENCE, || {
            std::thread::sleep(Duration::from_secs(2));
            let now = self.head();
            std::mem::replace(&mut last, now) == now
        });
        assert!(
            settled,
            "the journal kept growing (#{last}); newest:\n{:#?}",
            newest(&self.host.events(">"), 20)
        );
        last
    }

    fn stop(mut self) {
        let status = self.host.terminate().unwrap();
        assert!(
            status.success(),
            "host exited with {status}:\n{}",
            self.host.stderr()
        );
    }
}

/// The last `n` events, for failure messages.
fn newest(events: &[Value], n: usize) -> &[Value] {
    &events[events.len().saturating_sub(n)..]
}

/// Manifest lines of a `hostile` plugin reacting to `react_to` with `react`.
fn reacting(react_to: &str, react: &str) -> String {
    format!("[config]\nreact_to = {react_to:?}\nreact = {react:?}\n")
}

/// Whether `event` is one of the host's reports about `plugin`'s own
/// decisions, or an event it emitted itself.
fn about_itself(event: &Value, plugin: &str) -> bool {
    let ty = event["type"].as_str().unwrap_or_default();
    event["source"] == format!("plugin/{plugin}").as_str()
        || ((ty.starts_with("plugin.") || ty.starts_with("agent."))
            && event["data"]["plugin"] == plugin)
}

/// Seconds since the epoch of an event's `time`.
fn time_of(event: &Value) -> f64 {
    let text = event["time"].as_str().unwrap_or_default();
    let time = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("event time {text:?}: {e}"));
    time.timestamp_micros() as f64 / 1e6
}

/// Asserts that successive `reports` are at least (nearly) a second apart.
fn at_most_once_a_second(reports: &[Value]) {
    for pair in reports.windows(2) {
        let gap = time_of(&pair[1]) - time_of(&pair[0]);
        // The reports are a second apart when decided; their times are
        // taken at commit, which may come a little late for one of them.
        assert!(gap >= 0.8, "two reports {gap:.3} s apart: {pair:#?}");
    }
}

#[test]
fn a_handler_erring_on_every_event_is_never_fed_its_own_errors_and_the_journal_stays_small() {
    let mut rig = start("", &[("errer", reacting(">", "error"))]);
    const REAL: u64 = 20;
    let published: Vec<u64> = (0..REAL)
        .map(|i| rig.publish("test.noise", json!({ "i": i })))
        .collect();
    let last = *published.last().unwrap();
    rig.wait_about("plugin.error", "errer", |e| {
        e["data"]["cause_sequence"].as_u64() == Some(last)
    });
    std::thread::sleep(STORM_TIME);
    let head = rig.settled_head();
    let journal = rig.host.events(">");
    assert!(
        head < 200 + REAL,
        "{head} events in the journal after {REAL} published: {:#?}",
        newest(&journal, 30)
    );

    let by_sequence: BTreeMap<u64, &Value> = journal.iter().map(|e| (sequence(e), e)).collect();
    let errors: Vec<&Value> = journal
        .iter()
        .filter(|e| {
            (e["type"] == "plugin.error" || e["type"] == "plugin.failed")
                && e["data"]["plugin"] == "errer"
        })
        .collect();
    let mut causes: BTreeMap<u64, usize> = BTreeMap::new();
    for error in &errors {
        let cause = error["data"]["cause_sequence"]
            .as_u64()
            .unwrap_or_else(|| panic!("an error without its cause: {error}"));
        *causes.entry(cause).or_default() += 1;
        let fed = by_sequence
            .get(&cause)
            .unwrap_or_else(|| panic!("cause #{cause} is not in the journal"));
        assert!(
            !about_itself(fed, "errer"),
            "errer was fed a report about itself: {fed}\nwhich led to {error}"
        );
        // The report is one level deeper than what it reports on.
        assert_eq!(error["causesequence"].as_u64(), Some(cause), "{error}");
    }
    let twice: Vec<_> = causes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events erred on twice: {twice:?}");
    for seq in &published {
        assert!(causes.contains_key(seq), "event #{seq} was not handled");
    }
    // Every error is about an event nobody caused by erring: the errors
    // are as many as the events they answer, not thousands.
    let others = journal.iter().filter(|e| !about_itself(e, "errer")).count();
    assert!(
        errors.len() <= others,
        "{} errors for {others} events it may see",
        errors.len()
    );
    assert!(
        rig.about("plugin.quarantined", "errer").is_empty(),
        "an error is the plugin's own answer, not a failure"
    );

    // It still errs on a real event, once.
    let more = rig.publish("test.noise", json!({ "i": REAL }));
    rig.wait_about("plugin.error", "errer", |e| {
        e["data"]["cause_sequence"].as_u64() == Some(more)
    });
    rig.stop();
}

#[test]
fn two_handlers_erring_on_every_event_settle_once_the_events_stop() {
    // Each one sees the other's reports: the chains they make of them are
    // cut at the depth limit, and the journal stops growing.
    let mut rig = start(
        "[plugins]\nmax_chain_depth = 4\n",
        &[
            ("erra", reacting(">", "error")),
            ("errb", reacting(">", "error")),
        ],
    );
    const REAL: u64 = 5;
    let mut last = 0;
    for i in 0..REAL {
        last = rig.publish("test.noise", json!({ "i": i }));
    }
    for plugin in ["erra", "errb"] {
        rig.wait_about("plugin.error", plugin, |e| {
            e["data"]["cause_sequence"].as_u64() == Some(last)
        });
    }
    std::thread::sleep(STORM_TIME);
    let head = rig.settled_head();
    let journal = rig.host.events(">");
    assert!(
        head < 500,
        "{head} events for {REAL} published: {:#?}",
        newest(&journal, 30)
    );
    let deepest = journal
        .iter()
        .filter_map(|e| e["causedepth"].as_u64())
        .max()
        .unwrap_or(0);
    // The loop reports are one past the limit (caused by the event they
    // cut), and nothing else is.
    let past: Vec<&Value> = journal
        .iter()
        .filter(|e| e["causedepth"].as_u64().unwrap_or(0) > 4)
        .filter(|e| e["type"] != "plugin.loop_detected" || e["causedepth"] != 5)
        .collect();
    assert!(past.is_empty(), "past the limit of 4: {past:#?}");
    assert!(deepest <= 5, "an event at depth {deepest}");
    rig.stop();
}

#[test]
fn two_handlers_emitting_each_others_type_are_cut_at_the_chain_depth_limit_once_per_chain() {
    const DEPTH: u64 = 4;
    let grant = "[permissions]\nemit = [\"x.>\"]\n";
    let mut rig = start(
        &format!("[plugins]\nmax_chain_depth = {DEPTH}\n"),
        &[
            ("ping", format!("{}{grant}", reacting("x.b", "emit:x.a"))),
            ("pong", format!("{}{grant}", reacting("x.a", "emit:x.b"))),
        ],
    );

    let mut roots = Vec::new();
    for _ in 0..2 {
        let root = rig.publish("x.a", json!({}));
        roots.push(root);
        let detected = rig
            .host
            .wait_for("plugin.loop_detected", PATIENCE, |e| {
                e["data"]["root_sequence"].as_u64() == Some(root)
            })
            .unwrap();
        let data = &detected["data"];
        assert_eq!(
            detected["causesequence"], data["cut_at_sequence"],
            "the report is caused by the event it cut: {detected}"
        );
        assert_eq!(
            detected["causedepth"].as_u64(),
            Some(DEPTH + 1),
            "{detected}"
        );
        assert_eq!(data["depth"].as_u64(), Some(DEPTH), "{detected}");
        assert_eq!(data["max_depth"].as_u64(), Some(DEPTH), "{detected}");
        assert_eq!(data["plugins"], json!(["pong", "ping"]), "{detected}");
        let mut types: Vec<&str> = data["types"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        types.sort_unstable();
        assert_eq!(types, ["x.a", "x.b"], "{detected}");

        // The chain, walked back from where it was cut: each event names
        // the one whose handling produced it and is one level deeper.
        let cut = data["cut_at_sequence"].as_u64().unwrap();
        let chain: BTreeMap<u64, Value> = rig
            .host
            .events("x.*")
            .into_iter()
            .filter(|e| sequence(e) >= root)
            .map(|e| (sequence(&e), e))
            .collect();
        let mut at = &chain[&cut];
        for depth in (1..=DEPTH).rev() {
            assert_eq!(at["causedepth"].as_u64(), Some(depth), "{at}");
            let source = if at["type"] == "x.a" {
                "plugin/ping"
            } else {
                "plugin/pong"
            };
            assert_eq!(at["source"], source, "{at}");
            let cause = at["causesequence"]
                .as_u64()
                .unwrap_or_else(|| panic!("{at}"));
            at = &chain[&cause];
        }
        assert_eq!(sequence(at), root);
        assert!(
            at.get("causedepth").is_none() && at.get("causesequence").is_none(),
            "the root has no cause: {at}"
        );
    }
    std::thread::sleep(STORM_TIME);
    rig.settled_head();

    // One report per chain, and nothing past the cut: DEPTH events after
    // each root, none deeper.
    let loops = rig.host.events("plugin.loop_detected");
    assert_eq!(loops.len(), 2, "{loops:#?}");
    let xs = rig.host.events("x.*");
    assert_eq!(xs.len() as u64, 2 * (DEPTH + 1), "{xs:#?}");
    assert!(
        xs.iter()
            .all(|e| e["causedepth"].as_u64().unwrap_or(0) <= DEPTH),
        "{xs:#?}"
    );
    let errors: Vec<Value> = rig
        .host
        .events("plugin.>")
        .into_iter()
        .filter(|e| e["type"] == "plugin.error" || e["type"] == "plugin.failed")
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    rig.stop();
}

/// A process that fails at once and is never restarted by the supervisor.
const CRASHER: &str = r#"
[process.crasher]
command = "exit 3"
restart = "never"
backoff = "20ms"
backoff_max = "50ms"
"#;

/// The `process.*` events of `crasher` of type `ty`.
fn crasher(rig: &Rig, ty: &str) -> Vec<Value> {
    rig.host
        .events(ty)
        .into_iter()
        .filter(|e| e["subject"] == "crasher")
        .collect()
}

/// Manifest lines of a plugin restarting `crasher` on each of its failures.
fn restarter() -> String {
    format!(
        "{}[permissions]\nrestart = [\"crasher\"]\n",
        reacting("process.failed", "restart:crasher")
    )
}

#[test]
fn a_plugin_restarting_a_never_restart_process_on_every_failure_is_held_to_its_action_rate() {
    // A burst of 3 and nearly no refill: the fourth restart is refused.
    let mut rig = start(
        &format!(
            "[plugins.rate.restarter]\nactions_per_sec = 0.01\naction_burst = 3\n\
             {CRASHER}max_restarts = 100\nrestart_window = \"10m\"\n"
        ),
        &[("restarter", restarter())],
    );
    let refused = rig.wait_about("plugin.actions_refused", "restarter", |_| true);
    assert_eq!(refused["data"]["refused"]["rate_limited"], 1, "{refused}");
    let example = refused["data"]["examples"][0].as_str().unwrap_or_default();
    assert!(
        example.contains("restart crasher") && example.contains("rate limit"),
        "{refused}"
    );
    std::thread::sleep(STORM_TIME);
    rig.settled_head();

    // Three restarts, each through the supervisor's accounting: the
    // counter goes up, each waits its backoff, and the chain ends at the
    // refused fourth.
    let actions = rig.about("plugin.action", "restarter");
    assert_eq!(actions.len(), 3, "{actions:#?}");
    assert!(
        actions
            .iter()
            .all(|a| a["data"]["action"] == "restart" && a["data"]["ok"] == true),
        "{actions:#?}"
    );
    let attempts: Vec<u64> = crasher(&rig, "process.backoff")
        .iter()
        .map(|b| b["data"]["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3], "each restart backs off in the window");
    let counted: Vec<u64> = crasher(&rig, "process.starting")
        .iter()
        .map(|s| s["data"]["restarts"].as_u64().unwrap())
        .collect();
    assert_eq!(counted, [0, 1, 2, 3], "the counter is never reset");
    assert_eq!(crasher(&rig, "process.failed").len(), 4);
    let (status, process) = rig.api.get("/v1/processes/crasher");
    assert_eq!(status, 200, "{process}");
    assert_eq!(process["restarts"], 3, "{process}");
    assert_eq!(process["state"], "failed", "{process}");
    let reports = rig.about("plugin.actions_refused", "restarter");
    assert_eq!(reports.len(), 1, "{reports:#?}");
    rig.stop();
}

#[test]
fn restarts_a_plugin_asks_for_past_the_processs_restart_limit_end_in_gave_up() {
    // The plugin's rate allows every restart; the process's own limit of
    // two restarts is what stops it, as it stops a crash loop.
    let mut rig = start(
        &format!("{CRASHER}max_restarts = 2\nrestart_window = \"10m\"\n"),
        &[("restarter", restarter())],
    );
    let gave_up = rig
        .host
        .wait_for("process.gave_up", PATIENCE, |e| e["subject"] == "crasher")
        .unwrap();
    assert_eq!(gave_up["data"]["restarts"], 2, "{gave_up}");
    assert_eq!(gave_up["data"]["max_restarts"], 2, "{gave_up}");
    let refused = rig.wait_about("plugin.action", "restarter", |a| a["data"]["ok"] == false);
    let error = refused["data"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("restart limit"), "{refused}");
    std::thread::sleep(STORM_TIME);
    rig.settled_head();

    assert_eq!(crasher(&rig, "process.failed").len(), 3);
    assert_eq!(crasher(&rig, "process.gave_up").len(), 1);
    let mut actions = rig.about("plugin.action", "restarter");
    // In the order of the failures that asked for them: an action's
    // outcome is published when it is over, and an accepted restart is over
    // only once the next run has spawned, which may be after that run's
    // own failure asked for the refused one.
    actions.sort_by_key(|a| a["data"]["cause_sequence"].as_u64());
    let oks: Vec<bool> = actions
        .iter()
        .map(|a| a["data"]["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(oks, [true, true, false], "{actions:#?}");
    let (_, process) = rig.api.get("/v1/processes/crasher");
    assert_eq!(process["restarts"], 2, "{process}");
    assert_eq!(process["state"], "failed", "{process}");
    rig.stop();
}

#[test]
fn an_emit_of_five_megabytes_is_refused_with_a_report_naming_the_limit_and_the_host_keeps_serving()
{
    const BIG: usize = 5_000_000;
    let mut rig = start(
        "",
        &[(
            "big",
            format!(
                "{}{EMITS_TEST}[limits]\ndeadline_ms = 5000\n",
                reacting("test.big", &format!("emit-bytes:{BIG}"))
            ),
        )],
    );
    const TIMES: usize = 10;
    let causes: Vec<u64> = (0..TIMES)
        .map(|i| rig.publish("test.big", json!({ "i": i })))
        .collect();
    let last = *causes.last().unwrap();
    rig.wait_about("plugin.action", "big", |a| {
        a["causesequence"].as_u64() == Some(last)
    });

    let reports = rig.about("plugin.action", "big");
    assert_eq!(reports.len(), TIMES, "{reports:#?}");
    for (report, cause) in reports.iter().zip(&causes) {
        let data = &report["data"];
        assert_eq!(data["action"], "emit", "{report}");
        assert_eq!(data["target"], "test.hostile-big", "{report}");
        assert_eq!(data["ok"], false, "{report}");
        let error = data["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("max_event_bytes") && error.contains("1048576"),
            "the report names the limit: {report}"
        );
        assert_eq!(data["cause_sequence"].as_u64(), Some(*cause), "{report}");
        assert_eq!(report["causesequence"].as_u64(), Some(*cause), "{report}");
    }
    assert!(rig.host.events("test.hostile-big").is_empty());

    // The host and the plugin carry on.
    let (status, ready) = rig.api.get("/readyz");
    assert_eq!(status, 200, "{ready}");
    let ask = rig.publish("test.hostile", json!({}));
    rig.host
        .wait_for("test.hostile-done", PATIENCE, |e| {
            e["data"]["sequence"].as_u64() == Some(ask)
        })
        .unwrap();
    let failures: Vec<Value> = rig
        .about("plugin.>", "big")
        .into_iter()
        .filter(|e| e["type"] != "plugin.loaded" && e["type"] != "plugin.action")
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    rig.stop();
}

#[test]
fn a_lower_max_event_bytes_in_host_toml_is_the_limit_plugin_emits_are_held_to() {
    let mut rig = start(
        "[bus]\nmax_event_bytes = \"64KiB\"\n",
        &[(
            "big",
            format!("{}{EMITS_TEST}", reacting("test.big", "emit-bytes:100000")),
        )],
    );
    let cause = rig.publish("test.big", json!({}));
    let report = rig.wait_about("plugin.action", "big", |a| {
        a["data"]["cause_sequence"].as_u64() == Some(cause)
    });
    assert_eq!(report["data"]["ok"], false, "{report}");
    let error = report["data"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("65536"), "{report}");
    assert!(rig.host.events("test.hostile-big").is_empty());
    // An event under the limit goes through.
    let ask = rig.publish("test.hostile", json!({}));
    rig.host
        .wait_for("test.hostile-done", PATIENCE, |e| {
            e["data"]["sequence"].as_u64() == Some(ask)
        })
        .unwrap();
    rig.stop();
}

#[test]
fn a_plugin_granting_itself_the_root_folder_read_write_is_refused_at_load_naming_the_ceiling() {
    let mut rig = start(
        "",
        &[
            (
                "greedy",
                "[permissions]\ndirs = [{ host = \"/\", guest = \"/host\", read_only = false }]\n"
                    .to_string(),
            ),
            ("modest", EMITS_TEST.to_string()),
        ],
    );
    let failed = rig
        .host
        .wait_for("plugin.load_failed", PATIENCE, |e| e["subject"] == "greedy")
        .unwrap();
    let error = failed["data"]["error"].as_str().unwrap_or_default();
    for words in ["permissions.dirs[0].host", "allowed_dirs", "ceiling"] {
        assert!(error.contains(words), "{words:?} not in: {failed}");
    }
    let (status, body) = rig.api.get("/v1/plugins/greedy");
    assert_eq!(status, 404, "greedy must not be loaded: {body}");

    // The other plugin of the folder serves.
    let ask = rig.publish("test.hostile", json!({}));
    let done = rig
        .host
        .wait_for("test.hostile-done", PATIENCE, |e| {
            e["data"]["sequence"].as_u64() == Some(ask)
        })
        .unwrap();
    assert_eq!(done["source"], "plugin/modest");
    rig.stop();
}

/// Replaces `path` atomically, as an editor saving a file does.
fn write_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_reload_asking_for_more_grants_is_refused_and_the_running_version_keeps_answering() {
    let manifest = |react: &str, grants: &str| {
        format!(
            "name = \"grower\"\ncomponent = \"grower.wasm\"\n{}[permissions]\n{grants}",
            reacting("test.poke", react)
        )
    };
    let mut rig = start(
        "",
        &[(
            "grower",
            format!("{}{EMITS_TEST}", reacting("test.poke", "emit:test.poked")),
        )],
    );
    let poke = |rig: &mut Rig, ty: &str| {
        let seq = rig.publish("test.poke", json!({}));
        rig.host
            .wait_for(ty, PATIENCE, |e| e["data"]["cause"].as_u64() == Some(seq))
            .unwrap_or_else(|e| panic!("no {ty} answering #{seq}: {e:#}"))
    };
    poke(&mut rig, "test.poked");

    // The new version would emit `x.poked` and restart any process.
    write_atomically(
        &rig.plugins.join("grower/plugin.toml"),
        &manifest(
            "emit:x.poked",
            "emit = [\"test.>\", \"x.>\"]\nrestart = [\"*\"]\n",
        ),
    );
    let refused = rig
        .host
        .wait_for("plugin.reload_refused", PATIENCE, |e| {
            e["subject"] == "grower"
        })
        .unwrap();
    let error = refused["data"]["error"].as_str().unwrap_or_default();
    for grant in ["emit x.>", "restart *"] {
        assert!(error.contains(grant), "{grant:?} not named: {refused}");
    }
    assert!(
        !error.contains("emit test.>"),
        "only the new grants are named: {refused}"
    );

    // The running version answers, as it did.
    let answer = poke(&mut rig, "test.poked");
    assert!(sequence(&answer) > sequence(&refused));
    assert_eq!(answer["source"], "plugin/grower");
    assert!(rig.host.events("x.poked").is_empty());
    assert!(
        rig.about("plugin.reloaded", "grower").is_empty(),
        "the wider version must not be swapped in"
    );

    // An operator approves what the refusal named: now it is swapped in.
    let (status, body) = rig.api.post("/v1/plugins/grower/approve", &json!({}));
    assert_eq!(status, 200, "{body}");
    rig.wait_about("plugin.reloaded", "grower", |_| true);
    poke(&mut rig, "x.poked");
    rig.stop();
}

#[test]
fn emits_refused_by_the_rate_limit_are_counted_and_reported_at_most_once_a_second() {
    let rig = start(
        "[plugins.rate.flooder]\nemits_per_sec = 2\nemit_burst = 5\n",
        &[("flooder", EMITS_TEST.to_string())],
    );
    // Bursts of 50 emits for about two seconds: far past the rate.
    const BURSTS: u64 = 8;
    const EACH: u64 = 50;
    for _ in 0..BURSTS {
        rig.publish("test.hostile", json!({ "do": "actions", "n": EACH }));
        std::thread::sleep(Duration::from_millis(250));
    }
    let published = || {
        rig.host
            .events("test.hostile-flood")
            .into_iter()
            .filter(|e| e["source"] == "plugin/flooder")
            .count() as u64
    };
    let refused = || -> u64 {
        rig.about("plugin.actions_refused", "flooder")
            .iter()
            .map(|r| r["data"]["refused"]["rate_limited"].as_u64().unwrap_or(0))
            .sum()
    };
    // Every emit asked for is either published or counted as refused.
    let counted = eventually(PATIENCE, || published() + refused() == BURSTS * EACH);
    assert!(
        counted,
        "{} published + {} refused of {} asked",
        published(),
        refused(),
        BURSTS * EACH
    );
    assert!(
        (5..BURSTS * EACH / 4).contains(&published()),
        "{} published: the burst, then about two a second",
        published()
    );
    let reports = rig.about("plugin.actions_refused", "flooder");
    at_most_once_a_second(&reports);
    for report in &reports {
        let examples = report["data"]["examples"].as_array().unwrap();
        assert!((1..=5).contains(&examples.len()), "{report}");
        assert!(
            examples
                .iter()
                .all(|e| e.as_str().unwrap().contains("rate limit")),
            "{report}"
        );
    }
    rig.stop();
}
