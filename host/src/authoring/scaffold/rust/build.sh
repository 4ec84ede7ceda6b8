#!/usr/bin/env bash
# Builds {{name}}.wasm beside plugin.toml: the release component for
# wasm32-wasip2 (`rustup target add wasm32-wasip2` once), copied out of
# cargo's target folder, wherever CARGO_TARGET_DIR or a cargo config puts it.
# `cargo test` runs the unit tests natively.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --release --target wasm32-wasip2
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
cp "${target_dir:-target}/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm
