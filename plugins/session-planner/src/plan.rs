//! The plan itself, free of host calls so it runs under `cargo test`
//! natively: seed 003's five points, filled from the relationship the rule
//! found, the two tasks, their repositories and their owners.

use serde_json::{Value, json};

/// One task as the plan needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRef {
    /// Task id.
    pub id: String,
    /// Its repository.
    pub repository: String,
    /// Its title.
    pub title: String,
    /// Who works on it: its agent, else its repository.
    pub owner: String,
}

impl TaskRef {
    /// Reads one task of `session.opened`'s `tasks`.
    pub fn from_json(t: &Value) -> TaskRef {
        let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
        let owner = t["agent"]
            .as_str()
            .filter(|a| !a.trim().is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| s("repository"));
        TaskRef {
            id: s("id"),
            repository: s("repository"),
            title: s("title"),
            owner,
        }
    }

    fn name(&self) -> String {
        format!(
            "{}/{} \"{}\" ({})",
            self.repository, self.id, self.title, self.owner
        )
    }
}

/// What the plan is about: the family of the relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// An API definition and its implementation or client.
    Api,
    /// A schema and the code reading it.
    Schema,
    /// Configuration one side sets and the other reads.
    Config,
    /// Security requirements on both sides.
    Security,
    /// Anything else a rule found.
    Other,
}

/// The family of a rule's `relationship` (or rule name).
pub fn family(relationship: &str) -> Family {
    let r = relationship.to_lowercase();
    if r.contains("api") || r.contains("contract") || r.contains("graphql") {
        Family::Api
    } else if r.contains("schema") || r.contains("database") || r.contains("migration") {
        Family::Schema
    } else if r.contains("config") {
        Family::Config
    } else if r.contains("security") || r.contains("compliance") || r.contains("auth") {
        Family::Security
    } else {
        Family::Other
    }
}

/// The five points for `first` (the task depended on) and `second`, as
/// `(plan, text)`: the structured plan and the same in words.
pub fn plan(
    first: &TaskRef,
    second: &TaskRef,
    relationship: &str,
    reason: &str,
) -> (Value, String) {
    let (a, b) = (&first.owner, &second.owner);
    let (thing, artifact, review, conflicts, done): (&str, &str, &str, Vec<String>, &str) =
        match family(relationship) {
            Family::Api => (
                "the API contract",
                "the API specification (endpoints, request and response shapes, errors)",
                "Review the API specification before implementation begins",
                vec![
                    "API changes during implementation".into(),
                    "Performance requirements not captured in the specification".into(),
                    "Authentication / authorization approach".into(),
                ],
                "Implementation matches the specification and integration tests pass",
            ),
            Family::Schema => (
                "the schema change",
                "the migration and the resulting schema",
                "Review the migration before code that reads the new schema lands",
                vec![
                    "Migrations applied in a different order".into(),
                    "Columns renamed or dropped while still read".into(),
                    "Data backfill and locking on large tables".into(),
                ],
                "Migration applied in every environment and both sides' tests pass against it",
            ),
            Family::Config => (
                "the configuration",
                "the new keys, their defaults and where they are read",
                "Agree on key names and defaults before either side relies on them",
                vec![
                    "Key renamed on one side only".into(),
                    "Different defaults in different environments".into(),
                    "Secrets committed with configuration".into(),
                ],
                "Both sides read the same keys with the agreed defaults, deployed together",
            ),
            Family::Security => (
                "the security requirements",
                "the threat model and the controls each side implements",
                "Security review of both changes before release",
                vec![
                    "A control assumed by one side and implemented by neither".into(),
                    "Tokens or keys logged or exposed".into(),
                    "Compliance requirements not met by one side".into(),
                ],
                "Security review passed and compliance checks green on both sides",
            ),
            Family::Other => (
                "the shared dependency",
                "the interface between the two changes",
                "Agree on the interface before either side depends on it",
                vec![
                    "The interface changing during the work".into(),
                    "Assumptions that differ between the two sides".into(),
                ],
                "Both changes integrate and their tests pass together",
            ),
        };
    let sequence = vec![
        format!("{} settles {thing} first", first.name()),
        format!("{} builds on it once it is settled", second.name()),
    ];
    let share = vec![
        format!("{a} shares {artifact}"),
        format!("{b} shares the implementation plan and integration tests"),
    ];
    let points = vec![
        review.to_string(),
        format!("{a} and {b} post progress in this session at each milestone"),
        "Joint testing before either task completes".to_string(),
    ];
    let success = vec![
        capitalized(&format!("{thing} reviewed and agreed by {a} and {b}")),
        done.to_string(),
        "Documentation updated on both sides".to_string(),
    ];
    let plan = json!({
        "relationship": relationship,
        "reason": reason,
        "sequence": sequence,
        "share": share,
        "coordination_points": points,
        "conflicts": conflicts,
        "success_criteria": success,
    });
    let section = |n: u8, title: &str, items: &[String]| {
        let mut s = format!("{n}. {title}:\n");
        for i in items {
            s.push_str(&format!("- {i}\n"));
        }
        s
    };
    let text = format!(
        "COORDINATION PLAN ({relationship}: {reason})\n{}{}{}{}{}",
        section(1, "SEQUENCE", &sequence),
        section(2, "INFORMATION SHARING", &share),
        section(3, "COORDINATION POINTS", &points),
        section(4, "POTENTIAL CONFLICTS", &conflicts),
        section(5, "SUCCESS CRITERIA", &success),
    );
    (plan, text)
}

/// `text` with its first letter in capitals.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, repo: &str, agent: Option<&str>) -> TaskRef {
        TaskRef::from_json(&json!({
            "id": id, "repository": repo, "title": format!("{id} work"), "agent": agent
        }))
    }

    #[test]
    fn an_api_plan_orders_the_definition_first_and_names_both_owners() {
        let (plan, text) = plan(
            &t("api", "backend", Some("agent-1")),
            &t("ui", "frontend", None),
            "api-contract",
            "both touch /login",
        );
        assert!(
            plan["sequence"][0]
                .as_str()
                .unwrap()
                .contains("backend/api")
        );
        assert!(plan["share"][0].as_str().unwrap().starts_with("agent-1"));
        assert!(plan["share"][1].as_str().unwrap().starts_with("frontend"));
        assert!(plan["conflicts"][0].as_str().unwrap().contains("API"));
        for section in [
            "SEQUENCE",
            "INFORMATION SHARING",
            "COORDINATION POINTS",
            "POTENTIAL CONFLICTS",
            "SUCCESS CRITERIA",
        ] {
            assert!(text.contains(section), "{section} missing in {text}");
        }
    }

    #[test]
    fn the_family_follows_the_relationship() {
        assert_eq!(family("database-schema"), Family::Schema);
        assert_eq!(family("configuration-dependency"), Family::Config);
        assert_eq!(family("security-compliance"), Family::Security);
        assert_eq!(family("graphql"), Family::Api);
        assert_eq!(family("weird"), Family::Other);
    }
}
