//! The smaller panels of `host top`: plugins with their health and
//! quarantine, agents with their activity and cycle count, and open
//! coordination sessions. Each is a table drawn from the [`Model`], the
//! selected row marked when the panel has the focus.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::model::{Model, Panel, sanitize};
use super::view::Theme;

/// Draws a table into a panel, the selection marked.
fn draw(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    theme: Theme,
    (panel, title): (Panel, String),
    (header, rows, widths): (&[&str], Vec<Row<'static>>, Vec<Constraint>),
) {
    let focused = model.focus == panel;
    let table = Table::new(rows, widths)
        .header(Row::new(header.to_vec()).style(theme.header()))
        .column_spacing(1)
        .block(theme.block(title, focused))
        .row_highlight_style(if focused {
            theme.selected()
        } else {
            Default::default()
        })
        .highlight_symbol(if focused { "> " } else { "  " });
    let mut state = TableState::default().with_selected(model.selection(panel));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Plugins: state (serving or quarantined), health, calls, lag, the last
/// error.
pub fn plugins(frame: &mut Frame, area: Rect, model: &Model, theme: Theme, title: String) {
    let rows = model
        .plugins
        .iter()
        .map(|p| {
            let (health, colour) = if p.quarantined {
                ("quarantined".to_string(), Color::Red)
            } else if p.consecutive_failures > 0 {
                (format!("{} failing", p.consecutive_failures), Color::Yellow)
            } else if !p.awaiting_approval.is_empty() {
                ("awaits approval".to_string(), Color::Yellow)
            } else {
                ("ok".to_string(), Color::Green)
            };
            let lag: u64 = p.lag.values().sum();
            Row::new([
                Cell::from(p.name.clone()),
                Cell::from(health).style(theme.fg(colour).add_modifier(if p.quarantined {
                    Modifier::BOLD
                } else {
                    Modifier::empty()
                })),
                Cell::from(format!("{:>6}", p.calls)),
                Cell::from(format!("{:>4}", p.failures + p.errors)),
                Cell::from(format!("{lag:>5}")),
                Cell::from(p.last_error.as_deref().map(sanitize).unwrap_or_default()),
            ])
        })
        .collect();
    let name_w = model
        .plugins
        .iter()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 24) as u16;
    draw(
        frame,
        area,
        model,
        theme,
        (Panel::Plugins, title),
        (
            &["NAME", "HEALTH", "CALLS", "FAIL", "LAG", "LAST ERROR"],
            rows,
            vec![
                Constraint::Length(name_w),
                Constraint::Length(11),
                Constraint::Length(6),
                Constraint::Length(4),
                Constraint::Length(5),
                Constraint::Fill(1),
            ],
        ),
    );
}

/// Agents: status, cycles, last active, what they are doing.
pub fn agents(frame: &mut Frame, area: Rect, model: &Model, theme: Theme, title: String) {
    let rows = model
        .agents
        .iter()
        .map(|a| {
            let colour = match a.status.as_str() {
                "error" => Color::Red,
                "paused" | "stopped" => Color::Yellow,
                _ => Color::Green,
            };
            let activity = match (&a.last_error, a.status.as_str()) {
                (Some(e), "error") => sanitize(e),
                _ => sanitize(&a.activity),
            };
            Row::new([
                Cell::from(a.plugin.clone()),
                Cell::from(a.status.clone()).style(theme.fg(colour)),
                Cell::from(format!("{:>6}", a.cycles)),
                Cell::from(
                    a.last_active
                        .map_or("-".into(), |t| t.format("%H:%M:%S").to_string()),
                ),
                Cell::from(activity),
            ])
        })
        .collect();
    let name_w = model
        .agents
        .iter()
        .map(|a| a.plugin.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 24) as u16;
    draw(
        frame,
        area,
        model,
        theme,
        (Panel::Agents, title),
        (
            &["AGENT", "STATUS", "CYCLES", "ACTIVE", "ACTIVITY"],
            rows,
            vec![
                Constraint::Length(name_w),
                Constraint::Length(7),
                Constraint::Length(6),
                Constraint::Length(8),
                Constraint::Fill(1),
            ],
        ),
    );
}

/// Open coordination sessions; when the host did not list them (one from
/// before sessions answers 404), the panel says why instead of showing an
/// empty table that would read as "no sessions".
pub fn sessions(frame: &mut Frame, area: Rect, model: &Model, theme: Theme, title: String) {
    let sessions = match &model.sessions {
        Ok(sessions) if sessions.is_empty() => Err("No open coordination sessions.".to_string()),
        Ok(sessions) => Ok(sessions),
        Err(e) => Err(format!("Sessions not listed: {}", sanitize(e))),
    };
    let sessions = match sessions {
        Ok(sessions) => sessions,
        Err(text) => {
            let block = theme.block(title, model.focus == Panel::Sessions);
            frame.render_widget(
                Paragraph::new(text)
                    .style(theme.fg(Color::DarkGray))
                    .wrap(Wrap { trim: true })
                    .block(block),
                area,
            );
            return;
        }
    };
    let rows = sessions
        .iter()
        .map(|s| {
            let colour = match s.status.as_str() {
                "active" => Color::Green,
                "escalated" => Color::Red,
                _ => Color::Cyan,
            };
            Row::new([
                Cell::from(s.id.clone()),
                Cell::from(s.kind.clone()),
                Cell::from(s.status.clone()).style(theme.fg(colour)),
                Cell::from(format!("{:>4}", s.messages)),
                Cell::from(
                    s.last_activity
                        .map_or("-".into(), |t| t.format("%H:%M:%S").to_string()),
                ),
                Cell::from(s.participants.join(", ")),
            ])
        })
        .collect();
    draw(
        frame,
        area,
        model,
        theme,
        (Panel::Sessions, title),
        (
            &["ID", "KIND", "STATUS", "MSGS", "ACTIVE", "PARTICIPANTS"],
            rows,
            vec![
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(9),
                Constraint::Length(4),
                Constraint::Length(8),
                Constraint::Fill(1),
            ],
        ),
    );
}

#[cfg(test)]
mod tests {
    use crate::cli::top::model::{Panel, SessionRow};
    use crate::cli::top::view::tests::{busy, screen};

    #[test]
    fn plugins_show_health_and_quarantine() {
        let text = screen(&busy(), 80, 24);
        let line = text.lines().find(|l| l.contains("flaky-plugin")).unwrap();
        assert!(line.contains("quarantined"), "{line}");
        let line = text.lines().find(|l| l.contains("failure-alert")).unwrap();
        assert!(line.contains(" ok "), "{line}");
    }

    #[test]
    fn agents_show_status_cycles_and_activity() {
        let mut m = busy();
        m.focus_on(Panel::Agents);
        let text = screen(&m, 80, 24);
        let line = text.lines().find(|l| l.contains("stall-detector")).unwrap();
        assert!(
            line.contains("idle") && line.contains("7") && line.contains("starting"),
            "{line}"
        );
        assert!(text.contains("Plugins [Agents] Sessions"), "{text}");
        assert!(text.contains("p pause  u resume"), "{text}");
    }

    #[test]
    fn open_sessions_are_listed_and_a_host_that_cannot_list_them_is_named() {
        let mut m = busy();
        m.focus_on(Panel::Sessions);
        let text = screen(&m, 100, 30);
        assert!(text.contains("No open coordination sessions"), "{text}");
        m.sessions = Err("no such endpoint".into());
        let text = screen(&m, 100, 30);
        assert!(
            text.contains("Sessions not listed: no such endpoint"),
            "{text}"
        );
        m.sessions = Ok(vec![SessionRow {
            id: "s42".into(),
            kind: "dependency".into(),
            status: "active".into(),
            participants: vec!["codex".into(), "claude".into()],
            messages: 3,
            last_activity: None,
        }]);
        let text = screen(&m, 100, 30);
        let line = text.lines().find(|l| l.contains("s42")).unwrap();
        assert!(
            line.contains("dependency") && line.contains("codex, claude"),
            "{line}"
        );
    }
}
