//! The WIT 0.2 aggregator imports (`history`, `stats`) called by a real
//! guest (`aggregator-reader`), not only from the host's side.

use super::*;

/// Publishes `n` events of `ty` from `source`; their sequences.
fn publish_from(h: &Harness, source: &str, ty: &str, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            h.bus
                .publish(NewEvent::new(source, ty, json!({ "i": i })))
                .unwrap()
                .sequence
        })
        .collect()
}

#[tokio::test]
async fn a_guest_reads_history_by_source_type_and_window_through_its_import() {
    let mut h = harness(&[("reader", fixture("aggregator-reader"))], |_| {}).await;
    let alpha = publish_from(&h, "alpha", "work.done", 3);
    let beta = publish_from(&h, "beta", "work.failed", 2);

    h.publish("test.history", json!({ "source": "alpha" }));
    let (ty, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(ty, "test.history-result");
    let sequences: Vec<u64> = serde_json::from_value(data["sequences"].clone()).unwrap();
    assert_eq!(sequences, alpha, "exactly alpha's events, oldest first");

    h.publish("test.history", json!({ "types": ["work.failed"] }));
    let (_, data) = emitted(&h.next_action().await).remove(0);
    let sequences: Vec<u64> = serde_json::from_value(data["sequences"].clone()).unwrap();
    assert_eq!(sequences, beta);

    // A window that ends before anything was published holds nothing.
    h.publish("test.history", json!({ "until_ms": 1_000 }));
    let (_, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(data["sequences"], json!([]));

    // The limit holds, and paging on with `after` gives the rest.
    h.publish(
        "test.history",
        json!({ "source": "alpha", "after": 0, "limit": 2 }),
    );
    let (_, data) = emitted(&h.next_action().await).remove(0);
    let first: Vec<u64> = serde_json::from_value(data["sequences"].clone()).unwrap();
    assert_eq!(first, alpha[..2]);
    h.publish(
        "test.history",
        json!({ "source": "alpha", "after": first[1], "limit": 2 }),
    );
    let (_, data) = emitted(&h.next_action().await).remove(0);
    let rest: Vec<u64> = serde_json::from_value(data["sequences"].clone()).unwrap();
    assert_eq!(rest, alpha[2..]);
}

#[tokio::test]
async fn a_guest_counts_events_by_type_and_source_through_its_import() {
    let mut h = harness(&[("reader", fixture("aggregator-reader"))], |_| {}).await;
    publish_from(&h, "alpha", "work.done", 4);
    publish_from(&h, "beta", "work.failed", 2);
    h.publish("test.stats", json!({}));
    let (ty, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(ty, "test.stats-result");
    assert_eq!(data["by_type"]["work.done"], 4, "{data}");
    assert_eq!(data["by_type"]["work.failed"], 2, "{data}");
    assert_eq!(data["by_source"]["alpha"], 4, "{data}");
    assert_eq!(data["by_source"]["beta"], 2, "{data}");
    assert_eq!(data["complete"], true);
    assert!(data["minutes"].as_u64().unwrap() >= 1, "{data}");
    // Everything counted is somewhere in the per-type counts.
    let by_type: u64 = data["by_type"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(data["total"].as_u64(), Some(by_type));

    // A window in the past counts nothing.
    h.publish("test.stats", json!({ "until_ms": 1_000 }));
    let (_, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(data["total"], 0, "{data}");
}
