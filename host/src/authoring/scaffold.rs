//! Plugin project templates for Rust, JavaScript and Python.
