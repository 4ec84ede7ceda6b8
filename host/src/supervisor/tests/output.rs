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
        // yes's complaint about the closed pipe, if any, is not counted.
        &format!("yes 0123456789012345678901234567890123456789 2>/dev/null | head -n {TOTAL}"),
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

#[tokio::test]
async fn a_megabyte_line_reaches_ring_and_events_in_pieces_and_the_log_whole() {
    let (sup, bus, dir) = setup();
    // 1 MiB of 'a'..'z' without a newline, then one, then a short line.
    sup.add(spec(
        "long",
        "head -c 1048576 /dev/zero | tr '\\0' 'q'; echo; echo after",
    ))
    .unwrap();
    sup.start("long").await.unwrap();
    wait_state(&sup, "long", ProcessState::Completed).await;
    let line = "q".repeat(1 << 20);
    let log = std::fs::read_to_string(dir.path().join("long.log")).unwrap();
    assert_eq!(log, format!("{line}\nafter\n"), "the log file has it whole");
    let ring: Vec<String> = sup
        .output("long", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(ring.last().unwrap(), "after");
    let pieces = &ring[..ring.len() - 1];
    assert!(pieces.len() >= 128, "{} pieces", pieces.len());
    assert_eq!(pieces.concat(), line, "the pieces make up the line");
    let events = of_type(&bus, "long", "process.output");
    let published: Vec<String> = events
        .iter()
        .flat_map(|d| d["lines"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let dropped: u64 = of_type(&bus, "long", "process.output_dropped")
        .iter()
        .map(|d| d["dropped"].as_u64().unwrap())
        .sum();
    assert_eq!(published.len() as u64 + dropped, ring.len() as u64);
    if dropped == 0 {
        assert_eq!(published[..published.len() - 1].concat(), line);
        let split: u64 = events.iter().map(|d| d["split"].as_u64().unwrap()).sum();
        assert_eq!(
            split,
            pieces.len() as u64 - 1,
            "all but the last piece continue"
        );
    }
}
