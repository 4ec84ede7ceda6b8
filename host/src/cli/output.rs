//! How client verbs print: aligned tables for people (colour only on a
//! terminal), JSON for scripts, and a closed pipe (`host ps | head`) is
//! not an error.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table};
use serde::Serialize;

use crate::supervisor::ProcessState;

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> ExitCode {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("\"{e}\""));
    line(&text)
}

/// Prints one line (or block); a closed pipe ends quietly.
pub fn line(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether to colour: stdout is a terminal and `NO_COLOR` is unset.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A borderless table with a header, like `ps` or `docker ps`.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| Cell::new(h).fg(Color::DarkGrey)));
    if !colour() {
        table.force_no_tty();
    }
    table
}

/// A cell right-aligned (numbers).
pub fn num(text: impl ToString) -> Cell {
    Cell::new(text.to_string()).set_alignment(CellAlignment::Right)
}

/// A state, coloured by what it means.
pub fn state(state: ProcessState) -> Cell {
    let colour = match state {
        ProcessState::Running => Color::Green,
        ProcessState::Completed => Color::Cyan,
        ProcessState::Failed | ProcessState::Timeout => Color::Red,
        ProcessState::Backoff
        | ProcessState::Paused
        | ProcessState::Stopping
        | ProcessState::Interrupted => Color::Yellow,
        _ => Color::Reset,
    };
    Cell::new(state.as_str()).fg(colour)
}

/// Prints a table: columns two spaces apart, flush left, no trailing
/// spaces.
pub fn print(table: &mut Table) -> ExitCode {
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let text: Vec<String> = table
        .to_string()
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
    line(&text.join("\n"))
}

/// `3.2s`, `4m12s`, `2h03m`, `3d04h`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let s = s as u64;
    if s < 3_600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3_600, s % 3_600 / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600)
    }
}

/// `512K`, `24.5M`, `1.2G`.
pub fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let n = n as f64;
    if n < K * K {
        format!("{:.0}K", n / K)
    } else if n < K * K * K {
        format!("{:.1}M", n / (K * K))
    } else {
        format!("{:.1}G", n / (K * K * K))
    }
}

/// `-` for nothing.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(3.24), "3.2s");
        assert_eq!(duration(252.0), "4m12s");
        assert_eq!(duration(7_380.0), "2h03m");
        assert_eq!(duration(273_600.0), "3d04h");
        assert_eq!(duration(-1.0), "0.0s");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(512 * 1024), "512K");
        assert_eq!(bytes(24_500_000), "23.4M");
        assert_eq!(bytes(3 << 30), "3.0G");
    }
}
