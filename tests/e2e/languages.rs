//! The same policies in Rust, JavaScript and Python: identical decisions on shared fixtures, loaded by the real host.
