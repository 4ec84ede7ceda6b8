//! Output capture: lossless under a fast writer, long lines split, logs rotated and read back across generations.
//!
//! A configured process prints 3,000 numbered lines into a log that rotates
//! every 4 KiB, keeps three compressed generations and a ring of 50 lines.
//! The API's full log and `host logs -n` (more lines than the ring holds)
//! must read across the generations, in order, without gaps; the oldest
//! lines are gone with their generation. A second process writes 8 MiB of
//! varied lines as fast as it can: the log file is byte for byte what it
//! wrote, and every line is either published or counted dropped.

use std::path::Path;
use std::time::Duration;

use host_tests::{RunningHost, eventually, run_host};
use serde_json::{Value, json};

use crate::PATIENCE;

/// The numbers N of lines `line N`, in the order they appear.
fn numbers(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            l.strip_prefix("line ")
                .and_then(|n| n.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a numbered line: {l:?}"))
        })
        .collect()
}

/// `host logs ID ARGS --state-dir STATE`: its stdout.
fn logs_cli(state: &Path, id: &str, args: &[&str]) -> String {
    let mut all = vec!["logs", "--state-dir", state.to_str().unwrap(), id];
    all.extend(args);
    let out = run_host(&all, Duration::from_secs(120)).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sums `field` over the journal's `ty` events about `process`.
fn total(host: &RunningHost, ty: &str, process: &str, field: impl Fn(&Value) -> u64) -> u64 {
    host.events(ty)
        .iter()
        .filter(|e| e["subject"] == process && e["type"] == ty)
        .map(|e| field(&e["data"]))
        .sum()
}

/// A host over `toml` in a fresh folder: (host, state folder, folder).
fn host_with(toml: &str) -> (RunningHost, std::path::PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let config = tmp.path().join("host.toml");
    std::fs::write(&config, toml).unwrap();
    let state = tmp.path().join("state");
    let host = RunningHost::start(&plugins, &state, &["--config", config.to_str().unwrap()]);
    (host, state, tmp)
}

#[test]
fn rotated_compressed_logs_are_read_back_in_order_by_the_api_and_host_logs() {
    let numbers_cmd =
        "for i in $(seq 1 3000); do printf 'line %05d ....................\\n' $i; done";
    let (mut host, state, _tmp) = host_with(&format!(
        "[supervisor]\nlog_max_bytes = \"4KiB\"\nlog_generations = 3\nlog_compress = true\nring_lines = 50\n\n\
         [process.numbers]\ncommand = {numbers_cmd:?}\nautostart = false\n"
    ));
    let api = host.api();

    let (status, body) = api.post("/v1/processes/numbers/start", &json!({}));
    assert_eq!(status, 200, "{body}");
    api.wait_process("numbers", |p| p["state"] == "completed");
    let logs = state.join("logs");
    assert!(
        eventually(PATIENCE, || {
            (1..=3).all(|n| logs.join(format!("numbers.log.{n}.gz")).exists())
                && !(1..=3).any(|n| logs.join(format!("numbers.log.{n}")).exists())
        }),
        "three compressed generations"
    );
    assert!(!logs.join("numbers.log.4.gz").exists());
    assert!(!logs.join("numbers.log.4").exists());

    // The API's full log: every generation, oldest first, decompressed.
    let response = api
        .request(reqwest::Method::GET, "/v1/processes/numbers/log")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().unwrap();
    let got = numbers(&text);
    let first = got[0];
    assert!(
        first > 1,
        "the oldest lines went with the oldest generation"
    );
    assert_eq!(got, (first..=3000).collect::<Vec<_>>(), "in order, no gap");
    // Three full generations and the live file: well over 3 x 4 KiB.
    assert!(text.len() > 3 * 4096 - 40, "{} bytes", text.len());

    // `-n` beyond the ring's 50 lines reads the end of the generations.
    let tail = logs_cli(&state, "numbers", &["-n", "300"]);
    assert_eq!(numbers(&tail), (2701..=3000).collect::<Vec<_>>());
    let tail = logs_cli(&state, "numbers", &["-n", "20"]);
    assert_eq!(numbers(&tail), (2981..=3000).collect::<Vec<_>>());
    host.terminate().unwrap();
}

#[test]
fn a_burst_as_fast_as_cat_writes_is_logged_byte_for_byte_and_every_line_counted() {
    // 8 MiB of 100-byte lines, each different, written by one `cat`.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("burst.txt");
    let mut bytes = Vec::new();
    for i in 0..83_886u64 {
        let line = format!(
            "line {i:08} {:016x} ",
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        );
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, 99 - line.len()));
        bytes.push(b'\n');
    }
    std::fs::write(&input, &bytes).unwrap();
    // Rotated every MiB into nine generations: the burst spans them all.
    let (mut host, _state, _tmp) = host_with(&format!(
        "[supervisor]\nlog_max_bytes = \"1MiB\"\nlog_generations = 9\n\n\
         [process.burst]\ncommand = \"cat {}\"\nautostart = false\n",
        input.display()
    ));
    let api = host.api();
    // A burst as fast as `cat` writes: identical bytes, every line counted.
    let (status, body) = api.post("/v1/processes/burst/start", &json!({}));
    assert_eq!(status, 200, "{body}");
    api.wait_process("burst", |p| p["state"] == "completed");
    let response = api
        .request(reqwest::Method::GET, "/v1/processes/burst/log")
        .send()
        .unwrap();
    let logged = response.bytes().unwrap();
    assert!(
        logged.as_ref() == bytes.as_slice(),
        "the log differs from what was written ({} bytes logged of {})",
        logged.len(),
        bytes.len()
    );
    let lines = 83_886;
    assert!(
        eventually(PATIENCE, || {
            let published = total(&host, "process.output", "burst", |d| {
                d["lines"].as_array().map_or(0, |l| l.len() as u64)
            });
            let dropped = total(&host, "process.output_dropped", "burst", |d| {
                d["dropped"].as_u64().unwrap_or(0)
            });
            published + dropped == lines
        }),
        "published + dropped = {lines} lines written"
    );
    host.terminate().unwrap();
}
