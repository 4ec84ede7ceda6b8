//! A running version of a plugin: its compiled form, what it said about
//! itself when loaded, and the actor that runs its calls.
//!
//! What a plugin says about itself is asked once per version, under the
//! plugin's deadline, and checked against caps: the answers decide routing
//! (subscriptions, mapper kinds, rule keywords) for as long as the version
//! serves, so a plugin must not be able to make them unbounded.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use wasmtime::Store;

use crate::bus::Pattern;

use super::actor::{Actor, KeepGoing, Timed};
use super::bindings::{MAX_LABEL, truncate};
use super::engine::PluginEngine;
use super::error::{CallFailure, PluginError};
use super::instance::{Compiled, Exports, Kind};
use super::sandbox::StoreState;
use super::services::HostServices;
use super::slot::Health;

/// Most event type patterns an event handler may subscribe to.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 64;
/// Most process kinds a status mapper may serve.
pub(crate) const MAX_MAPPER_KINDS: usize = 64;
/// Most keywords a dependency rule may give (each indexes candidate pairs).
pub(crate) const MAX_KEYWORDS: usize = 256;
/// Longest subscription pattern, kind or keyword, in bytes.
pub(crate) const MAX_NAME: usize = 256;

/// What a dependency rule says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleInfo {
    /// Rule name.
    pub name: String,
    /// What it detects.
    pub description: String,
    /// Keywords used to pick candidate pairs (lower-cased); empty = all.
    pub keywords: Vec<String>,
}

/// What a background agent says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentInfo {
    /// Agent name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Time between ticks.
    #[serde(with = "millis")]
    pub interval: Duration,
}

mod millis {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

/// What a plugin said about itself when it was loaded. Asked once per
/// version: these answers decide routing, so they must not change under a
/// running version.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Description {
    /// Event type patterns (event handlers).
    pub subscriptions: Vec<String>,
    /// Process kinds served (status mappers); `*` = all.
    pub mapper_kinds: Vec<String>,
    /// Rule info (dependency rules).
    pub rule: Option<RuleInfo>,
    /// Agent info (background agents).
    pub agent: Option<AgentInfo>,
}

/// A running version of a plugin: its compiled form, what it said about
/// itself, and the actor that runs its calls.
pub(crate) struct PluginVersion {
    pub(crate) compiled: Arc<Compiled>,
    pub(crate) description: Description,
    actor: Actor,
}

impl PluginVersion {
    /// Start the actor for `compiled` and ask the plugin to describe itself.
    pub(crate) async fn start(
        compiled: Compiled,
        engine: PluginEngine,
        services: Arc<HostServices>,
    ) -> Result<Arc<Self>, PluginError> {
        let compiled = Arc::new(compiled);
        let actor = Actor::start(compiled.clone(), engine, services)?;
        let mut version = Self {
            compiled,
            description: Description::default(),
            actor,
        };
        version.description = version.describe().await?;
        Ok(Arc::new(version))
    }

    /// Whether this version's `state-set`s go to a scratch copy of the
    /// plugin's state (a shadow on trial) or to the plugin's own.
    pub(crate) fn use_scratch_state(&self, scratch: bool) {
        self.actor.use_scratch_state(scratch);
    }

    /// Add what this version counted itself to `health`: workers given
    /// up by the watchdog, log lines suppressed.
    pub(crate) fn add_counts(&self, health: &mut Health) {
        health.abandoned_threads += self.actor.abandoned();
        health.log_lines_suppressed += self.compiled.log_budget.suppressed();
    }

    /// Run `f` on the actor against the live instance. A failure carries
    /// what the guest wrote to stderr during the call in its text: this is
    /// how a load that fails describing itself (`plugin.load_failed`)
    /// says why in the guest's words.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store<StoreState>, &Exports) -> wasmtime::Result<Result<R, CallFailure>>
        + Send
        + 'static,
    ) -> Result<R, CallFailure> {
        let Timed {
            outcome,
            guest_message,
            ..
        } = self.call_timed(f).await;
        outcome.map_err(|failure| match (failure, guest_message) {
            (CallFailure::Trap(t), Some(m)) => {
                CallFailure::Trap(format!("{t}\nthe plugin wrote to stderr:\n{m}"))
            }
            (CallFailure::GuestError(t), Some(m)) => {
                CallFailure::GuestError(format!("{t}\nthe plugin wrote to stderr:\n{m}"))
            }
            (failure, _) => failure,
        })
    }

    /// [`PluginVersion::call`], also saying how long the call ran on the
    /// worker.
    pub(crate) async fn call_timed<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store<StoreState>, &Exports) -> wasmtime::Result<Result<R, CallFailure>>
        + Send
        + 'static,
    ) -> Timed<R> {
        self.actor
            .run(vec![f], Box::new(|_| true), |store, exports, f| {
                f(store, exports)
            })
            .await
            .pop()
            .flatten()
            .unwrap_or_else(|| Timed::lost("the plugin's actor thread has stopped"))
    }

    /// Run `f` once per item in a single trip to the actor; see
    /// [`Actor::run`].
    pub(crate) async fn call_each<I: Send + 'static, R: Send + 'static>(
        &self,
        items: Vec<I>,
        keep_going: KeepGoing<R>,
        f: impl Fn(&mut Store<StoreState>, &Exports, I) -> wasmtime::Result<Result<R, CallFailure>>
        + Send
        + Sync
        + 'static,
    ) -> Vec<Option<Timed<R>>> {
        self.actor.run(items, keep_going, f).await
    }

    /// Ask the plugin about itself, each call under its deadline, and
    /// check the answers against the caps: they are kept for the life of
    /// the version and decide routing.
    async fn describe(&self) -> Result<Description, PluginError> {
        let name = self.compiled.spec.name.clone();
        let fail = |call: &'static str| {
            let name = name.clone();
            move |failure| PluginError::Call {
                plugin: name,
                call,
                failure,
            }
        };
        let kinds = &self.compiled.kinds;
        let mut d = Description::default();
        if kinds.contains(&Kind::EventHandler) {
            let subs = self
                .call(|s, x| {
                    x.handler
                        .as_ref()
                        .map_or(Ok(Vec::new()), |h| h.call_subscriptions(s))
                        .map(Ok)
                })
                .await
                .map_err(fail("subscriptions"))?;
            check_list("subscriptions", &subs, MAX_SUBSCRIPTIONS).map_err(fail("subscriptions"))?;
            for s in &subs {
                Pattern::parse(s)
                    .map_err(|e| CallFailure::Invalid(e.to_string()))
                    .map_err(fail("subscriptions"))?;
            }
            d.subscriptions = subs;
        }
        if kinds.contains(&Kind::StatusMapper) {
            d.mapper_kinds = self
                .call(|s, x| {
                    x.mapper
                        .as_ref()
                        .map_or(Ok(Vec::new()), |m| m.call_kinds(s))
                        .map(Ok)
                })
                .await
                .map_err(fail("kinds"))?;
            check_list("kinds", &d.mapper_kinds, MAX_MAPPER_KINDS).map_err(fail("kinds"))?;
        }
        if kinds.contains(&Kind::DependencyRule) {
            let info = self
                .call(|s, x| {
                    x.rule
                        .as_ref()
                        .map(|r| r.call_describe(s))
                        .transpose()
                        .map(Ok)
                })
                .await
                .map_err(fail("describe"))?;
            if let Some(i) = &info {
                check_list("keywords", &i.keywords, MAX_KEYWORDS).map_err(fail("describe"))?;
            }
            d.rule = info.map(|i| RuleInfo {
                name: truncate(i.name, MAX_LABEL),
                description: truncate(i.description, MAX_LABEL),
                keywords: i.keywords.iter().map(|k| k.to_lowercase()).collect(),
            });
        }
        if kinds.contains(&Kind::BackgroundAgent) {
            let info = self
                .call(|s, x| {
                    x.agent
                        .as_ref()
                        .map(|a| a.call_describe(s))
                        .transpose()
                        .map(Ok)
                })
                .await
                .map_err(fail("describe"))?;
            d.agent = info.map(|i| AgentInfo {
                name: truncate(i.name, MAX_LABEL),
                description: truncate(i.description, MAX_LABEL),
                interval: Duration::from_millis(i.interval_ms.max(10)),
            });
        }
        Ok(d)
    }
}

/// Check a list a plugin describes itself with: at most `max` entries of
/// at most [`MAX_NAME`] bytes each.
fn check_list(what: &str, items: &[String], max: usize) -> Result<(), CallFailure> {
    if items.len() > max {
        return Err(CallFailure::Invalid(format!(
            "{} {what}; at most {max} are allowed",
            items.len()
        )));
    }
    if let Some(long) = items.iter().find(|i| i.len() > MAX_NAME) {
        return Err(CallFailure::Invalid(format!(
            "one of its {what} is {} bytes long; at most {MAX_NAME} are allowed",
            long.len()
        )));
    }
    Ok(())
}
