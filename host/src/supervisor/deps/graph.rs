//! The dependency graph at config time: every name known, every condition
//! one the dependency can meet, no cycle; and the order to start in.
//!
//! Checked over the whole `[process.*]` set at once, since a single spec
//! cannot know the others; the config loader turns a [`GraphError`] into
//! an error naming the file and line.

use std::collections::{BTreeMap, BTreeSet};

use super::Condition;
use crate::supervisor::spec::{ProcessSpec, RestartMode};

/// A problem in the dependency graph, naming the field.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GraphError {
    /// The process whose table holds the problem.
    pub(crate) process: String,
    /// `process.web.depends_on.db: no such process`, ...
    pub(crate) message: String,
}

/// Checks every `depends_on` of `specs`: known names, conditions the
/// dependency can meet, and no cycle.
pub(crate) fn check_graph(specs: &BTreeMap<String, ProcessSpec>) -> Result<(), GraphError> {
    for (name, spec) in specs {
        for (dep, condition) in &spec.depends_on.0 {
            let field = format!("process.{name}.depends_on.{dep}");
            let error = |message: String| GraphError {
                process: name.clone(),
                message: format!("{field}: {message}"),
            };
            let Some(target) = specs.get(dep) else {
                return Err(error("no such process".into()));
            };
            match condition {
                Condition::Healthy if target.readiness_probe.is_none() => {
                    return Err(error(format!(
                        "`healthy` needs a readiness_probe on `{dep}`"
                    )));
                }
                Condition::LogReady
                    if !target.readiness_probe.as_ref().is_some_and(|p| p.is_log()) =>
                {
                    return Err(error(format!(
                        "`log_ready` needs a readiness_probe with `log = \"<regex>\"` on `{dep}`"
                    )));
                }
                Condition::CompletedSuccessfully if target.restart == RestartMode::Always => {
                    return Err(error(format!(
                        "`completed_successfully` can never hold: `{dep}` has restart = \"always\", which runs it again after every exit"
                    )));
                }
                _ => {}
            }
        }
    }
    if let Some(cycle) = find_cycle(specs) {
        return Err(GraphError {
            process: cycle[0].clone(),
            message: format!(
                "process.{}.depends_on: dependency cycle {}",
                cycle[0],
                cycle.join(" → ")
            ),
        });
    }
    Ok(())
}

/// A cycle as `[a, b, c, a]`, if the graph has one (depth-first, in name
/// order, so the same config always names the same cycle).
fn find_cycle(specs: &BTreeMap<String, ProcessSpec>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        name: &str,
        specs: &BTreeMap<String, ProcessSpec>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(name.to_string(), Mark::Open);
        path.push(name.to_string());
        for dep in specs
            .get(name)
            .into_iter()
            .flat_map(|s| s.depends_on.0.keys())
        {
            if let Some(cycle) = visit(dep, specs, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(name.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    specs
        .keys()
        .find_map(|name| visit(name, specs, &mut marks, &mut Vec::new()))
}

/// `names` ordered so every process comes after the ones it depends on
/// (dependencies outside `names` are ignored; a cycle, refused at config
/// time, is broken arbitrarily rather than looping).
pub(in crate::supervisor) fn start_order(
    names: &[String],
    depends_on: impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut placed = BTreeSet::new();
    let mut order = Vec::with_capacity(names.len());
    fn place<'a>(
        name: &'a str,
        wanted: &BTreeSet<&'a str>,
        depends_on: &impl Fn(&str) -> Vec<String>,
        placed: &mut BTreeSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) {
        if placed.contains(name) || depth > wanted.len() {
            return;
        }
        for dep in depends_on(name) {
            if let Some(dep) = wanted.get(dep.as_str()) {
                place(dep, wanted, depends_on, placed, order, depth + 1);
            }
        }
        if placed.insert(name.to_string()) {
            order.push(name.to_string());
        }
    }
    for name in names {
        place(name, &wanted, &depends_on, &mut placed, &mut order, 0);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn specs(text: &str) -> BTreeMap<String, ProcessSpec> {
        #[derive(Deserialize)]
        struct File {
            process: BTreeMap<String, ProcessSpec>,
        }
        let mut file: File = toml::from_str(text).unwrap();
        for (name, spec) in &mut file.process {
            spec.name = name.clone();
        }
        file.process
    }

    #[test]
    fn a_list_means_started_and_a_table_names_each_condition() {
        let s = specs(
            r#"
            [process.db]
            command = "db"
            readiness_probe = { tcp = "127.0.0.1:5432" }
            [process.migrate]
            command = "migrate"
            depends_on = ["db"]
            [process.web]
            command = "web"
            depends_on = { db = "healthy", migrate = "process_completed_successfully" }
            "#,
        );
        assert_eq!(s["migrate"].depends_on.0["db"], Condition::Started);
        assert_eq!(s["web"].depends_on.0["db"], Condition::Healthy);
        assert_eq!(
            s["web"].depends_on.0["migrate"],
            Condition::CompletedSuccessfully
        );
        assert_eq!(check_graph(&s), Ok(()));
    }

    #[test]
    fn an_unknown_dependency_is_named_with_its_field() {
        let s = specs("[process.web]\ncommand = \"x\"\ndepends_on = [\"db\"]\n");
        let err = check_graph(&s).unwrap_err();
        assert_eq!(err.message, "process.web.depends_on.db: no such process");
    }

    #[test]
    fn an_unknown_condition_is_refused_at_parse_time() {
        let err = toml::from_str::<ProcessSpec>("command = \"x\"\ndepends_on = { db = \"up\" }")
            .unwrap_err();
        assert!(err.to_string().contains("completed_successfully"), "{err}");
    }

    #[test]
    fn a_cycle_is_refused_naming_every_process_on_it() {
        let s = specs(
            "[process.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n\
             [process.b]\ncommand = \"x\"\ndepends_on = [\"c\"]\n\
             [process.c]\ncommand = \"x\"\ndepends_on = [\"a\"]\n\
             [process.d]\ncommand = \"x\"\ndepends_on = [\"a\"]\n",
        );
        let err = check_graph(&s).unwrap_err();
        assert_eq!(
            err.message,
            "process.a.depends_on: dependency cycle a → b → c → a"
        );
        let own = specs("[process.a]\ncommand = \"x\"\ndepends_on = [\"a\"]\n");
        assert!(check_graph(&own).unwrap_err().message.contains("a → a"));
    }

    #[test]
    fn a_condition_the_dependency_cannot_meet_is_refused() {
        let s = specs(
            "[process.db]\ncommand = \"x\"\nreadiness_probe = { tcp = \"127.0.0.1:1\" }\n\
             [process.web]\ncommand = \"x\"\ndepends_on = { db = \"log_ready\" }\n",
        );
        assert!(check_graph(&s).unwrap_err().message.contains("log = "));
        let s = specs(
            "[process.db]\ncommand = \"x\"\n\
             [process.web]\ncommand = \"x\"\ndepends_on = { db = \"healthy\" }\n",
        );
        assert_eq!(
            check_graph(&s).unwrap_err().message,
            "process.web.depends_on.db: `healthy` needs a readiness_probe on `db`"
        );
    }

    #[test]
    fn completed_successfully_on_a_process_that_always_restarts_is_refused() {
        let s = specs(
            "[process.job]\ncommand = \"x\"\nrestart = \"always\"\n\
             [process.web]\ncommand = \"x\"\ndepends_on = { job = \"completed_successfully\" }\n",
        );
        assert!(
            check_graph(&s)
                .unwrap_err()
                .message
                .starts_with("process.web.depends_on.job: `completed_successfully` can never hold")
        );
    }

    #[test]
    fn the_start_order_puts_every_dependency_first() {
        let graph: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec![]),
            ("d", vec!["c", "a"]),
        ]);
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let order = start_order(&names, |n| graph[n].iter().map(|s| s.to_string()).collect());
        assert_eq!(order, ["c", "b", "a", "d"]);
    }
}
