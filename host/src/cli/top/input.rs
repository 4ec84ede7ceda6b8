//! Keys: what each one does to the [`Model`], and which ones ask the host
//! to act.
//!
//! Like k9s (and htop, whose kill goes through a signal menu first), the
//! two keys that end work ask first: `s` (stop) and `r` (restart) on a
//! process wait for `y`. Pause and resume are undone by each other, and a
//! plugin reload keeps the running version when the new one fails, so
//! those act at once. Ctrl-C quits at any time; `q` and Esc quit unless a
//! question is open, which they then cancel.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::model::{Model, Panel, Pending, Verb};

/// What a key asks of the program around the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Leave, restoring the terminal.
    Quit,
    /// Ask the host to do something.
    Act(Pending),
}

/// Applies a key to the model; what the program must do, if anything.
pub fn on_key(model: &mut Model, key: KeyEvent) -> Option<Intent> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Intent::Quit);
    }
    if let Some(pending) = model.confirm.take() {
        if matches!(key.code, KeyCode::Char('y' | 'Y') | KeyCode::Enter) {
            return Some(Intent::Act(pending));
        }
        model.say(
            format!("{} of {} cancelled", pending.verb.word(), pending.target),
            false,
        );
        return None;
    }
    model.notice = None;
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => return Some(Intent::Quit),
        KeyCode::Up | KeyCode::Char('k') => model.move_selection(-1),
        KeyCode::Down | KeyCode::Char('j') => model.move_selection(1),
        KeyCode::PageUp => model.move_selection(-10),
        KeyCode::PageDown => model.move_selection(10),
        KeyCode::Home | KeyCode::Char('g') => model.move_selection(isize::MIN / 2),
        KeyCode::End | KeyCode::Char('G') => model.move_selection(isize::MAX / 2),
        KeyCode::Tab => model.focus_on(model.focus.step(true)),
        KeyCode::BackTab => model.focus_on(model.focus.step(false)),
        KeyCode::Char(c) => return verb_key(model, c),
        _ => {}
    }
    None
}

/// `s`, `r`, `p`, `u` on the focused panel's selected row.
fn verb_key(model: &mut Model, c: char) -> Option<Intent> {
    let (verb, target) = match (model.focus, c) {
        (Panel::Processes, 's' | 'r' | 'p' | 'u') => {
            let id = model.selected_process()?.process_id.clone();
            let verb = match c {
                's' => Verb::Stop,
                'r' => Verb::Restart,
                'p' => Verb::Pause,
                _ => Verb::Resume,
            };
            (verb, id)
        }
        (Panel::Plugins, 'r') => {
            let i = model.selection(Panel::Plugins)?;
            (Verb::ReloadPlugin, model.plugins[i].name.clone())
        }
        (Panel::Agents, 'p' | 'u') => {
            let i = model.selection(Panel::Agents)?;
            let verb = if c == 'p' {
                Verb::PauseAgent
            } else {
                Verb::ResumeAgent
            };
            (verb, model.agents[i].plugin.clone())
        }
        _ => return None,
    };
    let pending = Pending { verb, target };
    if matches!(verb, Verb::Stop | Verb::Restart) {
        model.confirm = Some(pending);
        None
    } else {
        Some(Intent::Act(pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::top::view::tests::busy;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn press(m: &mut Model, c: char) -> Option<Intent> {
        on_key(m, key(KeyCode::Char(c)))
    }

    #[test]
    fn a_stop_waits_for_yes_and_names_the_selected_process() {
        let mut m = busy();
        press(&mut m, 'j');
        assert_eq!(press(&mut m, 's'), None);
        assert_eq!(m.confirm.as_ref().unwrap().target, "coder_1a2b3c");
        assert_eq!(
            press(&mut m, 'y'),
            Some(Intent::Act(Pending {
                verb: Verb::Stop,
                target: "coder_1a2b3c".into()
            }))
        );
        assert!(m.confirm.is_none());
    }

    #[test]
    fn any_other_key_cancels_the_question_and_q_then_does_not_quit() {
        let mut m = busy();
        press(&mut m, 'r');
        assert_eq!(press(&mut m, 'q'), None, "q cancels the question");
        assert!(m.confirm.is_none());
        assert!(m.notice.as_ref().unwrap().0.contains("cancelled"));
        assert_eq!(press(&mut m, 'q'), Some(Intent::Quit));
    }

    #[test]
    fn ctrl_c_and_esc_quit() {
        let mut m = busy();
        press(&mut m, 's');
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(
            on_key(&mut m, ctrl_c),
            Some(Intent::Quit),
            "even mid-question"
        );
        let mut m = busy();
        assert_eq!(on_key(&mut m, key(KeyCode::Esc)), Some(Intent::Quit));
    }

    #[test]
    fn pause_and_resume_act_at_once() {
        let mut m = busy();
        let Some(Intent::Act(p)) = press(&mut m, 'p') else {
            panic!("pause acts")
        };
        assert_eq!((p.verb, p.target.as_str()), (Verb::Pause, "build"));
        let Some(Intent::Act(p)) = press(&mut m, 'u') else {
            panic!("resume acts")
        };
        assert_eq!(p.verb, Verb::Resume);
    }

    #[test]
    fn tab_moves_the_keys_to_the_next_panel() {
        let mut m = busy();
        on_key(&mut m, key(KeyCode::Tab));
        assert_eq!(m.focus, Panel::Plugins);
        press(&mut m, 'j');
        let Some(Intent::Act(p)) = press(&mut m, 'r') else {
            panic!("reload acts")
        };
        assert_eq!(
            (p.verb, p.target.as_str()),
            (Verb::ReloadPlugin, "flaky-plugin")
        );
        assert_eq!(press(&mut m, 's'), None, "no stop on a plugin");
        on_key(&mut m, key(KeyCode::Tab));
        let Some(Intent::Act(p)) = press(&mut m, 'p') else {
            panic!("agent pause acts")
        };
        assert_eq!(
            (p.verb, p.target.as_str()),
            (Verb::PauseAgent, "stall-detector")
        );
        on_key(&mut m, key(KeyCode::BackTab));
        assert_eq!(m.focus, Panel::Plugins);
        assert_eq!(
            m.selection(Panel::Processes),
            Some(0),
            "each panel keeps its row"
        );
    }

    #[test]
    fn the_selection_stops_at_both_ends() {
        let mut m = busy();
        for _ in 0..10 {
            on_key(&mut m, key(KeyCode::Down));
        }
        assert_eq!(m.selected_process().unwrap().process_id, "web");
        on_key(&mut m, key(KeyCode::Home));
        assert_eq!(m.selected_process().unwrap().process_id, "build");
        on_key(&mut m, key(KeyCode::End));
        assert_eq!(m.selected_process().unwrap().process_id, "web");
    }
}
