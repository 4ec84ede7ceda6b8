//! Tests of the session judge and planner plugins against their compiled components.
//!
//! The judge reads `session.message` and answers `session.judged`; the
//! planner reads `session.opened` and answers `session.plan`. Each is fed
//! through a real bus and read from the action channel; the last test runs
//! the whole loop in-process: the coordination room's sessions and their
//! consumer, the judge deciding, and the room counting its verdicts.

use super::*;

use host::coordination::{MessageKind, SessionConfig, SessionKind, SessionStatus, Sessions};

/// A harness with the shipped plugin `name` loaded (default config).
async fn with_plugin(name: &str) -> Harness {
    let h = harness(&[], |_| {}).await;
    manifest_plugin(&h, name, &shipped_component(name), "");
    h.host.reconcile().await.unwrap();
    assert!(h.host.get(name).is_some(), "{name} did not load");
    h
}

fn message(session: &str, id: u32, author: &str, kind: &str, text: &str) -> Value {
    json!({
        "session": session,
        "message": { "id": id, "author": author, "kind": kind, "text": text,
                     "at": "2026-01-01T00:00:00Z", "verdict": null },
        "participants": ["alice", "bob"],
        "plan": null,
    })
}

/// The verdicts of every emit up to and including the one on `last`.
async fn verdicts_until(h: &mut Harness, last: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    loop {
        for (ty, data) in emitted(&h.next_action().await) {
            assert_eq!(ty, "session.judged");
            let id = data["message"].as_u64().unwrap() as u32;
            out.push((id, data["verdict"].as_str().unwrap().to_string()));
            if id == last {
                return out;
            }
        }
    }
}

#[tokio::test]
async fn the_judge_reads_agreement_objection_and_neither_and_skips_the_planner() {
    let mut h = with_plugin("session-judge").await;
    let cases = [
        (
            1,
            "alice",
            "proposal",
            "Sounds good, API first",
            "agreement",
        ),
        (
            2,
            "bob",
            "proposal",
            "I don't agree with that order",
            "disagreement",
        ),
        (
            3,
            "planner",
            "proposal",
            "COORDINATION PLAN: agree on it",
            "",
        ),
        (4, "bob", "question", "Do you agree?", "neutral"),
        (
            5,
            "bob",
            "concern",
            "looks good but the auth is missing",
            "disagreement",
        ),
        (6, "alice", "agreement", "ok", "agreement"),
        (
            7,
            "alice",
            "proposal",
            "a disagreeable agreement-free text",
            "neutral",
        ),
    ];
    for (id, author, kind, text, _) in cases {
        h.publish("session.message", message("s1", id, author, kind, text));
    }
    let got = verdicts_until(&mut h, 7).await;
    let want: Vec<(u32, String)> = cases
        .iter()
        .filter(|c| !c.4.is_empty())
        .map(|c| (c.0, c.4.to_string()))
        .collect();
    assert_eq!(got, want, "the planner's message (3) is not judged");
}

#[tokio::test]
async fn the_judge_errs_on_a_message_without_an_id_and_goes_on_with_the_next() {
    let mut h = with_plugin("session-judge").await;
    h.publish("session.message", json!({ "session": "s1", "message": {} }));
    h.publish("session.message", json!("not an object"));
    h.publish(
        "session.message",
        message("s1", 9, "bob", "proposal", &"agreed ".repeat(2000)),
    );
    assert_eq!(verdicts_until(&mut h, 9).await, [(9, "agreement".into())]);
    h.wait_event("plugin.error", |_| true).await;
}

#[tokio::test]
async fn the_judge_takes_its_phrases_from_config() {
    let mut h = harness(&[], |_| {}).await;
    manifest_plugin(
        &h,
        "session-judge",
        &shipped_component("session-judge"),
        "[config]\nagree_phrases = \"d'accord\"\nobject_phrases = \"non\"\n",
    );
    h.host.reconcile().await.unwrap();
    h.publish(
        "session.message",
        message("s1", 1, "a", "proposal", "agreed"),
    );
    h.publish(
        "session.message",
        message("s1", 2, "a", "proposal", "D'accord !"),
    );
    h.publish(
        "session.message",
        message("s1", 3, "a", "proposal", "non, merci"),
    );
    let got = verdicts_until(&mut h, 3).await;
    let words: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(words, ["neutral", "agreement", "disagreement"]);
}

fn opened(id: &str, relationship: &str) -> Value {
    json!({
        "id": id,
        "kind": "dependency",
        "status": "active",
        "participants": ["agent-1", "frontend"],
        "tasks": [
            { "id": "login-api", "repository": "backend", "title": "Add /login endpoint",
              "description": "", "keywords": ["api"], "agent": "agent-1" },
            { "id": "login-ui", "repository": "frontend", "title": "Login form calls /login",
              "description": "", "keywords": ["api"], "agent": null },
        ],
        "dependency": { "rule": "api-contract-rule", "task": "login-ui", "depends_on": "login-api",
                        "relationship": relationship, "reason": "both touch /login", "confidence": 0.9 },
        "messages": [], "agreements": [],
        "created_at": "2026-01-01T00:00:00Z", "last_activity": "2026-01-01T00:00:00Z",
    })
}

#[tokio::test]
async fn the_planner_writes_the_five_points_from_the_rule_the_tasks_and_their_repositories() {
    let mut h = with_plugin("session-planner").await;
    h.publish("session.opened", opened("s7", "api-contract"));
    let (ty, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(ty, "session.plan");
    assert_eq!(data["session"], "s7");
    let plan = &data["plan"];
    for key in [
        "sequence",
        "share",
        "coordination_points",
        "conflicts",
        "success_criteria",
    ] {
        assert!(
            plan[key].as_array().is_some_and(|a| !a.is_empty()),
            "{key} empty: {plan:#}"
        );
    }
    let first = plan["sequence"][0].as_str().unwrap();
    assert!(first.contains("backend/login-api"), "{first}");
    assert!(plan["share"][0].as_str().unwrap().starts_with("agent-1"));
    // A task without an agent is represented by its repository.
    assert!(plan["share"][1].as_str().unwrap().starts_with("frontend"));
    assert!(plan["conflicts"][0].as_str().unwrap().contains("API"));
    let text = data["text"].as_str().unwrap();
    for section in [
        "1. SEQUENCE",
        "2. INFORMATION SHARING",
        "3. COORDINATION POINTS",
        "4. POTENTIAL CONFLICTS",
        "5. SUCCESS CRITERIA",
    ] {
        assert!(text.contains(section), "{section} missing: {text}");
    }
}

#[tokio::test]
async fn the_planner_fits_the_plan_to_the_relationship_and_ignores_a_session_of_one_task() {
    let mut h = with_plugin("session-planner").await;
    let mut lonely = opened("s1", "api-contract");
    lonely["tasks"].as_array_mut().unwrap().truncate(1);
    h.publish("session.opened", lonely);
    h.publish("session.opened", opened("s2", "database-schema"));
    let (_, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(data["session"], "s2", "no plan for a session of one task");
    let conflicts = data["plan"]["conflicts"].to_string();
    assert!(conflicts.contains("Migrations"), "{conflicts}");
}

/// Publishes what a plugin decided as the executor would (source
/// `plugin/NAME`, caused by what it handled).
fn perform(h: &Harness, request: &ActionRequest) {
    for (ty, data) in emitted(request) {
        let mut e = NewEvent::new(format!("plugin/{}", request.plugin), ty, data);
        if let Some(cause) = &request.cause {
            e = e.with_cause(cause.sequence, cause.depth + 1);
        }
        h.bus.publish(e).unwrap();
    }
}

fn task(id: &str, repository: &str, agent: &str) -> Task {
    Task {
        id: id.into(),
        repository: repository.into(),
        title: format!("{id} work"),
        description: String::new(),
        keywords: vec![],
        agent: Some(agent.into()),
    }
}

#[tokio::test]
async fn a_session_resolves_when_the_judge_reads_agreement_and_the_planner_posts_its_plan() {
    let mut h = harness(&[], |_| {}).await;
    for name in ["session-judge", "session-planner"] {
        manifest_plugin(&h, name, &shipped_component(name), "");
    }
    h.host.reconcile().await.unwrap();
    let coordinator =
        Coordinator::new(h.bus.clone(), h.host.clone(), CoordinationConfig::default());
    let sessions = Sessions::new(
        h.bus.clone(),
        SessionConfig::default(),
        host::plugins::system_clock(),
    );
    let consumer = host::coordination::start_sessions(sessions.clone(), coordinator);
    let s = sessions
        .open(
            SessionKind::Dependency,
            vec![
                task("api", "backend", "alice"),
                task("ui", "frontend", "bob"),
            ],
            None,
            None,
        )
        .unwrap();
    // The planner answers session.opened.
    let plan = h.next_action().await;
    assert_eq!(plan.plugin, "session-planner");
    perform(&h, &plan);
    // Free text, no explicit kind: only the judge can make it count.
    sessions
        .post(&s.id, "bob", MessageKind::Proposal, "Sounds good to me")
        .unwrap();
    let mut status = SessionStatus::Active;
    for _ in 0..600 {
        while let Ok(request) = h.actions.try_recv() {
            perform(&h, &request);
        }
        status = sessions.get(&s.id).unwrap().status;
        if status != SessionStatus::Active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    consumer.abort();
    let s = sessions.get(&s.id).unwrap();
    assert_eq!(status, SessionStatus::Resolved, "{s:#?}");
    assert_eq!(s.agreements, ["bob"]);
    assert!(s.plan.is_some(), "the plan is kept on the session");
    let planner = s.messages.iter().find(|m| m.author == "planner");
    assert!(
        planner.is_some_and(|m| m.text.contains("SUCCESS CRITERIA")),
        "{s:#?}"
    );
    assert_eq!(h.events("session.resolved").len(), 1);
    assert_eq!(h.events("session.closed").len(), 1);
}
