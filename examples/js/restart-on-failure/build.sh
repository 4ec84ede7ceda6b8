#!/usr/bin/env bash
# Builds restart-on-failure.wasm beside plugin.toml with jco's QuickJS
# backend. The flags matter: the host runs without component-model async, and
# QuickJS with stubbed WASI keeps the component small (~1.6 MB) and fast.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x node_modules/.bin/jco ]; then
    # Not `npm ci`: npm 11 rejects this lock for lacking other platforms'
    # optional bindings. `install --no-save` still follows the lock's
    # versions and leaves package-lock.json untouched.
    npm install --no-save --no-audit --no-fund
fi

node_modules/.bin/jco componentize app.js \
    --wit ../../../wit/v0.1 \
    --world-name event-handler-plugin \
    --backend quickjs \
    --backend-qjs-stub-wasi \
    --backend-qjs-disable-async \
    -o restart-on-failure.wasm
