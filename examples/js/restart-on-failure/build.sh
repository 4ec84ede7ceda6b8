#!/usr/bin/env bash
# Builds restart-on-failure.wasm beside plugin.toml with jco's QuickJS
# backend. The flags matter: the host runs without component-model async
# (--backend-qjs-disable-async). WASI is *not* stubbed
# (no --backend-qjs-stub-wasi): with it the guest cannot write to stderr, so
# a handler returning the wrong shape fails as a bare "wasm `unreachable`",
# while without it jco's runtime says what it could not convert (e.g.
# `expected string: FromJs { from: "undefined", to: "string" }`) and the
# host reports that as the failure's `guest_message`. The host grants WASI
# nothing by default either way; the component is no larger (~1.6 MB).
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
    --backend-qjs-disable-async \
    -o restart-on-failure.wasm
