//! `spin-forever`: never returns from `handle` on `test.spin`, so deadline
//! tests can watch the host interrupt it (epoch deadline → trap) and carry on.

use exports::host::plugin::event_handler::Guest;
use host::plugin::types::{Action, Event};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../../wit" });

struct SpinForever;

impl Guest for SpinForever {
    fn subscriptions() -> Vec<String> {
        vec!["test.spin".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "test.spin" {
            return Ok(Vec::new());
        }
        // `black_box` keeps the optimiser from proving the loop useless; the
        // point is to burn CPU until the host cuts us off.
        let mut spins: u64 = 0;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

export!(SpinForever);
