//! The components `host bench` loads: built, all of them, before any
//! section runs, and installed into temporary plugins folders the way a
//! user installs plugins (a folder with a `plugin.toml`).
//!
//! A fresh clone has no guest builds at all. Building everything first,
//! and checking every file right after, means a missing toolchain or a
//! broken guest is reported once, at the start, naming the file and the
//! command that should have made it, instead of as a bare I/O error
//! minutes into the run.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Test fixtures (`tests/plugins`) the sections load: the echo pair, the
/// misbehaving ones for deadlines, and the rest for the start-up count.
const FIXTURES: [&str; 9] = [
    "echo-v1",
    "echo-v2",
    "spin-forever",
    "hostile",
    "alloc-bomb",
    "file-reader",
    "kitchen-sink",
    "counter-agent",
    "pinger",
];

/// Shipped plugins (`plugins/`): loaded at start-up, and the dependency
/// rule of the dependency section.
pub(crate) const SHIPPED: [&str; 4] = [
    "api-contract-rule",
    "failure-alert",
    "progress-mapper",
    "pm",
];

/// The shipped rules the dependency section's sparse case loads.
pub(crate) const SHIPPED_RULES: [&str; 4] = [
    "api-contract-rule",
    "database-schema-rule",
    "configuration-dependency-rule",
    "security-compliance-rule",
];

/// Grants of the echo handlers: they emit `test.pong`, and a plugin emits
/// only what its manifest grants.
pub(crate) const ECHO_GRANTS: &str = "[permissions]\nemit = [\"test.>\"]\n";

/// Where the built components are.
#[derive(Debug, Clone)]
pub(crate) struct Fixtures {
    /// `tests/plugins/target/wasm32-wasip2/release`.
    tests: PathBuf,
    /// The `plugins/` folder of the workspace (manifests).
    shipped_root: PathBuf,
    /// `plugins/target/wasm32-wasip2/release`.
    shipped: PathBuf,
    /// `--echo-v1` / `--echo-v2`, when given.
    echo: [Option<PathBuf>; 2],
}

/// The workspace this binary was built from.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl Fixtures {
    /// Builds every fixture and shipped plugin the bench needs (cargo does
    /// nothing when they are fresh), then checks that each file exists.
    ///
    /// # Errors
    ///
    /// When cargo cannot run or fails, or a component is still missing:
    /// the message names the file and the command.
    pub(crate) fn build(
        echo_v1: Option<PathBuf>,
        echo_v2: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let root = workspace_root();
        let fixtures = Fixtures {
            tests: root.join("tests/plugins/target/wasm32-wasip2/release"),
            shipped_root: root.join("plugins"),
            shipped: root.join("plugins/target/wasm32-wasip2/release"),
            echo: [echo_v1, echo_v2],
        };
        build(&root.join("tests/plugins"), &FIXTURES)?;
        // (Each rule once: `api-contract-rule` is in both lists.)
        let mut shipped: Vec<&str> = SHIPPED.iter().chain(&SHIPPED_RULES).copied().collect();
        shipped.sort_unstable();
        shipped.dedup();
        build(&root.join("plugins"), &shipped)?;
        for name in FIXTURES {
            fixtures.fixture(name)?;
        }
        for name in shipped {
            fixtures.shipped(name)?;
        }
        for path in fixtures.echo.iter().flatten() {
            if !path.is_file() {
                bail!(
                    "the echo component {} given on the command line does not exist",
                    path.display()
                );
            }
        }
        Ok(fixtures)
    }

    /// A test fixture's component, by crate name (`echo-v1`).
    ///
    /// # Errors
    ///
    /// When the file is not there, saying which and what should have built it.
    pub(crate) fn fixture(&self, name: &str) -> anyhow::Result<PathBuf> {
        if let Some(Some(path)) = match name {
            "echo-v1" => Some(&self.echo[0]),
            "echo-v2" => Some(&self.echo[1]),
            _ => None,
        } {
            return Ok(path.clone());
        }
        component(&self.tests, name, "tests/plugins")
    }

    /// A shipped plugin's component, by crate name (`api-contract-rule`).
    ///
    /// # Errors
    ///
    /// As [`Fixtures::fixture`].
    pub(crate) fn shipped(&self, name: &str) -> anyhow::Result<PathBuf> {
        component(&self.shipped, name, "plugins")
    }

    /// Installs the shipped plugin `name` into `dir/<as_name>/` as shipped
    /// (its own `plugin.toml`: config, grants, limits), named `as_name`,
    /// with its `component` line pointing at a copy of the built component.
    ///
    /// # Errors
    ///
    /// When the manifest cannot be read or the folder written.
    pub(crate) fn install_shipped(
        &self,
        name: &str,
        dir: &Path,
        as_name: &str,
    ) -> anyhow::Result<PathBuf> {
        let manifest = self.shipped_root.join(name).join("plugin.toml");
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read the shipped manifest {}", manifest.display()))?;
        let file = format!("{as_name}.wasm");
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                let key = line.split('=').next().unwrap_or("").trim();
                match key {
                    "name" if line.contains('=') => format!("name = \"{as_name}\""),
                    "component" if line.contains('=') => format!("component = \"{file}\""),
                    _ => line.to_string(),
                }
            })
            .collect();
        let folder = dir.join(as_name);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let source = self.shipped(name)?;
        copy(&source, &folder.join(&file))?;
        write(&folder.join("plugin.toml"), &(lines.join("\n") + "\n"))?;
        Ok(folder)
    }
}

/// `dir/<crate_name>.wasm` if it exists.
fn component(dir: &Path, name: &str, workspace: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    if !path.is_file() {
        bail!(
            "{} is missing: `cargo build --release --target wasm32-wasip2 -p {name}` in {workspace}/ did not produce it",
            path.display()
        );
    }
    Ok(path)
}

/// `cargo build --release --target wasm32-wasip2 -p ...` in `dir`.
fn build(dir: &Path, packages: &[&str]) -> anyhow::Result<()> {
    eprintln!(
        "building the plugins the bench loads in {} (the first time takes minutes)...",
        dir.display()
    );
    let status = crate::plugins::guest_build(dir, packages)
        .arg("--quiet")
        .status()
        .with_context(|| format!("cannot run cargo in {} (is it on PATH?)", dir.display()))?;
    if !status.success() {
        bail!(
            "building {} in {} failed ({status}); is the target installed (`rustup target add wasm32-wasip2`)?",
            packages.join(", "),
            dir.display()
        );
    }
    Ok(())
}

/// Installs a plugin folder `dir/<name>/`: a copy of `component` as
/// `<name>.wasm` and a `plugin.toml` naming it, followed by
/// `manifest_tail` (grants, config). Returns the folder.
///
/// # Errors
///
/// When a file cannot be copied or written (the message names it).
pub(crate) fn install_folder(
    dir: &Path,
    name: &str,
    component: &Path,
    manifest_tail: &str,
) -> anyhow::Result<PathBuf> {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    copy(component, &folder.join(format!("{name}.wasm")))?;
    let manifest = format!("name = \"{name}\"\ncomponent = \"{name}.wasm\"\n{manifest_tail}");
    write(&folder.join("plugin.toml"), &manifest)?;
    Ok(folder)
}

/// `std::fs::copy`, with both paths in the error.
pub(crate) fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

/// `std::fs::write`, with the path in the error.
pub(crate) fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
