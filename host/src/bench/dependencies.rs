//! Dependency detection: a host in-process (the [`Runtime`](crate::runtime::Runtime)
//! `host run` starts, on a file journal) registers 10,000 tasks over 20
//! repositories, a tenth of them about an API; then four copies of the
//! shipped api-contract-rule are installed with their shipped manifest
//! and loaded; then five more API tasks are registered through the
//! coordinator (what `POST /v1/tasks` calls), each timed from `register`
//! to its return: candidate selection, one trip per rule, and publishing
//! every `dependency.detected`.

use std::time::Instant;

use serde::Serialize;

use super::common::{Spread, start_runtime, stop_runtime};
use super::fixtures::Fixtures;
use crate::config::HostConfig;
use crate::coordination::Task;
use crate::plugins::Kind;

/// Dependency detection for one new task against many.
#[derive(Debug, Serialize)]
pub struct DependencyReport {
    /// Tasks already registered.
    pub tasks: usize,
    /// Dependency-rule plugins loaded.
    pub rules: usize,
    /// Time to register one more task (detection included), five times, ms.
    pub register_ms: Spread,
    /// Dependencies the last registration found.
    pub found: usize,
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

fn task(i: usize, api: bool) -> Task {
    let noun = NOUNS[i % NOUNS.len()];
    Task {
        id: format!("t{i}"),
        repository: format!("repo{}", i % 20),
        title: if api {
            format!("Expose the {noun} REST API endpoint v{i}")
        } else {
            format!("Refactor the {noun} module part {i}")
        },
        description: String::new(),
        keywords: Vec::new(),
        agent: None,
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
                .register(task(i, i % 10 == 0), "bench")
                .await?;
        }
        for r in 0..rules {
            fixtures.install_shipped("api-contract-rule", &plugins, &format!("rule{r}"))?;
        }
        runtime.plugins.reconcile().await?;
        let loaded = runtime.plugins.with_kind(Kind::DependencyRule).len();
        anyhow::ensure!(
            loaded == rules,
            "{loaded} of {rules} copies of api-contract-rule loaded: {:?}",
            runtime.plugins.failures()
        );
        let mut times = Vec::new();
        let mut found = 0;
        for k in 0..5 {
            let t = Instant::now();
            found = runtime
                .coordinator
                .register(task(n + k, true), "bench")
                .await?
                .len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(DependencyReport {
            tasks: n,
            rules: loaded,
            register_ms: Spread::of(times),
            found,
        })
    }
    .await;
    stop_runtime(runtime).await?;
    result
}

/// Prints the section.
pub(crate) fn print(d: &DependencyReport) {
    println!(
        "dependency check of 1 new task against {} with {} rules: median {:.2} ms, max {:.2} ms ({} found)",
        d.tasks, d.rules, d.register_ms.median, d.register_ms.max, d.found
    );
}
