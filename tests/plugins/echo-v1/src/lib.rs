//! `echo-v1`: answers `test.ping` with `test.pong` {"version": 1, "ping_sequence", "handled_ms"},
//! or fails with "asked to fail" when the ping's data has `"fail": true`;
//! with `"count": true` it counts the ping in host state and says the count.
//! Hot-reload tests swap this component for its sibling and watch the version.

const VERSION: u32 = 1;

include!("../../echo-shared/echo.rs");
