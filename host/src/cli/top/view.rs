//! Drawing a [`Model`]: the frame's layout, the header (where the host is,
//! or that it is gone), the process table with its progress bars, the
//! selected process's output, and the footer (keys, a notice, or a
//! question). The smaller panels (plugins, agents, sessions) are in
//! `panels.rs`.
//!
//! Rendering is a pure function of the model and a [`Theme`], so tests
//! draw into ratatui's `TestBackend` and read the text back.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

use crate::api::ProcessStatus;
use crate::supervisor::ProcessState;

use super::model::{Link, Model, Panel, Verb, sanitize};
use super::panels;

/// The kind whose processes are AI-coder sessions (seed 000), marked `AI`.
pub const AI_CODER_KIND: &str = "ai-coder";

/// Terminals at least this wide show plugins, agents and sessions side by
/// side; narrower ones show one of them at a time.
const WIDE: u16 = 150;

/// Colours, or none (`NO_COLOR`): styles keep their modifiers (bold,
/// reverse) and lose their colours.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    /// Whether to use colours at all.
    pub colour: bool,
}

impl Theme {
    /// Text in colour `c` (plain without colours).
    pub fn fg(self, c: Color) -> Style {
        if self.colour {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    /// A process state, coloured by what it means (as `host ps` does).
    pub fn state(self, state: ProcessState) -> Style {
        self.fg(match state {
            ProcessState::Running => Color::Green,
            ProcessState::Completed => Color::Cyan,
            ProcessState::Failed | ProcessState::Timeout => Color::Red,
            ProcessState::Backoff
            | ProcessState::Paused
            | ProcessState::Stopping
            | ProcessState::Interrupted => Color::Yellow,
            _ => Color::Reset,
        })
    }

    /// The selected row: reversed, which reads without colours too.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Column headers.
    pub fn header(self) -> Style {
        self.fg(Color::DarkGray).add_modifier(Modifier::BOLD)
    }

    /// A panel's border and title: bold (and cyan) when it has the focus.
    pub fn block(self, title: String, focused: bool) -> Block<'static> {
        let (title, style) = if focused {
            (
                format!(" ▶ {title} "),
                self.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            )
        } else {
            (format!(" {title} "), Style::new())
        };
        Block::default()
            .borders(Borders::ALL)
            .border_style(style)
            .title(Span::styled(title, style))
    }
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, model: &Model, theme: Theme) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    header(frame, head, model, theme);
    footer(frame, foot, model, theme);

    let lower_h = (body.height / 3).clamp(4, 12);
    let most = (body.height.saturating_sub(lower_h) * 2 / 3).max(5);
    let procs_h = (model.processes.len() as u16 + 3).clamp(5, most);
    let [procs, out, lower] = Layout::vertical([
        Constraint::Length(procs_h),
        Constraint::Fill(1),
        Constraint::Length(lower_h),
    ])
    .areas(body);
    processes(frame, procs, model, theme);
    output(frame, out, model, theme);
    if lower.width >= WIDE {
        let [p, a, s] = Layout::horizontal([
            Constraint::Percentage(40),
            Constraint::Percentage(30),
            Constraint::Percentage(30),
        ])
        .areas(lower);
        panels::plugins(frame, p, model, theme, Panel::Plugins.title().into());
        panels::agents(frame, a, model, theme, Panel::Agents.title().into());
        panels::sessions(frame, s, model, theme, Panel::Sessions.title().into());
    } else {
        // One at a time; the title names the others Tab reaches.
        let title = [Panel::Plugins, Panel::Agents, Panel::Sessions]
            .iter()
            .map(|p| {
                if *p == model.lower {
                    format!("[{}]", p.title())
                } else {
                    p.title().to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        match model.lower {
            Panel::Agents => panels::agents(frame, lower, model, theme, title),
            Panel::Sessions => panels::sessions(frame, lower, model, theme, title),
            _ => panels::plugins(frame, lower, model, theme, title),
        }
    }
}

fn header(frame: &mut Frame, area: Rect, model: &Model, theme: Theme) {
    let mut spans = vec![Span::styled(
        " host top ",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    match &model.link {
        Link::Connecting => spans.push(Span::raw(" connecting…")),
        Link::Up(addr) => spans.push(Span::styled(format!(" ● {addr}"), theme.fg(Color::Green))),
        Link::Gone(reason) => spans.push(Span::styled(
            format!(" host gone — retrying: {}", sanitize(reason)),
            theme.fg(Color::Red).add_modifier(Modifier::BOLD),
        )),
    }
    if !matches!(model.link, Link::Gone(_)) {
        let count = |s: ProcessState| model.processes.iter().filter(|p| p.state == s).count();
        spans.push(Span::raw(format!(
            "   {} processes: {} running, {} failed",
            model.processes.len(),
            count(ProcessState::Running),
            count(ProcessState::Failed) + count(ProcessState::Timeout)
        )));
        if let Some(seq) = model.cursor {
            spans.push(Span::styled(
                format!("   event {seq}"),
                theme.fg(Color::DarkGray),
            ));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn footer(frame: &mut Frame, area: Rect, model: &Model, theme: Theme) {
    let line = if let Some(pending) = &model.confirm {
        let what = match pending.verb {
            Verb::Stop => "Stop",
            _ => "Restart",
        };
        Line::from(Span::styled(
            format!(
                " {what} process {}? y to confirm, any other key to cancel",
                pending.target
            ),
            theme.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ))
    } else if let Some((text, error)) = &model.notice {
        let colour = if *error { Color::Red } else { Color::Green };
        Line::from(Span::styled(format!(" {text}"), theme.fg(colour)))
    } else {
        let keys = match model.focus {
            Panel::Processes => "s stop  r restart  p pause  u resume",
            Panel::Plugins => "r reload",
            Panel::Agents => "p pause  u resume",
            Panel::Sessions => "",
        };
        Line::from(Span::styled(
            format!(" ↑↓/jk select  tab panel  {keys}  q quit"),
            theme.fg(Color::DarkGray),
        ))
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// `█████░ 80%`: a bar of `width` cells and the percentage.
pub fn bar(progress: f64, width: usize) -> String {
    let p = progress.clamp(0.0, 1.0);
    let filled = (p * width as f64).round() as usize;
    format!(
        "{}{} {:>3.0}%",
        "█".repeat(filled),
        "░".repeat(width - filled),
        p * 100.0
    )
}

fn processes(frame: &mut Frame, area: Rect, model: &Model, theme: Theme) {
    let width = |f: fn(&ProcessStatus) -> usize, min: usize, max: usize| {
        model
            .processes
            .iter()
            .map(f)
            .max()
            .unwrap_or(0)
            .clamp(min, max) as u16
    };
    let id_w = width(|p| p.process_id.chars().count(), 2, 20);
    let kind_w = width(|p| p.process_type.chars().count(), 4, 12);
    let header = Row::new([
        "", "ID", "KIND", "STATE", "PROGRESS", "RST", "CPU", "MEM", "MESSAGE",
    ])
    .style(theme.header());
    let rows = model.processes.iter().map(|p| {
        let ai = p.process_type == AI_CODER_KIND;
        let progress = p.progress.map_or_else(|| "-".to_string(), |x| bar(x, 6));
        let mut message = p.message.as_deref().map(sanitize).unwrap_or_default();
        if let Some(reported) = p.reported_state.filter(|r| *r != p.state) {
            message = format!("[{}] {message}", reported.as_str());
        }
        Row::new([
            Cell::from(if ai { "AI" } else { "" })
                .style(theme.fg(Color::Magenta).add_modifier(Modifier::BOLD)),
            Cell::from(p.process_id.clone()),
            Cell::from(p.process_type.clone()).style(if ai {
                theme.fg(Color::Magenta)
            } else {
                Style::new()
            }),
            Cell::from(p.state.as_str()).style(theme.state(p.state)),
            Cell::from(progress).style(theme.fg(Color::Green)),
            Cell::from(format!("{:>3}", p.restarts)),
            Cell::from(p.cpu_percent.map_or("-".into(), |c| format!("{c:>4.0}%"))),
            Cell::from(p.memory_bytes.map_or("-".into(), |b| {
                format!("{:>5}", super::super::output::bytes(b))
            })),
            Cell::from(message),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(2),
            Constraint::Length(id_w),
            Constraint::Length(kind_w),
            Constraint::Length(9),
            Constraint::Length(11),
            Constraint::Length(3),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Fill(1),
        ],
    )
    .header(header)
    .column_spacing(1)
    .block(theme.block(
        format!("{} ({})", Panel::Processes.title(), model.processes.len()),
        model.focus == Panel::Processes,
    ))
    .row_highlight_style(theme.selected())
    .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(model.selection(Panel::Processes));
    frame.render_stateful_widget(table, area, &mut state);
}

fn output(frame: &mut Frame, area: Rect, model: &Model, theme: Theme) {
    let title = match model.selected_process() {
        Some(p) => match &p.message {
            Some(m) => format!("Output of {} — {}", p.process_id, sanitize(m)),
            None => format!("Output of {}", p.process_id),
        },
        None => "Output".to_string(),
    };
    let block = theme.block(title, false);
    let height = block.inner(area).height as usize;
    let tail = &model.output.lines;
    let lines: Vec<Line> = tail
        .iter()
        .skip(tail.len().saturating_sub(height))
        .map(|(stderr, text)| {
            let style = if *stderr {
                theme.fg(Color::Yellow)
            } else {
                Style::new()
            };
            Line::from(Span::styled(text.clone(), style))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
pub(super) mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::api::OutputLineView;
    use crate::cli::top::model::tests::{agent, plugin, process};
    use crate::cli::top::model::{Pending, Snapshot};

    /// The screen as text, one line per row, drawn without colours.
    pub fn screen(model: &Model, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|f| render(f, model, Theme { colour: false }))
            .unwrap();
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    /// A host with an AI coder at 40%, a server and a failed build.
    pub fn busy() -> Model {
        let mut coder = process("coder_1a2b3c", "ai-coder", ProcessState::Running);
        coder.progress = Some(0.4);
        coder.message = Some("writing tests".into());
        let mut web = process("web", "server", ProcessState::Running);
        web.cpu_percent = Some(12.0);
        web.memory_bytes = Some(3 << 20);
        web.restarts = 2;
        let build = process("build", "build", ProcessState::Failed);
        let mut quarantined = plugin("flaky-plugin");
        quarantined.quarantined = true;
        quarantined.state = "quarantined".into();
        let mut m = Model {
            link: Link::Up("127.0.0.1:4000".into()),
            ..Model::default()
        };
        m.apply_snapshot(Snapshot {
            processes: vec![build, coder, web],
            plugins: vec![plugin("failure-alert"), quarantined],
            agents: vec![agent("stall-detector")],
            sessions: Ok(Vec::new()),
        });
        m
    }

    #[test]
    fn processes_show_state_kind_progress_restarts_and_samples() {
        let text = screen(&busy(), 120, 40);
        let coder = text.lines().find(|l| l.contains("coder_1a2b3c")).unwrap();
        assert!(coder.contains("AI"), "{coder}");
        assert!(coder.contains("ai-coder"), "{coder}");
        assert!(coder.contains("running"), "{coder}");
        assert!(coder.contains("██░░░░  40%"), "{coder}");
        assert!(coder.contains("writing tests"), "{coder}");
        let web = text.lines().find(|l| l.contains(" web ")).unwrap();
        assert!(
            web.contains("  2 ") && web.contains("12%") && web.contains("3.0M"),
            "{web}"
        );
        assert!(!web.contains("AI"), "{web}");
        let build = text.lines().find(|l| l.contains(" build ")).unwrap();
        assert!(build.contains("failed"), "{build}");
        assert!(text.contains("3 processes: 2 running, 1 failed"), "{text}");
    }

    #[test]
    fn the_selected_process_is_marked_and_its_output_shown() {
        let mut m = busy();
        m.move_selection(1);
        let id = m.output.id.clone();
        assert_eq!(id, "coder_1a2b3c");
        let lines = ["collecting", "\u{1b}[32mok\u{1b}[0m 3 passed"]
            .iter()
            .enumerate()
            .map(|(i, l)| OutputLineView {
                offset: i as u64,
                stream: "stdout".into(),
                line: l.to_string(),
                time: chrono::Utc::now(),
            })
            .collect();
        m.apply_output(&id, lines, 2);
        let text = screen(&m, 80, 24);
        assert!(
            text.lines()
                .any(|l| l.contains(">") && l.contains("coder_1a2b3c")),
            "{text}"
        );
        assert!(
            text.contains("Output of coder_1a2b3c — writing tests"),
            "{text}"
        );
        assert!(text.contains("ok 3 passed"), "escape codes dropped: {text}");
    }

    #[test]
    fn a_small_terminal_shows_every_panel_and_the_keys() {
        let text = screen(&busy(), 80, 24);
        for want in [
            "Processes (3)",
            "[Plugins] Agents Sessions",
            "failure-alert",
            "quarantined",
            "s stop  r restart  p pause  u resume  q quit",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        assert_eq!(text.lines().count(), 24);
    }

    #[test]
    fn a_wide_terminal_shows_plugins_agents_and_sessions_side_by_side() {
        let text = screen(&busy(), 180, 40);
        for want in [
            "Plugins",
            "Agents",
            "Sessions",
            "stall-detector",
            "flaky-plugin",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        assert!(!text.contains("[Plugins]"));
    }

    #[test]
    fn a_lost_host_is_said_in_the_header_and_the_last_lists_stay() {
        let mut m = busy();
        m.link = Link::Gone("connection refused".into());
        let text = screen(&m, 80, 24);
        assert!(text.lines().next().unwrap().contains("host gone"), "{text}");
        assert!(text.contains("coder_1a2b3c"), "{text}");
    }

    #[test]
    fn a_stop_asks_before_it_acts() {
        let mut m = busy();
        m.confirm = Some(Pending {
            verb: Verb::Stop,
            target: "web".into(),
        });
        let text = screen(&m, 80, 24);
        let last = text.lines().last().unwrap();
        assert!(last.contains("Stop process web? y to confirm"), "{last}");
    }

    #[test]
    fn a_tiny_terminal_does_not_break_the_drawing() {
        for (w, h) in [(20, 5), (1, 1), (80, 6)] {
            screen(&busy(), w, h);
        }
    }

    #[test]
    fn bars_fill_with_progress() {
        assert_eq!(bar(0.4, 6), "██░░░░  40%");
        assert_eq!(bar(1.0, 6), "██████ 100%");
        assert_eq!(bar(-3.0, 4), "░░░░   0%");
    }
}
