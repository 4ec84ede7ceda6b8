//! Running a manifest's `[build] command`, as `spin build` does: so a fresh
//! checkout's `host run` can build the plugins it ships before loading them.

use std::process::Stdio;

use super::error::PluginError;
use super::manifest::{BuildSpec, PluginSpec};

/// Most bytes of build output kept for the error message.
const OUTPUT_TAIL: usize = 4000;

/// Run `build.command` with `sh -c` in the manifest's folder.
///
/// # Errors
///
/// [`PluginError::Build`] with the exit status and the tail of the
/// command's output when it fails or does not produce the component.
pub(crate) async fn run(spec: &PluginSpec, build: &BuildSpec) -> Result<(), PluginError> {
    let dir = spec.base_dir();
    tracing::info!(plugin = %spec.name, command = %build.command, dir = %dir.display(), "building plugin");
    let output = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&build.command)
        .current_dir(&dir)
        // A host started by `cargo run` inherits cargo's build settings;
        // they would send a guest build elsewhere or to the wrong target.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| PluginError::Io {
            path: dir.clone(),
            source,
        })?;
    let fail = |reason: String| PluginError::Build {
        plugin: spec.name.clone(),
        command: build.command.clone(),
        reason,
    };
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let tail = &text[text.len().saturating_sub(OUTPUT_TAIL)..];
        return Err(fail(format!("{}:\n{tail}", output.status)));
    }
    if !spec.component_path.exists() {
        return Err(fail(format!(
            "it succeeded but {} still does not exist",
            spec.component_path.display()
        )));
    }
    Ok(())
}
