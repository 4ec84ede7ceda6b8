//! The bookkeeping of one window, shared with the `notify` callback: which
//! paths changed and what their first change says about before; and the
//! pure rules (net effect, ignored names, what a backend event means).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use notify::event::{EventKind, ModifyKind, RemoveKind, RenameMode};

/// What a path's first change in a window says about its past.
#[derive(Clone, Copy, Debug)]
pub(super) struct Noted {
    /// Whether the path existed before this window's first change.
    pub(super) existed: bool,
    /// The backend said it is (or was) a folder.
    pub(super) dir: bool,
}

/// Paths changed in the current window, shared with the `notify` callback.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) noted: HashMap<PathBuf, Noted>,
    /// First-seen order, so events come in the order things happened.
    pub(super) order: Vec<PathBuf>,
    /// Changes not noted because the window was full (one per notification,
    /// so a path can count more than once), plus one per overflow of the
    /// kernel's queue (whose losses are not known).
    pub(super) dropped: u64,
}

impl Pending {
    /// Notes one change of `rel`; `existed` is what this change says about before.
    pub(super) fn note(&mut self, rel: PathBuf, existed: bool, dir: bool, cap: usize) {
        if let Some(noted) = self.noted.get_mut(&rel) {
            noted.dir |= dir;
            return;
        }
        if self.noted.len() >= cap {
            self.dropped += 1;
            return;
        }
        self.order.push(rel.clone());
        self.noted.insert(rel, Noted { existed, dir });
    }
}

/// The change a path went through in one window, judged by whether it
/// existed before and exists now; `None` when nothing is left to tell.
pub(super) fn change(existed: bool, exists: bool) -> Option<&'static str> {
    match (existed, exists) {
        (false, true) => Some("workspace.file_created"),
        (true, true) => Some("workspace.file_modified"),
        (true, false) => Some("workspace.file_deleted"),
        (false, false) => None,
    }
}

/// Whether any component of `rel` is an ignored name.
pub(super) fn ignored(rel: &Path, ignore: &[String]) -> bool {
    rel.components()
        .any(|c| ignore.iter().any(|name| c.as_os_str() == name.as_str()))
}

/// What one `notify` event says about the paths it names:
/// `Some((existed before, is a folder))` per path, or nothing to note.
pub(super) fn classify(kind: &EventKind) -> Option<(bool, bool)> {
    match kind {
        EventKind::Create(create) => Some((false, *create == notify::event::CreateKind::Folder)),
        EventKind::Remove(remove) => Some((true, *remove == RemoveKind::Folder)),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Some((true, false)),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Some((false, false)),
        // `Both` repeats a `From` and a `To` already seen.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => None,
        EventKind::Modify(_) => Some((true, false)),
        // Opening and closing change nothing; a write was a `Modify`.
        EventKind::Access(_) | EventKind::Any | EventKind::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore() -> Vec<String> {
        crate::supervisor::DEFAULT_WORKSPACE_IGNORE
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn the_net_effect_of_a_window_decides_the_change() {
        assert_eq!(change(false, true), Some("workspace.file_created"));
        assert_eq!(change(true, true), Some("workspace.file_modified"));
        assert_eq!(change(true, false), Some("workspace.file_deleted"));
        assert_eq!(
            change(false, false),
            None,
            "created and deleted in one window"
        );
    }

    #[test]
    fn ignored_names_match_any_component_and_nothing_else() {
        let names = ignore();
        assert!(ignored(Path::new(".git"), &names));
        assert!(ignored(Path::new(".git/objects/ab"), &names));
        assert!(ignored(Path::new("web/node_modules/x.js"), &names));
        assert!(ignored(Path::new("py/__pycache__/m.pyc"), &names));
        assert!(!ignored(Path::new("src/main.rs"), &names));
        assert!(
            !ignored(Path::new("targets.txt"), &names),
            "names, not prefixes"
        );
        assert!(!ignored(Path::new("my.git"), &names));
    }

    #[test]
    fn a_full_window_counts_what_it_could_not_note() {
        let mut p = Pending::default();
        for n in 0..10 {
            p.note(PathBuf::from(format!("f{n}")), false, false, 4);
        }
        // A path already noted is not a new one.
        p.note(PathBuf::from("f0"), true, false, 4);
        assert_eq!(p.order.len(), 4);
        assert_eq!(p.dropped, 6);
        assert!(
            !p.noted[&PathBuf::from("f0")].existed,
            "the first change decides"
        );
    }
}
