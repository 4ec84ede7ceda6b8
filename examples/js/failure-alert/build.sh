#!/usr/bin/env bash
# Builds failure-alert.wasm beside plugin.toml with jco's QuickJS backend, against
# the repository's wit/ (host:plugin@0.2.0, world event-handler-plugin). The flags
# are restart-on-failure's, for the same reasons: the host runs without
# component-model async, and WASI is not stubbed, so a thrown error or a
# value of the wrong shape reaches stderr and the failure report's
# guest_message (see docs/plugin-guide.md#javascript).
set -euo pipefail
cd "$(dirname "$0")"

# One jco install serves every example here (../package.json, ~340 MB and
# ~30 s each otherwise); a copy of this folder outside the repository
# installs its own from package.json. Not `npm ci`: npm 11 rejects the lock
# for lacking other platforms' optional bindings; `install --no-save` still
# follows the lock's versions and leaves package-lock.json untouched.
if [ -x node_modules/.bin/jco ]; then
    jco=node_modules/.bin/jco
elif [ -f ../package.json ] && grep -q '"host-js-examples"' ../package.json; then
    [ -x ../node_modules/.bin/jco ] || (cd .. && npm install --no-save --no-audit --no-fund)
    jco=../node_modules/.bin/jco
else
    npm install --no-save --no-audit --no-fund
    jco=node_modules/.bin/jco
fi

"$jco" componentize app.js \
    --wit ../../../wit \
    --world-name event-handler-plugin \
    --backend quickjs \
    --backend-qjs-disable-async \
    -o failure-alert.wasm
