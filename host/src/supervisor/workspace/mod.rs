//! The workspace watch: file changes in a running process's `cwd`, as events.
//!
//! A process whose spec says `watch_workspace = true` gets one [`Watch`] per
//! run, started by the runner after the spawn and stopped (joined) before the
//! run's exit events, so no inotify watch outlives the run that asked for it.
//!
//! Why it is built this way:
//! - **One inotify watch per folder, not a recursive watch.** `notify`'s
//!   recursive mode would also watch every folder under `target/` and
//!   `node_modules/`, which is where the kernel's per-user watch limit goes.
//!   The walk skips ignored names ([`ProcessSpec::workspace_ignore`]), folders
//!   holding a `host.lock` (a host's state folder: its journal changes with
//!   every event, which would feed back into itself) and the supervisor's log
//!   folder; a folder created later is watched (and its contents reported)
//!   at the next flush.
//! - **Tumbling windows with the net effect per path.** The `notify` callback
//!   only notes, per relative path, whether the path existed before its first
//!   change in the window. At the end of each window the path is looked at
//!   again: absent before and present now is `created`, present both times
//!   `modified`, present before and absent now `deleted`, absent both times
//!   nothing. So one file gets at most one event per window, whatever an
//!   editor's save dance does to it.
//! - **Bounded.** A window notes at most `max_per_window` paths; further
//!   paths are counted and announced as one `workspace.overflow` {process,
//!   dropped} in the same window (`dropped` counts change notifications, so
//!   a file can count more than once), so a `git checkout` of 50,000 files
//!   costs at most `max_per_window` events per window plus one. A path left
//!   out of one window can still show up in a later one (as modified, if it
//!   was created while the window was full).
//!
//! Layout: this file has the [`Watch`] and its thread; `window` the
//! bookkeeping the `notify` callback fills and the pure rules; `session`
//! the folders watched and the end of each window.
//!
//! Events: source `host/workspace`, subject = the process;
//! `workspace.file_created` / `workspace.file_modified` /
//! `workspace.file_deleted` {process, path (relative to the cwd, `/`
//! separated), kind (`file`, `dir`, `symlink`)}, `workspace.overflow`
//! {process, dropped}, `workspace.watch_failed` {process, path, error}.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;

use crate::bus::{Bus, NewEvent};

mod session;
mod window;

use session::Session;
use window::{Pending, classify, ignored};

/// The `source` of every workspace event.
pub(crate) const SOURCE: &str = "host/workspace";

/// Every event type the watch publishes (the runtime reserves the
/// `workspace.` prefix, so nobody else can forge them).
pub const WORKSPACE_EVENT_TYPES: [&str; 5] = [
    "workspace.file_created",
    "workspace.file_modified",
    "workspace.file_deleted",
    "workspace.overflow",
    "workspace.watch_failed",
];

/// How the watch coalesces and bounds; [`Limits::default`] in production,
/// smaller numbers in tests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Length of one window; one event per path per window.
    pub(crate) window: Duration,
    /// Paths reported per window at most; the rest are counted in `workspace.overflow`.
    pub(crate) max_per_window: usize,
    /// Folders watched at most (each costs one inotify watch of the user's quota).
    pub(crate) max_dirs: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            window: Duration::from_millis(250),
            max_per_window: 256,
            max_dirs: 4096,
        }
    }
}

/// What to watch for one run.
pub(crate) struct Target {
    /// The process (subject and `data.process`).
    pub(crate) process: String,
    /// The folder to watch (the run's cwd).
    pub(crate) root: PathBuf,
    /// Names skipped wherever they occur.
    pub(crate) ignore: Vec<String>,
    /// Folders never watched (the supervisor's logs).
    pub(crate) exclude: Vec<PathBuf>,
}

/// A running watch; [`Watch::stop`] ends it. Dropping it also ends it, but
/// without waiting for the thread.
pub(crate) struct Watch {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts watching `target.root` on a thread of its own, and returns
    /// once every folder is watched (blocking: a walk of the workspace), so
    /// a process spawned next cannot change a file unseen. A root that
    /// cannot be watched is reported as `workspace.watch_failed` and gives
    /// a watch that does nothing.
    pub(crate) fn start(bus: Bus, target: Target, limits: Limits) -> Watch {
        let (stop, stopped) = mpsc::channel();
        let (ready, watching) = mpsc::channel();
        let name = format!("workspace-{}", target.process);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(bus, target, limits, stopped, ready));
        // Ends with a message once the walk is done, or with the sender
        // dropped when the watch could not start.
        let _ = watching.recv();
        match thread {
            Ok(thread) => Watch {
                stop: Some(stop),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::error!("cannot start a workspace watch thread: {e}");
                Watch {
                    stop: None,
                    thread: None,
                }
            }
        }
    }

    /// Publishes what the last moments changed, removes every inotify watch
    /// and waits for the thread: blocking, at most about a window.
    pub(crate) fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("a workspace watch thread panicked");
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which then ends by itself.
        self.stop.take();
    }
}

/// The thread: set up, then flush every window until told to stop.
fn run(
    bus: Bus,
    mut target: Target,
    limits: Limits,
    stopped: mpsc::Receiver<()>,
    ready: mpsc::Sender<()>,
) {
    let root = match std::fs::canonicalize(&target.root) {
        Ok(root) => root,
        Err(e) => return failed(&bus, &target.process, &target.root, &e.to_string()),
    };
    target.root = root;
    let pending = Arc::new(Mutex::new(Pending::default()));
    let watcher = {
        let pending = pending.clone();
        let root = target.root.clone();
        let ignore = target.ignore.clone();
        let cap = limits.max_per_window;
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if event.need_rescan() {
                // The kernel's queue overflowed: changes were lost, uncounted.
                pending.lock().dropped += 1;
                return;
            }
            let Some((existed, dir)) = classify(&event.kind) else {
                return;
            };
            let mut pending = pending.lock();
            for path in event.paths {
                let Ok(rel) = path.strip_prefix(&root) else {
                    continue;
                };
                if rel.as_os_str().is_empty() || ignored(rel, &ignore) {
                    continue;
                }
                pending.note(rel.to_path_buf(), existed, dir, cap);
            }
        })
    };
    let watcher = match watcher {
        Ok(w) => w,
        Err(e) => return failed(&bus, &target.process, &target.root, &e.to_string()),
    };
    let mut session = Session {
        bus,
        target,
        limits,
        pending,
        watcher,
        dirs: HashSet::new(),
        unwatched: 0,
    };
    session.watch_tree(PathBuf::new(), None);
    let _ = ready.send(());
    // A message or a closed channel both mean stop.
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(session.limits.window) {
        session.flush();
    }
    // The process's last writes may still be on their way from the kernel.
    std::thread::sleep(session.limits.window.min(Duration::from_millis(50)));
    session.flush();
    // Dropping the session drops the watcher, which closes the inotify
    // descriptor and with it every watch.
}

fn failed(bus: &Bus, process: &str, path: &Path, error: &str) {
    tracing::warn!(process, path = %path.display(), "cannot watch the workspace: {error}");
    submit(
        bus,
        vec![
            NewEvent::new(
                SOURCE,
                "workspace.watch_failed",
                json!({ "process": process, "path": path.display().to_string(), "error": error }),
            )
            .with_subject(process),
        ],
    );
}

fn submit(bus: &Bus, events: Vec<NewEvent>) {
    if !events.is_empty()
        && let Err(e) = bus.submit(events)
    {
        tracing::error!(error = %e, "could not publish workspace events");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusConfig, Event, EventQuery, Pattern};
    use std::time::Instant;

    fn ignore() -> Vec<String> {
        crate::supervisor::DEFAULT_WORKSPACE_IGNORE
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn limits() -> Limits {
        Limits {
            window: Duration::from_millis(50),
            ..Limits::default()
        }
    }

    fn start(bus: &Bus, root: &Path, limits: Limits) -> Watch {
        let watch = Watch::start(
            bus.clone(),
            Target {
                process: "coder".into(),
                root: root.to_path_buf(),
                ignore: ignore(),
                exclude: Vec::new(),
            },
            limits,
        );
        // `start` returns once every folder is watched.
        watch
    }

    fn workspace_events(bus: &Bus) -> Vec<Event> {
        bus.flush().unwrap();
        bus.query(&EventQuery {
            types: vec![Pattern::parse("workspace.>").unwrap()],
            ..Default::default()
        })
        .unwrap()
    }

    /// `(type, path)` of every file event so far.
    fn changes(bus: &Bus) -> Vec<(String, String)> {
        workspace_events(bus)
            .into_iter()
            .filter(|e| e.ty.starts_with("workspace.file_"))
            .map(|e| (e.ty, e.data["path"].as_str().unwrap().to_string()))
            .collect()
    }

    fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn pair(ty: &str, path: &str) -> (String, String) {
        (format!("workspace.file_{ty}"), path.to_string())
    }

    #[test]
    fn files_created_modified_and_deleted_are_reported_once_each_and_git_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        std::fs::write(dir.path().join("old.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        // Windows long enough that twenty quick writes fall into one, or
        // straddle at most one boundary.
        let limits = Limits {
            window: Duration::from_millis(500),
            ..Limits::default()
        };
        let watch = start(&bus, dir.path(), limits);
        std::fs::write(dir.path().join("new.txt"), "a").unwrap();
        std::fs::write(dir.path().join(".git/index"), "a").unwrap();
        assert!(wait_until(
            || changes(&bus).contains(&pair("created", "new.txt"))
        ));
        // Many writes inside one window: one event per window.
        for n in 0..20 {
            std::fs::write(dir.path().join("old.txt"), n.to_string()).unwrap();
        }
        assert!(wait_until(
            || changes(&bus).contains(&pair("modified", "old.txt"))
        ));
        std::fs::remove_file(dir.path().join("new.txt")).unwrap();
        assert!(wait_until(
            || changes(&bus).contains(&pair("deleted", "new.txt"))
        ));
        watch.stop();
        let seen = changes(&bus);
        let old = seen.iter().filter(|c| c.1 == "old.txt").count();
        assert!(old <= 2, "20 writes, one event per window: {seen:?}");
        assert!(
            seen.iter().all(|(_, path)| !path.starts_with(".git")),
            "{seen:?}"
        );
        let e = &workspace_events(&bus)[0];
        assert_eq!(e.source, SOURCE);
        assert_eq!(e.subject.as_deref(), Some("coder"));
        assert_eq!(e.data["process"], "coder");
        assert_eq!(e.data["kind"], "file");
    }

    #[test]
    fn a_new_folder_is_watched_and_its_contents_reported() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let watch = start(&bus, dir.path(), limits());
        // Made with contents before any watch could see them.
        std::fs::create_dir_all(dir.path().join("src/deep")).unwrap();
        std::fs::write(dir.path().join("src/deep/a.rs"), "fn a() {}").unwrap();
        assert!(wait_until(
            || changes(&bus).contains(&pair("created", "src/deep/a.rs"))
        ));
        // Now watched: a later file inside is seen as well.
        std::fs::write(dir.path().join("src/deep/b.rs"), "fn b() {}").unwrap();
        assert!(wait_until(
            || changes(&bus).contains(&pair("created", "src/deep/b.rs"))
        ));
        watch.stop();
        let seen = changes(&bus);
        assert_eq!(
            seen.iter().filter(|c| c.1 == "src/deep/a.rs").count(),
            1,
            "{seen:?}"
        );
        let src = workspace_events(&bus)
            .into_iter()
            .find(|e| e.data["path"] == "src")
            .unwrap();
        assert_eq!(src.data["kind"], "dir");
    }

    #[test]
    fn a_storm_is_capped_per_window_and_the_rest_counted_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let limits = Limits {
            window: Duration::from_millis(200),
            max_per_window: 50,
            max_dirs: 100,
        };
        let watch = start(&bus, dir.path(), limits);
        let files = 2_000;
        for n in 0..files {
            std::fs::write(dir.path().join(format!("f{n}")), "x").unwrap();
        }
        std::thread::sleep(limits.window * 2);
        watch.stop();
        let events = workspace_events(&bus);
        let files_reported: HashSet<&str> = events
            .iter()
            .filter(|e| e.ty.starts_with("workspace.file_"))
            .map(|e| e.data["path"].as_str().unwrap())
            .collect();
        let file_events = events
            .iter()
            .filter(|e| e.ty.starts_with("workspace.file_"))
            .count();
        let dropped: u64 = events
            .iter()
            .filter(|e| e.ty == "workspace.overflow")
            .map(|e| e.data["dropped"].as_u64().unwrap())
            .sum();
        let windows = events
            .iter()
            .filter(|e| e.ty == "workspace.overflow")
            .count();
        assert!(windows >= 1, "a storm of {files} files must overflow");
        // A file left out of one window may still be reported (as modified)
        // in the next, and a dropped count is per change, not per file: so
        // every file is reported or counted at least once.
        assert!(
            files_reported.len() as u64 + dropped >= files as u64,
            "{} reported, {dropped} dropped",
            files_reported.len()
        );
        assert!(
            file_events <= 50 * (windows + 2),
            "{file_events} events in {windows} windows"
        );
    }

    #[test]
    fn after_stop_no_change_is_reported_and_the_thread_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let watch = start(&bus, dir.path(), limits());
        std::fs::write(dir.path().join("during.txt"), "a").unwrap();
        // `stop` publishes the last window before it returns.
        watch.stop();
        assert_eq!(changes(&bus), vec![pair("created", "during.txt")]);
        std::fs::write(dir.path().join("after.txt"), "a").unwrap();
        std::fs::write(dir.path().join("during.txt"), "b").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(changes(&bus), vec![pair("created", "during.txt")]);
    }

    #[test]
    fn a_missing_root_is_reported_not_fatal() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let watch = start(&bus, Path::new("/nonexistent/workspace"), limits());
        watch.stop();
        let events = workspace_events(&bus);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].ty, "workspace.watch_failed");
        assert_eq!(events[0].data["process"], "coder");
    }

    #[test]
    fn a_host_state_folder_inside_the_workspace_is_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state/host.lock"), "1").unwrap();
        let watch = start(&bus, dir.path(), limits());
        std::fs::write(dir.path().join("state/events.sqlite"), "x").unwrap();
        std::fs::write(dir.path().join("marker"), "x").unwrap();
        assert!(wait_until(
            || changes(&bus).contains(&pair("created", "marker"))
        ));
        watch.stop();
        assert_eq!(changes(&bus), vec![pair("created", "marker")]);
    }
}
