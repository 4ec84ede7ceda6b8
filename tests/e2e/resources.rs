//! Scenario: a process whose CPU is all in short-lived children (a build:
//! `make` running compilers) shows that CPU in its `process.resource`
//! samples, though no sample ever sees one of the children alive for long.

use host_tests::RunningHost;
use serde_json::Value;

use crate::PATIENCE;

/// Sixty children, each counting to 50,000 and ending (well under the
/// 1 s sampling interval each), then `done` and a long sleep.
const BUILD: &str = "i=0; while [ $i -lt 60 ]; do sh -c 'j=0; while [ $j -lt 50000 ]; do j=$((j+1)); done'; i=$((i+1)); done; echo done; sleep 1000";

fn time_of(event: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(event["time"].as_str().unwrap()).unwrap()
}

#[test]
fn the_cpu_of_children_too_short_to_be_sampled_shows_in_the_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[supervisor]\nresource_interval = \"1s\"\n\n[process.build]\ncommand = \"/bin/sh\"\nargs = [\"-c\", {BUILD:?}]\n"
    );
    let mut host = RunningHost::start_with_config(tmp.path(), &config, &[]);
    let started = host
        .wait_for("process.started", PATIENCE, |e| e["subject"] == "build")
        .unwrap();
    let leader = started["data"]["pid"].as_i64().unwrap() as i32;
    let done = host
        .wait_for("process.output", PATIENCE * 4, |e| {
            e["subject"] == "build"
                && e["data"]["lines"]
                    .as_array()
                    .is_some_and(|lines| lines.iter().any(|l| l == "done"))
        })
        .unwrap();
    // What the children used, all of it reaped by the shell by now.
    let stat = procfs::process::Process::new(leader)
        .unwrap()
        .stat()
        .unwrap();
    let reaped = (stat.cutime + stat.cstime) as f64 / procfs::ticks_per_second() as f64;
    let busy = (time_of(&done) - time_of(&started)).as_seconds_f64();
    let average = reaped / busy * 100.0;
    // The samples taken while they ran.
    let samples: Vec<f64> = host
        .events("process.resource")
        .into_iter()
        .filter(|e| e["subject"] == "build" && time_of(e) <= time_of(&done))
        .filter_map(|e| e["data"]["cpu_percent"].as_f64())
        .collect();
    host.terminate().unwrap();
    assert!(
        reaped > 0.0 && !samples.is_empty(),
        "{reaped} s reaped, samples {samples:?}"
    );
    // A sample inside the busy stretch measures about its average; one
    // that only saw the child alive at that instant measured a few
    // percent of it.
    let best = samples.iter().copied().fold(0.0, f64::max);
    assert!(
        best >= average * 0.5,
        "children used {reaped:.2} s in {busy:.2} s ({average:.0}% on average), \
         the samples said {samples:?}"
    );
}
