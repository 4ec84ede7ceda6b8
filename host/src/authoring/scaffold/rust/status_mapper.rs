//! {{name}}: a status mapper. For processes of the kinds it serves, the
//! host hands it each status the process reports of its own (`map_status`)
//! and each line of its output (`map_output`); what it returns becomes the
//! process's reported state, progress and message.
//!
//! The glue below stays thin; the mapping lives in `map_line`, which calls
//! no host function, so `cargo test` checks it natively.

use exports::host::plugin::status_mapper::Guest;
use host::plugin::types::{ProcessInfo, StatusUpdate};

wit_bindgen::generate!({ world: "status-mapper-plugin", path: "wit" });

struct Plugin;

impl Guest for Plugin {
    fn kinds() -> Vec<String> {
        // Processes started with this `kind` are mapped; `*` serves every
        // kind (and then sees every output line of every process).
        vec!["{{name}}".to_string()]
    }

    fn map_status(p: ProcessInfo, reported: String) -> Option<StatusUpdate> {
        // A status the process's own system reports (e.g. `paused`).
        let _ = (p, reported);
        None
    }

    fn map_output(p: ProcessInfo, line: String) -> Option<StatusUpdate> {
        let _ = p;
        map_line(&line)
    }
}

/// What one output line says about the process: nothing yet. To read a
/// percentage, for example:
///
/// ```text
/// let pct: f32 = line.strip_suffix('%')?.rsplit(' ').next()?.parse().ok()?;
/// Some(StatusUpdate { state: None, progress: Some(pct / 100.0), message: None })
/// ```
fn map_line(line: &str) -> Option<StatusUpdate> {
    let _ = line;
    None
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_serves_processes_of_its_own_kind() {
        assert_eq!(Plugin::kinds(), ["{{name}}"]);
    }

    #[test]
    fn an_output_line_maps_to_nothing_yet() {
        assert!(map_line("step 3 of 10").is_none());
        assert!(map_line("").is_none());
    }
}
