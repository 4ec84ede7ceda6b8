//! `host plugin test`: replay, `--against`, `--expect`.
