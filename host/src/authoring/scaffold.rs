//! Plugin project templates for Rust, JavaScript and Python: what
//! `host plugin new` writes. A project holds a manifest with a `[build]
//! command`, a build script, the kind's functions stubbed with working
//! defaults, and a test; it builds and loads as is.
//!
//! The templates live in `scaffold/` and are compiled in, so the binary
//! writes the same project wherever it runs. The WIT is not among them: the
//! caller writes it with the code of `host wit --out`, so a project always
//! carries the contract of the host that made it.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

/// The language of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen, built for wasm32-wasip2.
    Rust,
    /// JavaScript with jco's QuickJS backend.
    Js,
    /// Python with componentize-py.
    Python,
}

/// The plugin kind a project implements (one interface of `wit/kinds.wit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Reacts to events with actions.
    EventHandler,
    /// Maps foreign statuses and output lines to process state.
    StatusMapper,
    /// Decides whether two tasks depend on each other.
    DependencyRule,
    /// Ticks periodically.
    BackgroundAgent,
}

impl Kind {
    /// The interface name in WIT (`event-handler`).
    pub fn interface(self) -> &'static str {
        match self {
            Kind::EventHandler => "event-handler",
            Kind::StatusMapper => "status-mapper",
            Kind::DependencyRule => "dependency-rule",
            Kind::BackgroundAgent => "background-agent",
        }
    }

    /// The world a guest of this kind targets (`event-handler-plugin`).
    pub fn world(self) -> String {
        format!("{}-plugin", self.interface())
    }
}

/// Why a project was not written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The plugin name breaks the one rule for names.
    #[error("`{name}` is not a valid plugin name: it {why}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The target folder exists and holds something; nothing is overwritten.
    #[error("{} already exists and is not empty; choose another --dir (nothing was written)", dir.display())]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
    },
    /// A file or folder could not be created.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// One file of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path relative to the project folder.
    pub path: &'static str,
    /// The text, placeholders filled in.
    pub text: String,
    /// Whether to mark it executable (build scripts).
    pub executable: bool,
}

/// What `host plugin new` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The plugin's name (`name` in plugin.toml, the component's file name).
    pub name: String,
    /// Its language.
    pub lang: Lang,
    /// Its kind.
    pub kind: Kind,
}

impl Project {
    /// A project, if `name` passes the one rule for plugin names.
    ///
    /// # Errors
    ///
    /// [`ScaffoldError::InvalidName`] saying why.
    pub fn new(name: &str, lang: Lang, kind: Kind) -> Result<Self, ScaffoldError> {
        crate::name::ensure_valid_name(name).map_err(|why| ScaffoldError::InvalidName {
            name: name.to_string(),
            why,
        })?;
        Ok(Self {
            name: name.to_string(),
            lang,
            kind,
        })
    }

    /// The Cargo / npm package name: a plugin name may hold capitals and
    /// dots and start with a digit, which neither registry's names may.
    pub fn package(&self) -> String {
        let lower = self.name.to_ascii_lowercase().replace('.', "-");
        if lower.starts_with(|c: char| c.is_ascii_alphabetic()) {
            lower
        } else {
            format!("plugin-{lower}")
        }
    }

    /// The command that builds the component, run in the project folder.
    pub fn build_command(&self) -> &'static str {
        "./build.sh"
    }

    /// The command that runs the tests alone, run in the project folder.
    pub fn test_command(&self) -> &'static str {
        match self.lang {
            Lang::Rust => "cargo test",
            Lang::Js => "npm test",
            Lang::Python => "python3 -m unittest test_app (after a build)",
        }
    }

    /// Every file of the project except `wit/`, placeholders filled in.
    pub fn files(&self) -> Vec<File> {
        let fill = |template: &str| self.fill(template);
        let file = |path, template: &str| File {
            path,
            text: fill(template),
            executable: false,
        };
        let mut files = vec![file("plugin.toml", include_str!("scaffold/plugin.toml"))];
        let (build, sources): (&str, Vec<File>) = match self.lang {
            Lang::Rust => (
                include_str!("scaffold/rust/build.sh"),
                vec![
                    file("Cargo.toml", include_str!("scaffold/rust/Cargo.toml")),
                    file("Cargo.lock", include_str!("scaffold/rust/Cargo.lock")),
                    file(".gitignore", include_str!("scaffold/rust/gitignore")),
                    file("src/lib.rs", self.rust_source()),
                ],
            ),
            Lang::Js => (
                include_str!("scaffold/js/build.sh"),
                vec![
                    file("package.json", include_str!("scaffold/js/package.json")),
                    file("jsconfig.json", include_str!("scaffold/js/jsconfig.json")),
                    file(".gitignore", include_str!("scaffold/js/gitignore")),
                    file("test/setup.js", include_str!("scaffold/js/test/setup.js")),
                    file("test/hooks.js", include_str!("scaffold/js/test/hooks.js")),
                    file("test/host.js", include_str!("scaffold/js/test/host.js")),
                    file("app.js", self.js_source().0),
                    file("test/app.test.js", self.js_source().1),
                ],
            ),
            Lang::Python => (
                include_str!("scaffold/python/build.sh"),
                vec![
                    file(
                        "requirements.txt",
                        include_str!("scaffold/python/requirements.txt"),
                    ),
                    file(
                        "pyrightconfig.json",
                        include_str!("scaffold/python/pyrightconfig.json"),
                    ),
                    file(".gitignore", include_str!("scaffold/python/gitignore")),
                    file("app.py", self.python_source().0),
                    file("test_app.py", self.python_source().1),
                ],
            ),
        };
        files.push(File {
            path: "build.sh",
            text: fill(build),
            executable: true,
        });
        files.extend(sources);
        files
    }

    fn rust_source(&self) -> &'static str {
        match self.kind {
            Kind::EventHandler => include_str!("scaffold/rust/event_handler.rs"),
            Kind::StatusMapper => include_str!("scaffold/rust/status_mapper.rs"),
            Kind::DependencyRule => include_str!("scaffold/rust/dependency_rule.rs"),
            Kind::BackgroundAgent => include_str!("scaffold/rust/background_agent.rs"),
        }
    }

    /// The kind's `app.js` and its test.
    fn js_source(&self) -> (&'static str, &'static str) {
        match self.kind {
            Kind::EventHandler => (
                include_str!("scaffold/js/event_handler.js"),
                include_str!("scaffold/js/event_handler.test.js"),
            ),
            Kind::StatusMapper => (
                include_str!("scaffold/js/status_mapper.js"),
                include_str!("scaffold/js/status_mapper.test.js"),
            ),
            Kind::DependencyRule => (
                include_str!("scaffold/js/dependency_rule.js"),
                include_str!("scaffold/js/dependency_rule.test.js"),
            ),
            Kind::BackgroundAgent => (
                include_str!("scaffold/js/background_agent.js"),
                include_str!("scaffold/js/background_agent.test.js"),
            ),
        }
    }

    /// The kind's `app.py` and its test.
    fn python_source(&self) -> (&'static str, &'static str) {
        match self.kind {
            Kind::EventHandler => (
                include_str!("scaffold/python/event_handler.py"),
                include_str!("scaffold/python/event_handler_test.py"),
            ),
            Kind::StatusMapper => (
                include_str!("scaffold/python/status_mapper.py"),
                include_str!("scaffold/python/status_mapper_test.py"),
            ),
            Kind::DependencyRule => (
                include_str!("scaffold/python/dependency_rule.py"),
                include_str!("scaffold/python/dependency_rule_test.py"),
            ),
            Kind::BackgroundAgent => (
                include_str!("scaffold/python/background_agent.py"),
                include_str!("scaffold/python/background_agent_test.py"),
            ),
        }
    }

    /// The source files a change of which calls for a rebuild
    /// (`[build] watch`).
    fn watch(&self) -> &'static str {
        match self.lang {
            Lang::Rust => r#""src/**/*.rs", "Cargo.toml", "wit/*.wit""#,
            Lang::Js => r#""app.js", "package.json", "wit/*.wit""#,
            Lang::Python => r#""app.py", "requirements.txt", "wit/*.wit""#,
        }
    }

    fn fill(&self, template: &str) -> String {
        let package = self.package();
        let language = match self.lang {
            Lang::Rust => "Rust",
            Lang::Js => "JavaScript",
            Lang::Python => "Python",
        };
        template
            .replace("{{name}}", &self.name)
            .replace("{{package}}", &package)
            .replace("{{crate}}", &package.replace('-', "_"))
            .replace("{{kind}}", self.kind.interface())
            .replace("{{world}}", &self.kind.world())
            .replace("{{language}}", language)
            .replace("{{watch}}", self.watch())
    }
}

/// Makes `dir` ready for a new project: creates it if missing, refuses it
/// if it holds anything (nothing is ever overwritten).
///
/// # Errors
///
/// [`ScaffoldError::NotEmpty`], or [`ScaffoldError::Io`] naming the folder.
pub fn prepare(dir: &Path) -> Result<(), ScaffoldError> {
    let io = |source| ScaffoldError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty {
                    dir: dir.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)
        }
        // A file where the folder should be, or no permission.
        Err(_) if dir.exists() && !dir.is_dir() => Err(ScaffoldError::NotEmpty {
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(io(e)),
    }
}

/// Writes `files` into `dir` (prepared by [`prepare`]).
///
/// # Errors
///
/// [`ScaffoldError::Io`] naming the file that could not be written.
pub fn write(dir: &Path, files: &[File]) -> Result<(), ScaffoldError> {
    for file in files {
        let path = dir.join(file.path);
        let io = |source| ScaffoldError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, &file.text).map_err(io)?;
        if file.executable {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Project> {
        let mut out = Vec::new();
        for lang in Lang::value_variants() {
            for kind in Kind::value_variants() {
                out.push(Project::new("my-plugin", *lang, *kind).unwrap());
            }
        }
        out
    }

    #[test]
    fn a_name_the_host_would_refuse_is_refused_with_the_reason() {
        let err = Project::new("two words", Lang::Rust, Kind::EventHandler).unwrap_err();
        assert!(err.to_string().contains("' '"), "{err}");
        assert!(Project::new("..", Lang::Js, Kind::StatusMapper).is_err());
        assert!(Project::new("", Lang::Python, Kind::DependencyRule).is_err());
    }

    #[test]
    fn no_placeholder_is_left_unfilled_in_any_file() {
        for project in all() {
            for file in project.files() {
                assert!(
                    !file.text.contains("{{"),
                    "{:?}/{:?} {}: {}",
                    project.lang,
                    project.kind,
                    file.path,
                    file.text
                );
            }
        }
    }

    #[test]
    fn every_project_has_a_manifest_a_build_script_and_a_test() {
        for project in all() {
            let files = project.files();
            let paths: Vec<&str> = files.iter().map(|f| f.path).collect();
            assert!(paths.contains(&"plugin.toml"));
            let build = files.iter().find(|f| f.path == "build.sh").unwrap();
            assert!(build.executable);
            assert!(build.text.contains(&project.kind.world()) || project.lang == Lang::Rust);
            let has_test = files.iter().any(|f| {
                f.path.contains("test")
                    || (f.path == "src/lib.rs" && f.text.contains("#[cfg(test)]"))
            });
            assert!(has_test, "{:?}/{:?}: {paths:?}", project.lang, project.kind);
        }
    }

    #[test]
    fn the_manifest_parses_and_names_the_component_the_build_writes() {
        for project in all() {
            let files = project.files();
            let manifest = &files.iter().find(|f| f.path == "plugin.toml").unwrap().text;
            let value: toml::Value = toml::from_str(manifest).unwrap();
            assert_eq!(value["name"].as_str(), Some("my-plugin"));
            assert_eq!(value["component"].as_str(), Some("my-plugin.wasm"));
            assert_eq!(value["build"]["command"].as_str(), Some("./build.sh"));
            let build = &files.iter().find(|f| f.path == "build.sh").unwrap().text;
            assert!(build.contains("my-plugin.wasm"), "{build}");
        }
    }

    #[test]
    fn package_names_are_valid_for_cargo_and_npm() {
        let package = |name| {
            Project::new(name, Lang::Rust, Kind::EventHandler)
                .unwrap()
                .package()
        };
        assert_eq!(package("my-plugin"), "my-plugin");
        assert_eq!(package("Alert.v2"), "alert-v2");
        assert_eq!(package("9lives"), "plugin-9lives");
        assert_eq!(package("_x"), "plugin-_x");
    }

    #[test]
    fn a_folder_with_anything_in_it_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = prepare(dir.path()).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty { .. }), "{err}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
            "mine"
        );
        let file = dir.path().join("notes.txt");
        assert!(matches!(
            prepare(&file),
            Err(ScaffoldError::NotEmpty { .. })
        ));
    }

    #[test]
    fn a_missing_or_empty_folder_is_made_ready_and_written() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        prepare(&empty).unwrap();
        let fresh = dir.path().join("a/b/fresh");
        prepare(&fresh).unwrap();
        let project = Project::new("p", Lang::Js, Kind::BackgroundAgent).unwrap();
        write(&fresh, &project.files()).unwrap();
        assert!(fresh.join("test/app.test.js").is_file());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(fresh.join("build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }
}
