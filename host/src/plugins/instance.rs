//! A compiled plugin, its live instance, and the actor thread that owns it.
//!
//! One long-lived instance and one `Store` per plugin version; calls to it
//! are serialised through an inbox (the actor), so a plugin never sees two
//! calls at once while different plugins run in parallel on their own
//! threads. Sync wasmtime on a dedicated thread is simpler and cheaper per
//! call than async fibers, and a plugin stuck in a loop blocks only its own
//! thread until the epoch deadline cuts it off.
//!
//! After a trap the instance cannot be re-entered, so the actor drops it
//! and the next call instantiates afresh from the `InstancePre` (~10 µs
//! for a Rust guest).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Store, Trap};

use crate::bus::Pattern;

use super::bindings::{
    BACKGROUND_AGENT, DEPENDENCY_RULE, EVENT_HANDLER, FullPlugin, STATUS_MAPPER, background_agent,
    dependency_rule, event_handler, status_mapper,
};
use super::engine::PluginEngine;
use super::error::{CallFailure, PluginError};
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

    /// A fresh store and instance.
    fn instantiate(
        &self,
        engine: &PluginEngine,
        services: &Arc<HostServices>,
    ) -> Result<(Store<StoreState>, Exports), CallFailure> {
        let state = StoreState::new(&self.spec, services.clone())
            .map_err(|e| CallFailure::Trap(format!("sandbox: {e}")))?;
        let mut store = Store::new(engine.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        // Instantiation may run guest initialisers; give it ten call
        // deadlines, still bounded.
        store.set_epoch_deadline(deadline_ticks(self.spec.deadline * 10));
        let _guard = engine.call_guard();
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
            Err(e) => Err(classify(e, &mut store, self.spec.deadline * 10)),
        }
    }
}

fn deadline_ticks(deadline: Duration) -> u64 {
    let tick = super::engine::EPOCH_TICK.as_micros().max(1);
    (deadline.as_micros() / tick).max(1) as u64
}

/// Turn a wasmtime error from a call into what the host reports.
fn classify(
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
    if let Some(Trap::Interrupt) = err.downcast_ref::<Trap>() {
        return CallFailure::Deadline {
            deadline_ms: deadline.as_millis() as u64,
        };
    }
    // The first line of the chain is the trap; wasmtime appends a
    // backtrace that is useful in logs but noisy in events.
    let text = format!("{err:#}");
    CallFailure::Trap(text)
}

/// A job for the actor: runs on its thread with the live instance.
type Job = Box<dyn FnOnce(&mut ActorState) + Send>;

struct ActorState {
    compiled: Arc<Compiled>,
    engine: PluginEngine,
    services: Arc<HostServices>,
    live: Option<(Store<StoreState>, Exports)>,
}

impl ActorState {
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<StoreState>, &Exports) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        if self.live.is_none() {
            self.live = Some(self.compiled.instantiate(&self.engine, &self.services)?);
        }
        let deadline = self.compiled.spec.deadline;
        let Some((store, exports)) = self.live.as_mut() else {
            unreachable!("instantiated just above")
        };
        store.set_epoch_deadline(deadline_ticks(deadline));
        let result = {
            let _guard = self.engine.call_guard();
            f(store, exports)
        };
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                let failure = classify(e, store, deadline);
                // A trapped store cannot be re-entered: drop it; the next
                // call builds a fresh one.
                self.live = None;
                Err(failure)
            }
        }
    }
}

/// A running version of a plugin: its compiled form, what it said about
/// itself, and the inbox of its actor thread.
pub(crate) struct PluginVersion {
    pub(crate) compiled: Arc<Compiled>,
    pub(crate) description: Description,
    inbox: mpsc::Sender<Job>,
}

impl PluginVersion {
    /// Start the actor for `compiled` and ask the plugin to describe itself.
    pub(crate) async fn start(
        compiled: Compiled,
        engine: PluginEngine,
        services: Arc<HostServices>,
    ) -> Result<Arc<Self>, PluginError> {
        let compiled = Arc::new(compiled);
        let (inbox, jobs) = mpsc::channel::<Job>();
        let mut state = ActorState {
            compiled: compiled.clone(),
            engine,
            services,
            live: None,
        };
        let name = compiled.spec.name.clone();
        std::thread::Builder::new()
            .name(format!("plugin-{name}"))
            .spawn(move || {
                // Ends when every sender (every holder of this version) is
                // gone, i.e. after a swap once in-flight calls finish.
                while let Ok(job) = jobs.recv() {
                    job(&mut state);
                }
            })
            .map_err(|source| PluginError::Io {
                path: compiled.spec.component_path.clone(),
                source,
            })?;
        let mut version = Self {
            compiled,
            description: Description::default(),
            inbox,
        };
        version.description = version.describe().await?;
        Ok(Arc::new(version))
    }

    /// Run `f` on the actor thread against the live instance.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store<StoreState>, &Exports) -> wasmtime::Result<R> + Send + 'static,
    ) -> Result<R, CallFailure> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |state: &mut ActorState| {
            let _ = tx.send(state.call(f));
        });
        if self.inbox.send(job).is_err() {
            return Err(CallFailure::Trap(
                "the plugin's actor thread has stopped".into(),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(CallFailure::Trap(
                "the plugin's actor thread has stopped".into(),
            ))
        })
    }

    /// Run `f` once per item in a single trip to the actor thread: one
    /// thread hop for a whole batch instead of one per item.
    ///
    /// Items are independent: a trap on one replaces the instance and the
    /// next item runs on a fresh one. After `budget` fatal failures in a
    /// row the rest are not attempted (`None`), so a plugin about to be
    /// quarantined is not called again within the batch.
    pub(crate) async fn call_each<I: Send + 'static, R: Send + 'static>(
        &self,
        items: Vec<I>,
        budget: u32,
        f: impl Fn(&mut Store<StoreState>, &Exports, I) -> wasmtime::Result<Result<R, CallFailure>>
        + Send
        + 'static,
    ) -> Vec<Option<Result<R, CallFailure>>> {
        let n = items.len();
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |state: &mut ActorState| {
            let mut out = Vec::with_capacity(n);
            let mut in_a_row = 0;
            for item in items {
                if in_a_row >= budget {
                    out.push(None);
                    continue;
                }
                let result = state.call(|s, x| f(s, x, item)).and_then(|r| r);
                // As in the slot's accounting: only a success ends a streak;
                // a guest error neither counts nor resets it.
                match &result {
                    Ok(_) => in_a_row = 0,
                    Err(failure) if failure.is_fatal() => in_a_row += 1,
                    Err(_) => {}
                }
                out.push(Some(result));
            }
            let _ = tx.send(out);
        });
        let gone = || CallFailure::Trap("the plugin's actor thread has stopped".into());
        if self.inbox.send(job).is_err() {
            return (0..n).map(|_| Some(Err(gone()))).collect();
        }
        rx.await
            .unwrap_or_else(|_| (0..n).map(|_| Some(Err(gone()))).collect())
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
                })
                .await
                .map_err(fail("kinds"))?;
        }
        if self.compiled.indices.rule.is_some() {
            let info = self
                .call(|s, x| x.rule.as_ref().map(|r| r.call_describe(s)).transpose())
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
                .call(|s, x| x.agent.as_ref().map(|a| a.call_describe(s)).transpose())
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
