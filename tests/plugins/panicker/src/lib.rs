//! `panicker`: subscribes to `test.ping` like `echo-v1`/`echo-v2` and
//! panics on every one, with a message naming the ping. The panic message
//! goes to the guest's stderr before the trap; the host's report of the
//! failure must carry it (`guest_message`). As a new version of `echo` it
//! is the shadow that traps and must not be swapped in.

use exports::host::plugin::event_handler::Guest;
use host::plugin::types::{Action, Event};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../../wit" });

struct Panicker;

impl Guest for Panicker {
    fn subscriptions() -> Vec<String> {
        vec!["test.ping".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        panic!("panicker refuses ping {} (data {})", e.sequence, e.data);
    }
}

export!(Panicker);
