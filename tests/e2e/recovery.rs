//! Crash-only recovery: a new `host run` on the state folder of a killed host accounts for every process.
