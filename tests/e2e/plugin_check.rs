//! Scenario: `host plugin check` says what a component is and what it would
//! be granted, and refuses what is not a plugin, naming why.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use host_tests::{fixture, run_host, shipped_plugin};
use serde_json::Value;

use crate::PATIENCE;

fn check(path: &Path, json: bool) -> Output {
    let mut args = vec![OsStr::new("plugin"), OsStr::new("check"), path.as_os_str()];
    if json {
        args.push(OsStr::new("--json"));
    }
    run_host(args, PATIENCE).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn checking_each_shipped_plugin_folder_prints_its_kind_and_exactly_the_grants_it_declares() {
    for (name, kind, declared) in [
        ("failure-alert", "event-handler", &["emit alert.>"][..]),
        ("progress-mapper", "status-mapper", &[]),
        ("api-contract-rule", "dependency-rule", &[]),
        (
            "pm",
            "background-agent",
            &["emit process.stalled", "emit pm.>", "restart *"],
        ),
    ] {
        let out = check(&shipped_plugin(name), false);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "check {name} failed ({}):\n{stdout}\n{}",
            out.status,
            text(&out.stderr)
        );
        let line_of = |label: &str| {
            stdout
                .lines()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("no `{label}` line for {name}:\n{stdout}"))
                .to_string()
        };
        assert!(line_of("plugin").ends_with(name), "{stdout}");
        assert_eq!(
            line_of("kinds").split_whitespace().collect::<Vec<_>>(),
            ["kinds", kind],
            "{stdout}"
        );
        let grants: Vec<&str> = stdout
            .lines()
            .skip_while(|l| *l != "grants")
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .collect();
        if declared.is_empty() {
            assert_eq!(grants.len(), 1, "{name}: one grant line:\n{stdout}");
            assert!(grants[0].trim_start().starts_with("nothing"), "{stdout}");
        } else {
            let listed: Vec<&str> = grants.iter().map(|g| g.trim_start()).collect();
            assert_eq!(listed, declared, "{stdout}");
        }

        let out = check(&shipped_plugin(name), true);
        assert!(
            out.status.success(),
            "check --json {name}: {}",
            text(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "check --json {name} is not JSON ({e}):\n{}",
                text(&out.stdout)
            )
        });
        assert_eq!(report["name"], name, "{report:#}");
        assert_eq!(report["kinds"], serde_json::json!([kind]), "{report:#}");
        assert_eq!(
            report["grants"]["dirs"],
            serde_json::json!([]),
            "{report:#}"
        );
        assert_eq!(report["grants"]["env"], serde_json::json!([]), "{report:#}");
    }
}

#[test]
fn checking_a_component_that_exports_no_plugin_kind_fails_and_says_so() {
    let component = fixture("bad-kind");
    let out = check(&component, false);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "bad-kind passed the check:\n{}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("exports no known plugin kind"),
        "stderr should say it exports no known plugin kind:\n{stderr}"
    );
    assert!(
        stderr.contains("bad_kind"),
        "stderr should name the plugin:\n{stderr}"
    );
}

#[test]
fn checking_a_garbage_file_fails_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.wasm");
    std::fs::write(&junk, b"\x00asm but not really, just some bytes").unwrap();
    let out = check(&junk, false);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "a garbage file passed the check:\n{}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains(&junk.display().to_string()),
        "stderr should name {}:\n{stderr}",
        junk.display()
    );
}

#[test]
fn a_manifest_granting_itself_the_root_folder_fails_the_check_unless_host_toml_allows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("plugins/greedy");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(fixture("echo-v1"), folder.join("echo.wasm")).unwrap();
    std::fs::write(
        folder.join("plugin.toml"),
        "component = \"echo.wasm\"\n\n[permissions]\n\
         dirs = [{ host = \"/\", guest = \"/all\", read_only = false }]\n",
    )
    .unwrap();

    let out = check(&folder, false);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "granted `/`:\n{}", text(&out.stdout));
    assert!(
        stderr.contains("plugin.toml") && stderr.contains("allowed_dirs"),
        "the error names the manifest and the ceiling:\n{stderr}"
    );

    let config = tmp.path().join("host.toml");
    std::fs::write(&config, "[plugins]\nallowed_dirs = [\"/\"]\n").unwrap();
    let out = run_host(
        [
            OsStr::new("plugin"),
            OsStr::new("check"),
            folder.as_os_str(),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        PATIENCE,
    )
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "allowed by host.toml, yet refused:\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("  dir / as /all (read-write)"),
        "the grant is shown:\n{stdout}"
    );
}
