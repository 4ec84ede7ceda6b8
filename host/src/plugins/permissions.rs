//! What a plugin may do: the grants of its manifest's `[permissions]`, the
//! ceilings `host.toml` sets over every manifest, and the difference
//! between two versions' grants.
//!
//! Deny by default, and the host decides: a plugin with no grants may read
//! no files, see no environment, emit no event and touch no process. A
//! manifest asks; the host's ceilings bound what it may ask (a plugin
//! cannot grant itself `/`), the executor checks every action against the
//! grants, and a new version that asks for more than the running one is
//! not swapped in until the host's operator allows it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bus::Pattern;

/// Grants of a plugin. Deny by default: an empty table grants nothing.
///
/// Process selectors (in `start`, `stop`, `restart`, `pause`, `resume`,
/// `status`) are a process name, `kind:KIND` for every process of a kind,
/// or `*` for every process.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Host folders visible to the plugin.
    /// Example: `dirs = [{ host = "./data", guest = "/data", read_only = true }]`
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Names of host environment variables passed through.
    /// Example: `env = ["LANG"]`
    #[serde(default)]
    pub env: Vec<String>,
    /// Event types it may emit, as patterns.
    /// Example: `emit = ["alert.>", "process.stalled"]`
    #[serde(default)]
    pub emit: Vec<Pattern>,
    /// Processes it may start. Example: `start = ["kind:worker"]`
    #[serde(default)]
    pub start: Vec<Selector>,
    /// Processes it may stop. Example: `stop = ["web"]`
    #[serde(default)]
    pub stop: Vec<Selector>,
    /// Processes it may restart. Example: `restart = ["*"]`
    #[serde(default)]
    pub restart: Vec<Selector>,
    /// Processes it may pause. Example: `pause = ["kind:ai-coder"]`
    #[serde(default)]
    pub pause: Vec<Selector>,
    /// Processes it may resume. Example: `resume = ["kind:ai-coder"]`
    #[serde(default)]
    pub resume: Vec<Selector>,
    /// Processes whose status (progress, message, reported state) it may
    /// set. A status mapper needs none for the processes it is fed.
    /// Example: `status = ["kind:build"]`
    #[serde(default)]
    pub status: Vec<Selector>,
    /// Whether it may register tasks with the coordinator.
    /// Example: `tasks = true`
    #[serde(default)]
    pub tasks: bool,
}

/// One host folder made visible inside the sandbox.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// Folder on the host, relative to the manifest.
    pub host: PathBuf,
    /// Path the plugin sees.
    pub guest: String,
    /// Read-only unless set to false.
    #[serde(default = "yes")]
    pub read_only: bool,
}

fn yes() -> bool {
    true
}

/// Which processes a lifecycle grant covers: `*`, `kind:KIND` or a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Selector {
    /// Every process.
    Any,
    /// Every process of this kind.
    Kind(String),
    /// The process of this name.
    Name(String),
}

impl TryFrom<String> for Selector {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "*" {
            return Ok(Selector::Any);
        }
        let (kind, name) = match text.strip_prefix("kind:") {
            Some(kind) => (true, kind),
            None => (false, text.as_str()),
        };
        crate::name::ensure_valid_name(name).map_err(|why| {
            format!("`{text}` is not `*`, `kind:KIND` or a process name: it {why}")
        })?;
        Ok(if kind {
            Selector::Kind(name.to_string())
        } else {
            Selector::Name(name.to_string())
        })
    }
}

impl From<Selector> for String {
    fn from(s: Selector) -> String {
        s.to_string()
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Any => f.write_str("*"),
            Selector::Kind(k) => write!(f, "kind:{k}"),
            Selector::Name(n) => f.write_str(n),
        }
    }
}

impl Selector {
    /// Whether it selects the process `name` of kind `kind`.
    pub fn selects(&self, name: &str, kind: &str) -> bool {
        match self {
            Selector::Any => true,
            Selector::Kind(k) => k == kind,
            Selector::Name(n) => n == name,
        }
    }

    /// Whether every process this selects, `other` selects too.
    fn covered_by(&self, other: &Selector) -> bool {
        match (other, self) {
            (Selector::Any, _) => true,
            (Selector::Kind(a), Selector::Kind(b)) | (Selector::Name(a), Selector::Name(b)) => {
                a == b
            }
            _ => false,
        }
    }
}

/// The lifecycle verbs a grant can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Start a process.
    Start,
    /// Stop a process.
    Stop,
    /// Restart a process.
    Restart,
    /// Pause a process.
    Pause,
    /// Resume a process.
    Resume,
    /// Set a process's status.
    Status,
}

impl Verb {
    /// The manifest key of this grant.
    pub fn key(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Pause => "pause",
            Verb::Resume => "resume",
            Verb::Status => "status",
        }
    }

    const ALL: [Verb; 6] = [
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
        Verb::Pause,
        Verb::Resume,
        Verb::Status,
    ];
}

impl Permissions {
    fn selectors(&self, verb: Verb) -> &[Selector] {
        match verb {
            Verb::Start => &self.start,
            Verb::Stop => &self.stop,
            Verb::Restart => &self.restart,
            Verb::Pause => &self.pause,
            Verb::Resume => &self.resume,
            Verb::Status => &self.status,
        }
    }

    /// Whether it may act `verb` on process `name` of kind `kind`.
    pub fn allows(&self, verb: Verb, name: &str, kind: &str) -> bool {
        self.selectors(verb).iter().any(|s| s.selects(name, kind))
    }

    /// Whether it may emit events of type `ty`.
    pub fn allows_emit(&self, ty: &str) -> bool {
        self.emit.iter().any(|p| p.matches(ty))
    }

    /// Every grant, one line each (`emit alert.>`, `restart kind:worker`,
    /// `dir /data (read-only)`), for listings and events. Empty: none.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for d in &self.dirs {
            let mode = if d.read_only {
                "read-only"
            } else {
                "read-write"
            };
            lines.push(format!("dir {} as {} ({mode})", d.host.display(), d.guest));
        }
        lines.extend(self.env.iter().map(|e| format!("env {e}")));
        lines.extend(self.emit.iter().map(|p| format!("emit {p}")));
        for verb in Verb::ALL {
            lines.extend(
                self.selectors(verb)
                    .iter()
                    .map(|s| format!("{} {s}", verb.key())),
            );
        }
        if self.tasks {
            lines.push("tasks".into());
        }
        lines
    }

    /// The grants of `self` that `old` does not include: what a new
    /// version asks for beyond the running one. Empty when it asks for the
    /// same or less.
    pub fn beyond(&self, old: &Permissions) -> Vec<String> {
        let mut more = Vec::new();
        for d in &self.dirs {
            // Read-write is more than read-only of the same folder.
            let had = old
                .dirs
                .iter()
                .any(|o| o.host == d.host && o.guest == d.guest && (!o.read_only || d.read_only));
            if !had {
                let mode = if d.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                more.push(format!("dir {} as {} ({mode})", d.host.display(), d.guest));
            }
        }
        more.extend(
            self.env
                .iter()
                .filter(|e| !old.env.contains(e))
                .map(|e| format!("env {e}")),
        );
        more.extend(
            self.emit
                .iter()
                .filter(|p| !old.emit.iter().any(|o| pattern_covers(o, p)))
                .map(|p| format!("emit {p}")),
        );
        for verb in Verb::ALL {
            let old_selectors = old.selectors(verb);
            more.extend(
                self.selectors(verb)
                    .iter()
                    .filter(|s| !old_selectors.iter().any(|o| s.covered_by(o)))
                    .map(|s| format!("{} {s}", verb.key())),
            );
        }
        if self.tasks && !old.tasks {
            more.push("tasks".into());
        }
        more
    }
}

/// Whether every type `inner` matches, `outer` matches too.
fn pattern_covers(outer: &Pattern, inner: &Pattern) -> bool {
    let outer: Vec<&str> = outer.as_str().split('.').collect();
    let inner: Vec<&str> = inner.as_str().split('.').collect();
    for (i, o) in outer.iter().enumerate() {
        match (*o, inner.get(i)) {
            // `>` matches one token or more: covers whatever is left.
            (">", Some(_)) => return true,
            (_, None) => return false,
            // `*` matches any one token, including a `*` there.
            ("*", Some(t)) => {
                if *t == ">" {
                    return false;
                }
            }
            (lit, Some(t)) => {
                if lit != *t {
                    return false;
                }
            }
        }
    }
    outer.len() == inner.len()
}

/// The most any manifest may ask for, from `host.toml`'s `[plugins]`.
#[derive(Debug, Clone)]
pub struct Ceilings {
    /// Longest deadline a manifest may set.
    pub max_deadline: Duration,
    /// Largest memory cap a manifest may set, in bytes.
    pub max_memory_bytes: u64,
    /// Folders (besides the plugins folder) a manifest may grant, with
    /// everything under them.
    pub allowed_dirs: Vec<PathBuf>,
    /// Environment variables a manifest may pass through.
    pub allowed_env: Vec<String>,
}

impl Default for Ceilings {
    fn default() -> Self {
        Ceilings {
            max_deadline: Duration::from_millis(DEFAULT_MAX_DEADLINE_MS),
            max_memory_bytes: DEFAULT_MAX_MEMORY_MIB << 20,
            allowed_dirs: Vec::new(),
            allowed_env: Vec::new(),
        }
    }
}

/// Default ceiling of a manifest's `deadline_ms`.
pub const DEFAULT_MAX_DEADLINE_MS: u64 = 10_000;
/// Default ceiling of a manifest's `memory_mib`.
pub const DEFAULT_MAX_MEMORY_MIB: u64 = 1024;

impl Ceilings {
    /// Checks a plugin's limits and grants against the ceilings; grants of
    /// folders must lie inside `plugins_dir` or an allowed folder (after
    /// following symbolic links, so a link cannot smuggle `/` in).
    ///
    /// # Errors
    ///
    /// The field at fault and the ceiling it passes, in words.
    pub fn check(
        &self,
        deadline: Duration,
        memory_bytes: u64,
        permissions: &Permissions,
        plugins_dir: &Path,
    ) -> Result<(), (String, String)> {
        if deadline > self.max_deadline {
            return Err((
                "limits.deadline_ms".into(),
                format!(
                    "{} ms is above the host's ceiling of {} ms ([plugins] max_deadline_ms)",
                    deadline.as_millis(),
                    self.max_deadline.as_millis()
                ),
            ));
        }
        if memory_bytes > self.max_memory_bytes {
            return Err((
                "limits.memory_mib".into(),
                format!(
                    "{} MiB is above the host's ceiling of {} MiB ([plugins] max_memory_mib)",
                    memory_bytes >> 20,
                    self.max_memory_bytes >> 20
                ),
            ));
        }
        let roots: Vec<PathBuf> = std::iter::once(plugins_dir)
            .chain(self.allowed_dirs.iter().map(PathBuf::as_path))
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        for (i, grant) in permissions.dirs.iter().enumerate() {
            let field = format!("permissions.dirs[{i}].host");
            let real = grant
                .host
                .canonicalize()
                .map_err(|e| (field.clone(), format!("{}: {e}", grant.host.display())))?;
            if !roots.iter().any(|root| real.starts_with(root)) {
                return Err((
                    field,
                    format!(
                        "{} is outside the plugins folder and every folder of [plugins] allowed_dirs (the host's ceiling)",
                        real.display()
                    ),
                ));
            }
        }
        for (i, name) in permissions.env.iter().enumerate() {
            if !self.allowed_env.contains(name) {
                return Err((
                    format!("permissions.env[{i}]"),
                    format!("`{name}` is not in [plugins] allowed_env (the host's ceiling)"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(text: &str) -> Permissions {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn grants_parse_and_a_bad_selector_or_pattern_says_why() {
        let p = perms(
            "emit = [\"alert.>\"]\nrestart = [\"*\"]\nstop = [\"kind:worker\", \"web\"]\ntasks = true\n",
        );
        assert!(p.allows_emit("alert.process_failures"));
        assert!(!p.allows_emit("process.failed"));
        assert!(p.allows(Verb::Restart, "anything", "any"));
        assert!(p.allows(Verb::Stop, "w1", "worker"));
        assert!(p.allows(Verb::Stop, "web", "server"));
        assert!(!p.allows(Verb::Stop, "db", "server"));
        assert!(
            !p.allows(Verb::Start, "web", "server"),
            "nothing unless granted"
        );
        let err = toml::from_str::<Permissions>("stop = [\"kind:two words\"]").unwrap_err();
        assert!(err.to_string().contains("kind:two words"), "{err}");
        let err = toml::from_str::<Permissions>("emit = [\"a..b\"]").unwrap_err();
        assert!(err.to_string().contains("a..b"), "{err}");
        assert!(toml::from_str::<Permissions>("restrat = [\"*\"]").is_err());
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let p = Permissions::default();
        assert!(!p.allows_emit("a.b"));
        for verb in Verb::ALL {
            assert!(!p.allows(verb, "x", "y"));
        }
        assert!(p.describe().is_empty());
    }

    #[test]
    fn asking_for_more_is_named_and_asking_for_the_same_or_less_is_not() {
        let old = perms("emit = [\"alert.>\"]\nrestart = [\"kind:worker\"]\nenv = [\"LANG\"]\n");
        let narrower = perms("emit = [\"alert.x\"]\nrestart = [\"kind:worker\"]\n");
        assert!(narrower.beyond(&old).is_empty());
        let wider = perms(
            "emit = [\"alert.>\", \"heal.*\"]\nrestart = [\"*\"]\nenv = [\"LANG\", \"HOME\"]\ntasks = true\n",
        );
        assert_eq!(
            wider.beyond(&old),
            ["env HOME", "emit heal.*", "restart *", "tasks"]
        );
        let ro = perms("dirs = [{ host = \"/d\", guest = \"/d\" }]\n");
        let rw = perms("dirs = [{ host = \"/d\", guest = \"/d\", read_only = false }]\n");
        assert_eq!(rw.beyond(&ro), ["dir /d as /d (read-write)"]);
        assert!(ro.beyond(&rw).is_empty());
    }

    #[test]
    fn pattern_coverage_follows_the_wildcards() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        assert!(pattern_covers(&p("a.>"), &p("a.b.c")));
        assert!(pattern_covers(&p("a.>"), &p("a.*")));
        assert!(!pattern_covers(&p("a.>"), &p("a")));
        assert!(pattern_covers(&p("a.*"), &p("a.b")));
        assert!(!pattern_covers(&p("a.*"), &p("a.>")));
        assert!(!pattern_covers(&p("a.*"), &p("a.b.c")));
        assert!(pattern_covers(&p(">"), &p("x.y")));
        assert!(!pattern_covers(&p("a.b"), &p("a.*")));
    }

    #[test]
    fn the_ceilings_bound_limits_folders_and_environment() {
        let plugins = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let inside = plugins.path().join("data");
        std::fs::create_dir(&inside).unwrap();
        let grant = |host: &Path| Permissions {
            dirs: vec![DirGrant {
                host: host.to_path_buf(),
                guest: "/data".into(),
                read_only: true,
            }],
            ..Permissions::default()
        };
        let c = Ceilings::default();
        let ok = |p: &Permissions| c.check(Duration::from_millis(100), 64 << 20, p, plugins.path());
        assert!(ok(&grant(&inside)).is_ok());
        let (field, why) = ok(&grant(Path::new("/"))).unwrap_err();
        assert_eq!(field, "permissions.dirs[0].host");
        assert!(why.contains("allowed_dirs"), "{why}");
        // A symbolic link inside the plugins folder to a folder outside it.
        let link = plugins.path().join("sneaky");
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        assert!(ok(&grant(&link)).is_err());
        let allowing = Ceilings {
            allowed_dirs: vec![outside.path().to_path_buf()],
            ..Ceilings::default()
        };
        assert!(
            allowing
                .check(Duration::ZERO, 1, &grant(&link), plugins.path())
                .is_ok()
        );
        let env = Permissions {
            env: vec!["HOME".into()],
            ..Permissions::default()
        };
        let (field, _) = ok(&env).unwrap_err();
        assert_eq!(field, "permissions.env[0]");
        let (field, why) = c
            .check(
                Duration::from_secs(30),
                1,
                &Permissions::default(),
                plugins.path(),
            )
            .unwrap_err();
        assert_eq!(field, "limits.deadline_ms");
        assert!(why.contains("max_deadline_ms"), "{why}");
    }
}
