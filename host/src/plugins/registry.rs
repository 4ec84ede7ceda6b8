//! [`PluginHost`]: every plugin of a plugins folder, loaded, reloaded and
//! unloaded as the folder changes.
//!
//! Reload is a reconcile: rescan the folder, and for each plugin whose
//! manifest or component bytes changed, build the new version off the hot
//! path (compile in a blocking task, instantiate, ask it to describe
//! itself) and only then swap it in. If anything fails the old version
//! keeps serving and `plugin.reload_failed` records the error text.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use wasmtime::component::Linker;

use crate::bus::{Bus, NewEvent, StartAt};

use super::PluginRef;
use super::action::ActionRequest;
use super::dispatch;
use super::engine::{PluginEngine, digest};
use super::error::PluginError;
use super::instance::{Kind, linker};
use super::load::load_version;
use super::manifest::{LimitDefaults, PluginSpec, discover};
use super::sandbox::StoreState;
use super::services::{Clock, HostServices, ProcessView, StateStore, system_clock};
use super::slot::{Health, SOURCE, Slot};
use super::version::{Description, PluginVersion};

/// How long [`PluginHost::shutdown`] lets dispatchers finish the delivery
/// in hand before it stops waiting for them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// Default depth at which a chain of plugin decisions is cut.
pub const DEFAULT_MAX_CHAIN_DEPTH: u32 = 8;

/// Settings of the plugin host.
#[derive(Debug, Clone)]
pub struct PluginHostConfig {
    /// The folder plugins are loaded from and watched.
    pub plugins_dir: PathBuf,
    /// Where the compilation cache and plugin state live; `None` keeps
    /// both in memory (tests, `plugin check`).
    pub state_dir: Option<PathBuf>,
    /// Default per-call deadline and memory cap.
    pub limits: LimitDefaults,
    /// Failures in a row before a plugin is quarantined.
    pub max_failures: u32,
    /// Quiet time after the last file event before reloading.
    pub debounce: Duration,
    /// Run a manifest's `[build] command` when its component is missing.
    pub build_missing: bool,
    /// How long such a build may run before it is killed.
    pub build_timeout: Duration,
    /// While watching, run a plugin's `[build] command` when a file its
    /// `[build] watch` globs match changes (`host run --watch`).
    pub rebuild_on_change: bool,
    /// Depth in a chain of decisions (an event caused by handling an event
    /// caused by ...) from which events are given to no plugin: the chain
    /// is cut and announced as `plugin.loop_detected`.
    pub max_chain_depth: u32,
    /// The most any manifest may ask for.
    pub ceilings: super::permissions::Ceilings,
    /// Swap in a new version that asks for more grants than the running
    /// one without an operator's approval.
    pub accept_new_grants: bool,
    /// Where the dispatchers of plugins loaded by the first reconcile
    /// start: after this sequence (the host's run start), so a plugin that
    /// takes long to compile misses no event of the run; `None`: the head.
    pub first_load_after: Option<u64>,
    /// The most bytes the compilation cache in `state_dir` keeps; the
    /// least recently used entries go first.
    pub cache_max_bytes: u64,
    /// Shadow on reload (`shadow.rs`): a new version of an event handler
    /// first runs beside the old one for this many events, its actions
    /// recorded but not performed, and is swapped in only if it did not
    /// fail. `None`: reloads swap at once.
    pub shadow_events: Option<u64>,
}

impl PluginHostConfig {
    /// Defaults for `plugins_dir`: 100 ms deadline, 64 MiB, quarantine
    /// after 3 failures, 100 ms debounce, build missing components.
    pub fn new(plugins_dir: impl Into<PathBuf>) -> Self {
        Self {
            plugins_dir: plugins_dir.into(),
            state_dir: None,
            limits: LimitDefaults::default(),
            max_failures: 3,
            debounce: Duration::from_millis(100),
            build_missing: true,
            build_timeout: super::build::BUILD_TIMEOUT,
            rebuild_on_change: false,
            max_chain_depth: DEFAULT_MAX_CHAIN_DEPTH,
            ceilings: super::permissions::Ceilings::default(),
            accept_new_grants: false,
            first_load_after: None,
            cache_max_bytes: super::cache::DEFAULT_CACHE_MAX_BYTES,
            shadow_events: None,
        }
    }
}

/// One line of `host plugins`: what is loaded and how it is doing.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    /// Plugin name.
    pub name: String,
    /// Version from its manifest.
    pub version: Option<String>,
    /// Kinds it exports.
    pub kinds: Vec<Kind>,
    /// The component file.
    pub component: PathBuf,
    /// SHA-256 of the component bytes.
    pub digest: String,
    /// What it said about itself.
    pub description: Description,
    /// Counters and quarantine.
    pub health: Health,
    /// Grants a newer version on disk asks for that the running one lacks:
    /// refused (`plugin.reload_refused`) until an operator approves them.
    pub awaiting_approval: Vec<String>,
    /// A version the manifest declares while the component is still the
    /// one `version` was first served with: held until the rebuild
    /// (`plugin.waiting`).
    pub waiting_for_rebuild: Option<String>,
}

/// Every loaded plugin, and the tasks that feed them.
#[derive(Clone)]
pub struct PluginHost {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: PluginHostConfig,
    engine: PluginEngine,
    linker: Linker<StoreState>,
    pub(crate) services: Arc<HostServices>,
    pub(crate) bus: Bus,
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    pub(crate) actions: mpsc::Sender<ActionRequest>,
    /// Bumped whenever the set of plugins or a version changes.
    changes: watch::Sender<u64>,
    /// Last load error per path, so a broken file is reported once per
    /// change rather than on every rescan.
    reported: Mutex<HashMap<PathBuf, String>>,
    /// Serialises reconciles (watcher and explicit calls).
    reconciling: tokio::sync::Mutex<()>,
    pub(crate) shutdown: watch::Sender<bool>,
    /// Dispatchers: shutdown lets them finish what they are delivering.
    tasks: Mutex<JoinSet<()>>,
    /// The folder watcher: it delivers nothing, so shutdown does not wait
    /// for it (with a thousand processes stopping at once it may not even
    /// be polled within the grace, and was then reported as a plugin task
    /// still in a call).
    watcher: Mutex<Option<tokio::task::AbortHandle>>,
    /// Chains of decisions already announced as loops.
    pub(crate) loops: super::dispatch::LoopLog,
    /// True until the first reconcile is over: plugins it loads start at
    /// [`PluginHostConfig::first_load_after`].
    first_load: std::sync::atomic::AtomicBool,
    /// Per plugin, the new grants of a version refused on reload.
    awaiting: Mutex<HashMap<String, Vec<String>>>,
    /// Per plugin, the version it serves under and whether a declared
    /// one waits for its rebuild (`labels.rs`).
    labels: super::labels::Labels,
    /// New versions on trial beside the serving one (`shadow.rs`).
    pub(crate) shadows: super::shadow::Shadows,
}

impl PluginHost {
    /// Create the host and load every plugin in the folder.
    ///
    /// A plugin that fails to load is reported (`plugin.load_failed`, and
    /// in the log) and skipped; the others load. Actions plugins decide
    /// are sent to `actions`.
    ///
    /// # Errors
    ///
    /// When the limits are out of bounds ([`LimitDefaults::check`]), the
    /// engine cannot be created or the folder cannot be read.
    ///
    /// [`LimitDefaults::check`]: super::LimitDefaults::check
    pub async fn start(
        config: PluginHostConfig,
        bus: Bus,
        processes: Arc<dyn ProcessView>,
        actions: mpsc::Sender<ActionRequest>,
    ) -> Result<Self, PluginError> {
        Self::start_with_clock(config, bus, processes, actions, system_clock()).await
    }

    /// [`PluginHost::start`] with a clock of the caller's choosing (tests
    /// use a virtual one for `now-ms`).
    pub async fn start_with_clock(
        config: PluginHostConfig,
        bus: Bus,
        processes: Arc<dyn ProcessView>,
        actions: mpsc::Sender<ActionRequest>,
        clock: Clock,
    ) -> Result<Self, PluginError> {
        let host = Self::new(config, bus, processes, actions, clock)?;
        host.reconcile().await?;
        Ok(host)
    }

    /// The host with no plugin loaded yet: [`PluginHost::reconcile`] loads
    /// them. A runtime that must not wait for slow compiles starts its
    /// processes between the two; with
    /// [`PluginHostConfig::first_load_after`] set, plugins loaded late still
    /// see every event from that sequence on.
    ///
    /// # Errors
    ///
    /// As [`PluginHost::start`], except reading the folder.
    pub fn new(
        config: PluginHostConfig,
        bus: Bus,
        processes: Arc<dyn ProcessView>,
        actions: mpsc::Sender<ActionRequest>,
        clock: Clock,
    ) -> Result<Self, PluginError> {
        config.limits.check().map_err(PluginError::Limits)?;
        let cache = config
            .state_dir
            .as_ref()
            .map(|d| (d.join("cache"), config.cache_max_bytes));
        let state = match &config.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| PluginError::Io {
                    path: dir.clone(),
                    source,
                })?;
                StateStore::open(&dir.join("plugin-state.sqlite"))?
            }
            None => StateStore::in_memory(),
        };
        let engine = PluginEngine::new(cache)?;
        let linker = linker(&engine)?;
        let services = Arc::new(HostServices::new(bus.clone(), processes, state, clock));
        let host = Self {
            inner: Arc::new(Inner {
                config,
                engine,
                linker,
                services,
                bus,
                slots: Mutex::new(BTreeMap::new()),
                actions,
                changes: watch::Sender::new(0),
                reported: Mutex::new(HashMap::new()),
                reconciling: tokio::sync::Mutex::new(()),
                shutdown: watch::Sender::new(false),
                tasks: Mutex::new(JoinSet::new()),
                watcher: Mutex::new(None),
                loops: Default::default(),
                first_load: std::sync::atomic::AtomicBool::new(true),
                awaiting: Mutex::new(HashMap::new()),
                labels: Default::default(),
                shadows: Default::default(),
            }),
        };
        Ok(host)
    }

    /// Start watching the plugins folder and reloading on change.
    ///
    /// # Errors
    ///
    /// When the file watcher cannot be set up.
    pub fn watch(&self) -> Result<(), PluginError> {
        let task = super::watch::watcher(self.clone())?;
        let handle = tokio::spawn(task).abort_handle();
        if let Some(old) = self.inner.watcher.lock().replace(handle) {
            old.abort();
        }
        Ok(())
    }

    /// Rescan the folder and load, reload or unload what changed.
    ///
    /// Plugins load in parallel, so one that is slow or stuck (every call
    /// while loading has the plugin's deadline) holds up none of the others.
    ///
    /// # Errors
    ///
    /// Only when the folder cannot be read; per-plugin problems are
    /// published as events and leave the old version serving.
    pub async fn reconcile(&self) -> Result<(), PluginError> {
        let _one_at_a_time = self.inner.reconciling.lock().await;
        let found = discover(&self.inner.config.plugins_dir, self.inner.config.limits)?;
        let mut wanted = Vec::new();
        for (path, err) in found.errors {
            // A manifest that stops parsing (a half-saved edit) does not
            // unload the version it described: that keeps serving.
            match self.serving_from(&path) {
                Some(name) => {
                    self.report_failure(Some(&name), &path, &err, "plugin.reload_failed");
                    wanted.push(name);
                }
                None => self.report_failure(None, &path, &err, "plugin.load_failed"),
            }
        }
        let mut loads = JoinSet::new();
        for spec in found.specs {
            wanted.push(spec.name.clone());
            if self.on_trial(&spec) {
                continue;
            }
            if let Some(slot) = self.slot(&spec.name)
                && let Some(current) = slot.current()
                && current.compiled.spec == spec
                && std::fs::read(&spec.component_path)
                    .is_ok_and(|b| digest(&b) == current.compiled.digest)
            {
                // Unchanged, or a premature bump taken back: nothing waits.
                self.inner.labels.settled(&spec.name);
                continue;
            }
            let host = self.clone();
            // Errors are published by `load_and_install` itself.
            loads.spawn(async move { host.load_and_install(spec, &[], false).await.ok() });
        }
        while let Some(joined) = loads.join_next().await {
            if let Err(e) = joined {
                tracing::error!("a plugin load task failed: {e}");
            }
        }
        self.inner
            .first_load
            .store(false, std::sync::atomic::Ordering::Release);
        let gone: Vec<Arc<Slot>> = {
            let mut slots = self.inner.slots.lock();
            let names: Vec<String> = slots
                .keys()
                .filter(|n| !wanted.contains(n))
                .cloned()
                .collect();
            names.iter().filter_map(|n| slots.remove(n)).collect()
        };
        for slot in gone {
            slot.remove();
            self.inner.awaiting.lock().remove(&slot.name);
            self.inner.labels.forget(&slot.name);
            self.inner.shadows.forget(&slot.name);
            // A plugin put back later starts afresh, not from where this
            // one stopped reading long ago.
            for kind in [Kind::EventHandler, Kind::StatusMapper] {
                self.inner
                    .bus
                    .forget_cursor(&dispatch::cursor_name(&slot.name, kind));
            }
            tracing::info!(plugin = %slot.name, "plugin unloaded");
            self.publish(
                NewEvent::new(SOURCE, "plugin.unloaded", json!({ "plugin": slot.name }))
                    .with_subject(&slot.name),
            );
            self.inner.changes.send_modify(|g| *g += 1);
        }
        Ok(())
    }

    /// The loaded plugin whose manifest (or bare component) is `path`.
    fn serving_from(&self, path: &Path) -> Option<String> {
        self.inner.slots.lock().values().find_map(|slot| {
            let current = slot.current()?;
            let spec = &current.compiled.spec;
            let own = spec
                .manifest_path
                .as_deref()
                .unwrap_or(&spec.component_path);
            (own == path).then(|| slot.name.clone())
        })
    }

    /// Reload plugin `name` from disk now, even if its files are
    /// unchanged: an operator's explicit reload.
    ///
    /// Builds a new version and swaps it in as a hot reload does
    /// (`plugin.reloaded`, cursor and state carried over), which also lifts
    /// a quarantine. A plugin in the folder that is not loaded (its last
    /// load failed) is loaded. If the new version cannot be built, the old
    /// one keeps serving and `plugin.reload_failed` is published as well.
    ///
    /// # Errors
    ///
    /// [`PluginError::Unknown`] naming the plugins of the folder when
    /// `name` is not one of them; otherwise the load error.
    pub async fn reload(&self, name: &str) -> Result<(), PluginError> {
        self.reload_with(name, &[]).await
    }

    /// Approve the grants a refused version of plugin `name` asked for
    /// (`plugin.reload_refused`) and swap it in.
    ///
    /// What is approved is exactly the set of grants the refusal named: if
    /// the files changed since and now ask for anything more, that is
    /// refused in turn and awaits its own approval. Limits and grants past
    /// the host's ceilings stay refused whatever is approved.
    ///
    /// # Errors
    ///
    /// [`PluginError::NothingToApprove`] when no version of `name` awaits
    /// approval; otherwise as [`PluginHost::reload`].
    pub async fn approve(&self, name: &str) -> Result<(), PluginError> {
        let Some(grants) = self.awaiting_approval(name) else {
            return Err(PluginError::NothingToApprove(name.to_string()));
        };
        self.reload_with(name, &grants).await
    }

    /// The grants a refused version of `name` waits to have approved.
    pub fn awaiting_approval(&self, name: &str) -> Option<Vec<String>> {
        self.inner.awaiting.lock().get(name).cloned()
    }

    async fn reload_with(&self, name: &str, approved: &[String]) -> Result<(), PluginError> {
        let _one_at_a_time = self.inner.reconciling.lock().await;
        let found = discover(&self.inner.config.plugins_dir, self.inner.config.limits)?;
        let known = || {
            let names: Vec<&str> = found.specs.iter().map(|s| s.name.as_str()).collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        let Some(spec) = found.specs.iter().find(|s| s.name == name).cloned() else {
            return Err(PluginError::Unknown {
                name: name.to_string(),
                known: known(),
            });
        };
        self.load_and_install(spec, approved, true).await
    }

    /// Whether `spec` may replace what runs now: within the host's
    /// ceilings, and asking for no grant the running version lacks unless
    /// that is accepted (by config, or listed in an operator's `approved`).
    fn admissible(
        &self,
        spec: &PluginSpec,
        existing: Option<&Arc<Slot>>,
        approved: &[String],
    ) -> Result<(), PluginError> {
        spec.check_ceilings(&self.inner.config.ceilings, &self.inner.config.plugins_dir)?;
        if self.inner.config.accept_new_grants {
            return Ok(());
        }
        let Some(running) = existing.and_then(|slot| slot.current()) else {
            // A first load is the operator's doing: they put it there.
            return Ok(());
        };
        let more = spec.permissions.beyond(&running.compiled.spec.permissions);
        if more.iter().all(|grant| approved.contains(grant)) {
            Ok(())
        } else {
            Err(PluginError::NewGrants {
                plugin: spec.name.clone(),
                grants: more,
            })
        }
    }

    /// Build a version of `spec` and swap it in, or report why not.
    ///
    /// A `version` the component does not back yet is held (`labels.rs`):
    /// the reload keeps the running version's name, and when nothing else
    /// changed there is nothing to reload unless `force`d (an operator's
    /// reload).
    async fn load_and_install(
        &self,
        mut spec: PluginSpec,
        approved: &[String],
        force: bool,
    ) -> Result<(), PluginError> {
        let existing = self.slot(&spec.name);
        if let Some(current) = existing.as_ref().and_then(|s| s.current())
            && self.hold_version(&mut spec, &current).await
            && !force
        {
            return Ok(());
        }
        let started = Instant::now();
        let path = spec
            .manifest_path
            .clone()
            .unwrap_or(spec.component_path.clone());
        let name = spec.name.clone();
        if let Err(err) = self.admissible(&spec, existing.as_ref(), approved) {
            let ty = match (&err, &existing) {
                (PluginError::NewGrants { grants, .. }, _) => {
                    self.inner
                        .awaiting
                        .lock()
                        .insert(name.clone(), grants.clone());
                    "plugin.reload_refused"
                }
                (_, Some(_)) => "plugin.reload_failed",
                (_, None) => "plugin.load_failed",
            };
            self.report_failure(Some(&name), &path, &err, ty);
            return Err(err);
        }
        let inner = &self.inner;
        let loaded = load_version(
            &inner.engine,
            &inner.linker,
            &inner.services,
            spec,
            inner
                .config
                .build_missing
                .then_some(inner.config.build_timeout),
        )
        .await;
        match loaded {
            Ok(version) => {
                self.inner.reported.lock().remove(&path);
                // What runs now is what was asked for: nothing waits.
                self.inner.awaiting.lock().remove(&name);
                if !force && self.shadow_first(&name, existing.as_ref(), &version) {
                    self.inner.shadows.start(&name, version, started.elapsed());
                    return Ok(());
                }
                // An operator's reload swaps now, ending any trial.
                self.inner.shadows.forget(&name);
                self.install(&name, existing, version, started.elapsed());
                Ok(())
            }
            Err(err) => {
                let ty = if existing.is_some() {
                    "plugin.reload_failed"
                } else {
                    "plugin.load_failed"
                };
                self.report_failure(Some(&name), &path, &err, ty);
                Err(err)
            }
        }
    }

    /// Apply the verdict of [`super::labels::Labels::judge`] to `spec`:
    /// a held version keeps the running one's name, announced once as
    /// `plugin.waiting`. True when, after that, `spec` is what already
    /// serves, byte for byte: nothing to reload.
    async fn hold_version(&self, spec: &mut PluginSpec, current: &PluginVersion) -> bool {
        let disk = tokio::fs::read(&spec.component_path)
            .await
            .ok()
            .map(|bytes| digest(&bytes));
        let running = &current.compiled;
        let verdict = self.inner.labels.judge(
            &spec.name,
            &spec.version,
            disk.as_deref(),
            (&running.spec.version, &running.digest),
        );
        let super::labels::Verdict::Hold { serving, announce } = verdict else {
            return false;
        };
        let declared = std::mem::replace(&mut spec.version, serving.clone());
        if announce {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
            tracing::warn!(
                plugin = %spec.name,
                "plugin.toml declares version {} but the component is unchanged (digest {}): \
                 {} keeps serving until the component is rebuilt",
                show(&declared),
                running.digest,
                show(&serving)
            );
            self.publish(
                NewEvent::new(
                    SOURCE,
                    "plugin.waiting",
                    json!({
                        "plugin": spec.name, "declared_version": declared,
                        "serving_version": serving, "digest": running.digest,
                        "component": spec.component_path,
                        "reason": "the manifest's version changed but the component did not; \
                                   waiting for the rebuild",
                    }),
                )
                .with_subject(&spec.name),
            );
        }
        *spec == running.spec && disk.as_deref() == Some(running.digest.as_str())
    }

    /// Whether `spec` is what the shadow on trial, or the last one
    /// discarded, was built from, byte for byte: a rescan then leaves the
    /// trial alone, and does not try a failed shadow again.
    fn on_trial(&self, spec: &PluginSpec) -> bool {
        if !self.inner.shadows.has_any(&spec.name) {
            return false;
        }
        std::fs::read(&spec.component_path)
            .is_ok_and(|b| self.inner.shadows.knows(spec, &digest(&b)))
    }

    /// Whether `version` must first run as a shadow: shadowing is on, and
    /// both it and the version serving `existing` handle events.
    fn shadow_first(
        &self,
        name: &str,
        existing: Option<&Arc<Slot>>,
        version: &PluginVersion,
    ) -> bool {
        let Some(events) = self.inner.config.shadow_events else {
            return false;
        };
        let handles = |v: &PluginVersion| v.compiled.kinds.contains(&Kind::EventHandler);
        let Some(running) = existing.and_then(|s| s.current()) else {
            return false;
        };
        if !handles(&running) || !handles(version) {
            return false;
        }
        tracing::info!(
            plugin = name,
            "the new version runs as a shadow beside the old one for {events} events before it is swapped in"
        );
        self.publish(
            NewEvent::new(
                SOURCE,
                "plugin.shadow_started",
                json!({
                    "plugin": name,
                    "old_version": running.compiled.spec.version, "old_digest": running.compiled.digest,
                    "new_version": version.compiled.spec.version, "new_digest": version.compiled.digest,
                    "events": events,
                }),
            )
            .with_subject(name),
        );
        true
    }

    pub(crate) fn install(
        &self,
        name: &str,
        existing: Option<Arc<Slot>>,
        version: Arc<PluginVersion>,
        took: Duration,
    ) {
        self.inner.labels.installed(
            name,
            &version.compiled.spec.version,
            &version.compiled.digest,
        );
        let kinds = version.compiled.kinds.clone();
        let info = json!({
            "plugin": name,
            "version": version.compiled.spec.version,
            "kinds": kinds,
            "digest": version.compiled.digest,
            "component": version.compiled.spec.component_path,
            "load_ms": took.as_secs_f64() * 1000.0,
            "description": version.description,
        });
        let (slot, ty) = match existing {
            Some(slot) => {
                slot.install(version);
                (slot, "plugin.reloaded")
            }
            None => {
                let slot = Slot::new(
                    name.to_string(),
                    self.inner.bus.clone(),
                    self.inner.config.max_failures,
                );
                slot.install(version);
                self.inner
                    .slots
                    .lock()
                    .insert(name.to_string(), slot.clone());
                (slot, "plugin.loaded")
            }
        };
        tracing::info!(
            plugin = name,
            kinds = %kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(","),
            "{}",
            if ty == "plugin.loaded" { "plugin loaded" } else { "plugin reloaded" }
        );
        // Publish before starting dispatchers, and start them after the
        // event: a handler never sees its own load announcement.
        self.publish(NewEvent::new(SOURCE, ty, info).with_subject(name));
        // A plugin of the first load starts where the host's run began (it
        // may load long after processes started and misses nothing); one
        // added later starts at the head. A saved cursor beats both.
        let first = self
            .inner
            .first_load
            .load(std::sync::atomic::Ordering::Acquire);
        let start = match self.inner.config.first_load_after {
            Some(after) if first => StartAt::After(after),
            _ => StartAt::After(self.inner.bus.head()),
        };
        for kind in kinds {
            let fresh = slot.dispatching.lock().insert(kind);
            if !fresh {
                continue;
            }
            let inner = self.inner.clone();
            let slot = slot.clone();
            match kind {
                Kind::EventHandler => self.spawn(dispatch::event_handler(inner, slot, start)),
                Kind::StatusMapper => self.spawn(dispatch::status_mapper(inner, slot, start)),
                // Rules are called by coordination, agents by the
                // scheduler: nothing to feed here.
                Kind::DependencyRule | Kind::BackgroundAgent => {}
            }
        }
        self.inner.changes.send_modify(|g| *g += 1);
    }

    fn report_failure(&self, name: Option<&str>, path: &Path, err: &PluginError, ty: &str) {
        let text = err.to_string();
        {
            let mut reported = self.inner.reported.lock();
            if reported.get(path) == Some(&text) {
                return;
            }
            reported.insert(path.to_path_buf(), text.clone());
        }
        tracing::error!(path = %path.display(), "{ty}: {text}");
        let mut event = NewEvent::new(
            SOURCE,
            ty,
            json!({ "plugin": name, "path": path, "error": text }),
        );
        if let Some(name) = name {
            event = event.with_subject(name);
        }
        self.publish(event);
    }

    fn publish(&self, event: NewEvent) {
        if let Err(e) = self.inner.bus.publish(event) {
            tracing::error!("could not publish a plugin event: {e}");
        }
    }

    fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.inner.slots.lock().get(name).cloned()
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.tasks.lock().spawn(task);
    }

    /// Every loaded plugin, by name.
    pub fn list(&self) -> Vec<PluginSummary> {
        let slots: Vec<Arc<Slot>> = self.inner.slots.lock().values().cloned().collect();
        slots
            .iter()
            .filter_map(|slot| {
                let v = slot.current()?;
                Some(PluginSummary {
                    name: slot.name.clone(),
                    version: v.compiled.spec.version.clone(),
                    kinds: v.compiled.kinds.clone(),
                    component: v.compiled.spec.component_path.clone(),
                    digest: v.compiled.digest.clone(),
                    description: v.description.clone(),
                    health: slot.health(),
                    awaiting_approval: self.awaiting_approval(&slot.name).unwrap_or_default(),
                    waiting_for_rebuild: self.inner.labels.waiting(&slot.name),
                })
            })
            .collect()
    }

    /// Plugins that failed to load (or reload) and have not loaded since:
    /// the file and the error.
    pub fn failures(&self) -> Vec<(PathBuf, String)> {
        let mut failed: Vec<_> = self
            .inner
            .reported
            .lock()
            .iter()
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        failed.sort();
        failed
    }

    /// A handle to the plugin named `name`, if it is loaded.
    pub fn get(&self, name: &str) -> Option<PluginRef> {
        self.slot(name).map(PluginRef::new)
    }

    /// Handles to the plugins that export `kind`, by name.
    pub fn with_kind(&self, kind: Kind) -> Vec<PluginRef> {
        let slots = self.inner.slots.lock();
        slots
            .values()
            .filter(|s| {
                s.current()
                    .is_some_and(|v| v.compiled.kinds.contains(&kind))
            })
            .map(|s| PluginRef::new(s.clone()))
            .collect()
    }

    /// A receiver that changes whenever a plugin loads, reloads or unloads.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Stop the watcher and dispatchers: wait [`SHUTDOWN_GRACE`] for the
    /// dispatchers to finish what they are delivering, then stop waiting.
    ///
    /// A guest stuck in a call does not hold this up: its dispatcher is
    /// dropped mid-call, and the plugin's thread finishes or dies on its own
    /// (the call ends at its deadline or is given up by the watchdog).
    /// Plugin state not yet in its file is written.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        // It ends at the flag by itself; aborted too in case a reload is
        // under way, and not waited for.
        if let Some(watcher) = self.inner.watcher.lock().take() {
            watcher.abort();
        }
        let mut tasks = std::mem::take(&mut *self.inner.tasks.lock());
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "{} plugin task(s) still in a call after {} ms; not waiting for them",
                tasks.len(),
                SHUTDOWN_GRACE.as_millis()
            );
            tasks.shutdown().await;
        }
        self.inner.services.state.flush_all();
    }
}
