#!/usr/bin/env bash
# Builds restart-on-failure.wasm beside plugin.toml with jco's QuickJS
# backend. The flags matter: the host runs without component-model async, and
# QuickJS with stubbed WASI keeps the component small (~1.6 MB) and fast.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x node_modules/.bin/jco ]; then
    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi

node_modules/.bin/jco componentize app.js \
    --wit ../../../wit \
    --world-name event-handler-plugin \
    --backend quickjs \
    --backend-qjs-stub-wasi \
    --backend-qjs-disable-async \
    -o restart-on-failure.wasm
