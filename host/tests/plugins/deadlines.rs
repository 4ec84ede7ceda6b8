//! Guests blocked outside wasm code (issue 6): in a WASI sleep or `poll`,
//! opening a FIFO nobody writes, in `handle`, `tick` or while loading. Each
//! is cut off at its deadline like a compute loop, a fresh instance serves
//! the next call, quarantine follows repeats, and the host and the other
//! plugins carry on.
//!
//! The guests ask to block for 30 s; the bounds here only tell "cut off"
//! from "ran to the end". How close to the deadline the cut comes is
//! measured by `host bench`, not asserted here.

use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Instant;

use super::*;

/// Far beyond any deadline here, far below the 30 s the guests ask for.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(10);

/// A `hostile` plugin folder `name` with `extra` manifest lines.
pub(crate) fn hostile(plugins: &Path, name: &str, extra: &str) {
    let folder = plugins.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("plugin.toml"),
        format!("component = {:?}\n{extra}", fixture("hostile")),
    )
    .unwrap();
}

/// A folder holding a FIFO `fifo`, and the manifest lines granting it as
/// `/data`.
fn fifo_folder(root: &Path) -> (PathBuf, String) {
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fifo = data.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let grant = format!("[permissions]\ndirs = [{{ host = {data:?}, guest = \"/data\" }}]\n");
    (fifo, grant)
}

/// Let every thread blocked opening `fifo` for reading through: a writer
/// that opens and closes it.
fn release(fifo: &Path) {
    for _ in 0..20 {
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(fifo);
        if opened.is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Harness {
    /// The next action request from `plugin`, skipping other plugins'.
    async fn next_from(&mut self, plugin: &str) -> ActionRequest {
        loop {
            let request = self.next_action().await;
            if request.plugin == plugin {
                return request;
            }
        }
    }

    fn plugin(&self, name: &str) -> host::plugins::PluginRef {
        [
            Kind::EventHandler,
            Kind::StatusMapper,
            Kind::DependencyRule,
            Kind::BackgroundAgent,
        ]
        .into_iter()
        .flat_map(|k| self.host.with_kind(k))
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no plugin {name}"))
    }
}

/// How long after `event` the `plugin.failed` caused by it was recorded.
fn took(event: &host::bus::Event, failed: &host::bus::Event) -> Duration {
    (failed.time - event.time).to_std().unwrap_or_default()
}

#[tokio::test]
async fn a_plugin_blocked_in_a_wasi_sleep_or_poll_is_cut_off_at_its_deadline_then_quarantined() {
    let mut h = harness(&[("echo", fixture("echo-v1"))], |c| {
        c.limits.deadline = Duration::from_millis(100);
    })
    .await;
    hostile(&h.plugins, "hostile", "");
    h.host.reconcile().await.unwrap();

    let blocked = h.publish("test.hostile", json!({ "do": "block", "with": "sleep" }));
    let ping = h.publish("test.ping", json!({}));
    assert_eq!(
        h.next_from("echo").await.cause.map(|c| c.sequence),
        Some(ping)
    );
    let failed = h
        .wait_event("plugin.failed", |e| e.data["cause_sequence"] == blocked)
        .await;
    assert_eq!(failed.data["failure"], "deadline", "{failed:#?}");
    assert_eq!(failed.data["call"], "handle");
    let blocked_event = &h.events("test.hostile")[0];
    assert!(took(blocked_event, &failed) < CUT_OFF_WITHIN);

    // A fresh instance answers the next event.
    let fine = h.publish("test.hostile", json!({}));
    let (ty, data) = emitted(&h.next_from("hostile").await).remove(0);
    assert_eq!(
        (ty.as_str(), data["sequence"].as_u64()),
        ("test.hostile-done", Some(fine))
    );

    // `poll` on a clock is cut off the same way; three in a row quarantine.
    for _ in 0..3 {
        h.publish("test.hostile", json!({ "do": "block", "with": "poll" }));
    }
    let quarantined = h
        .wait_event("plugin.quarantined", |e| e.data["plugin"] == "hostile")
        .await;
    assert!(
        quarantined.data["last_error"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{quarantined:#?}"
    );
    let failures = h.events("plugin.failed");
    assert_eq!(failures.len(), 4, "{failures:#?}");
    assert!(failures.iter().all(|f| f.data["failure"] == "deadline"));
    let ping = h.publish("test.ping", json!({}));
    assert_eq!(
        h.next_from("echo").await.cause.map(|c| c.sequence),
        Some(ping)
    );
}

#[tokio::test]
async fn a_plugin_blocked_opening_a_fifo_is_given_up_at_its_deadline_and_a_fresh_thread_serves_it()
{
    let root = tempfile::tempdir().unwrap();
    let (fifo, grant) = fifo_folder(root.path());
    let mut h = harness(&[("echo", fixture("echo-v1"))], |c| {
        c.limits.deadline = Duration::from_millis(100);
    })
    .await;
    hostile(&h.plugins, "hostile", &grant);
    h.host.reconcile().await.unwrap();

    let blocked = h.publish("test.hostile", json!({ "do": "block", "with": "open" }));
    let failed = h
        .wait_event("plugin.failed", |e| e.data["cause_sequence"] == blocked)
        .await;
    assert_eq!(failed.data["failure"], "deadline", "{failed:#?}");
    assert!(took(&h.events("test.hostile")[0], &failed) < CUT_OFF_WITHIN);

    // The old thread is still stuck in the host; a new one took over.
    let fine = h.publish("test.hostile", json!({}));
    let (_, data) = emitted(&h.next_from("hostile").await).remove(0);
    assert_eq!(data["sequence"].as_u64(), Some(fine));
    let health = h.plugin("hostile").health();
    assert_eq!(health.abandoned_threads, 1, "{health:?}");

    for _ in 0..3 {
        h.publish("test.hostile", json!({ "do": "block", "with": "open" }));
    }
    h.wait_event("plugin.quarantined", |e| e.data["plugin"] == "hostile")
        .await;
    let ping = h.publish("test.ping", json!({}));
    assert_eq!(
        h.next_from("echo").await.cause.map(|c| c.sequence),
        Some(ping)
    );
    release(&fifo);
}

#[tokio::test]
async fn a_batch_with_a_stuck_item_returns_what_was_done_and_retries_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let (fifo, grant) = fifo_folder(root.path());
    let mut h = harness(&[], |c| {
        c.limits.deadline = Duration::from_millis(100);
    })
    .await;
    hostile(&h.plugins, "hostile", &grant);
    h.host.reconcile().await.unwrap();
    // Published in one go: the dispatcher hands them over as one batch.
    let published = h
        .bus
        .publish_all(
            [
                json!({}),
                json!({}),
                json!({ "do": "block", "with": "open" }),
                json!({}),
                json!({}),
            ]
            .into_iter()
            .map(|data| NewEvent::new("test", "test.hostile", data))
            .collect(),
        )
        .unwrap();
    let sequences: Vec<u64> = published.iter().map(|e| e.sequence).collect();
    let mut answered = Vec::new();
    while answered.len() < 4 {
        for (_, data) in emitted(&h.next_from("hostile").await) {
            answered.push(data["sequence"].as_u64().unwrap());
        }
    }
    assert_eq!(
        answered,
        [sequences[0], sequences[1], sequences[3], sequences[4]],
        "every item but the stuck one answered, in order"
    );
    let failed = h.wait_event("plugin.failed", |_| true).await;
    assert_eq!(failed.data["cause_sequence"], sequences[2]);
    assert_eq!(failed.data["failure"], "deadline");
    let health = h.plugin("hostile").health();
    assert_eq!(
        (
            health.calls,
            health.failures,
            health.skipped_while_quarantined
        ),
        (5, 1, 0),
        "{health:?}"
    );
    release(&fifo);
}

#[tokio::test]
async fn plugins_blocked_while_loading_fail_to_load_without_holding_up_the_others() {
    let root = tempfile::tempdir().unwrap();
    let (fifo, grant) = fifo_folder(root.path());
    let started = Instant::now();
    let mut h = harness_prepared(
        &[("echo", fixture("echo-v1"))],
        |plugins| {
            for call in ["subscriptions", "kinds", "describe"] {
                hostile(
                    plugins,
                    &format!("in-{call}"),
                    &format!("[config]\nsleep_in = \"{call}\"\n"),
                );
            }
            hostile(
                plugins,
                "in-describe-fifo",
                &format!("[config]\nsleep_in = \"describe\"\nblock_with = \"open\"\n{grant}"),
            );
        },
        |c| c.limits.deadline = Duration::from_millis(100),
    )
    .await;
    assert!(
        started.elapsed() < CUT_OFF_WITHIN,
        "{:?}",
        started.elapsed()
    );
    let names: Vec<String> = h.host.list().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["echo"]);
    let failed = h.events("plugin.load_failed");
    assert_eq!(failed.len(), 4, "{failed:#?}");
    for event in &failed {
        let error = event.data["error"].as_str().unwrap();
        assert!(error.contains("deadline"), "{error}");
    }
    let ping = h.publish("test.ping", json!({}));
    assert_eq!(
        h.next_from("echo").await.cause.map(|c| c.sequence),
        Some(ping)
    );
    release(&fifo);
}

#[tokio::test]
async fn an_agent_sleeping_in_tick_fails_that_tick_at_its_deadline() {
    let h = harness_prepared(
        &[],
        |plugins| hostile(plugins, "sleepy", "[config]\nsleep_in = \"tick\"\n"),
        |c| c.limits.deadline = Duration::from_millis(100),
    )
    .await;
    let (tx, _rx) = mpsc::channel(16);
    let agents = host::agents::Scheduler::start(h.host.clone(), h.bus.clone(), tx);
    let failed = h.wait_event("plugin.failed", |_| true).await;
    assert_eq!(
        (
            failed.data["call"].as_str(),
            failed.data["failure"].as_str()
        ),
        (Some("tick"), Some("deadline")),
        "{failed:#?}"
    );
    h.wait_event("agent.error", |_| true).await;
    agents.shutdown().await;
}

#[tokio::test]
async fn the_plugin_host_shuts_down_promptly_while_a_guest_is_stuck_in_a_call() {
    let root = tempfile::tempdir().unwrap();
    let (fifo, grant) = fifo_folder(root.path());
    // A deadline long enough that nothing cuts the call off during the test.
    let h = harness(&[], |c| c.limits.deadline = Duration::from_secs(60)).await;
    hostile(&h.plugins, "hostile", &grant);
    h.host.reconcile().await.unwrap();
    h.publish("test.hostile", json!({ "do": "block", "with": "open" }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        h.events("plugin.failed").is_empty(),
        "the call is still stuck"
    );
    let started = Instant::now();
    timeout(CUT_OFF_WITHIN, h.host.shutdown())
        .await
        .expect("shutdown returned while the guest was stuck");
    assert!(started.elapsed() < CUT_OFF_WITHIN);
    release(&fifo);
}
