//! `host plugin new` in Rust, JavaScript and Python: from scaffold to a live plugin.
