//! `forgetful-rule`: a dependency rule that exports `task-memory` (world
//! `remembering-rule-plugin`), to test how the host asks by numbers. Two
//! tasks depend when their titles are equal (as kitchen-sink decides).
//!
//! Config `memory` says how its memory behaves:
//! - `honest` (default): remembers what it is handed, answers by number;
//! - `forgets`: remembers nothing, so every `check-remembered` names every
//!   number it was asked about (the host must fall back to `check-batch`);
//! - `liar`: names a number it was never asked about, and nothing else, as
//!   not remembered (the host must not hand over what it was not asked for,
//!   nor loop);
//! - `out-of-range`: remembers honestly but answers each hit twice and adds
//!   an index past the candidates (the host keeps the first, drops the rest).

wit_bindgen::generate!({ world: "remembering-rule-plugin", path: "../../../wit" });

include!("rule.rs");

export!(Forgetful);
