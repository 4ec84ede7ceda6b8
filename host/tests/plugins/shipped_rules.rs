//! Tests of the shipped dependency rules and the batch check against their compiled components.
//!
//! The four rules of seed 003 (api-contract, database-schema,
//! configuration-dependency, security-compliance) are loaded from
//! `plugins/` with their shipped manifests. Each must find its seed example
//! and leave unrelated pairs alone; the one-call `check-batch` (WIT 0.2)
//! must agree with asking pair by pair, and a 0.1 rule (the kitchen-sink
//! fixture, built against `wit/v0.1`) must still be asked, pair by pair.
//! Asking by numbers (`task-memory`, what the coordinator does) must agree
//! with `check-batch`, whether the rule remembers, forgets, or lies.

use super::*;
use host::coordination::{Dependency, NumberedTask, SessionConfig, Sessions};
use host::plugins::PluginRef;

const RULES: [&str; 4] = [
    "api-contract-rule",
    "database-schema-rule",
    "configuration-dependency-rule",
    "security-compliance-rule",
];

fn task(id: &str, repository: &str, title: &str) -> Task {
    Task {
        id: id.into(),
        repository: repository.into(),
        title: title.into(),
        description: String::new(),
        keywords: vec![],
        agent: None,
    }
}

/// `tasks` numbered from `first`, as the coordinator numbers them.
fn numbered(tasks: &[Task], first: u32) -> Vec<NumberedTask> {
    (first..)
        .zip(tasks)
        .map(|(number, task)| NumberedTask::new(number, task.clone()))
        .collect()
}

/// A harness with every shipped rule loaded under its shipped manifest.
async fn rules() -> Harness {
    let h = harness(&[], |_| {}).await;
    for name in RULES {
        let folder = h.plugins.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(shipped_component(name), folder.join("plugin.wasm")).unwrap();
        let shipped = std::fs::read_to_string(shipped_plugin(name).join("plugin.toml")).unwrap();
        // The shipped manifest, pointed at the copied component, no build.
        let manifest: String = shipped
            .lines()
            .map(|l| {
                if l.starts_with("component") {
                    "component = \"plugin.wasm\"".to_string()
                } else {
                    l.to_string()
                }
            })
            .take_while(|l| l != "[build]")
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(folder.join("plugin.toml"), manifest).unwrap();
    }
    h.host.reconcile().await.unwrap();
    for name in RULES {
        assert!(
            h.host.get(name).is_some(),
            "{name} did not load: {:?}",
            h.host.failures()
        );
    }
    h
}

/// Each rule's seed example, and one pair only another rule cares about.
fn seed_examples() -> Vec<(&'static str, &'static str, Task, Task)> {
    vec![
        (
            "api-contract-rule",
            "api-contract",
            task("a1", "backend-api", "Define user authentication API"),
            task("a2", "frontend-app", "Implement authentication endpoint"),
        ),
        (
            "database-schema-rule",
            "database-schema",
            task("d1", "db", "Add user preferences table"),
            task(
                "d2",
                "profile",
                "Read user preferences in the profile service model",
            ),
        ),
        (
            "configuration-dependency-rule",
            "configuration-dependency",
            task("c1", "web", "Add feature flag for new UI"),
            task("c2", "backend", "Implement feature flag checks in backend"),
        ),
        (
            "security-compliance-rule",
            "security-compliance",
            task("s1", "identity", "Implement JWT token refresh"),
            task("s2", "gateway", "Update authentication middleware"),
        ),
    ]
}

#[tokio::test]
async fn each_shipped_rule_finds_its_seed_example_with_a_reason_and_a_confidence() {
    let h = rules().await;
    for (name, relationship, a, b) in seed_examples() {
        let rule = h.host.get(name).unwrap();
        let found = rule.check_many(&b, std::slice::from_ref(&a)).await.unwrap();
        assert_eq!(found.len(), 1, "{name}: {found:#?}");
        let d = &found[0];
        assert_eq!(&*d.relationship, relationship, "{name}");
        assert_eq!((&*d.task, &*d.depends_on), (b.id.as_str(), a.id.as_str()));
        assert!(!d.reason.is_empty(), "{name} gave no reason");
        assert!(
            d.confidence > 0.3 && d.confidence < 1.0,
            "{name}: {}",
            d.confidence
        );
    }
}

#[tokio::test]
async fn a_rule_leaves_alone_the_pairs_outside_its_subject() {
    let h = rules().await;
    let css = task("x1", "web", "Fix the footer CSS colours");
    let docs = task("x2", "docs", "Proofread the release notes");
    for name in RULES {
        let rule = h.host.get(name).unwrap();
        let found = rule
            .check_many(&css, std::slice::from_ref(&docs))
            .await
            .unwrap();
        assert!(found.is_empty(), "{name}: {found:#?}");
    }
    // The database rule does not link two database tasks about different things.
    let rule = h.host.get("database-schema-rule").unwrap();
    let a = task("y1", "db", "Add invoices table");
    let b = task("y2", "search", "Migration for the search index");
    assert!(rule.check_many(&b, &[a]).await.unwrap().is_empty());
}

#[tokio::test]
async fn one_batch_call_finds_what_asking_pair_by_pair_finds() {
    let h = rules().await;
    // Every seed example's tasks, plus noise, as candidates of each new task.
    let candidates = backlog();
    let probes = &probes()[..2];
    for name in RULES {
        let rule = h.host.get(name).unwrap();
        for probe in probes {
            let batch = rule.check_many(probe, &candidates).await.unwrap();
            let pairs = rule.check_pairs(probe, &candidates).await.unwrap();
            assert_eq!(batch, pairs, "{name} on {}", probe.id);
        }
    }
    let any = |name: &str| h.host.get(name).unwrap();
    assert!(
        !any("security-compliance-rule")
            .check_many(&probes[0], &candidates)
            .await
            .unwrap()
            .is_empty(),
        "the probes must find something, or agreement proves nothing"
    );
}

#[tokio::test]
async fn a_backlog_larger_than_one_call_is_asked_in_chunks_that_keep_every_hit_in_place() {
    // 5,000 candidates: one call would be ~35 ms for a shipped rule and
    // grows with the backlog; the host splits it, and the hits must come
    // back naming the right tasks across chunk boundaries.
    let h = harness(&[("sink", fixture("kitchen-sink"))], |_| {}).await;
    let sink = h.host.get("sink").unwrap();
    let hits = [0usize, 1023, 1024, 2047, 4999];
    let others = same_title_tasks(5000, &hits);
    let a = task("a", "one", "Same title");
    let found = sink.check_many(&a, &others).await.unwrap();
    let ids: Vec<String> = found.iter().map(|d| d.depends_on.to_string()).collect();
    let expected: Vec<String> = hits.iter().map(|i| format!("t{i}")).collect();
    assert_eq!(ids, expected);

    let h = rules().await;
    let rule = h.host.get("api-contract-rule").unwrap();
    let a = task("a", "web", "Consume the billing REST API");
    let others: Vec<Task> = (0..3000)
        .map(|i| {
            let title = if i % 700 == 0 {
                format!("Expose the billing REST API endpoint v{i}")
            } else {
                format!("Refactor module {i}")
            };
            task(&format!("t{i}"), "api", &title)
        })
        .collect();
    let found = rule.check_many(&a, &others).await.unwrap();
    let ids: Vec<String> = found.iter().map(|d| d.depends_on.to_string()).collect();
    assert_eq!(ids, ["t0", "t700", "t1400", "t2100", "t2800"]);
    assert_eq!(found, rule.check_pairs(&a, &others).await.unwrap());
}

#[tokio::test]
async fn a_rule_built_against_wit_0_1_is_still_asked_pair_by_pair() {
    let h = harness(&[("sink", fixture("kitchen-sink"))], |_| {}).await;
    let sink = h.host.get("sink").unwrap();
    // kitchen-sink says two tasks with the same title depend.
    let a = task("a", "one", "Same title");
    let others = [task("b", "two", "Same title"), task("c", "two", "Other")];
    let found = sink.check_many(&a, &others).await.unwrap();
    assert_eq!(
        found.iter().map(|d| &*d.depends_on).collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(found, sink.check_pairs(&a, &others).await.unwrap());
}

#[tokio::test]
async fn a_registration_publishes_its_task_and_one_list_of_hits_per_rule_together_in_order() {
    let h = rules().await;
    let coordinator =
        Coordinator::new(h.bus.clone(), h.host.clone(), CoordinationConfig::default());
    for (_, _, a, _) in seed_examples() {
        coordinator.register(a, "test").await.unwrap();
    }
    let mut billing = task("a3", "billing", "Expose the user authentication API");
    billing.agent = Some("carol".into());
    coordinator.register(billing, "test").await.unwrap();
    let sessions = Sessions::new(
        h.bus.clone(),
        SessionConfig::default(),
        host::plugins::system_clock(),
    );
    let consumer = host::coordination::start_sessions(sessions.clone(), coordinator.clone());
    let mut probe = task(
        "p",
        "mobile",
        "Consume the user authentication API with a token",
    );
    probe.agent = Some("dave".into());
    let found = coordinator.register(probe, "test").await.unwrap();
    let registered = h
        .wait_event("task.registered", |e| e.subject.as_deref() == Some("p"))
        .await;
    let lists: Vec<_> = h
        .events("dependency.detected")
        .into_iter()
        .filter(|e| e.subject.as_deref() == Some("p"))
        .collect();
    // One event per rule that found something, its hits in rule order.
    let mut rules: Vec<&str> = found.iter().map(|d| &*d.rule).collect();
    rules.dedup();
    assert!(rules.len() >= 2, "{found:#?}");
    assert_eq!(lists.len(), rules.len(), "{lists:#?}");
    let mut listed = Vec::new();
    for (event, rule) in lists.iter().zip(&rules) {
        assert_eq!(event.data["rule"], *rule);
        assert_eq!(event.data["task"], "p");
        assert_eq!(
            (event.data["part"].as_u64(), event.data["parts"].as_u64()),
            (Some(1), Some(1))
        );
        // Hits grouped by what they share: relationship, reason, confidence.
        let mut count = 0;
        for group in event.data["groups"].as_array().unwrap() {
            for on in group["depends_on"].as_array().unwrap() {
                count += 1;
                listed.push(Dependency {
                    rule: (*rule).into(),
                    task: "p".into(),
                    depends_on: on.as_str().unwrap().into(),
                    relationship: group["relationship"].as_str().unwrap().into(),
                    reason: group["reason"].as_str().unwrap().into(),
                    confidence: group["confidence"].as_f64().unwrap() as f32,
                });
            }
        }
        assert_eq!(event.data["count"], count, "{event:#?}");
    }
    // The same dependencies `register` returned (the groups may order a
    // rule's hits differently).
    let key = |d: &Dependency| (d.rule.clone(), d.depends_on.clone());
    let mut returned = found.to_vec();
    returned.sort_by_key(key);
    let mut flattened = listed.clone();
    flattened.sort_by_key(key);
    assert_eq!(flattened, returned);
    // One commit: the lists follow the registration with nothing in between.
    let seqs: Vec<u64> = lists.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=lists.len() as u64)
        .map(|k| registered.sequence + k)
        .collect();
    assert_eq!(seqs, expected);
    // The sessions consumer opens one session per pair: `s<seq>` for a
    // list's first dependency, `s<seq>.<n>` for the n-th after.
    let api = lists
        .iter()
        .find(|e| e.data["rule"] == "api-contract-rule")
        .expect("api-contract found a1 and a3");
    let deps: Vec<&Dependency> = listed
        .iter()
        .filter(|d| &*d.rule == "api-contract-rule")
        .collect();
    assert_eq!(deps.len(), 2, "{api:#?}");
    let second = format!("s{}.1", api.sequence);
    h.wait_event("session.opened", |e| {
        e.subject.as_deref() == Some(second.as_str())
    })
    .await;
    consumer.abort();
    let first = sessions.get(&format!("s{}", api.sequence)).unwrap();
    let other = sessions.get(&second).unwrap();
    let pair =
        |s: &host::coordination::Session| s.tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(pair(&first), [&*deps[0].depends_on, "p"]);
    assert_eq!(pair(&other), [&*deps[1].depends_on, "p"]);
}

/// The example rule of `examples/rust/graphql-rule`, built when missing.
fn graphql_example() -> PathBuf {
    let dir = host_tests::workspace_root().join("examples/rust/graphql-rule");
    let wasm = dir.join("target/wasm32-wasip2/release/graphql_rule.wasm");
    if !wasm.is_file() {
        let status = std::process::Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&dir)
            .status()
            .expect("run cargo for the graphql example");
        assert!(status.success(), "building {} failed", dir.display());
    }
    wasm
}

#[tokio::test]
async fn the_graphql_example_links_a_schema_change_to_its_resolvers_only() {
    let h = harness(&[("graphql", graphql_example())], |_| {}).await;
    let rule = h.host.get("graphql").unwrap();
    let rule_info = rule.description().unwrap().rule.unwrap();
    assert!(rule_info.keywords.contains(&"resolver".to_string()));
    let schema = task("g1", "api", "Add Order type to the GraphQL schema");
    let candidates = [
        task("g2", "server", "Implement order resolvers"),
        task("g3", "server", "Add Invoice type to the GraphQL schema"),
        task("g4", "web", "Cache GraphQL query results"),
    ];
    let found = rule.check_many(&schema, &candidates).await.unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(&*found[0].depends_on, "g2");
    assert_eq!(&*found[0].relationship, "graphql-schema");
    assert!(found[0].reason.contains("order"), "{}", found[0].reason);
    assert_eq!(found, rule.check_pairs(&schema, &candidates).await.unwrap());
}

/// New tasks to ask about: one API consumer, one settings table, one about
/// credentials (each a hit for some shipped rule in [`backlog`]).
fn probes() -> [Task; 3] {
    [
        task(
            "p1",
            "mobile",
            "Consume the user authentication API with a token",
        ),
        task(
            "p2",
            "ops",
            "Add feature flag settings table for user preferences",
        ),
        task(
            "p3",
            "infra",
            "Rotate the database credentials and audit secrets",
        ),
    ]
}

/// The seed examples' tasks and noise: what the probes are asked against.
fn backlog() -> Vec<Task> {
    let mut candidates: Vec<Task> = seed_examples()
        .into_iter()
        .flat_map(|(_, _, a, b)| [a, b])
        .collect();
    for i in 0..40 {
        candidates.push(task(&format!("n{i}"), "noise", &format!("Tidy module {i}")));
    }
    candidates
}

#[tokio::test]
async fn every_shipped_rule_asked_by_numbers_in_groups_finds_what_check_batch_finds() {
    let h = rules().await;
    let candidates = backlog();
    let known = numbered(&candidates, 0);
    let probes = numbered(&probes(), 1000);
    let mut hits = 0;
    for name in RULES {
        let rule = h.host.get(name).unwrap();
        // Each answers grouped: one record per distinct reason.
        assert_eq!(rule.numbered_call(), Some("check-grouped"), "{name}");
        for probe in &probes {
            let batch = rule.check_many(&probe.task, &candidates).await.unwrap();
            // The first ask finds a rule that remembers nothing (a fresh
            // instance), the second one that remembers everything.
            for round in ["first", "second"] {
                let by_numbers = rule.check_numbered(probe, &known).await.unwrap();
                assert_eq!(by_numbers, batch, "{name}, {}, {round} ask", probe.task.id);
            }
            hits += batch.len();
        }
    }
    assert!(
        hits >= 4,
        "the probes must find something, or agreement proves nothing"
    );
    assert!(
        h.events("plugin.error").is_empty(),
        "{:#?}",
        h.events("plugin.error")
    );
}

/// The two remembering fixtures and the call each is asked by numbers
/// with: `forgetful-rule` answers `check-remembered` hit by hit,
/// `grouping-rule` (the same rule) `check-grouped` in groups.
const REMEMBERING: [(&str, &str); 2] = [
    ("forgetful-rule", "check-remembered"),
    ("grouping-rule", "check-grouped"),
];

/// A harness with the remembering `fixture` loaded, its memory behaving as
/// `memory` says.
async fn remembering(fixture_name: &str, memory: &str) -> (Harness, PluginRef) {
    let h = harness(&[], |_| {}).await;
    manifest_plugin(
        &h,
        "forgetful",
        &fixture(fixture_name),
        &format!("[config]\nmemory = \"{memory}\"\n"),
    );
    h.host.reconcile().await.unwrap();
    let rule = h.host.get("forgetful").expect("the rule loads");
    (h, rule)
}

/// `count` tasks `t0`, `t1`, ... in repository `two`, titled "Same title"
/// at the positions in `hits` and "Other" elsewhere: with a same-title
/// rule, the hits are known in advance wherever the host cuts its calls.
fn same_title_tasks(count: usize, hits: &[usize]) -> Vec<Task> {
    (0..count)
        .map(|i| {
            let title = if hits.contains(&i) {
                "Same title"
            } else {
                "Other"
            };
            task(&format!("t{i}"), "two", title)
        })
        .collect()
}

/// 3,000 candidates, three chunks of the host's calls, with the same title
/// as the probe on both sides of each chunk border.
fn same_title_backlog() -> (NumberedTask, Vec<NumberedTask>, Vec<String>) {
    let hits = [0usize, 1023, 1024, 2047, 2048, 2999];
    let others = same_title_tasks(3000, &hits);
    let probe = numbered(&[task("a", "one", "Same title")], 5000).remove(0);
    let expected = hits.iter().map(|i| format!("t{i}")).collect();
    (probe, numbered(&others, 0), expected)
}

fn depends_on(found: &[Dependency]) -> Vec<String> {
    found.iter().map(|d| d.depends_on.to_string()).collect()
}

#[tokio::test]
async fn a_rule_that_remembers_is_asked_by_numbers_across_chunks_without_complaint() {
    for (fixture_name, call) in REMEMBERING {
        let (h, rule) = remembering(fixture_name, "honest").await;
        assert_eq!(rule.numbered_call(), Some(call));
        let (probe, others, expected) = same_title_backlog();
        for _ in 0..2 {
            let found = rule.check_numbered(&probe, &others).await.unwrap();
            assert_eq!(depends_on(&found), expected, "{call}");
            let tasks: Vec<Task> = others.iter().map(|t| Task::clone(&t.task)).collect();
            assert_eq!(found, rule.check_many(&probe.task, &tasks).await.unwrap());
        }
        assert!(
            h.events("plugin.error").is_empty(),
            "{call}: {:#?}",
            h.events("plugin.error")
        );
    }
}

#[tokio::test]
async fn a_grouped_answer_shares_each_groups_text_among_its_hits() {
    let (_h, rule) = remembering("grouping-rule", "honest").await;
    let (probe, others, expected) = same_title_backlog();
    let found = rule.check_numbered(&probe, &others).await.unwrap();
    assert_eq!(depends_on(&found), expected);
    // Every hit has the same title, so each of the three calls (the
    // backlog is three chunks) answers one group: three reasons in all,
    // each shared by its call's two hits, not copied per hit.
    let mut reasons: Vec<*const u8> = found.iter().map(|d| d.reason.as_ptr()).collect();
    reasons.dedup();
    assert_eq!(reasons.len(), 3, "{found:#?}");
}

/// The remembering `fixture` with `memory`, asked by numbers about the
/// same-title backlog: its answer must be the expected hits, each once;
/// returns the text of the `plugin.error` it earned (the call it is asked
/// by numbers with).
async fn asked_by_numbers_and_reported(
    fixture_name: &str,
    call: &str,
    memory: &str,
) -> (Harness, PluginRef, String) {
    let (h, rule) = remembering(fixture_name, memory).await;
    let (probe, others, expected) = same_title_backlog();
    let found = rule.check_numbered(&probe, &others).await.unwrap();
    assert_eq!(depends_on(&found), expected, "{call}: {memory}");
    let error = h
        .wait_event("plugin.error", |e| e.data["call"] == call)
        .await;
    let text = error.data["error"].as_str().unwrap().to_string();
    (h, rule, text)
}

#[tokio::test]
async fn a_rule_that_forgets_or_lies_about_its_memory_is_asked_with_check_batch_and_reported() {
    for (fixture_name, call) in REMEMBERING {
        for memory in ["forgets", "liar"] {
            // One answer per call, each found once: no loop of handing over.
            let (_h, rule, error) = asked_by_numbers_and_reported(fixture_name, call, memory).await;
            assert!(
                error.contains(&format!(": {call} ")),
                "{call}, {memory}: {error}"
            );
            assert!(
                error.contains("in 3 of its calls"),
                "{call}, {memory}: {error}"
            );
            assert!(
                !rule.health().quarantined,
                "{call}, {memory}: not a failure"
            );
        }
    }
}

#[tokio::test]
async fn a_grouped_answer_naming_millions_out_of_range_keeps_the_hits_and_reports_a_count() {
    // Each of the three calls adds four million: the host counts them, and
    // keeps neither them nor a copy of the answer per candidate.
    let (_h, rule, error) =
        asked_by_numbers_and_reported("grouping-rule", "check-grouped", "flood").await;
    assert!(
        error.contains("named 12000000 candidates out of range or twice (first: 1024,"),
        "{error}"
    );
    assert!(!rule.health().quarantined, "{error}");
}

#[tokio::test]
async fn indices_a_remembering_rule_names_twice_or_out_of_range_are_dropped_and_reported() {
    for (fixture_name, call) in REMEMBERING {
        let (_h, _rule, error) =
            asked_by_numbers_and_reported(fixture_name, call, "out-of-range").await;
        assert!(error.contains(&format!(": {call} ")), "{call}: {error}");
        assert!(error.contains("out of range or twice"), "{call}: {error}");
    }
}
