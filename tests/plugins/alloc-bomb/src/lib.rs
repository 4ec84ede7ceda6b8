//! `alloc-bomb`: allocates and touches 1 GiB on `test.alloc`, so memory-cap
//! tests can watch the host's limit stop it. Under a cap the allocation fails
//! and the guest traps; without one it emits `test.alloc-survived`
//! {"bytes": 1073741824}, which tells a test the cap was not applied.

use exports::host::plugin::event_handler::Guest;
use host::plugin::types::{Action, Event, NewEvent};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../../wit" });

const BYTES: usize = 1 << 30;
const PAGE: usize = 4096;

struct AllocBomb;

impl Guest for AllocBomb {
    fn subscriptions() -> Vec<String> {
        vec!["test.alloc".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "test.alloc" {
            return Ok(Vec::new());
        }
        // Writing every page makes the memory real even on hosts that
        // commit lazily; `black_box` keeps the writes from being elided.
        let mut block = vec![0u8; BYTES];
        for offset in (0..BYTES).step_by(PAGE) {
            block[offset] = 1;
        }
        std::hint::black_box(&block);
        let data = serde_json::json!({ "bytes": BYTES });
        Ok(vec![Action::Emit(NewEvent {
            type_: "test.alloc-survived".to_string(),
            subject: None,
            data: data.to_string(),
        })])
    }
}

export!(AllocBomb);
