//! Resource sampling through the verbs: `process.resource` events for a
//! running tree, a memory limit that stops a tree as a failure, and sampling
//! switched off.

use std::time::Duration;

use super::*;

const FAST: Option<Duration> = Some(Duration::from_millis(100));

#[tokio::test]
async fn a_running_process_gets_resource_events_with_its_memory_and_pid() {
    let (sup, bus, _dir) = setup_with(|c| c.resource_interval = FAST);
    sup.add(spec("nap", "sleep 30")).unwrap();
    sup.start("nap").await.unwrap();
    let pid = sup.get("nap").unwrap().pid.unwrap();
    // The run's first sample already carries a CPU figure (over the
    // tree's life).
    wait_until("a resource sample", || {
        !of_type(&bus, "nap", "process.resource").is_empty()
    })
    .await;
    let samples = of_type(&bus, "nap", "process.resource");
    let first = samples.first().unwrap();
    let pids: Vec<u64> = first["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(pids.contains(&u64::from(pid)), "{pids:?} lacks {pid}");
    assert!(first["memory_bytes"].as_u64().unwrap() > 0);
    assert!(first["cpu_percent"].as_f64().is_some_and(|c| c >= 0.0));
    assert!(first["disk_read_bytes"].is_u64() && first["disk_written_bytes"].is_u64());
    let info = sup.get("nap").unwrap();
    assert!(info.memory_bytes.is_some_and(|m| m > 0));
    assert!(info.cpu_percent.is_some());
    sup.stop("nap", false).await.unwrap();
    assert_eq!(sup.get("nap").unwrap().state, ProcessState::Cancelled);
}

#[tokio::test]
async fn a_tree_over_its_memory_limit_is_stopped_as_failed() {
    let (sup, bus, _dir) = setup_with(|c| c.resource_interval = FAST);
    let mut s = spec(
        "hog",
        "python3 -c 'import time; x = bytearray(200 * 1024 * 1024); time.sleep(30)'",
    );
    s.memory_limit = Some(50 << 20);
    sup.add(s).unwrap();
    sup.start("hog").await.unwrap();
    wait_state(&sup, "hog", ProcessState::Failed).await;
    let limit = of_type(&bus, "hog", "process.resource_limit");
    assert_eq!(limit.len(), 1, "{limit:?}");
    assert_eq!(limit[0]["limit_bytes"], 50 << 20);
    assert!(limit[0]["memory_bytes"].as_u64().unwrap() > 50 << 20);
    let stopping = &of_type(&bus, "hog", "process.stopping")[0];
    assert_eq!(stopping["reason"], "memory_limit");
    let failed = &of_type(&bus, "hog", "process.failed")[0];
    assert_eq!(failed["reason"], "memory limit exceeded");
    assert_eq!(
        lifecycle(&bus, "hog"),
        [
            "process.created",
            "process.starting",
            "process.started",
            "process.resource_limit",
            "process.stopping",
            "process.exited",
            "process.failed"
        ]
    );
}

#[tokio::test]
async fn a_memory_limit_failure_is_restarted_by_the_restart_policy() {
    let (sup, bus, _dir) = setup_with(|c| c.resource_interval = FAST);
    let mut s = spec(
        "hog",
        "python3 -c 'import time; x = bytearray(200 * 1024 * 1024); time.sleep(30)'",
    );
    s.memory_limit = Some(50 << 20);
    s.restart = RestartMode::OnFailure;
    s.max_restarts = 1;
    s.backoff = Duration::from_millis(1);
    s.backoff_max = Duration::from_millis(1);
    sup.add(s).unwrap();
    sup.start("hog").await.unwrap();
    wait_until("the restart to give up", || {
        !of_type(&bus, "hog", "process.gave_up").is_empty()
    })
    .await;
    assert_eq!(of_type(&bus, "hog", "process.resource_limit").len(), 2);
    assert_eq!(of_type(&bus, "hog", "process.started").len(), 2);
    assert_eq!(sup.get("hog").unwrap().state, ProcessState::Failed);
}

#[tokio::test]
async fn with_sampling_disabled_nothing_is_sampled_or_limited() {
    let (sup, bus, _dir) = setup_with(|c| c.resource_interval = None);
    let mut s = spec("nap", "sleep 30");
    s.memory_limit = Some(1);
    sup.add(s).unwrap();
    sup.start("nap").await.unwrap();
    // Long enough for several samples had sampling been on.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(of_type(&bus, "nap", "process.resource").is_empty());
    assert_eq!(sup.get("nap").unwrap().state, ProcessState::Running);
    assert_eq!(sup.get("nap").unwrap().memory_bytes, None);
    sup.stop("nap", false).await.unwrap();
    assert!(of_type(&bus, "nap", "process.resource_limit").is_empty());
}

#[tokio::test]
async fn shutdown_stops_the_sampler() {
    let (sup, bus, _dir) = setup_with(|c| c.resource_interval = FAST);
    sup.add(spec("nap", "sleep 30")).unwrap();
    sup.start("nap").await.unwrap();
    wait_until("a resource sample", || {
        !of_type(&bus, "nap", "process.resource").is_empty()
    })
    .await;
    sup.shutdown(false).await;
    let after = of_type(&bus, "nap", "process.resource").len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(of_type(&bus, "nap", "process.resource").len(), after);
}
