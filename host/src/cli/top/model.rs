//! What `host top` shows, as plain data: the lists of the last snapshot,
//! kept current between snapshots by the events of the SSE stream, plus
//! what the person at the terminal has selected and been told.
//!
//! Nothing here touches a terminal or the network, so the whole screen can
//! be rebuilt from a `Model` in a test. How events patch it is in
//! `patch.rs`.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use crate::api::{AgentStatusView, OutputLineView, PluginStatus, ProcessStatus};

/// Output lines kept for the selected process (more than any terminal
/// shows; the panel draws the newest that fit).
pub const OUTPUT_LINES: usize = 200;

/// The panels, in the order Tab visits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// Supervised processes (the main panel).
    Processes,
    /// Loaded plugins and their health.
    Plugins,
    /// Background agents.
    Agents,
    /// Open coordination sessions.
    Sessions,
}

impl Panel {
    /// Every panel, in Tab order.
    pub const ALL: [Panel; 4] = [
        Panel::Processes,
        Panel::Plugins,
        Panel::Agents,
        Panel::Sessions,
    ];

    fn index(self) -> usize {
        Panel::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    /// The panel after this one (Tab), or before it (Shift-Tab).
    pub fn step(self, forward: bool) -> Panel {
        let n = Panel::ALL.len();
        let i = self.index();
        Panel::ALL[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            Panel::Processes => "Processes",
            Panel::Plugins => "Plugins",
            Panel::Agents => "Agents",
            Panel::Sessions => "Sessions",
        }
    }
}

/// A coordination session as the Sessions panel lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Its id.
    pub id: String,
    /// dependency, conflict or planning.
    pub kind: String,
    /// active, resolved, escalated or closed.
    pub status: String,
    /// Who takes part.
    pub participants: Vec<String>,
    /// Messages posted so far.
    pub messages: usize,
    /// When it last took a message.
    pub last_activity: Option<DateTime<Utc>>,
}

/// Whether the host can be reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// Before the first answer.
    Connecting,
    /// Streaming from the host at this address.
    Up(String),
    /// The host stopped answering (or never did); retrying.
    Gone(String),
}

/// One snapshot of the host, taken through the API.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every process, sorted by id.
    pub processes: Vec<ProcessStatus>,
    /// Every plugin.
    pub plugins: Vec<PluginStatus>,
    /// Every agent.
    pub agents: Vec<AgentStatusView>,
    /// Open sessions, or why the host did not list them.
    pub sessions: Result<Vec<SessionRow>, String>,
}

/// A stop or restart waiting for the person to say yes.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// What to do.
    pub verb: Verb,
    /// To what.
    pub target: String,
}

/// What a key can ask the host to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Stop a process's tree.
    Stop,
    /// Restart a process (through its restart limit and backoff).
    Restart,
    /// SIGSTOP a process's tree.
    Pause,
    /// SIGCONT it.
    Resume,
    /// Reload a plugin from disk.
    ReloadPlugin,
    /// Skip an agent's ticks.
    PauseAgent,
    /// Resume an agent's ticks.
    ResumeAgent,
}

impl Verb {
    /// The word shown while it runs and in the confirmation.
    pub fn word(self) -> &'static str {
        match self {
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Pause | Verb::PauseAgent => "pause",
            Verb::Resume | Verb::ResumeAgent => "resume",
            Verb::ReloadPlugin => "reload",
        }
    }
}

/// The output tail of the selected process.
#[derive(Debug, Clone, Default)]
pub struct OutputTail {
    /// Whose lines these are.
    pub id: String,
    /// `(is_stderr, line)`, oldest first.
    pub lines: VecDeque<(bool, String)>,
    /// The offset to read from next; `None` before the first read.
    pub next: Option<u64>,
}

/// Everything `host top` shows.
#[derive(Debug, Clone)]
pub struct Model {
    /// Processes, sorted by id.
    pub processes: Vec<ProcessStatus>,
    /// Plugins.
    pub plugins: Vec<PluginStatus>,
    /// Agents.
    pub agents: Vec<AgentStatusView>,
    /// Open sessions, or why the host did not list them.
    pub sessions: Result<Vec<SessionRow>, String>,
    /// The panel keys act on.
    pub focus: Panel,
    /// The lower panel shown when only one fits (the last one focused
    /// other than Processes).
    pub lower: Panel,
    /// The selected row of each panel, by `Panel::ALL` index.
    pub selected: [usize; 4],
    /// The selected process's output.
    pub output: OutputTail,
    /// Whether the host answers.
    pub link: Link,
    /// The sequence of the last event applied.
    pub cursor: Option<u64>,
    /// The last thing said to the person, and whether it is an error.
    pub notice: Option<(String, bool)>,
    /// A stop or restart waiting for `y`.
    pub confirm: Option<Pending>,
    /// Set by an event the model cannot patch: take a snapshot soon.
    pub wants_snapshot: bool,
    /// Set when the selected process printed: read its output.
    pub wants_output: bool,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            processes: Vec::new(),
            plugins: Vec::new(),
            agents: Vec::new(),
            sessions: Ok(Vec::new()),
            focus: Panel::Processes,
            lower: Panel::Plugins,
            selected: [0; 4],
            output: OutputTail::default(),
            link: Link::Connecting,
            cursor: None,
            notice: None,
            confirm: None,
            wants_snapshot: false,
            wants_output: false,
        }
    }
}

impl Model {
    /// The number of rows of a panel.
    pub fn rows(&self, panel: Panel) -> usize {
        match panel {
            Panel::Processes => self.processes.len(),
            Panel::Plugins => self.plugins.len(),
            Panel::Agents => self.agents.len(),
            Panel::Sessions => self.sessions.as_ref().map_or(0, Vec::len),
        }
    }

    /// The selected row of a panel, kept inside its rows.
    pub fn selection(&self, panel: Panel) -> Option<usize> {
        let n = self.rows(panel);
        (n > 0).then(|| self.selected[panel.index()].min(n - 1))
    }

    /// The selected process.
    pub fn selected_process(&self) -> Option<&ProcessStatus> {
        self.selection(Panel::Processes)
            .and_then(|i| self.processes.get(i))
    }

    /// Moves the selection of the focused panel by `delta` rows.
    pub fn move_selection(&mut self, delta: isize) {
        let panel = self.focus;
        let n = self.rows(panel);
        if n == 0 {
            return;
        }
        let now = self.selection(panel).unwrap_or(0) as isize;
        self.selected[panel.index()] = (now + delta).clamp(0, n as isize - 1) as usize;
        if panel == Panel::Processes {
            self.follow_selection();
        }
    }

    /// Focuses another panel.
    pub fn focus_on(&mut self, panel: Panel) {
        self.focus = panel;
        if panel != Panel::Processes {
            self.lower = panel;
        }
    }

    /// Points the output tail at the selected process; a new one is read
    /// from scratch.
    fn follow_selection(&mut self) {
        let id = self.selected_process().map(|p| p.process_id.clone());
        match id {
            Some(id) if id != self.output.id => {
                self.output = OutputTail {
                    id,
                    ..OutputTail::default()
                };
                self.wants_output = true;
            }
            Some(_) => {}
            None => self.output = OutputTail::default(),
        }
    }

    /// Replaces the lists with a snapshot, keeping the selection on the
    /// same process.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let keep = self.selected_process().map(|p| p.process_id.clone());
        self.processes = snapshot.processes;
        self.plugins = snapshot.plugins;
        self.agents = snapshot.agents;
        self.sessions = snapshot.sessions;
        if let Some(i) = keep.and_then(|id| self.processes.iter().position(|p| p.process_id == id))
        {
            self.selected[Panel::Processes.index()] = i;
        }
        self.follow_selection();
        self.wants_snapshot = false;
    }

    /// Adds output lines read for `id` (ignored if the selection moved on).
    pub fn apply_output(&mut self, id: &str, lines: Vec<OutputLineView>, next: u64) {
        if id != self.output.id {
            return;
        }
        for l in lines {
            self.output
                .lines
                .push_back((l.stream == "stderr", sanitize(&l.line)));
        }
        while self.output.lines.len() > OUTPUT_LINES {
            self.output.lines.pop_front();
        }
        self.output.next = Some(next);
    }

    /// Says something in the footer.
    pub fn say(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some((sanitize(&text.into()), error));
    }
}

/// Text from a process or a plugin made safe to draw: escape sequences
/// (colours, cursor moves) dropped, tabs as spaces, other control
/// characters as `?`, so a line cannot move the cursor or recolour the
/// screen.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters final-byte; other escapes: ESC + one.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::Value;

    use super::*;
    use crate::bus::Event;
    use crate::supervisor::ProcessState;

    /// A process as the API lists it.
    pub fn process(id: &str, kind: &str, state: ProcessState) -> ProcessStatus {
        serde_json::from_value(serde_json::json!({
            "process_id": id, "name": id, "process_type": kind, "state": state,
            "reported_state": null, "origin": "config", "command": "true",
            "pid": 100, "started_at": null, "completed_at": null, "duration": 3.0,
            "exit_code": null, "signal": null, "restarts": 0, "timeout": null,
            "progress": null, "message": null, "memory_bytes": null,
            "cpu_percent": null, "last_output_at": null, "metadata": {}
        }))
        .unwrap()
    }

    /// A plugin as the API lists it.
    pub fn plugin(name: &str) -> PluginStatus {
        serde_json::from_value(serde_json::json!({
            "name": name, "version": "0.1.0", "kinds": ["event-handler"],
            "state": "serving", "calls": 3, "failures": 0, "errors": 0,
            "consecutive_failures": 0, "quarantined": false, "skipped": 0,
            "last_error": null, "lag": {}, "loaded_at": null, "digest": "ab"
        }))
        .unwrap()
    }

    /// An agent as the API lists it.
    pub fn agent(plugin: &str) -> AgentStatusView {
        serde_json::from_value(serde_json::json!({
            "plugin": plugin, "name": plugin, "description": "watches",
            "interval_ms": 5000, "status": "idle", "activity": "starting",
            "last_active": null, "cycles": 7, "last_error": null
        }))
        .unwrap()
    }

    /// An event of the stream.
    pub fn event(seq: u64, ty: &str, subject: &str, data: Value) -> Event {
        serde_json::from_value(serde_json::json!({
            "specversion": "1.0", "id": format!("e{seq}"), "source": "host/supervisor",
            "type": ty, "subject": subject, "time": "2026-11-30T06:00:00Z",
            "sequence": seq, "datacontenttype": "application/json", "data": data
        }))
        .unwrap()
    }

    /// Two processes, a plugin and an agent.
    pub fn model() -> Model {
        let mut m = Model::default();
        m.apply_snapshot(Snapshot {
            processes: vec![
                process("coder", "ai-coder", ProcessState::Running),
                process("web", "server", ProcessState::Running),
            ],
            plugins: vec![plugin("failure-alert")],
            agents: vec![agent("stall-detector")],
            sessions: Ok(Vec::new()),
        });
        m
    }

    #[test]
    fn the_selection_stays_on_its_process_when_a_snapshot_reorders_the_list() {
        let mut m = model();
        m.move_selection(1);
        assert_eq!(m.selected_process().unwrap().process_id, "web");
        m.apply_snapshot(Snapshot {
            processes: vec![
                process("alpha", "build", ProcessState::Completed),
                process("coder", "ai-coder", ProcessState::Running),
                process("web", "server", ProcessState::Running),
            ],
            plugins: Vec::new(),
            agents: Vec::new(),
            sessions: Ok(Vec::new()),
        });
        assert_eq!(m.selected_process().unwrap().process_id, "web");
        assert_eq!(m.output.id, "web");
    }

    #[test]
    fn output_of_the_selected_process_is_wanted_and_kept_bounded() {
        let mut m = model();
        m.wants_output = false;
        m.apply_event(&event(
            2,
            "process.output",
            "coder",
            serde_json::json!({"lines": ["x"]}),
        ));
        assert!(m.wants_output, "the selected process printed");
        let line = |i: u64| OutputLineView {
            offset: i,
            stream: "stdout".into(),
            line: format!("line {i}"),
            time: Utc::now(),
        };
        m.apply_output("coder", (0..250).map(line).collect(), 250);
        assert_eq!(m.output.lines.len(), OUTPUT_LINES);
        assert_eq!(m.output.lines.back().unwrap().1, "line 249");
        assert_eq!(m.output.next, Some(250));
        m.apply_output("web", vec![line(1)], 2);
        assert_eq!(
            m.output.next,
            Some(250),
            "lines of another process are dropped"
        );
    }

    #[test]
    fn escape_sequences_in_output_cannot_reach_the_terminal() {
        assert_eq!(sanitize("\u{1b}[31mred\u{1b}[0m\tok\u{7}"), "red    ok?");
        assert_eq!(sanitize("\u{1b}]0;title"), "0;title");
    }
}
