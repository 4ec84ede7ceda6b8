//! `host wit`: the plugin contract this binary was built with, printed or
//! written out, so a plugin project outside this repository has the exact
//! WIT its host loads (no copying files out of a checkout by hand).
//!
//! The files are compiled in: what `host wit` shows is what the host binds,
//! never a newer or older copy lying on disk.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

/// Flags of `host wit`.
#[derive(Debug, Args)]
pub struct WitArgs {
    /// Write the package's files into DIR (created if missing; files of
    /// the same names are replaced) instead of printing it.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Which version of the contract: the current one, or 0.1 (still
    /// loaded by this host).
    #[arg(long, value_enum, default_value_t = WitVersion::Current)]
    pub version: WitVersion,
}

/// A version of the `host:plugin` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WitVersion {
    /// `host:plugin@0.2.0`, what new plugins are built against.
    #[value(name = "0.2")]
    Current,
    /// `host:plugin@0.1.0`.
    #[value(name = "0.1")]
    V01,
}

/// One file of a package: its name and text.
pub(super) type WitFile = (&'static str, &'static str);

const CURRENT: [WitFile; 4] = [
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("kinds.wit", include_str!("../../../wit/kinds.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

const V01: [WitFile; 4] = [
    ("types.wit", include_str!("../../../wit/v0.1/types.wit")),
    ("host.wit", include_str!("../../../wit/v0.1/host.wit")),
    ("kinds.wit", include_str!("../../../wit/v0.1/kinds.wit")),
    ("worlds.wit", include_str!("../../../wit/v0.1/worlds.wit")),
];

pub(super) fn files(version: WitVersion) -> &'static [WitFile; 4] {
    match version {
        WitVersion::Current => &CURRENT,
        WitVersion::V01 => &V01,
    }
}

/// Runs `host wit`.
///
/// # Errors
///
/// When `--out` cannot be created or a file in it cannot be written.
pub fn run(args: WitArgs) -> anyhow::Result<ExitCode> {
    let files = files(args.version);
    match args.out {
        Some(dir) => {
            write_to(&dir, files)?;
            for (name, _) in files {
                println!("{}", dir.join(name).display());
            }
        }
        None => print!("{}", one_file(files)),
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn write_to(dir: &Path, files: &[WitFile]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The package as one valid WIT file: its `package` line once, then each
/// file's body under a comment naming the file.
fn one_file(files: &[WitFile]) -> String {
    let mut out = String::new();
    for (i, (name, text)) in files.iter().enumerate() {
        let (package, body) = split_package(text);
        if i == 0 {
            out.push_str(package);
            out.push('\n');
        }
        out.push_str(&format!("\n// ---- {name} ----\n"));
        out.push_str(body.trim_start_matches('\n'));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// A file's `package ...;` line and the rest.
fn split_package(text: &'static str) -> (&'static str, &'static str) {
    let end = text.find('\n').unwrap_or(text.len());
    let first = &text[..end];
    assert!(
        first.starts_with("package "),
        "every file of wit/ starts with its package line"
    );
    (first, &text[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_package_names_itself_once_and_keeps_every_interface_and_world() {
        for (version, package) in [
            (WitVersion::Current, "package host:plugin@0.2.0;"),
            (WitVersion::V01, "package host:plugin@0.1.0;"),
        ] {
            let text = one_file(files(version));
            assert_eq!(text.matches("package host:plugin").count(), 1);
            assert!(text.starts_with(package));
            for (_, file) in files(version) {
                for line in file
                    .lines()
                    .filter(|l| l.starts_with("interface ") || l.starts_with("world "))
                {
                    assert!(text.contains(line), "{line} is missing");
                }
            }
        }
    }

    #[test]
    fn out_writes_the_files_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("wit");
        write_to(&out, &CURRENT).unwrap();
        for (name, text) in CURRENT {
            assert_eq!(std::fs::read_to_string(out.join(name)).unwrap(), text);
        }
    }
}
