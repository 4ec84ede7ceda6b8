//! `host plugin new`: a ready plugin project in Rust, JavaScript or Python.
//!
//! The templates are the `authoring` room's; the WIT is written by the code
//! of `host wit --out`, so the project builds against the contract of this
//! very binary, outside any checkout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::authoring::scaffold::{self, Kind, Lang, Project};

/// Arguments of `host plugin new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name (letters, digits, `.`, `_`, `-`): its `name` in
    /// plugin.toml and the file name of its component.
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The kind of plugin: which interface its source implements.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// The project folder: created if missing, refused unless empty
    /// [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub(super) fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    let project = Project::new(&args.name, args.lang, args.kind)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    scaffold::prepare(&dir)?;
    scaffold::write(&dir, &project.files())?;
    let wit = super::wit::files(super::wit::WitVersion::Current);
    super::wit::write_to(&dir.join("wit"), wit)?;
    print!("{}", next_steps(&project, &dir));
    Ok(ExitCode::SUCCESS)
}

/// What to run next, in order: build, test, check, run.
fn next_steps(project: &Project, dir: &Path) -> String {
    let shown = dir.display();
    let plugins = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.display().to_string(),
        _ => ".".to_string(),
    };
    let needs = match project.lang {
        Lang::Rust => "Needs cargo and `rustup target add wasm32-wasip2`.",
        Lang::Js => "Needs node and npm (build.sh installs jco into node_modules).",
        Lang::Python => {
            "Needs python3 >= 3.11 (build.sh installs componentize-py into .venv unless it is on PATH)."
        }
    };
    format!(
        "Created the {kind} plugin `{name}` in {shown}.\n\
         {needs}\n\n\
         Next:\n  \
         cd {shown}\n  \
         {build}              # {builds}\n  \
         {test}\n  \
         host plugin check .\n  \
         host run --plugins {plugins}   # loads every plugin folder in {plugins}\n",
        kind = project.kind.interface(),
        name = project.name,
        build = project.build_command(),
        builds = match project.lang {
            Lang::Rust => format!("builds {}.wasm", project.name),
            Lang::Js | Lang::Python => format!("runs the tests, then builds {}.wasm", project.name),
        },
        test = project.test_command(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_steps_name_the_build_and_the_folder_to_run() {
        let project = Project::new("p", Lang::Python, Kind::StatusMapper).unwrap();
        let text = next_steps(&project, Path::new("work/p"));
        assert!(text.contains("cd work/p"), "{text}");
        assert!(text.contains("./build.sh"), "{text}");
        assert!(text.contains("host run --plugins work"), "{text}");
        let text = next_steps(&project, Path::new("p"));
        assert!(text.contains("host run --plugins ."), "{text}");
    }
}
