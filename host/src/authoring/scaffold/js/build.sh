#!/usr/bin/env bash
# Builds {{name}}.wasm beside plugin.toml with jco's QuickJS backend, after
# writing the type definitions and running the tests.
#
# package.json pins @bytecodealliance/preview2-shim to 0.26.0: with 0.26.1,
# which jco 1.35 would otherwise pull in, `jco guest-types` cannot read any
# file ("failed to read path for WIT ... os error 44").
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x node_modules/.bin/jco ]; then
    npm install --no-audit --no-fund --prefer-offline
fi

# types/: the WIT as TypeScript declarations (`host:plugin/host@0.2.0` and
# the kind's interface), so an editor completes and checks app.js
# (jsconfig.json includes them).
node_modules/.bin/jco guest-types wit --world-name {{world}} -o types --quiet

# The tests (test/app.test.js) run in Node before anything is built.
node --import ./test/setup.js --test test/app.test.js

# The host runs without component-model async, so QuickJS must be built
# without it. WASI is not stubbed (no --backend-qjs-stub-wasi): that keeps
# stderr, where jco says what it could not convert when app.js returns the
# wrong shape, and the host puts those words in plugin.failed. The host
# grants WASI nothing unless plugin.toml asks, so this adds no authority.
node_modules/.bin/jco componentize app.js \
    --wit wit \
    --world-name {{world}} \
    --backend quickjs \
    --backend-qjs-disable-async \
    -o {{name}}.wasm
