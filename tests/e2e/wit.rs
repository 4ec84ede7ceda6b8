//! Scenario: a plugin project outside this repository gets the contract
//! from the binary: `host wit` prints one WIT package a parser accepts,
//! `host wit --out DIR` writes the very files of `wit/`.

use std::path::Path;

use host_tests::run_host;

use crate::PATIENCE;

fn repo_wit() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

fn worlds(resolve: &wit_parser::Resolve) -> Vec<String> {
    let mut names: Vec<String> = resolve.worlds.iter().map(|(_, w)| w.name.clone()).collect();
    names.sort();
    names
}

#[test]
fn host_wit_prints_one_package_with_the_same_worlds_as_the_repository() {
    let out = run_host(["wit"], PATIENCE).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut printed = wit_parser::Resolve::default();
    printed
        .push_str("host.wit", &text)
        .expect("the printed contract parses as WIT");
    let mut repo = wit_parser::Resolve::default();
    repo.push_dir(repo_wit()).unwrap();
    assert_eq!(worlds(&printed), worlds(&repo));
    assert!(worlds(&printed).contains(&"dependency-rule-plugin".to_string()));
}

#[test]
fn host_wit_out_writes_the_files_of_the_repository_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for (version, source) in [("0.2", repo_wit()), ("0.1", repo_wit().join("v0.1"))] {
        let out_dir = dir.path().join(version);
        let out = run_host(
            [
                "wit",
                "--version",
                version,
                "--out",
                out_dir.to_str().unwrap(),
            ],
            PATIENCE,
        )
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in ["types.wit", "host.wit", "kinds.wit", "worlds.wit"] {
            assert_eq!(
                std::fs::read(out_dir.join(name)).unwrap(),
                std::fs::read(source.join(name)).unwrap(),
                "{version}/{name}"
            );
        }
        let mut parsed = wit_parser::Resolve::default();
        parsed
            .push_dir(&out_dir)
            .expect("the written package parses");
    }
}

#[test]
fn host_wit_out_into_a_file_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = run_host(["wit", "--out", file.to_str().unwrap()], PATIENCE).unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-dir"), "{stderr}");
}
