//! Start-up: `PluginHost::start` (what a starting host does before any
//! process starts) over a folder of distinct components, each installed
//! as a plugin folder: the test fixtures (but `bad-kind`, which is meant
//! not to load) and the four shipped plugins with their own manifests.
//! The first start compiles and fills the `.cwasm` cache; the next five
//! load from it.

use std::time::Instant;

use serde::Serialize;

use super::common::{median, plugin_host};
use super::fixtures::{ECHO_GRANTS, Fixtures, SHIPPED, install_folder};
use crate::bus::{Bus, BusConfig};

/// Fixtures loaded at start-up, with the grants each needs to do its job.
const LOADED: [(&str, &str); 9] = [
    ("echo-v1", ECHO_GRANTS),
    ("echo-v2", ECHO_GRANTS),
    ("spin-forever", ""),
    ("hostile", ""),
    ("alloc-bomb", ECHO_GRANTS),
    ("file-reader", ECHO_GRANTS),
    ("kitchen-sink", ECHO_GRANTS),
    ("counter-agent", ECHO_GRANTS),
    ("pinger", ECHO_GRANTS),
];

/// What the section measured.
#[derive(Debug, Serialize)]
pub struct StartupReport {
    /// Plugins loaded.
    pub plugins: usize,
    /// Plugins installed.
    pub installed: usize,
    /// Time to start the host with an empty cache.
    pub cold_ms: f64,
    /// Median time to start it with a warm cache, of five.
    pub warm_ms: f64,
}

/// Runs the section.
pub(crate) async fn measure(fixtures: &Fixtures) -> anyhow::Result<StartupReport> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    for (name, grants) in LOADED {
        install_folder(&plugins, name, &fixtures.fixture(name)?, grants)?;
    }
    for name in SHIPPED {
        fixtures.install_shipped(name, &plugins, name)?;
    }
    let installed = LOADED.len() + SHIPPED.len();
    let mut times = Vec::new();
    let mut loaded = 0;
    for _ in 0..6 {
        let bus = Bus::open_in_memory(BusConfig::default())?;
        let t = Instant::now();
        let (host, _rx) = plugin_host(&plugins, bus, 100).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        loaded = host.list().len();
        host.shutdown().await;
    }
    let cold_ms = times.remove(0);
    Ok(StartupReport {
        plugins: loaded,
        installed,
        cold_ms,
        warm_ms: median(times),
    })
}

/// Prints the section.
pub(crate) fn print(r: &StartupReport) {
    println!(
        "start-up with {} plugins ({} installed): warm cache {:.1} ms (median of 5), cold {:.0} ms",
        r.plugins, r.installed, r.warm_ms, r.cold_ms
    );
}
