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

use super::actor::Life;
// Where the version type lived before `version.rs`; `dispatch.rs` names it
// by this path.
use super::bindings::{
    BACKGROUND_AGENT, DEPENDENCY_RULE, EVENT_HANDLER, GROUPED_MEMORY, HostBindings, STATUS_MAPPER,
    TASK_MEMORY, VERSIONS, WitVersion, grouped_memory, task_memory, v01,
};
use super::engine::PluginEngine;
use super::error::{CallFailure, DeadlineExceeded, PluginError};
use super::guest::{
    Agent, AgentIndices, Handler, HandlerIndices, Mapper, MapperIndices, Rule, RuleIndices,
};
use super::logpipe::{LogBudget, StderrTail};
use super::manifest::PluginSpec;
use super::sandbox::StoreState;
use super::services::HostServices;
use super::state::StateHandle;
pub(crate) use super::version::PluginVersion;

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

#[derive(Clone, Default)]
struct KindIndices {
    handler: Option<HandlerIndices>,
    mapper: Option<MapperIndices>,
    rule: Option<RuleIndices>,
    /// A 0.2 rule's optional `task-memory`.
    memory: Option<task_memory::GuestIndices>,
    /// Its optional `grouped-memory`, only beside `memory`.
    grouped: Option<grouped_memory::GuestIndices>,
    agent: Option<AgentIndices>,
}

/// The typed exports of one live instance; `None` where the component
/// does not export that kind.
pub(crate) struct Exports {
    pub(crate) handler: Option<Handler>,
    pub(crate) mapper: Option<Mapper>,
    pub(crate) rule: Option<Rule>,
    /// Only beside a `rule` of 0.2.
    pub(crate) memory: Option<task_memory::Guest>,
    /// Only beside `memory`.
    pub(crate) grouped: Option<grouped_memory::Guest>,
    pub(crate) agent: Option<Agent>,
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
    /// What its instances may write to the host's log.
    pub(crate) log_budget: Arc<LogBudget>,
    /// What its instances wrote to stderr in the call in hand (the worker
    /// clears it before each call and takes it when one fails).
    pub(crate) stderr_tail: Arc<StderrTail>,
}

/// Build the linker every plugin is instantiated with: WASI p2 (granting
/// only what each store's context allows) plus the `host` interface, in
/// both package versions (a 0.1 import does not match a 0.2 definition).
pub(crate) fn linker(engine: &PluginEngine) -> Result<Linker<StoreState>, PluginError> {
    let mut linker = Linker::new(engine.engine());
    let err = |e: wasmtime::Error| PluginError::Engine(format!("{e:#}"));
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(err)?;
    super::guarded_io::add_to_linker(&mut linker).map_err(err)?;
    HostBindings::add_to_linker::<StoreState, HasSelf<super::sandbox::HostCtx>>(&mut linker, |s| {
        &mut s.host
    })
    .map_err(err)?;
    v01::host_api::add_to_linker::<StoreState, HasSelf<super::sandbox::HostCtx>>(
        &mut linker,
        |s| &mut s.host,
    )
    .map_err(err)?;
    // 0.1's `types` has no functions: an empty instance satisfies its import.
    linker.instance("host:plugin/types@0.1.0").map_err(err)?;
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
        // The package version of each kind's export, if exported at all.
        let exported = |iface: &str| -> Option<WitVersion> {
            VERSIONS.into_iter().find(|v| {
                let name = format!("{iface}{}", v.export_suffix());
                exports.iter().any(|e| e.starts_with(&name))
            })
        };
        let mut indices = KindIndices::default();
        let mut kinds = Vec::new();
        let index_err = |e: wasmtime::Error| PluginError::Link {
            plugin: spec.name.clone(),
            reason: format!("{e:#}"),
        };
        if let Some(version) = exported(EVENT_HANDLER) {
            indices.handler = Some(HandlerIndices::new(&pre, version).map_err(index_err)?);
            kinds.push(Kind::EventHandler);
        }
        if let Some(version) = exported(STATUS_MAPPER) {
            indices.mapper = Some(MapperIndices::new(&pre, version).map_err(index_err)?);
            kinds.push(Kind::StatusMapper);
        }
        if let Some(version) = exported(DEPENDENCY_RULE) {
            indices.rule = Some(RuleIndices::new(&pre, version).map_err(index_err)?);
            kinds.push(Kind::DependencyRule);
            // Memory is a way of asking a rule, not a kind of its own: a
            // component exporting it without a 0.2 rule is asked nothing.
            if version == WitVersion::V02 && exported(TASK_MEMORY) == Some(WitVersion::V02) {
                indices.memory = Some(task_memory::GuestIndices::new(&pre).map_err(index_err)?);
                // Grouped answers are a way of answering `check-remembered`:
                // without a memory there is nothing to ask them of.
                if exported(GROUPED_MEMORY) == Some(WitVersion::V02) {
                    indices.grouped =
                        Some(grouped_memory::GuestIndices::new(&pre).map_err(index_err)?);
                }
            }
        }
        if let Some(version) = exported(BACKGROUND_AGENT) {
            indices.agent = Some(AgentIndices::new(&pre, version).map_err(index_err)?);
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
            log_budget: LogBudget::new(&spec.name),
            stderr_tail: Arc::default(),
            spec,
            digest,
            kinds,
            imports,
            exports,
            pre,
            indices,
        })
    }

    /// Whether it is a dependency rule that remembers tasks (`task-memory`).
    pub(crate) fn remembers_tasks(&self) -> bool {
        self.indices.memory.is_some()
    }

    /// Whether it also answers by numbers grouped (`grouped-memory`).
    pub(crate) fn answers_grouped(&self) -> bool {
        self.indices.grouped.is_some()
    }

    /// A fresh store and instance for the worker `life`, which must be
    /// ready by `deadline` (instantiation may run guest initialisers: the
    /// caller gives it ten call deadlines, still bounded).
    pub(crate) fn instantiate(
        &self,
        engine: &PluginEngine,
        services: &Arc<HostServices>,
        life: &Arc<Life>,
        state: &Arc<StateHandle>,
        deadline: Instant,
    ) -> Result<(Store<StoreState>, Exports), CallFailure> {
        let state = StoreState::new(
            &self.spec,
            services.clone(),
            life.clone(),
            self.log_budget.clone(),
            self.stderr_tail.clone(),
            state.clone(),
        )
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
                memory: i
                    .memory
                    .as_ref()
                    .map(|x| x.load(&mut *store, &instance))
                    .transpose()?,
                grouped: i
                    .grouped
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
