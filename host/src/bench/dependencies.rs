//! Dependency detection: a host in-process (the [`Runtime`](crate::runtime::Runtime)
//! `host run` starts, on a file journal) registers 10,000 tasks over 20
//! repositories, a tenth of them about an API and one in a thousand about
//! settings; then rules are installed with their shipped manifests and
//! loaded; then more tasks are registered through the coordinator (what
//! `POST /v1/tasks` calls), each timed from `register` to its return:
//! candidate selection, the rules with candidates asked at once (by numbers:
//! the shipped rules remember tasks, `task-memory`), and one journal commit
//! for the registration and its hits.
//!
//! Three cases, in one run:
//! - dense: four copies of api-contract-rule and a new API task; the
//!   keyword index leaves ~1,000 candidates per rule, ~4,000 hits;
//! - sparse: the four shipped rules (api-contract, database-schema,
//!   configuration-dependency, security-compliance) and a new task about a
//!   feature flag: the index leaves the ~10 settings tasks for one rule and
//!   none for the other three;
//! - all-pairs: seed 003's detector, which asks every rule about the new
//!   task paired with every known task, one `check` call per pair, with no
//!   index (O(N) a registration, O(N²) over the registry's life).

use std::time::Instant;

use serde::Serialize;

use super::common::{Spread, start_runtime, stop_runtime};
use super::fixtures::{Fixtures, SHIPPED_RULES};
use crate::bus::{EventQuery, Pattern};
use crate::config::HostConfig;
use crate::coordination::{SESSIONS_CONSUMER, Task, registration_events, rule_keywords};
use crate::plugins::Kind;
use crate::runtime::Runtime;

/// Dependency detection for one new task against many.
#[derive(Debug, Serialize)]
pub struct DependencyReport {
    /// Tasks already registered.
    pub tasks: usize,
    /// Dependency-rule plugins loaded.
    pub rules: usize,
    /// Time to register one more API task (detection included; ~1,000
    /// candidates per rule), five times, ms.
    pub register_ms: Spread,
    /// The two registrations before those, right after the rules loaded:
    /// the rules remember no task yet, so each candidate's text is handed
    /// over once (the two new tasks' candidates cover every API task), ms.
    pub cold_register_ms: Vec<f64>,
    /// Dependencies the last dense registration found.
    pub found: usize,
    /// Time to register one more task about a feature flag with the four
    /// shipped rules (~10 candidates for one rule, none for the others), ms.
    pub sparse_ms: Spread,
    /// Dependencies the last sparse registration found.
    pub sparse_found: usize,
    /// The dense registration taken apart, phase by phase, through the
    /// coordinator's own functions: candidate selection for the four rules, ms.
    pub selection_ms: Spread,
    /// ... the four rules asked at once as `register` asks them (by
    /// numbers: `task-memory`), ms.
    pub remembered_calls_ms: Spread,
    /// ... the same four asked with every candidate's text (`check-batch`,
    /// what a rule without `task-memory` costs), ms.
    pub batch_calls_ms: Spread,
    /// ... building and committing the registration's events, ms.
    pub publish_ms: Spread,
    /// ... the JSON text of those events (the last sample), bytes.
    pub published_bytes: usize,
    /// Seed-style detection of one new API task: every rule, every known
    /// task, one `check` call per pair, ms (three samples).
    pub all_pairs_ms: Spread,
    /// Dependencies the last all-pairs detection found.
    pub all_pairs_found: usize,
}

const NOUNS: [&str; 10] = [
    "orders",
    "users",
    "billing",
    "search",
    "auth",
    "reports",
    "cart",
    "inventory",
    "shipping",
    "email",
];

/// What a benchmark task is about.
#[derive(Clone, Copy, PartialEq)]
enum Topic {
    Plain,
    Api,
    Settings,
}

fn task(i: usize, topic: Topic) -> Task {
    let noun = NOUNS[i % NOUNS.len()];
    Task {
        id: format!("t{i}"),
        repository: format!("repo{}", i % 20),
        title: match topic {
            Topic::Api => format!("Expose the {noun} REST API endpoint v{i}"),
            Topic::Settings => format!("Read the {noun} settings from the environment v{i}"),
            Topic::Plain => format!("Refactor the {noun} module part {i}"),
        },
        description: String::new(),
        keywords: Vec::new(),
        agent: None,
    }
}

/// The topic of backlog task `i`.
fn topic_of(i: usize) -> Topic {
    if i % 1000 == 5 {
        Topic::Settings
    } else if i.is_multiple_of(10) {
        Topic::Api
    } else {
        Topic::Plain
    }
}

/// Runs the section: `n` tasks, then `rules` rule plugins.
pub(crate) async fn measure(
    fixtures: &Fixtures,
    n: usize,
    rules: usize,
) -> anyhow::Result<DependencyReport> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let runtime = start_runtime(
        &plugins,
        &dir.path().join("state"),
        HostConfig::default(),
        false,
    )
    .await?;
    let result = async {
        // Rules are loaded after the backlog: registering 10,000 tasks
        // with rules would measure the backlog, not the new task.
        for i in 0..n {
            runtime
                .coordinator
                .register(task(i, topic_of(i)), "bench")
                .await?;
        }
        for r in 0..rules {
            fixtures.install_shipped("api-contract-rule", &plugins, &format!("rule{r}"))?;
        }
        runtime.plugins.reconcile().await?;
        let rule_refs = runtime.plugins.with_kind(Kind::DependencyRule);
        let loaded = rule_refs.len();
        anyhow::ensure!(
            loaded == rules,
            "{loaded} of {rules} copies of api-contract-rule loaded: {:?}",
            runtime.plugins.failures()
        );
        let mut next = n;
        let (mut cold, mut dense, mut found) = (Vec::new(), Vec::new(), 0);
        for k in 0..7 {
            settle(&runtime).await?;
            let t = task(next, Topic::Api);
            next += 1;
            let start = Instant::now();
            found = runtime.coordinator.register(t, "bench").await?.len();
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            if k < 2 { cold.push(ms) } else { dense.push(ms) }
        }
        // The dense registration phase by phase: where its time goes.
        let (mut selection, mut publish, mut published_bytes) = (Vec::new(), Vec::new(), 0);
        let (mut remembered_calls, mut batch_calls) = (Vec::new(), Vec::new());
        for k in 0..5 {
            settle(&runtime).await?;
            let new = runtime
                .coordinator
                .numbered(task(next + 10 + k, Topic::Api));
            let start = Instant::now();
            let keywords: Vec<_> = rule_refs.iter().map(rule_keywords).collect();
            let candidates = runtime.coordinator.candidates(&new.task, &keywords);
            selection.push(start.elapsed().as_secs_f64() * 1000.0);
            let start = Instant::now();
            futures::future::join_all(
                rule_refs
                    .iter()
                    .zip(&candidates)
                    .map(|(rule, candidates)| rule.check_many(&new.task, candidates)),
            )
            .await;
            batch_calls.push(start.elapsed().as_secs_f64() * 1000.0);
            let start = Instant::now();
            let answers = futures::future::join_all(
                rule_refs
                    .iter()
                    .zip(&candidates)
                    .map(|(rule, candidates)| rule.check_numbered(&new, candidates)),
            )
            .await;
            remembered_calls.push(start.elapsed().as_secs_f64() * 1000.0);
            let new = Task::clone(&new.task);
            let mut found = Vec::new();
            for answer in answers {
                found.extend(answer?);
            }
            let start = Instant::now();
            let events = registration_events(&new, "bench", &found, runtime.bus.max_event_bytes());
            published_bytes = events.iter().map(|e| e.data.json().len()).sum();
            runtime.bus.commit_all_async(events).await?;
            publish.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let everyone = runtime.coordinator.tasks();
        // The seed's way: no index, no batch, every known task, every rule.
        let (mut all_pairs, mut all_pairs_found) = (Vec::new(), 0);
        for k in 0..3 {
            let new = task(next + k, Topic::Api);
            let others: Vec<Task> = everyone
                .iter()
                .filter(|t| t.repository != new.repository)
                .cloned()
                .collect();
            let start = Instant::now();
            let mut hits = 0;
            // `check_pairs` makes its trips short enough for the call
            // deadline; the seed's detector made each call on its own anyway.
            for rule in &rule_refs {
                hits += rule.check_pairs(&new, &others).await?.len();
            }
            all_pairs.push(start.elapsed().as_secs_f64() * 1000.0);
            all_pairs_found = hits;
        }
        // The sparse case: the four shipped rules in place of the copies.
        for r in 0..rules {
            std::fs::remove_dir_all(plugins.join(format!("rule{r}")))?;
        }
        for name in SHIPPED_RULES {
            fixtures.install_shipped(name, &plugins, name)?;
        }
        runtime.plugins.reconcile().await?;
        let shipped = runtime.plugins.with_kind(Kind::DependencyRule).len();
        anyhow::ensure!(
            shipped == SHIPPED_RULES.len(),
            "{shipped} of the {} shipped rules loaded: {:?}",
            SHIPPED_RULES.len(),
            runtime.plugins.failures()
        );
        let (mut sparse, mut sparse_found) = (Vec::new(), 0);
        for _ in 0..5 {
            settle(&runtime).await?;
            let t = Task {
                title: format!("Toggle the cart feature flag from the environment v{next}"),
                ..task(next, Topic::Plain)
            };
            next += 1;
            let start = Instant::now();
            sparse_found = runtime.coordinator.register(t, "bench").await?.len();
            sparse.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(DependencyReport {
            tasks: n,
            rules: loaded,
            cold_register_ms: cold,
            register_ms: Spread::of(dense),
            found,
            sparse_ms: Spread::of(sparse),
            sparse_found,
            selection_ms: Spread::of(selection),
            remembered_calls_ms: Spread::of(remembered_calls),
            batch_calls_ms: Spread::of(batch_calls),
            publish_ms: Spread::of(publish),
            published_bytes,
            all_pairs_ms: Spread::of(all_pairs),
            all_pairs_found,
        })
    }
    .await;
    stop_runtime(runtime).await?;
    result
}

/// Waits until the sessions' consumer has read every event published so
/// far, so one sample's hits (each opens a session) are not handled on the
/// two cores while the next sample is timed.
async fn settle(runtime: &Runtime) -> anyhow::Result<()> {
    runtime.bus.flush_async().await?;
    let unread = || -> anyhow::Result<bool> {
        let query = EventQuery {
            types: vec![Pattern::parse("dependency.detected")?],
            after_sequence: runtime.bus.load_cursor(SESSIONS_CONSUMER),
            limit: Some(1),
            ..EventQuery::default()
        };
        Ok(!runtime.bus.query(&query)?.is_empty())
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while unread()? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the sessions' consumer did not catch up with the journal within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // What the consumer published in turn (a `session.opened` per pair)
    // is committed too, so the writer is not busy with it either.
    runtime.bus.flush_async().await?;
    Ok(())
}

/// Prints the section.
pub(crate) fn print(d: &DependencyReport) {
    println!(
        "dependency check of 1 new task against {} with {} rules (asked by numbers, one commit):",
        d.tasks, d.rules
    );
    println!(
        "  dense (~1,000 candidates per rule): median {:.2} ms, max {:.2} ms ({} found); the first two after the rules loaded (every task's text handed over once) {}",
        d.register_ms.median,
        d.register_ms.max,
        d.found,
        d.cold_register_ms
            .iter()
            .map(|ms| format!("{ms:.2} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  sparse (the four shipped rules, ~10 candidates in all): median {:.3} ms, max {:.3} ms ({} found)",
        d.sparse_ms.median, d.sparse_ms.max, d.sparse_found
    );
    println!(
        "  dense, phase by phase: candidate selection {:.2} ms, rule calls {:.2} ms (by numbers; {:.2} ms with check-batch), events committed {:.2} ms ({} KB of JSON) (medians)",
        d.selection_ms.median,
        d.remembered_calls_ms.median,
        d.batch_calls_ms.median,
        d.publish_ms.median,
        d.published_bytes.div_ceil(1000)
    );
    println!(
        "  seed's all-pairs (every task, one check per pair, no index): median {:.1} ms ({} found)",
        d.all_pairs_ms.median, d.all_pairs_found
    );
}
