//! Output capture: both streams into ring, events and log file, and a
//! flood that must not stall the child nor lose a line silently.

use super::*;

#[tokio::test]
async fn output_from_both_streams_reaches_ring_events_and_log_file() {
    let (sup, bus, dir) = setup();
    sup.add(spec("talk", "echo out1; echo err1 >&2; echo out2"))
        .unwrap();
    sup.start("talk").await.unwrap();
    wait_state(&sup, "talk", ProcessState::Completed).await;
    let ring = sup.output("talk", 10).unwrap();
    let mut seen: Vec<_> = ring.iter().map(|l| (l.stream, l.line.as_str())).collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (Stream::Stdout, "out1"),
            (Stream::Stdout, "out2"),
            (Stream::Stderr, "err1")
        ]
    );
    assert_eq!(sup.output("talk", 1).unwrap().len(), 1);
    let lines_of = |stream: &str| -> Vec<String> {
        of_type(&bus, "talk", "process.output")
            .iter()
            .filter(|d| d["stream"] == stream)
            .flat_map(|d| d["lines"].as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(lines_of("stdout"), ["out1", "out2"]);
    assert_eq!(lines_of("stderr"), ["err1"]);
    let log = std::fs::read_to_string(dir.path().join("talk.log")).unwrap();
    let mut logged: Vec<_> = log.lines().collect();
    logged.sort();
    assert_eq!(logged, ["err1", "out1", "out2"]);
    assert!(sup.get("talk").unwrap().last_output_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_of_output_lose_no_line_silently() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let mut config = SupervisorConfig::new(dir.path());
    config.log_max_bytes = 1 << 30;
    let sup = Supervisor::new(bus.clone(), config);
    const TOTAL: u64 = 1_200_000; // 41 bytes each: about 50 MB
    sup.add(spec(
        "flood",
        &format!("yes 0123456789012345678901234567890123456789 | head -n {TOTAL}"),
    ))
    .unwrap();
    sup.start("flood").await.unwrap();
    wait_state(&sup, "flood", ProcessState::Completed).await;
    let log = std::fs::read(dir.path().join("flood.log")).unwrap();
    assert_eq!(log.iter().filter(|&&b| b == b'\n').count() as u64, TOTAL);
    let ring = sup.output("flood", usize::MAX).unwrap();
    assert_eq!(ring.len(), 1000);
    assert!(
        ring.iter()
            .all(|l| l.line == "0123456789012345678901234567890123456789")
    );
    let published: u64 = of_type(&bus, "flood", "process.output")
        .iter()
        .map(|d| d["lines"].as_array().unwrap().len() as u64)
        .sum();
    let dropped: u64 = of_type(&bus, "flood", "process.output_dropped")
        .iter()
        .map(|d| d["dropped"].as_u64().unwrap())
        .sum();
    eprintln!("published {published} dropped {dropped}");
    assert_eq!(
        published + dropped,
        TOTAL,
        "published {published} + dropped {dropped}"
    );
}
