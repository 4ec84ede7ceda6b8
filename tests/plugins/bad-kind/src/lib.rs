//! `bad-kind`: a valid component that exports only `test:other/thing` (WIT in
//! this crate's `wit/`), none of the host's plugin kinds, so the loader's
//! "exports no known plugin kind" rejection can be tested.

use exports::test::other::thing::Guest;

wit_bindgen::generate!({ world: "bad", path: "wit" });

struct Bad;

impl Guest for Bad {
    fn hello() -> String {
        "I am not a plugin".to_string()
    }
}

export!(Bad);
