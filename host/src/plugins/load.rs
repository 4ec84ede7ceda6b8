//! The one load pipeline, for the host (`registry.rs`) and for
//! `host plugin check` (`check.rs`): from a resolved [`PluginSpec`] to a
//! running [`PluginVersion`] that has described itself.

use std::sync::Arc;

use wasmtime::component::Linker;

use super::engine::{PluginEngine, digest};
use super::error::PluginError;
use super::instance::Compiled;
use super::manifest::PluginSpec;
use super::sandbox::StoreState;
use super::services::HostServices;
use super::version::PluginVersion;

/// Build a version of `spec`: run its `[build] command` if the component
/// is missing and `build` gives a time limit for it, read the component, compile
/// it (cached) off the async threads, link it, start its actor and ask it
/// to describe itself, each call under the plugin's deadline.
///
/// # Errors
///
/// Whatever step failed, naming the file or the plugin: build, read,
/// compile, link, no known kind, or a failing (or too slow) describe call.
pub(crate) async fn load_version(
    engine: &PluginEngine,
    linker: &Linker<StoreState>,
    services: &Arc<HostServices>,
    spec: PluginSpec,
    build: Option<std::time::Duration>,
) -> Result<Arc<PluginVersion>, PluginError> {
    if !spec.component_path.exists()
        && let Some(timeout) = build
        && let Some(command) = &spec.build
    {
        super::build::run(&spec, command, timeout).await?;
    }
    let path = spec.component_path.clone();
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|source| PluginError::Io {
            path: path.clone(),
            source,
        })?;
    let compiler = engine.clone();
    let (component, digest) = tokio::task::spawn_blocking(move || {
        let d = digest(&bytes);
        compiler.compile(&path, &bytes).map(|c| (c, d))
    })
    .await
    .map_err(|e| PluginError::Engine(format!("compile task: {e}")))??;
    let compiled = Compiled::new(engine, linker, spec, digest, component)?;
    PluginVersion::start(compiled, engine.clone(), services.clone()).await
}
