//! Scenario: the event stream (server-sent events) cut in the middle and
//! resumed with `Last-Event-ID` — by sequence numbers, no event is missed
//! and none is repeated, across history and live.

use std::io::{BufRead as _, BufReader};
use std::time::Duration;

use host_tests::{Api, RunningHost};
use reqwest::Method;
use serde_json::{Value, json};

/// Reads SSE events (`id:` + `data:`) until `n` have arrived; comments
/// (heartbeats) are skipped.
fn read_events(reader: &mut impl std::io::BufRead, n: usize) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    let (mut id, mut data) = (None, String::new());
    while out.len() < n {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the stream ended early"
        );
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().parse::<u64>().unwrap());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            let event: Value = serde_json::from_str(&data).unwrap();
            let seq = id.take().expect("every event has an id");
            assert_eq!(event["sequence"], seq, "id is the sequence");
            out.push((seq, event));
            data.clear();
        }
    }
    out
}

fn publish(api: &Api, n: u64) -> u64 {
    let (status, e) = api.post(
        "/v1/events",
        &json!({ "type": "test.count", "data": { "n": n } }),
    );
    assert_eq!(status, 201, "{e}");
    e["sequence"].as_u64().unwrap()
}

fn open(
    api: &Api,
    query: &str,
    last_event_id: Option<u64>,
) -> BufReader<reqwest::blocking::Response> {
    let mut request = api.request(Method::GET, &format!("/v1/events/stream?{query}"));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    BufReader::new(response)
}

#[test]
fn a_stream_cut_midway_resumes_with_last_event_id_without_gap_or_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let mut host = RunningHost::start(&plugins, &tmp.path().join("state"), &["--no-build"]);
    let api = host.api();

    // History before anyone listens.
    let mut published: Vec<u64> = (1..=30).map(|n| publish(&api, n)).collect();
    // No cursor: the newest 10 matching events, then live.
    let mut stream = open(&api, "type=test.count&limit=10", None);
    let first = read_events(&mut stream, 10);
    let firsts: Vec<u64> = first.iter().map(|(s, _)| *s).collect();
    assert_eq!(firsts, published[20..30], "the newest ten, oldest first");
    // Live events while connected; read part of them and cut.
    let live: Vec<u64> = (31..=50).map(|n| publish(&api, n)).collect();
    published.extend(&live);
    let part = read_events(&mut stream, 7);
    drop(stream);
    let last_seen = part.last().unwrap().0;
    // More while disconnected, noise of another type between them.
    for n in 51..=70 {
        published.push(publish(&api, n));
        let _ = api.post("/v1/events", &json!({ "type": "test.noise" }));
    }
    let mut resumed = open(&api, "type=test.count", Some(last_seen));
    let rest_count = published.iter().filter(|s| **s > last_seen).count();
    let rest = read_events(&mut resumed, rest_count);

    let mut seen: Vec<u64> = first
        .iter()
        .chain(&part)
        .chain(&rest)
        .map(|(s, _)| *s)
        .collect();
    let expected: Vec<u64> = published[20..].to_vec();
    assert_eq!(seen, expected, "every event exactly once, in order");
    seen.dedup();
    assert_eq!(seen.len(), expected.len());
    // `?after=` resumes the same way, for clients that cannot set headers.
    let mut by_query = open(&api, &format!("type=test.count&after={last_seen}"), None);
    let again = read_events(&mut by_query, 3);
    let seqs: Vec<u64> = again.iter().map(|(s, _)| *s).collect();
    let want: Vec<u64> = published
        .iter()
        .copied()
        .filter(|s| *s > last_seen)
        .take(3)
        .collect();
    assert_eq!(seqs, want);
    drop(by_query);
    drop(resumed);
    assert!(host.terminate().unwrap().success(), "{}", host.stderr());
}

#[test]
fn an_idle_stream_sends_heartbeats_and_a_bad_last_event_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let mut host = RunningHost::start(&plugins, &tmp.path().join("state"), &["--no-build"]);
    let api = host.api();
    let (status, error) = {
        let response = api
            .request(Method::GET, "/v1/events/stream")
            .header("Last-Event-ID", "yesterday")
            .send()
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().unwrap(),
        )
    };
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("Last-Event-ID"))
    );
    // A filter that matches nothing: only heartbeat comments arrive.
    let response = api
        .request(Method::GET, "/v1/events/stream?type=never.happens")
        .send()
        .unwrap();
    let mut reader = BufReader::new(response);
    let started = std::time::Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0);
        if line.starts_with(':') {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no heartbeat");
    }
    drop(reader);
    let _ = host.terminate();
}
