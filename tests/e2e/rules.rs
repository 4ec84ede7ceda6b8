//! Seed 003's dependency rules on the real binary.
//!
//! The four shipped rules are installed with their shipped manifests; tasks
//! come from `host.toml` (`[[task]]`) and through the API (`POST /v1/tasks`)
//! in different repositories; each seed example must end in a
//! `dependency.detected` event's list with the right relationship, listed by
//! `GET /v1/dependencies`, and a pair in the same repository must not.

use std::time::Duration;

use host_tests::{RunningHost, install_shipped_plugin};
use serde_json::{Value, json};

const RULES: [&str; 4] = [
    "api-contract-rule",
    "database-schema-rule",
    "configuration-dependency-rule",
    "security-compliance-rule",
];

#[test]
fn tasks_from_config_and_the_api_in_different_repositories_are_linked_by_the_right_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for rule in RULES {
        install_shipped_plugin(rule, &plugins);
    }
    // The first task of each seed example comes from the config file.
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        r#"
[[task]]
id = "define-auth-api"
repository = "backend-api"
title = "Define user authentication API"
description = "Create OpenAPI spec for user auth endpoints"

[[task]]
id = "preferences-table"
repository = "db"
title = "Add user preferences table"

[[task]]
id = "ui-flag"
repository = "web"
title = "Add feature flag for new UI"

[[task]]
id = "jwt-refresh"
repository = "identity"
title = "Implement JWT token refresh"
"#,
    )
    .unwrap();
    let mut host = RunningHost::start(
        &plugins,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    let api = host.api();
    // The second of each pair arrives through the API.
    let second = [
        (
            "auth-endpoint",
            "frontend-app",
            "Implement authentication endpoint",
            "define-auth-api",
            "api-contract",
        ),
        (
            "preferences-reader",
            "profile",
            "Read user preferences in the profile service model",
            "preferences-table",
            "database-schema",
        ),
        (
            "backend-flag",
            "backend",
            "Implement feature flag checks in backend",
            "ui-flag",
            "configuration-dependency",
        ),
        (
            "auth-middleware",
            "gateway",
            "Update authentication middleware",
            "jwt-refresh",
            "security-compliance",
        ),
    ];
    for (id, repository, title, _, _) in second {
        let (status, body) = api.post(
            "/v1/tasks",
            &json!({ "id": id, "repository": repository, "title": title }),
        );
        assert_eq!(status, 201, "{body}");
    }
    for (id, _, _, depends_on, relationship) in second {
        // One event per rule that found something, its hits listed.
        let the_pair =
            |d: &Value| d["depends_on"] == depends_on && d["relationship"] == relationship;
        let event = host
            .wait_for("dependency.detected", Duration::from_secs(60), |e| {
                e["subject"] == id && hits(e).iter().any(the_pair)
            })
            .unwrap();
        let found = hits(&event).into_iter().find(the_pair).unwrap();
        let confidence = found["confidence"].as_f64().unwrap();
        assert!(confidence > 0.3 && confidence < 1.0, "{event}");
        assert!(!found["reason"].as_str().unwrap().is_empty(), "{event}");
    }
    // The listing agrees with the events.
    let (_, deps) = api.get("/v1/dependencies");
    let listed: Vec<(String, String)> = deps
        .as_array()
        .unwrap()
        .iter()
        .map(|d: &Value| {
            (
                d["task"].as_str().unwrap().to_owned(),
                d["relationship"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (id, _, _, _, relationship) in second {
        assert!(
            listed.contains(&(id.to_owned(), relationship.to_owned())),
            "{id}/{relationship} not listed: {deps}"
        );
    }
    // Same repository: skipped by default, whatever the rules would say.
    let (status, body) = api.post(
        "/v1/tasks",
        &json!({ "id": "same-repo", "repository": "identity", "title": "Rotate JWT token signing keys" }),
    );
    assert_eq!(status, 201, "{body}");
    host.wait_for("task.registered", Duration::from_secs(30), |e| {
        e["subject"] == "same-repo"
    })
    .unwrap();
    let same: Vec<Value> = host
        .events("dependency.detected")
        .into_iter()
        .filter(|e| {
            e["subject"] == "same-repo" && hits(e).iter().any(|d| d["depends_on"] == "jwt-refresh")
        })
        .collect();
    assert!(same.is_empty(), "{same:#?}");
    host.terminate().unwrap();
}

/// The dependencies a `dependency.detected` event lists, one object per
/// hit (`depends_on`, `relationship`, `reason`, `confidence`): the event
/// groups hits sharing relationship, reason and confidence.
pub(crate) fn hits(event: &Value) -> Vec<Value> {
    let mut hits = Vec::new();
    for group in event["data"]["groups"].as_array().into_iter().flatten() {
        for on in group["depends_on"].as_array().into_iter().flatten() {
            let mut hit = group.clone();
            hit["depends_on"] = on.clone();
            hits.push(hit);
        }
    }
    hits
}
