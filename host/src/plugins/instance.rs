//! A compiled plugin (linked, its kinds found), how an instance of it is
//! built, how a failed call is classified, and a running version: the
//! compiled form, what the plugin said about itself when loaded, and the
//! actor (`actor.rs`) that runs its calls.
//!
//! One long-lived instance and one `Store` per plugin version; the actor
//! replaces them after a trap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Store, Trap};

use crate::bus::Pattern;

use super::actor::{Actor, KeepGoing, Life};
use super::bindings::{
    BACKGROUND_AGENT, DEPENDENCY_RULE, EVENT_HANDLER, FullPlugin, STATUS_MAPPER, background_agent,
    dependency_rule, event_handler, status_mapper,
};
use super::engine::PluginEngine;
use super::error::{CallFailure, DeadlineExceeded, PluginError};
use super::manifest::PluginSpec;
use super::sandbox::StoreState;
use super::services::HostServices;

/// The four kinds of plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Reacts to events.
    EventHandler,
    /// Maps statuses and output lines.
    StatusMapper,
    /// Detects dependencies between tasks.
    DependencyRule,
    /// Runs periodically.
    BackgroundAgent,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EventHandler => "event-handler",
            Self::StatusMapper => "status-mapper",
            Self::DependencyRule => "dependency-rule",
            Self::BackgroundAgent => "background-agent",
        })
    }
}

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

#[derive(Clone, Default)]
struct KindIndices {
    handler: Option<event_handler::GuestIndices>,
    mapper: Option<status_mapper::GuestIndices>,
    rule: Option<dependency_rule::GuestIndices>,
    agent: Option<background_agent::GuestIndices>,
}

/// The typed exports of one live instance; `None` where the component
/// does not export that kind.
pub(crate) struct Exports {
    pub(crate) handler: Option<event_handler::Guest>,
    pub(crate) mapper: Option<status_mapper::Guest>,
    pub(crate) rule: Option<dependency_rule::Guest>,
    pub(crate) agent: Option<background_agent::Guest>,
}

/// A component compiled, linked and checked to export at least one kind.
pub(crate) struct Compiled {
    pub(crate) spec: PluginSpec,
    pub(crate) digest: String,
    pub(crate) kinds: Vec<Kind>,
    pub(crate) imports: Vec<String>,
    pub(crate) exports: Vec<String>,
    pre: InstancePre<StoreState>,
    indices: KindIndices,
}

/// Build the linker every plugin is instantiated with: WASI p2 (granting
/// only what each store's context allows) plus the `host` interface.
pub(crate) fn linker(engine: &PluginEngine) -> Result<Linker<StoreState>, PluginError> {
    let mut linker = Linker::new(engine.engine());
    let err = |e: wasmtime::Error| PluginError::Engine(format!("{e:#}"));
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(err)?;
    super::guarded_io::add_to_linker(&mut linker).map_err(err)?;
    FullPlugin::add_to_linker::<StoreState, HasSelf<super::sandbox::HostCtx>>(&mut linker, |s| {
        &mut s.host
    })
    .map_err(err)?;
    Ok(linker)
}

impl Compiled {
    /// Link `component` and find which kinds it exports.
    pub(crate) fn new(
        engine: &PluginEngine,
        linker: &Linker<StoreState>,
        spec: PluginSpec,
        digest: String,
        component: Component,
    ) -> Result<Self, PluginError> {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(engine.engine())
            .map(|(n, _)| n.to_string())
            .collect();
        let exports: Vec<String> = ty
            .exports(engine.engine())
            .map(|(n, _)| n.to_string())
            .collect();
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link {
                plugin: spec.name.clone(),
                reason: format!("{e:#}"),
            })?;
        let exported = |iface: &str| {
            exports
                .iter()
                .any(|e| e.starts_with(&format!("{iface}@0.1.")))
        };
        let mut indices = KindIndices::default();
        let mut kinds = Vec::new();
        let index_err = |e: wasmtime::Error| PluginError::Link {
            plugin: spec.name.clone(),
            reason: format!("{e:#}"),
        };
        if exported(EVENT_HANDLER) {
            indices.handler = Some(event_handler::GuestIndices::new(&pre).map_err(index_err)?);
            kinds.push(Kind::EventHandler);
        }
        if exported(STATUS_MAPPER) {
            indices.mapper = Some(status_mapper::GuestIndices::new(&pre).map_err(index_err)?);
            kinds.push(Kind::StatusMapper);
        }
        if exported(DEPENDENCY_RULE) {
            indices.rule = Some(dependency_rule::GuestIndices::new(&pre).map_err(index_err)?);
            kinds.push(Kind::DependencyRule);
        }
        if exported(BACKGROUND_AGENT) {
            indices.agent = Some(background_agent::GuestIndices::new(&pre).map_err(index_err)?);
            kinds.push(Kind::BackgroundAgent);
        }
        if kinds.is_empty() {
            return Err(PluginError::NoKnownKind {
                plugin: spec.name.clone(),
                exports: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                },
            });
        }
        Ok(Self {
            spec,
            digest,
            kinds,
            imports,
            exports,
            pre,
            indices,
        })
    }

    /// A fresh store and instance for the worker `life`, which must be
    /// ready by `deadline` (instantiation may run guest initialisers: the
    /// caller gives it ten call deadlines, still bounded).
    pub(crate) fn instantiate(
        &self,
        engine: &PluginEngine,
        services: &Arc<HostServices>,
        life: &Arc<Life>,
        deadline: Instant,
    ) -> Result<(Store<StoreState>, Exports), CallFailure> {
        let state = StoreState::new(&self.spec, services.clone(), life.clone())
            .map_err(|e| CallFailure::Trap(format!("sandbox: {e}")))?;
        let mut store = Store::new(engine.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        let allowance = deadline.saturating_duration_since(Instant::now());
        store.set_epoch_deadline(deadline_ticks(allowance));
        store.data_mut().deadline = Some(deadline);
        let _guard = engine.call_guard(&life.in_flight);
        let run = |store: &mut Store<StoreState>| -> wasmtime::Result<Exports> {
            let instance = self.pre.instantiate(&mut *store)?;
            let i = &self.indices;
            Ok(Exports {
                handler: i
                    .handler
                    .as_ref()
                    .map(|x| x.load(&mut *store, &instance))
                    .transpose()?,
                mapper: i
                    .mapper
                    .as_ref()
                    .map(|x| x.load(&mut *store, &instance))
                    .transpose()?,
                rule: i
                    .rule
                    .as_ref()
                    .map(|x| x.load(&mut *store, &instance))
                    .transpose()?,
                agent: i
                    .agent
                    .as_ref()
                    .map(|x| x.load(&mut *store, &instance))
                    .transpose()?,
            })
        };
        match run(&mut store) {
            Ok(exports) => Ok((store, exports)),
            Err(e) => Err(classify(e, &mut store, allowance)),
        }
    }
}

pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    let tick = super::engine::EPOCH_TICK.as_micros().max(1);
    (deadline.as_micros() / tick).max(1) as u64
}

/// Turn a wasmtime error from a call into what the host reports.
pub(crate) fn classify(
    err: wasmtime::Error,
    store: &mut Store<StoreState>,
    deadline: Duration,
) -> CallFailure {
    let limiter = &mut store.data_mut().limiter;
    if limiter.exceeded {
        limiter.exceeded = false;
        return CallFailure::Memory {
            limit_mib: limiter.limit_mib(),
        };
    }
    if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt))
        || err.downcast_ref::<DeadlineExceeded>().is_some()
    {
        return CallFailure::Deadline {
            deadline_ms: deadline.as_millis() as u64,
        };
    }
    // The first line of the chain is the trap; wasmtime appends a
    // backtrace that is useful in logs but noisy in events.
    let text = format!("{err:#}");
    CallFailure::Trap(text)
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

    /// Workers of this version given up by the watchdog.
    pub(crate) fn abandoned_threads(&self) -> u64 {
        self.actor.abandoned()
    }

    /// Run `f` on the actor against the live instance.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store<StoreState>, &Exports) -> wasmtime::Result<Result<R, CallFailure>>
        + Send
        + 'static,
    ) -> Result<R, CallFailure> {
        self.actor
            .run(vec![f], Box::new(|_| true), |store, exports, f| {
                f(store, exports)
            })
            .await
            .pop()
            .flatten()
            .unwrap_or_else(|| {
                Err(CallFailure::Trap(
                    "the plugin's actor thread has stopped".into(),
                ))
            })
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
    ) -> Vec<Option<Result<R, CallFailure>>> {
        self.actor.run(items, keep_going, f).await
    }

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
        let mut d = Description::default();
        if self.compiled.indices.handler.is_some() {
            let subs = self
                .call(|s, x| {
                    x.handler
                        .as_ref()
                        .map_or(Ok(Vec::new()), |h| h.call_subscriptions(s))
                        .map(Ok)
                })
                .await
                .map_err(fail("subscriptions"))?;
            for s in &subs {
                Pattern::parse(s).map_err(|e| PluginError::Call {
                    plugin: name.clone(),
                    call: "subscriptions",
                    failure: CallFailure::Invalid(e.to_string()),
                })?;
            }
            d.subscriptions = subs;
        }
        if self.compiled.indices.mapper.is_some() {
            d.mapper_kinds = self
                .call(|s, x| {
                    x.mapper
                        .as_ref()
                        .map_or(Ok(Vec::new()), |m| m.call_kinds(s))
                        .map(Ok)
                })
                .await
                .map_err(fail("kinds"))?;
        }
        if self.compiled.indices.rule.is_some() {
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
            d.rule = info.map(|i| RuleInfo {
                name: i.name,
                description: i.description,
                keywords: i.keywords.iter().map(|k| k.to_lowercase()).collect(),
            });
        }
        if self.compiled.indices.agent.is_some() {
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
                name: i.name,
                description: i.description,
                interval: Duration::from_millis(i.interval_ms.max(10)),
            });
        }
        Ok(d)
    }
}
